import CellCore
import ControlAPIClient
import Foundation
import PackML
import Prometheus

/// `GET /metrics`: the status document as Prometheus text format (swift-prometheus registry), updated at each
/// scrape. Counters that only grow (lamps, overruns, periods) are Prometheus counters; the rest are gauges.
/// Any thread (scrapes are serialised by a lock).
final class MetricsExporter: @unchecked Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let lock = NSLock()
    private var gauges: [String: Gauge] = [:]
    private var counters: [String: (counter: Counter, last: UInt64)] = [:]
    private let help: [String: String] = [
        "lampcell_info": "LampCell version and cell (value 1)",
        "lampcell_up_seconds": "Seconds since the daemon's API started",
        "lampcell_packml_state": "1 for the current PackML state, 0 for the others",
        "lampcell_packml_state_code": "Current PackML state (PackTags StateCurrent number)",
        "lampcell_packml_mode": "1 for the current unit mode, 0 for the others",
        "lampcell_order_quantity": "Good lamps the current production order asks for",
        "lampcell_order_produced": "Good lamps made for the current production order",
        "lampcell_order_active": "1 while a production order is active",
        "lampcell_lamps_processed_total": "Lamps that finished the cycle since the daemon started",
        "lampcell_lamps_good_total": "Good lamps since the daemon started",
        "lampcell_lamps_defective_total": "Defective (NG) lamps since the daemon started",
        "lampcell_lamps_scrapped_total": "Lamps scrapped mid-cycle since the daemon started",
        "lampcell_order_lamps": "Lamps of the current order by outcome",
        "lampcell_oee_ratio": "OEE of the current order and its components, 0..1 (NaN while not measurable)",
        "lampcell_cycle_time_seconds": "Cycle time of the last lamps: last, mean, p50, p95 (NaN before the first lamp)",
        "lampcell_control_period_seconds": "The control period",
        "lampcell_control_periods_total": "Control periods run",
        "lampcell_control_overruns_total": "Control periods whose work ended after the next deadline",
        "lampcell_control_page_faults_total": "Page faults of the control thread since it started, by kind (minor, major)",
        "lampcell_control_phase_seconds": "Control period phase timing quantiles (wake_latency, read, step, write, busy)",
        "lampcell_device_up": "1 when the last exchange with the device succeeded",
        "lampcell_device_consecutive_failures": "Failed exchanges in a row",
        "lampcell_device_faulted": "1 when the device reports a fault",
        "lampcell_device_fault_code": "The device's fault code register",
        "lampcell_api_connections": "Open API connections",
        "lampcell_ledger_lamps": "Lamps recorded in the ledger",
        "lampcell_plant_up": "1 while the plant database acknowledges the ledger (replicating or caught up)",
        "lampcell_plant_lag_entries": "Ledger entries not yet acknowledged by the plant database",
        "lampcell_plant_lag_seconds": "Age of the oldest ledger entry not yet acknowledged by the plant database",
        "lampcell_plant_acknowledged_position": "The last ledger position the plant database acknowledged",
        "lampcell_plant_refused": "1 when the plant database refused the chain (an alarm)",
        "lampcell_plant_warning": "1 while the replication lags past its bound or is refused",
    ]

    /// The exposition text of `document` plus the API's own figures.
    func render(_ document: StatusDocument, openConnections: Int) -> [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        gauge("lampcell_info", [("version", document.version), ("cell", document.cellID)], 1)
        gauge("lampcell_up_seconds", [], document.uptimeSeconds)
        for state in PackMLState.allCases {
            gauge("lampcell_packml_state", [("state", state.description)], state.description == document.packml.state ? 1 : 0)
        }
        gauge("lampcell_packml_state_code", [], Double(document.packml.stateCode))
        for mode in UnitMode.allCases {
            gauge("lampcell_packml_mode", [("mode", mode.description)], mode.description == document.packml.mode ? 1 : 0)
        }
        gauge("lampcell_order_quantity", [], Double(document.order?.quantity ?? 0))
        gauge("lampcell_order_produced", [], Double(document.order?.produced ?? 0))
        gauge("lampcell_order_active", [], document.order?.active == true ? 1 : 0)
        let counts = document.counts
        counter("lampcell_lamps_processed_total", [], counts.processedTotal)
        counter("lampcell_lamps_good_total", [], counts.goodTotal)
        counter("lampcell_lamps_defective_total", [], counts.defectiveTotal)
        counter("lampcell_lamps_scrapped_total", [], counts.scrappedTotal)
        gauge("lampcell_order_lamps", [("outcome", "processed")], Double(counts.processed))
        gauge("lampcell_order_lamps", [("outcome", "good")], Double(counts.good))
        gauge("lampcell_order_lamps", [("outcome", "defective")], Double(counts.defective))
        gauge("lampcell_order_lamps", [("outcome", "scrapped")], Double(counts.scrapped))
        let oee = document.oee
        gauge("lampcell_oee_ratio", [("component", "availability")], oee.availability ?? .nan)
        gauge("lampcell_oee_ratio", [("component", "performance")], oee.performance ?? .nan)
        gauge("lampcell_oee_ratio", [("component", "quality")], oee.quality ?? .nan)
        gauge("lampcell_oee_ratio", [("component", "oee")], oee.oee ?? .nan)
        let cycle = document.cycleTime
        gauge("lampcell_cycle_time_seconds", [("statistic", "last")], cycle.lastSeconds ?? .nan)
        gauge("lampcell_cycle_time_seconds", [("statistic", "mean")], cycle.meanSeconds ?? .nan)
        gauge("lampcell_cycle_time_seconds", [("statistic", "p50")], cycle.p50Seconds ?? .nan)
        gauge("lampcell_cycle_time_seconds", [("statistic", "p95")], cycle.p95Seconds ?? .nan)
        let loop = document.controlLoop
        gauge("lampcell_control_period_seconds", [], loop.periodMicroseconds / 1e6)
        counter("lampcell_control_periods_total", [], loop.periodsRun)
        counter("lampcell_control_overruns_total", [], loop.overruns)
        counter("lampcell_control_page_faults_total", [("kind", "minor")], loop.minorPageFaults)
        counter("lampcell_control_page_faults_total", [("kind", "major")], loop.majorPageFaults)
        for phase in loop.phases {
            for (quantile, value) in [
                ("0.5", phase.p50Microseconds), ("0.99", phase.p99Microseconds), ("0.999", phase.p999Microseconds),
                ("1", phase.maxMicroseconds),
            ] {
                gauge("lampcell_control_phase_seconds", [("phase", phase.name), ("quantile", quantile)], value / 1e6)
            }
        }
        for device in document.devices {
            let labels = [("device", device.name), ("kind", device.kind)]
            gauge("lampcell_device_up", labels, device.connected ? 1 : 0)
            gauge("lampcell_device_consecutive_failures", labels, Double(device.consecutiveFailures))
            gauge("lampcell_device_faulted", labels, device.faultCodeValue != 0 || device.status.contains("FAULT") ? 1 : 0)
            gauge("lampcell_device_fault_code", labels, Double(device.faultCodeValue))
        }
        gauge("lampcell_api_connections", [], Double(openConnections))
        if let ledger = document.ledger { gauge("lampcell_ledger_lamps", [], Double(ledger.count)) }
        if let plant = document.plant {
            gauge("lampcell_plant_up", [], plant.state == "replicating" || plant.state == "caughtUp" ? 1 : 0)
            gauge("lampcell_plant_lag_entries", [], plant.lagEntries.map(Double.init) ?? .nan)
            gauge("lampcell_plant_lag_seconds", [], plant.lagSeconds ?? .nan)
            gauge("lampcell_plant_acknowledged_position", [], plant.acknowledgedPosition.map(Double.init) ?? .nan)
            gauge("lampcell_plant_refused", [], plant.state == "refused" ? 1 : 0)
            gauge("lampcell_plant_warning", [], plant.warning == nil ? 0 : 1)
        }
        return registry.emitToBuffer()
    }

    private func key(_ name: String, _ labels: [(String, String)]) -> String {
        name + "{" + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
    }

    private func gauge(_ name: String, _ labels: [(String, String)], _ value: Double) {
        let key = key(name, labels)
        let gauge: Gauge
        if let existing = gauges[key] {
            gauge = existing
        } else {
            let descriptor = MetricNameDescriptor(metricName: name, unitName: "", helpText: help[name] ?? name)
            gauge = labels.isEmpty
                ? registry.makeGauge(descriptor: descriptor)
                : registry.makeGauge(descriptor: descriptor, labels: labels)
            gauges[key] = gauge
        }
        gauge.set(value)
    }

    private func counter(_ name: String, _ labels: [(String, String)], _ value: UInt64) {
        let key = key(name, labels)
        if counters[key] == nil {
            let descriptor = MetricNameDescriptor(metricName: name, unitName: "", helpText: help[name] ?? name)
            let counter = labels.isEmpty
                ? registry.makeCounter(descriptor: descriptor)
                : registry.makeCounter(descriptor: descriptor, labels: labels)
            counters[key] = (counter, 0)
        }
        guard let entry = counters[key], value > entry.last else { return }
        entry.counter.increment(by: Int64(value - entry.last))
        counters[key] = (entry.counter, value)
    }
}
