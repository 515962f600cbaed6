// The shift report: output per hour, OEE and its losses, the stop-reason Pareto, NG reasons and the cycle-time
// distribution of a time window, from the ledger and the alarm and event history. One printable HTML page with
// inline SVG charts (no script, nothing loaded from elsewhere); `lampctl report` prints it to PDF with Chromium.

import Foundation
import Ledger
import PackML

/// The figures of one window. Built by `ShiftReport.make` (reads the ledger and the history), rendered by `html()`.
/// Thread: any (a value).
public struct ShiftReport: Sendable {
    /// Lamps per hour of the window (by the hour each lamp left the cell, local time).
    public struct Hour: Sendable, Equatable {
        public var startWallNanoseconds: Int64
        public var ok: Int
        public var ng: Int
        public var scrapped: Int
    }

    /// Bins of the cycle-time histogram.
    public static let cycleTimeBins = 20
    /// Reasons and alarms listed at most.
    public static let maximumRows = 12

    public var cellID: String
    public var fromWallNanoseconds: Int64
    public var toWallNanoseconds: Int64
    public var generatedWallNanoseconds: Int64
    public var hours: [Hour] = []
    public var ok = 0
    public var ng = 0
    public var scrapped = 0
    /// NG reasons (measurement names) and scrap reasons, with how many lamps had each, most first.
    public var rejectReasons: [(reason: String, lamps: Int)] = []
    public var cycleTimesSeconds: [Double] = []
    /// Σ ideal cycle time of the lamps made, s (from each lamp's recipe).
    public var idealSeconds: Double = 0
    /// PackML time in the window: planned (OEE's planned states) and run (Execute), s. nil without a history.
    public var plannedSeconds: Double?
    public var runSeconds: Double?
    public var stopReasons: [StopReasonTotal] = []
    /// Alarms in the window: code, message, how many times, total seconds.
    public var alarms: [(code: String, message: String, count: Int, seconds: Double)] = []

    public var processed: Int { ok + ng + scrapped }
    public var availability: Double? {
        guard let plannedSeconds, let runSeconds, plannedSeconds > 0 else { return nil }
        return runSeconds / plannedSeconds
    }
    public var performance: Double? {
        guard let runSeconds, runSeconds > 0, processed > 0 else { return nil }
        return min(1, idealSeconds / runSeconds)
    }
    public var quality: Double? { processed > 0 ? Double(ok) / Double(processed) : nil }
    public var oee: Double? {
        guard let availability, let performance, let quality else { return nil }
        return availability * performance * quality
    }

    /// Reads the window [`fromWallNanoseconds`, `toWallNanoseconds`) from `ledger` and `events` (nil: the report
    /// has no availability, Pareto or alarms). `idealCycleSeconds` maps recipe ids to their ideal cycle time.
    /// Blocks on disk.
    public static func make(
        cellID: String, ledger: Ledger, events: EventHistory?, fromWallNanoseconds: Int64, toWallNanoseconds: Int64,
        idealCycleSeconds: [String: Double], nowWallNanoseconds: Int64
    ) throws(LedgerError) -> ShiftReport {
        precondition(fromWallNanoseconds < toWallNanoseconds, "a report's window must not be empty")
        var report = ShiftReport(
            cellID: cellID, fromWallNanoseconds: fromWallNanoseconds, toWallNanoseconds: toWallNanoseconds,
            generatedWallNanoseconds: nowWallNanoseconds)
        let hourStarts = Self.hourStarts(from: fromWallNanoseconds, to: toWallNanoseconds)
        report.hours = hourStarts.map { Hour(startWallNanoseconds: $0, ok: 0, ng: 0, scrapped: 0) }
        var reasons: [String: Int] = [:]
        var filter = LedgerFilter()
        filter.endedAtOrAfterWallNanoseconds = fromWallNanoseconds
        filter.endedBeforeWallNanoseconds = toWallNanoseconds
        try ledger.forEachEntry(matching: filter) { entry in
            let hour = hourStarts.lastIndex { $0 <= entry.endWallNanoseconds } ?? 0
            switch entry.verdict {
            case "OK":
                report.ok += 1
                report.hours[hour].ok += 1
            case "NG":
                report.ng += 1
                report.hours[hour].ng += 1
                for reason in entry.reasons.components(separatedBy: "; ") where !reason.isEmpty {
                    reasons[reason, default: 0] += 1
                }
            default:
                report.scrapped += 1
                report.hours[hour].scrapped += 1
                reasons["scrapped: " + (entry.reasons.isEmpty ? "no reason" : entry.reasons), default: 0] += 1
            }
            report.cycleTimesSeconds.append(entry.cycleTimeSeconds)
            report.idealSeconds += idealCycleSeconds[entry.recipeID] ?? 0
        }
        report.rejectReasons = reasons.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map { ($0.key, $0.value) }
        if let events {
            try report.addHistory(events, now: nowWallNanoseconds)
        }
        return report
    }

    /// Planned and run time from the state changes, the stop reasons' Pareto and the alarms.
    private mutating func addHistory(_ events: EventHistory, now: Int64) throws(LedgerError) {
        let end = min(toWallNanoseconds, now)
        var state = try events.latest(.state, beforeWallNanoseconds: fromWallNanoseconds)?.code
        var since = fromWallNanoseconds
        var planned: Int64 = 0
        var run: Int64 = 0
        func account(until time: Int64) {
            guard let name = state, let current = PackMLState.allCases.first(where: { $0.description == name }) else { return }
            let span = max(0, min(time, end) - since)
            if OEECalculator.isPlanned(current) { planned += span }
            if current == .execute { run += span }
        }
        // `Offline` (the daemon not running) is no PackML state: neither planned nor run.
        for change in try events.stateChanges(fromWallNanoseconds: fromWallNanoseconds, toWallNanoseconds: toWallNanoseconds) {
            account(until: change.startedWallNanoseconds)
            state = change.code
            since = max(fromWallNanoseconds, change.startedWallNanoseconds)
        }
        account(until: end)
        plannedSeconds = Double(planned) / 1e9
        runSeconds = Double(run) / 1e9
        stopReasons = try events.stopPareto(
            fromWallNanoseconds: fromWallNanoseconds, toWallNanoseconds: toWallNanoseconds, nowWallNanoseconds: now)
        var alarmTotals: [String: (message: String, count: Int, seconds: Double)] = [:]
        for alarm in try events.events(
            fromWallNanoseconds: fromWallNanoseconds, toWallNanoseconds: toWallNanoseconds, kinds: [.alarm])
        {
            let start = max(alarm.startedWallNanoseconds, fromWallNanoseconds)
            let stop = min(alarm.endedWallNanoseconds ?? now, toWallNanoseconds)
            var total = alarmTotals[alarm.code] ?? (alarm.message, 0, 0)
            total.count += 1
            total.seconds += Double(max(0, stop - start)) / 1e9
            alarmTotals[alarm.code] = total
        }
        alarms = alarmTotals.map { (code: $0.key, message: $0.value.message, count: $0.value.count, seconds: $0.value.seconds) }
            .sorted { ($0.seconds, $1.code) > ($1.seconds, $0.code) }
    }

    /// The start of every local hour that overlaps the window (the first is the window's start).
    static func hourStarts(from: Int64, to: Int64) -> [Int64] {
        var starts = [from]
        let calendar = Calendar.current
        let first = Date(timeIntervalSince1970: Double(from) / 1e9)
        guard var next = calendar.nextDate(after: first, matching: DateComponents(minute: 0, second: 0), matchingPolicy: .nextTime)
        else { return starts }
        while Int64(next.timeIntervalSince1970 * 1e9) < to, starts.count < 24 * 31 {
            starts.append(Int64(next.timeIntervalSince1970 * 1e9))
            next = next.addingTimeInterval(3600)
        }
        return starts
    }
}
