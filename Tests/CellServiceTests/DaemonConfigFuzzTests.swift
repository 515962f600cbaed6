// Bad configuration through the real `lampcelld` executable (issue 7, item 6 "Bad input"): a few hundred mutants
// of the configuration, cell and recipe files that the loaders reject; for each, lampcelld must exit 78 with one
// line on stderr, the loader's message naming the file, and start nothing (no state directory, ledger or socket),
// never die of a signal. (The in-process fuzzer, CellCoreTests/ConfigFuzzTests, covers thousands of mutants.)
//
// Seeded: LAMPCELL_FUZZ_SEED replays a run, LAMPCELL_FUZZ_ITERATIONS sets the number of mutants.

import CellConfig
import CellCore
import Foundation
import LampCellTestSupport
import Testing

/// A small mutator (the in-process fuzzer has the full one): value swaps on `key = value` lines, removed or
/// duplicated lines, unknown keys, truncation, bit flips, invalid UTF-8.
private func mutate(_ text: [UInt8], _ random: inout SplitMix64) -> [UInt8] {
    var lines = text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map(Array.init)
    let keyLines = lines.indices.filter { index in
        let line = String(decoding: lines[index], as: UTF8.self)
        return line.contains(" = ") && !line.trimmingCharacters(in: .whitespaces).hasPrefix("#")
    }
    let values = ["0", "-1", "1e308", "nan", "inf", "\"\"", "\"x\"", "true", "[]", "{}", "99999999999999999999", "-9223372036854775808", "\"\u{1F4A1}\""]
    switch random.below(8) {
    case 0, 1, 2:
        guard !keyLines.isEmpty else { break }
        let index = random.pick(keyLines)
        var line = String(decoding: lines[index], as: UTF8.self)
        // Replace the value after the first " = " up to a comma, brace or comment.
        if let range = line.range(of: " = ") {
            let tail = line[range.upperBound...]
            let end = tail.firstIndex(where: { $0 == "," || $0 == "}" || $0 == "#" }) ?? tail.endIndex
            line.replaceSubrange(range.upperBound..<end, with: random.pick(values) + " ")
        }
        lines[index] = Array(line.utf8)
    case 3:
        guard !keyLines.isEmpty else { break }
        lines.remove(at: random.pick(keyLines))
    case 4:
        let index = random.below(lines.count)
        lines.insert(lines[index], at: index)
    case 5:
        guard !keyLines.isEmpty else { break }
        lines.insert(Array("fuzz_unknown_key = 1".utf8), at: random.pick(keyLines) + 1)
    case 6:
        return Array(text.prefix(random.below(text.count)))
    default:
        var bytes = text
        if random.below(2) == 0 {
            bytes.insert(random.pick([0xFF, 0xC3, 0x80]), at: random.below(bytes.count))
        } else {
            for _ in 0..<(1 + random.below(4)) { bytes[random.below(bytes.count)] ^= UInt8(1 << random.below(8)) }
        }
        return bytes
    }
    return Array(lines.joined(separator: [UInt8(ascii: "\n")]))
}

/// Which file a mutant replaces.
private enum MutatedFile: CaseIterable {
    case configuration, cell, leftRecipe, rightRecipe
}

/// A mutant, written into its own directory with a configuration that points at it; nil when the loaders accept
/// it (only rejected mutants go through the executable).
private struct DaemonMutant {
    var directory: String
    var configurationPath: String
    var mutatedPath: String
    var expectedMessage: String
    /// The file the loader's error names (the mutant, or the file a mutated configuration or cell breaks).
    var namedFile: String
    var description: String
}

@Suite("lampcelld bad configuration fuzzing", .serialized)
struct DaemonConfigFuzzTests {
    /// A daemon still running after this long has started, which a rejected mutant must not.
    static let runTimeoutSeconds = 30.0
    static let concurrentRuns = 3

    static let seed = FuzzSeed.value(default: FuzzSeed.fresh())
    static let mutantCount = FuzzIterations.value(default: 240)

    @Test("rejected mutants of the config, cell and recipe files: exit 78, one line naming the file, nothing started")
    func rejectedMutants() throws {
        let seed = Self.seed
        print("lampcelld config fuzz: seed \(seed), \(Self.mutantCount) rejected mutants (replay: LAMPCELL_FUZZ_SEED=\(seed))")
        let executable = try DaemonExecutableTests.executable("lampcelld")
        let root = Repository.root
        let originals: [MutatedFile: [UInt8]] = [
            .configuration: Array(try String(contentsOfFile: Repository.developmentConfiguration, encoding: .utf8).utf8),
            .cell: Array(try Data(contentsOf: URL(fileURLWithPath: root + "/Hardware/cell.toml"))),
            .leftRecipe: Array(try Data(contentsOf: URL(fileURLWithPath: root + "/Hardware/recipes/left.toml"))),
            .rightRecipe: Array(try Data(contentsOf: URL(fileURLWithPath: root + "/Hardware/recipes/right.toml"))),
        ]
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("lampcelld-fuzz-\(seed)-\(UUID().uuidString.prefix(6))").path
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }

        // Generate mutants until enough are rejected by the loaders (those that load are skipped here).
        var random = SplitMix64(seed: seed)
        var mutants: [DaemonMutant] = []
        var attempts = 0
        while mutants.count < Self.mutantCount && attempts < Self.mutantCount * 20 {
            attempts += 1
            let which = random.pick(MutatedFile.allCases)
            let directory = base + "/\(attempts)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            var files: [MutatedFile: String] = [
                .cell: root + "/Hardware/cell.toml", .leftRecipe: root + "/Hardware/recipes/left.toml",
                .rightRecipe: root + "/Hardware/recipes/right.toml",
            ]
            let mutated = mutate(try #require(originals[which]), &random)
            let mutatedPath: String
            switch which {
            case .configuration: mutatedPath = directory + "/lampcelld.toml"
            case .cell: mutatedPath = directory + "/cell.toml"
            case .leftRecipe: mutatedPath = directory + "/left.toml"
            case .rightRecipe: mutatedPath = directory + "/right.toml"
            }
            if which != .configuration { files[which] = mutatedPath }
            // The configuration: the development one with its paths made absolute and its state inside `directory`.
            var configuration = String(decoding: try #require(originals[.configuration]), as: UTF8.self)
            if which == .configuration { configuration = String(decoding: mutated, as: UTF8.self) }
            configuration = configuration
                .replacingOccurrences(of: "../Hardware/cell.toml", with: files[.cell]!)
                .replacingOccurrences(of: "../Hardware/recipes/left.toml", with: files[.leftRecipe]!)
                .replacingOccurrences(of: "../Hardware/recipes/right.toml", with: files[.rightRecipe]!)
                .replacingOccurrences(of: "../.build/lampcell-state", with: directory + "/state")
            let configurationPath = directory + "/lampcelld.toml"
            if which == .configuration {
                _ = FileManager.default.createFile(atPath: configurationPath, contents: Data(configuration.utf8.map { $0 }))
                // Keep invalid bytes of the mutant (the replacement above went through a String).
                if String(validating: mutated, as: UTF8.self) == nil {
                    _ = FileManager.default.createFile(atPath: configurationPath, contents: Data(mutated))
                }
            } else {
                _ = FileManager.default.createFile(atPath: configurationPath, contents: Data(configuration.utf8))
                _ = FileManager.default.createFile(atPath: mutatedPath, contents: Data(mutated))
            }
            // The loaders' verdict, in process, as lampcelld runs them.
            let message: String
            let namedFile: String
            do {
                let loaded = try DaemonConfiguration.load(from: configurationPath)
                let definition = try CellDefinition.load(from: loaded.cellPath)
                for path in loaded.recipePaths { _ = try Recipe.load(from: path, cell: definition) }
                try? FileManager.default.removeItem(atPath: directory)
                continue  // loads: not for this test
            } catch {
                message = "\(error)"
                namedFile = error.filePath
            }
            mutants.append(
                DaemonMutant(
                    directory: directory, configurationPath: configurationPath, mutatedPath: which == .configuration ? configurationPath : mutatedPath,
                    expectedMessage: message, namedFile: namedFile, description: "mutant \(attempts) of \(which)"))
        }
        #expect(mutants.count == Self.mutantCount, "only \(mutants.count) rejected mutants in \(attempts) attempts")

        let failures = DaemonFuzzFailures()
        let list = mutants
        runInParallel(list.count, threads: Self.concurrentRuns) { index in
            let mutant = list[index]
            let context = "seed \(seed) \(mutant.description)"
            let result: ProcessResult
            do {
                result = try runProcess(executable, ["-c", mutant.configurationPath, "--simulate"], timeoutSeconds: Self.runTimeoutSeconds)
            } catch {
                failures.add("\(context): cannot run lampcelld: \(error)")
                return
            }
            if result.signalled {
                failures.add("\(context): lampcelld died of signal \(result.status): \(result.standardError.prefix(300))")
            } else if result.timedOut {
                failures.add("\(context): lampcelld was still running after \(Self.runTimeoutSeconds) s")
            } else if result.status != 78 {
                failures.add("\(context): exit \(result.status), expected 78: \(result.standardError.prefix(300))")
            }
            if result.standardError != "lampcelld: \(mutant.expectedMessage)\n" {
                failures.add("\(context): stderr \(result.standardError.prefix(400).debugDescription), expected the loader's one line \(mutant.expectedMessage.prefix(300).debugDescription)")
            }
            // The line names a file: the mutant itself, or the file it breaks (a recipe whose teach point the
            // mutated cell lost, a cell path the mutated configuration points to).
            if mutant.namedFile.isEmpty || !result.standardError.hasPrefix("lampcelld: \(mutant.namedFile): ") {
                failures.add("\(context): stderr does not start with the file: \(result.standardError.prefix(300))")
            }
            // Nothing started: no state directory (ledger, serial file) and no API socket.
            let left = (try? FileManager.default.contentsOfDirectory(atPath: mutant.directory)) ?? []
            let unexpected = left.filter { !["lampcelld.toml", "cell.toml", "left.toml", "right.toml"].contains($0) }
            if !unexpected.isEmpty { failures.add("\(context): lampcelld created \(unexpected)") }
        }
        for failure in failures.kept { Issue.record(Comment(rawValue: failure)) }
        #expect(failures.count == 0, "seed \(seed): \(failures.count) failures (first \(DaemonFuzzFailures.keptFailures) above)")
    }

    /// The input that aborted toml++ in a debug build (found by the in-process fuzzer): lampcelld must refuse it
    /// like any other syntax error.
    @Test("regression: a '}' where an array value should be is a syntax error, exit 78, not an abort")
    func tomlAssertInput() throws {
        let executable = try DaemonExecutableTests.executable("lampcelld")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lampcelld-toml-\(UUID().uuidString.prefix(6))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/lampcelld.toml"
        try "recipes = [ }\n".write(toFile: path, atomically: true, encoding: .utf8)
        let result = try runProcess(executable, ["-c", path, "--simulate"], timeoutSeconds: Self.runTimeoutSeconds)
        #expect(!result.signalled && result.status == 78, "\(result.standardError)")
        #expect(result.standardError.hasPrefix("lampcelld: \(path): line 1, column "), "\(result.standardError)")
        #expect(result.standardError.filter { $0 == "\n" }.count == 1)
    }
}

/// Failures from the worker threads.
private final class DaemonFuzzFailures: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var kept: [String] = []
    private(set) var count = 0
    static let keptFailures = 30
    func add(_ message: String) {
        lock.lock()
        count += 1
        if kept.count < Self.keptFailures { kept.append(message) }
        lock.unlock()
    }
}

/// How a process ended.
/// Runs `body(0..<count)` on `threads` threads.
private func runInParallel(_ count: Int, threads: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let lock = NSLock()
    final class Cursor: @unchecked Sendable { var value = 0 }
    let cursor = Cursor()
    let group = DispatchGroup()
    for _ in 0..<threads {
        group.enter()
        Thread {
            while true {
                lock.lock()
                let index = cursor.value
                cursor.value += 1
                lock.unlock()
                if index >= count { break }
                body(index)
            }
            group.leave()
        }.start()
    }
    group.wait()
}
