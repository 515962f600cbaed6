// Test support shared by the test targets (the LampCellTestSupport target): the repository's paths.

import Foundation

/// Where the repository's files are, found from this source file's path (`Tests/TestSupport/Repository.swift`).
public enum Repository {
    /// The repository root.
    public static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The real cell definition, `Hardware/cell.toml`.
    public static let cellDefinition = root + "/Hardware/cell.toml"
    /// The cell definition (`cellDefinition`, under the name the simulator tests use).
    public static var cellDefinitionPath: String { cellDefinition }
    /// The cell definition (`cellDefinition`, under the name the campaign tests use).
    public static var cell: String { cellDefinition }

    /// The real recipes, `Hardware/recipes/left.toml` and `right.toml`.
    public static let leftRecipe = root + "/Hardware/recipes/left.toml"
    public static let rightRecipe = root + "/Hardware/recipes/right.toml"

    /// The development configuration of lampcelld (`Systemd/lampcelld-dev.toml`: simulated devices on loopback).
    public static let developmentConfiguration = root + "/Systemd/lampcelld-dev.toml"

    /// The built executable `name` (`lampcelld`, `lampctl`, `lampsim` …): beside the test bundle, or in
    /// `.build/debug`. Throws a message saying to build it first when it is in neither.
    public static func executable(_ name: String) throws -> String {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name).path,
            root + "/.build/debug/" + name,
        ]
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw MissingExecutable(name: name, candidates: candidates)
        }
        return found
    }

    /// An executable the tests need is not built.
    public struct MissingExecutable: Error, CustomStringConvertible {
        public var name: String
        public var candidates: [String]
        public var description: String { "\(name) is not built (looked at \(candidates)); run swift build first" }
    }

    /// Runs the built executable `name` with `arguments` to its end (`runProcess`); returns its exit status and
    /// what it wrote to standard output and standard error.
    public static func run(_ name: String, _ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
        let result = try runProcess(try executable(name), arguments)
        return (result.status, result.standardOutput, result.standardError)
    }
}
