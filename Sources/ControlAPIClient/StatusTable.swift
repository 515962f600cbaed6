import Foundation

/// The status document as a human table (`lampctl status`, `lampctl watch`) and as one line (`lampctl watch`
/// when piped). Pure; any thread.
public enum StatusTable {
    /// A multi-line table, every line at most about 100 columns.
    public static func render(_ status: StatusDocument) -> String {
        var lines: [String] = []
        func row(_ label: String, _ value: String) {
            lines.append(label.padding(toLength: 16, withPad: " ", startingAt: 0) + value)
        }
        row("Cell", "\(status.cellID)   LampCell \(status.version)   up \(duration(status.uptimeSeconds))")
        var state = "\(status.packml.state) (\(status.packml.mode)) for \(duration(status.packml.stateSeconds))"
        if let wait = status.packml.materialWait { state += "  waiting: \(wait)" }
        if let cause = status.packml.suspendCause { state += "  suspended: \(cause)" }
        row("State", state)
        if let reason = status.packml.stopReason {
            row(
                "Stop reason",
                "\(reason.message) [\(reason.kind)\(reason.device.map { ", \($0)" } ?? "")] → \(reason.action) in \(reason.inState)")
        }
        if let order = status.order {
            row(
                "Order",
                "\(order.id)  \(order.variant)  \(order.produced)/\(order.quantity) good  "
                    + (order.active ? "active" : "ended"))
        } else {
            row("Order", "none")
        }
        let counts = status.counts
        row(
            "Lamps",
            "order: \(counts.processed) done, \(counts.good) good, \(counts.defective) NG, \(counts.scrapped) scrapped   "
                + "since start: \(counts.processedTotal) done, \(counts.defectiveTotal) NG")
        let oee = status.oee
        row(
            "OEE",
            "\(percent(oee.oee))  (availability \(percent(oee.availability)), performance \(percent(oee.performance)), "
                + "quality \(percent(oee.quality)))")
        let cycle = status.cycleTime
        row(
            "Cycle time",
            cycle.samples == 0
                ? "no lamp yet"
                : "last \(seconds(cycle.lastSeconds)), mean \(seconds(cycle.meanSeconds)), p50 \(seconds(cycle.p50Seconds)), "
                    + "p95 \(seconds(cycle.p95Seconds)) (\(cycle.samples) lamps)")
        if let lamp = status.lampInCell { row("In the cell", "\(lamp.serial) \(lamp.variant)") }
        if let lamp = status.lastLamp {
            row(
                "Last lamp",
                "\(lamp.serial) \(lamp.variant) \(lamp.verdict)"
                    + (lamp.reasons.isEmpty ? "" : " (\(lamp.reasons.joined(separator: ", ")))")
                    + (lamp.cycleTimeSeconds.map { " \(String(format: "%.1f", $0)) s" } ?? ""))
        }
        let loop = status.controlLoop
        row(
            "Control loop",
            "period \(String(format: "%.0f", loop.periodMicroseconds)) µs, \(loop.periodsRun) periods, "
                + "\(loop.overruns) overruns; wake-up p99 \(micro(loop.wakeLatencyP99Microseconds)), "
                + "p99.9 \(micro(loop.wakeLatencyP999Microseconds)), max \(micro(loop.wakeLatencyMaxMicroseconds))")
        for phase in loop.phases where phase.name != "wake_latency" {
            row(
                "  \(phase.name)",
                "p50 \(micro(phase.p50Microseconds))  p99 \(micro(phase.p99Microseconds))  "
                    + "p99.9 \(micro(phase.p999Microseconds))  max \(micro(phase.maxMicroseconds))")
        }
        if let ledger = status.ledger {
            row("Ledger", "\(ledger.count) lamps, last \(ledger.lastSerial ?? "-"), hash \(ledger.hash.prefix(16))…")
        }
        lines.append("")
        lines.append("DEVICE     LINK          FAULT                  STATUS")
        for device in status.devices {
            let link = device.connected ? "ok" : "\(device.link) ×\(device.consecutiveFailures)"
            let fault = device.faultCodeValue == 0 ? "-" : "\(device.faultCode) \(device.faultName)"
            lines.append(
                device.name.padding(toLength: 11, withPad: " ", startingAt: 0)
                    + link.padding(toLength: 14, withPad: " ", startingAt: 0)
                    + fault.padding(toLength: 23, withPad: " ", startingAt: 0)
                    + device.status.joined(separator: " "))
        }
        return lines.joined(separator: "\n")
    }

    /// One line: time, state, order progress, counts, devices not connected or faulted.
    public static func line(_ status: StatusDocument) -> String {
        var text = "\(status.snapshotAt) \(status.packml.state) \(status.packml.mode)"
        if let order = status.order { text += " order \(order.id) \(order.produced)/\(order.quantity)" }
        text += " done \(status.counts.processed) NG \(status.counts.defective) scrapped \(status.counts.scrapped)"
        text += " OEE \(percent(status.oee.oee))"
        let troubled = status.devices.filter { !$0.connected || $0.faultCodeValue != 0 }
        if !troubled.isEmpty {
            text += " devices: " + troubled.map { "\($0.name) \($0.connected ? $0.faultName : $0.link)" }.joined(separator: ", ")
        }
        if let reason = status.packml.stopReason { text += " stop reason: \(reason.message)" }
        return text
    }

    static func percent(_ value: Double?) -> String { value.map { String(format: "%.1f %%", $0 * 100) } ?? "n/a" }
    static func seconds(_ value: Double?) -> String { value.map { String(format: "%.1f s", $0) } ?? "n/a" }
    static func micro(_ value: Double) -> String { String(format: "%.0f µs", value) }
    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds)
        if total >= 3600 { return "\(total / 3600) h \(total % 3600 / 60) min" }
        if total >= 60 { return "\(total / 60) min \(total % 60) s" }
        return String(format: "%.1f s", seconds)
    }
}
