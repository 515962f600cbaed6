import Foundation
import Ledger

extension ShiftReport {
    /// The report as one printable HTML page (A4 landscape, two printed pages: the shift at a glance, then the
    /// losses). Every text from the ledger or the history is escaped.
    public func html() -> String {
        var page = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>Shift report \(Self.escape(cellID))</title>
            <style>\(Self.style)</style></head><body>
            <section class="page">
            <h1>Shift report · \(Self.escape(cellID))</h1>
            <p class="window">\(Self.time(fromWallNanoseconds)) – \(Self.time(toWallNanoseconds)) · made \(Self.time(generatedWallNanoseconds))</p>
            <div class="summary">
            """
        let figures: [(String, String)] = [
            ("Lamps", "\(processed)"), ("OK", "\(ok)"), ("NG", "\(ng)"), ("Scrapped", "\(scrapped)"),
            ("Availability", Self.percent(availability)), ("Performance", Self.percent(performance)),
            ("Quality", Self.percent(quality)), ("OEE", Self.percent(oee)),
        ]
        for (name, value) in figures {
            page += "<div class=\"figure\"><div class=\"value\">\(value)</div><div class=\"name\">\(name)</div></div>"
        }
        page += "</div>\n<div class=\"row\"><div class=\"chart\"><h2>Output per hour</h2>\(outputChart())</div>"
        page += "<div class=\"chart\"><h2>OEE and its losses</h2>\(lossChart())</div></div>\n</section>\n"
        page += "<section class=\"page\"><h1>Losses · \(Self.escape(cellID))</h1>\n<div class=\"row\">"
        page += "<div class=\"chart\"><h2>Stop reasons (downtime, Pareto)</h2>\(paretoChart())</div>"
        page += "<div class=\"chart\"><h2>NG and scrap reasons</h2>\(reasonChart())</div></div>\n<div class=\"row\">"
        page += "<div class=\"chart\"><h2>Cycle-time distribution</h2>\(cycleChart())</div>"
        page += "<div class=\"chart\"><h2>Alarms</h2>\(alarmTable())</div></div>\n</section>\n</body></html>\n"
        return page
    }

    private func outputChart() -> String {
        let width = 520.0, height = 220.0, left = 40.0, bottom = 190.0
        let most = max(1, hours.map { $0.ok + $0.ng + $0.scrapped }.max() ?? 1)
        var svg = "<svg viewBox=\"0 0 \(width) \(height)\" class=\"svg\">"
        svg += Self.axis(left: left, bottom: bottom, right: width - 10, top: 10)
        svg += "<text x=\"4\" y=\"18\" class=\"small\">\(most)</text>"
        let slot = (width - left - 10) / Double(max(1, hours.count))
        for (index, hour) in hours.enumerated() {
            let x = left + Double(index) * slot + 2
            var y = bottom
            for (count, kind) in [(hour.ok, "ok"), (hour.ng, "ng"), (hour.scrapped, "scrap")] where count > 0 {
                let barHeight = Double(count) / Double(most) * (bottom - 20)
                y -= barHeight
                svg += "<rect class=\"\(kind)\" x=\"\(Self.n(x))\" y=\"\(Self.n(y))\" width=\"\(Self.n(max(1, slot - 4)))\" height=\"\(Self.n(barHeight))\"/>"
            }
            if hours.count <= 12 || index % 2 == 0 {
                svg += "<text x=\"\(Self.n(x))\" y=\"\(bottom + 16)\" class=\"small\">\(Self.hourLabel(hour.startWallNanoseconds))</text>"
            }
        }
        svg += "</svg><p class=\"legend\"><span class=\"key ok\"></span>OK <span class=\"key ng\"></span>NG <span class=\"key scrap\"></span>scrapped</p>"
        return svg
    }

    private func lossChart() -> String {
        guard let planned = plannedSeconds, planned > 0, let run = runSeconds else {
            return "<p>No state history in this window: availability and the losses cannot be measured.</p>"
        }
        let qualityLoss = processed > 0 ? idealSeconds * Double(ng + scrapped) / Double(processed) : 0
        let rows: [(String, Double, String)] = [
            ("Planned time", planned, "planned"),
            ("Availability loss (stops, holds, waits)", max(0, planned - run), "loss"),
            ("Performance loss (slower than ideal)", max(0, run - idealSeconds), "loss"),
            ("Quality loss (NG and scrap)", qualityLoss, "loss"),
            ("Fully productive time", max(0, idealSeconds - qualityLoss), "ok"),
        ]
        var svg = "<svg viewBox=\"0 0 520 220\" class=\"svg\">"
        for (index, row) in rows.enumerated() {
            let y = 10 + Double(index) * 40
            let width = row.1 / planned * 240
            svg += "<text x=\"0\" y=\"\(Self.n(y + 16))\" class=\"small\">\(row.0)</text>"
            svg += "<rect class=\"\(row.2)\" x=\"210\" y=\"\(Self.n(y))\" width=\"\(Self.n(max(1, width)))\" height=\"24\"/>"
            svg += "<text x=\"\(Self.n(214 + width))\" y=\"\(Self.n(y + 16))\" class=\"small\">\(Self.duration(row.1))</text>"
        }
        return svg + "</svg>"
    }

    private func paretoChart() -> String {
        guard !stopReasons.isEmpty else { return "<p>No stop in this window.</p>" }
        let rows = Array(stopReasons.prefix(Self.maximumRows))
        let total = max(1e-9, stopReasons.reduce(0) { $0 + $1.downtimeSeconds })
        let longest = max(1e-9, rows.map(\.downtimeSeconds).max() ?? 1)
        let left = 40.0, bottom = 170.0, width = 470.0
        let slot = width / Double(rows.count)
        var svg = "<svg viewBox=\"0 0 520 230\" class=\"svg\">" + Self.axis(left: left, bottom: bottom, right: left + width, top: 10)
        var cumulative = 0.0
        var points: [String] = []
        for (index, row) in rows.enumerated() {
            let barHeight = row.downtimeSeconds / longest * (bottom - 20)
            let x = left + Double(index) * slot
            cumulative += row.downtimeSeconds
            svg += "<rect class=\"ng\" x=\"\(Self.n(x + 3))\" y=\"\(Self.n(bottom - barHeight))\" width=\"\(Self.n(slot - 6))\" height=\"\(Self.n(barHeight))\"/>"
            svg += "<text x=\"\(Self.n(x + 3))\" y=\"\(Self.n(bottom - barHeight - 4))\" class=\"small\">\(Self.duration(row.downtimeSeconds))</text>"
            svg += "<text x=\"\(Self.n(x + 3))\" y=\"\(bottom + 14)\" class=\"small\">\(Self.escape(row.code))</text>"
            svg += "<text x=\"\(Self.n(x + 3))\" y=\"\(bottom + 28)\" class=\"small\">×\(row.stops)</text>"
            points.append("\(Self.n(x + slot / 2)),\(Self.n(bottom - cumulative / total * (bottom - 20)))")
        }
        svg += "<polyline class=\"cumulative\" points=\"\(points.joined(separator: " "))\"/></svg>"
        svg += "<p class=\"legend\">bars: downtime per stop reason (until the cell ran again); line: cumulative share</p>"
        return svg
    }

    private func reasonChart() -> String {
        guard !rejectReasons.isEmpty else { return "<p>No NG or scrapped lamp in this window.</p>" }
        let rows = Array(rejectReasons.prefix(Self.maximumRows))
        let most = Double(rows.map(\.lamps).max() ?? 1)
        var svg = "<svg viewBox=\"0 0 520 \(Self.n(Double(rows.count) * 28 + 10))\" class=\"svg\">"
        for (index, row) in rows.enumerated() {
            let y = 4 + Double(index) * 28
            let width = Double(row.lamps) / most * 250
            svg += "<text x=\"0\" y=\"\(Self.n(y + 15))\" class=\"small\">\(Self.escape(row.reason))</text>"
            svg += "<rect class=\"ng\" x=\"220\" y=\"\(Self.n(y))\" width=\"\(Self.n(max(1, width)))\" height=\"20\"/>"
            svg += "<text x=\"\(Self.n(226 + width))\" y=\"\(Self.n(y + 15))\" class=\"small\">\(row.lamps)</text>"
        }
        return svg + "</svg>"
    }

    private func cycleChart() -> String {
        guard let low = cycleTimesSeconds.min(), let high = cycleTimesSeconds.max() else {
            return "<p>No lamp left the cell in this window.</p>"
        }
        let span = max(high - low, 0.1)
        var bins = [Int](repeating: 0, count: Self.cycleTimeBins)
        for value in cycleTimesSeconds {
            bins[min(Self.cycleTimeBins - 1, Int((value - low) / span * Double(Self.cycleTimeBins)))] += 1
        }
        let most = Double(bins.max() ?? 1)
        let left = 40.0, bottom = 170.0, width = 470.0
        let slot = width / Double(Self.cycleTimeBins)
        var svg = "<svg viewBox=\"0 0 520 200\" class=\"svg\">" + Self.axis(left: left, bottom: bottom, right: left + width, top: 10)
        for (index, count) in bins.enumerated() where count > 0 {
            let barHeight = Double(count) / most * (bottom - 20)
            svg += "<rect class=\"ok\" x=\"\(Self.n(left + Double(index) * slot + 1))\" y=\"\(Self.n(bottom - barHeight))\" width=\"\(Self.n(slot - 2))\" height=\"\(Self.n(barHeight))\"/>"
        }
        svg += "<text x=\"\(left)\" y=\"\(bottom + 16)\" class=\"small\">\(String(format: "%.1f s", low))</text>"
        svg += "<text x=\"\(left + width - 50)\" y=\"\(bottom + 16)\" class=\"small\">\(String(format: "%.1f s", high))</text>"
        let sorted = cycleTimesSeconds.sorted()
        let median = sorted[sorted.count / 2]
        let p95 = sorted[min(sorted.count - 1, Int((0.95 * Double(sorted.count)).rounded(.up)) - 1)]
        svg += "</svg><p class=\"legend\">\(cycleTimesSeconds.count) lamps; median \(String(format: "%.2f", median)) s, p95 \(String(format: "%.2f", p95)) s</p>"
        return svg
    }

    private func alarmTable() -> String {
        guard !alarms.isEmpty else { return "<p>No alarm in this window.</p>" }
        var table = "<table><tr><th>alarm</th><th>times</th><th>total</th></tr>"
        for alarm in alarms.prefix(Self.maximumRows) {
            table += "<tr><td>\(Self.escape(alarm.message))</td><td>\(alarm.count)</td><td>\(Self.duration(alarm.seconds))</td></tr>"
        }
        return table + "</table>"
    }

    // MARK: - Helpers

    /// `text` for HTML text and attributes: by Unicode scalar, so that no combining mark hides a `<`.
    static func escape(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    private static func n(_ value: Double) -> String { String(format: "%.1f", value) }

    private static func percent(_ value: Double?) -> String { value.map { String(format: "%.1f %%", $0 * 100) } ?? "–" }

    private static func duration(_ seconds: Double) -> String {
        if seconds < 120 { return String(format: "%.0f s", seconds) }
        if seconds < 7200 { return String(format: "%.1f min", seconds / 60) }
        return String(format: "%.1f h", seconds / 3600)
    }

    private static func time(_ wallNanoseconds: Int64) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd HH:mm"
        return formatter.string(from: Date(timeIntervalSince1970: Double(wallNanoseconds) / 1e9))
    }

    private static func hourLabel(_ wallNanoseconds: Int64) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm"
        return formatter.string(from: Date(timeIntervalSince1970: Double(wallNanoseconds) / 1e9))
    }

    private static func axis(left: Double, bottom: Double, right: Double, top: Double) -> String {
        "<line class=\"axis\" x1=\"\(n(left))\" y1=\"\(n(bottom))\" x2=\"\(n(right))\" y2=\"\(n(bottom))\"/>"
            + "<line class=\"axis\" x1=\"\(n(left))\" y1=\"\(n(top))\" x2=\"\(n(left))\" y2=\"\(n(bottom))\"/>"
    }

    private static let style = """
        @page { size: A4 landscape; margin: 12mm; }
        body { font-family: "DejaVu Sans", Arial, sans-serif; color: #111; margin: 0; }
        .page { break-after: page; }
        .page:last-child { break-after: auto; }
        h1 { font-size: 22px; margin: 0 0 4px; }
        h2 { font-size: 15px; margin: 8px 0 4px; color: #333; }
        .window { color: #555; margin: 0 0 10px; }
        .summary { display: flex; gap: 8px; flex-wrap: wrap; margin-bottom: 8px; }
        .figure { border: 1px solid #bbb; border-radius: 6px; padding: 4px 8px; min-width: 72px; }
        .figure .value { font-size: 22px; font-weight: bold; }
        .figure .name { font-size: 12px; color: #555; }
        .row { display: flex; gap: 16px; }
        .chart { flex: 1; min-width: 0; }
        .svg { width: 100%; max-height: 250px; }
        .svg text, .small { font-size: 11px; fill: #333; }
        .axis { stroke: #888; stroke-width: 1; }
        rect.ok { fill: #2f9e5f; } rect.ng { fill: #d64545; } rect.scrap { fill: #e0a526; }
        rect.planned { fill: #5b7fb9; } rect.loss { fill: #d64545; }
        .cumulative { fill: none; stroke: #e0a526; stroke-width: 2; }
        .legend { font-size: 11px; color: #555; margin: 2px 0; }
        .key { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 10px; }
        .key.ok { background: #2f9e5f; } .key.ng { background: #d64545; } .key.scrap { background: #e0a526; }
        table { border-collapse: collapse; font-size: 12px; width: 100%; }
        td, th { border-bottom: 1px solid #ccc; padding: 3px 6px; text-align: left; }
        """
}
