// `[plant]`: the daemon's replication of its ledger to the plant database (module Plant, docs/PLANT.md).

import CellConfig
import ControlAPI
import ControlAPIClient
import Foundation
import Logging
import Plant

/// Starts and stops the replicator the configuration asks for, and shows it to the API. Thread: the main thread
/// starts and stops it; `plantReplication()` is called from the API's threads.
final class PlantLink: PlantReporting {
    /// How long shutdown waits for a batch in flight, ms (inside systemd's stop timeout, after the arms' 10 s and
    /// the drain's 5 s).
    static let stopTimeoutMilliseconds: UInt64 = 5_000
    /// The file in the state directory that remembers the last acknowledged position (for the lag while the
    /// server is away).
    static let acknowledgedFileName = "plant-acknowledged"

    let replicator: PlantReplicator

    /// A replicator for `configuration.plant`, not started; nil when `[plant]` is absent. Throws a message naming
    /// the password file when it cannot be read.
    static func make(configuration: DaemonConfiguration, cellID: String, logger: Logger) throws -> PlantLink? {
        guard let plant = configuration.plant else { return nil }
        var password: String?
        if let path = plant.passwordFile {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw PlantLinkError(message: "[plant] password_file \(path): cannot be read")
            }
            password = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
            guard password?.isEmpty == false else { throw PlantLinkError(message: "[plant] password_file \(path): is empty") }
        }
        let parameters = PlantReplicator.Settings.connectionParameters(
            server: plant.server, port: plant.port, database: plant.database, role: plant.role, password: password,
            tls: plant.tls, caFile: plant.caFile)
        var settings = PlantReplicator.Settings(connectionParameters: parameters, cellID: cellID)
        settings.batchEntries = plant.batchEntries
        settings.lagWarningSeconds = plant.lagWarningSeconds
        settings.lagWarningEntries = Int64(plant.lagWarningEntries)
        settings.acknowledgedFilePath = configuration.stateDirectory + "/" + acknowledgedFileName
        return PlantLink(
            replicator: PlantReplicator(ledgerPath: configuration.ledgerPath, settings: settings, logger: logger))
    }

    private init(replicator: PlantReplicator) {
        self.replicator = replicator
    }

    func plantReplication() -> PlantReplication {
        let status = replicator.status()
        return PlantReplication(
            state: status.state.rawValue, server: status.server, localPosition: status.localPosition,
            acknowledgedPosition: status.acknowledgedPosition, lagEntries: status.lagEntries,
            lagSeconds: status.lagSeconds, shippedEntries: status.shippedEntries, lastError: status.lastError,
            chainBreakPosition: status.chainBreakPosition, warning: status.warning)
    }
}

/// A `[plant]` setting that cannot be used (exit 78 like any configuration error).
struct PlantLinkError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
