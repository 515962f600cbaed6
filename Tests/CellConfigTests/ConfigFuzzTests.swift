// Mutation fuzzing of the configuration loaders (issue 7, item 6 "Bad input"): thousands of mutants of the real
// files (`Systemd/lampcelld*.toml`, `Hardware/cell.toml`, `Hardware/recipes/*.toml`) through `DaemonConfiguration`,
// `CellDefinition`, `Recipe` and the compile step. Each mutant either loads and compiles, or throws a `ConfigError`
// naming the file (and the key, for a mutation that changes a key's type or adds an unknown key). A crash kills
// the test run (that is the point); a hang is caught by a deadline.
//
// Seeded: LAMPCELL_FUZZ_SEED replays a run, LAMPCELL_FUZZ_ITERATIONS scales it (mutants per file).

import Foundation
import LampCellTestSupport
import Testing

@testable import CellConfig
@testable import CellCore

// MARK: - Mutations

/// One `key = value` on a line: byte ranges of the key and of its (single-line) value.
struct KeyValueSpan {
    var key: String
    var keyRange: Range<Int>
    var valueRange: Range<Int>
}

/// What a mutation did, and what the loader must then say.
struct Mutation {
    /// Human-readable, for failure messages.
    var description: String
    /// When set, a rejection must name this key in its field path (and must not be a syntax error).
    var expectedKey: String?
    /// When set, the mutant must be rejected (not load).
    var mustReject = false
    /// When set, the rejection must be of this kind.
    var expectedKind: ConfigError.Kind?
}

/// TOML-aware and blind byte mutations of a file.
enum ConfigMutator {
    /// Numbers that break ranges and types: zero, negative, huge, special floats, integer extremes.
    static let numberPool = [
        "0", "-1", "1", "-0.0", "0.5", "65535", "65536", "256", "99", "100", "1e308", "-1e308", "1e-320", "nan",
        "+inf", "-inf", "inf", "9223372036854775807", "-9223372036854775808", "4.9e-324", "3.14159", "1_000",
        "0x10", "0o7", "0b1", "20000", "20001", "499", "1000000000000",
    ]
    /// Values of every TOML type (and some that are not TOML).
    static let otherTypes = [
        "\"text\"", "\"\"", "true", "false", "[]", "{}", "[1, 2]", "[\"a\"]", "{ a = 1 }", "1979-05-27T07:32:00Z",
        "07:32:00", "1979-05-27", "'literal'", "\"\"\"multi\nline\"\"\"", "[[1], [2]]",
    ]
    /// Strings: empty, long, odd characters, paths, names.
    static func stringPool(_ random: inout SplitMix64) -> [String] {
        [
            "\"\"", "\" \"", "\"" + String(repeating: "x", count: 1 + random.below(100_000)) + "\"", "\"\\u0000\"",
            "\"é\"", "\"../../../../etc/passwd\"", "\"/\"", "\"a b\"", "\"\\n\"", "\"none\"", "\"infeed\"",
            "\"fixture\"", "\"outfeed\"", "\"reject\"", "\"RA-610\"", "\"TS-200\"", "\"GRIPPER\"", "\"home\"",
            "\"LEFT\"", "\"RIGHT\"", "\"grip\"", "\"screw\"", "\"press\"", "\"clamp\"", "\"N\"", "\"ml\"",
            "\"" + String(repeating: "n", count: 65) + "\"", "\"\u{1F4A1}\"",
        ]
    }

    /// The type class of a TOML value text, for "change a value's type": s(tring), n(umber), b(ool), a(rray), t(able).
    static func typeClass(_ value: String) -> Character {
        guard let first = value.first else { return "?" }
        switch first {
        case "\"", "'": return "s"
        case "[": return "a"
        case "{": return "t"
        case "t", "f": return value.hasPrefix("true") || value.hasPrefix("false") ? "b" : "?"
        default: return "n"
        }
    }

    /// The `key = value` pairs of one line whose value ends on the same line (top level and inside inline tables).
    static func keyValues(in line: [UInt8]) -> [KeyValueSpan] {
        var result: [KeyValueSpan] = []
        var index = 0
        var inString = false
        while index < line.count {
            let byte = line[index]
            if byte == UInt8(ascii: "\"") { inString.toggle() }
            if byte == UInt8(ascii: "#") && !inString { break }
            if !inString, isKeyByte(byte), index == 0 || [UInt8(ascii: " "), UInt8(ascii: "{"), UInt8(ascii: ","), 9].contains(line[index - 1]) {
                var end = index
                while end < line.count, isKeyByte(line[end]) { end += 1 }
                var equals = end
                while equals < line.count, line[equals] == UInt8(ascii: " ") { equals += 1 }
                if equals < line.count, line[equals] == UInt8(ascii: "=") {
                    var start = equals + 1
                    while start < line.count, line[start] == UInt8(ascii: " ") { start += 1 }
                    if let valueEnd = scanValue(line, from: start) {
                        result.append(
                            KeyValueSpan(
                                key: String(decoding: line[index..<end], as: UTF8.self), keyRange: index..<end,
                                valueRange: start..<valueEnd))
                    }
                    index = start
                    continue
                }
                index = end
                continue
            }
            index += 1
        }
        return result
    }

    private static func isKeyByte(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_")
    }

    /// The end of the value starting at `start`, or nil when it does not close on this line.
    private static func scanValue(_ line: [UInt8], from start: Int) -> Int? {
        guard start < line.count else { return nil }
        var index = start
        var depth = 0
        var inString = false
        while index < line.count {
            let byte = line[index]
            if inString {
                if byte == UInt8(ascii: "\"") { inString = false; if depth == 0 { return index + 1 } }
            } else if byte == UInt8(ascii: "\"") {
                inString = true
            } else if byte == UInt8(ascii: "[") || byte == UInt8(ascii: "{") {
                depth += 1
            } else if byte == UInt8(ascii: "]") || byte == UInt8(ascii: "}") {
                if depth == 0 { return index }
                depth -= 1
                if depth == 0 { return index + 1 }
            } else if depth == 0 && (byte == UInt8(ascii: ",") || byte == UInt8(ascii: "#") || byte == UInt8(ascii: " ")) {
                return index
            }
            index += 1
        }
        return depth == 0 && !inString ? index : nil
    }

    /// Splits into lines (without the newline).
    static func lines(_ bytes: [UInt8]) -> [[UInt8]] {
        bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map(Array.init)
    }

    static func join(_ lines: [[UInt8]]) -> [UInt8] {
        Array(lines.joined(separator: [UInt8(ascii: "\n")]))
    }

    /// Lines that carry at least one `key = value`.
    static func keyLines(_ lines: [[UInt8]]) -> [Int] {
        lines.indices.filter { !keyValues(in: lines[$0]).isEmpty }
    }

    /// One random mutation of `original`.
    static func mutate(_ original: [UInt8], _ random: inout SplitMix64) -> ([UInt8], Mutation) {
        var lines = lines(original)
        let candidates = keyLines(lines)
        let choice = random.below(16)
        switch choice {
        case 0, 1, 2:
            // Change a value's type (the loader must name the key).
            guard let lineIndex = candidates.isEmpty ? nil : random.pick(candidates) else { break }
            let pairs = keyValues(in: lines[lineIndex])
            let pair = random.pick(pairs)
            let old = String(decoding: lines[lineIndex][pair.valueRange], as: UTF8.self)
            let pool = (otherTypes + numberPool).filter {
                typeClass($0) != typeClass(old) && typeClass($0) != "?" && !$0.contains("\n")
            }
            let new = random.pick(pool)
            lines[lineIndex].replaceSubrange(pair.valueRange, with: Array(new.utf8))
            // Optional keys whose value must still have its type: the rejection still names the key.
            return (
                join(lines),
                Mutation(
                    description: "line \(lineIndex + 1): \(pair.key) = \(old) → \(new)", expectedKey: pair.key,
                    mustReject: true))
        case 3, 4, 5:
            // A number or string replaced by a hostile one of the same type (or any).
            guard let lineIndex = candidates.isEmpty ? nil : random.pick(candidates) else { break }
            let pairs = keyValues(in: lines[lineIndex])
            let pair = random.pick(pairs)
            let old = String(decoding: lines[lineIndex][pair.valueRange], as: UTF8.self)
            var new: String
            switch typeClass(old) {
            case "s": new = random.pick(stringPool(&random))
            case "n": new = random.pick(numberPool)
            case "a":
                // Replace one element of the array, or empty it, or grow it.
                let inner = old.dropFirst().dropLast().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                var elements = inner
                switch random.below(4) {
                case 0: elements = []
                case 1: elements.append(random.pick(numberPool))
                case 2: if !elements.isEmpty { elements.removeLast() }
                default:
                    if !elements.isEmpty {
                        let slot = random.below(elements.count)
                        elements[slot] = typeClass(elements[slot]) == "s" ? random.pick(stringPool(&random)) : random.pick(numberPool)
                    }
                }
                new = "[" + elements.joined(separator: ", ") + "]"
            default: new = random.pick(numberPool + otherTypes)
            }
            lines[lineIndex].replaceSubrange(pair.valueRange, with: Array(new.utf8))
            return (join(lines), Mutation(description: "line \(lineIndex + 1): \(pair.key) = \(old.prefix(80)) → \(new.prefix(80))"))
        case 6:
            // Remove a key (the whole line).
            guard let lineIndex = candidates.isEmpty ? nil : random.pick(candidates) else { break }
            let removed = String(decoding: lines[lineIndex], as: UTF8.self)
            lines.remove(at: lineIndex)
            return (join(lines), Mutation(description: "removed line \(lineIndex + 1): \(removed.prefix(80))"))
        case 7:
            // An unknown key next to a known one (same table): must be rejected naming it.
            guard let lineIndex = candidates.isEmpty ? nil : random.pick(candidates) else { break }
            let line = lines[lineIndex]
            let pairs = keyValues(in: line)
            guard let pair = pairs.first, pair.keyRange.lowerBound == line.prefix(while: { $0 == 32 }).count else { break }
            let key = "fuzz_unknown_\(random.below(1000))"
            lines.insert(Array("\(key) = 1".utf8), at: lineIndex + 1)
            return (
                join(lines),
                // Tables of fixed keys say unknownKey; tables of names (devices, teach points) say the entry is
                // not a table: either way the key is named.
                Mutation(
                    description: "line \(lineIndex + 2): inserted \(key) = 1 after \(pair.key)", expectedKey: key,
                    mustReject: true))
        case 8:
            // Duplicate a line: a duplicate key or table header is a syntax error with a line number.
            let lineIndex = random.below(lines.count)
            let line = lines[lineIndex]
            let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            lines.insert(line, at: lineIndex + 1)
            let isHeader = text.hasPrefix("[") && !text.hasPrefix("[[")
            let isTopLevelKey = !keyValues(in: line).isEmpty && line.first != 32 && !text.hasPrefix("{")
            return (
                join(lines),
                Mutation(
                    description: "duplicated line \(lineIndex + 1): \(text.prefix(80))",
                    mustReject: isHeader || isTopLevelKey, expectedKind: isHeader || isTopLevelKey ? .syntax : nil))
        case 9:
            // Truncate.
            let length = random.below(original.count)
            return (Array(original.prefix(length)), Mutation(description: "truncated to \(length) bytes"))
        case 10:
            // Delete a byte range.
            let start = random.below(original.count)
            let length = 1 + random.below(min(64, original.count - start))
            var bytes = original
            bytes.removeSubrange(start..<start + length)
            return (bytes, Mutation(description: "deleted bytes \(start)..<\(start + length)"))
        case 11:
            // Duplicate a byte range somewhere else.
            let start = random.below(original.count)
            let length = 1 + random.below(min(200, original.count - start))
            var bytes = original
            bytes.insert(contentsOf: original[start..<start + length], at: random.below(bytes.count + 1))
            return (bytes, Mutation(description: "duplicated bytes \(start)..<\(start + length)"))
        case 12:
            // Non-UTF-8 or control bytes.
            var bytes = original
            let hostile: [[UInt8]] = [[0xFF], [0xC3], [0xED, 0xA0, 0x80], [0x00], [0xFE, 0xFF], [0xC0, 0xAF], [0x1B], [0x7F]]
            let chosen = random.pick(hostile)
            let at = random.below(bytes.count + 1)
            bytes.insert(contentsOf: chosen, at: at)
            // Every choice but NUL, ESC and DEL is invalid UTF-8: the file must be refused as unreadable.
            let invalidUTF8 = ![[0x00], [0x1B], [0x7F]].contains(chosen)
            return (
                bytes,
                Mutation(
                    description: "inserted \(chosen) at \(at)", mustReject: invalidUTF8,
                    expectedKind: invalidUTF8 ? .fileUnreadable : nil))
        case 13:
            // Deep nesting and huge content.
            var bytes = original
            let depth = random.pick([10, 100, 300, 1000, 5000, 20_000])
            let nested = "fuzz_deep = " + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "\n"
            let at = random.chance(50) ? 0 : bytes.count
            bytes.insert(contentsOf: Array((at == bytes.count ? "\n" + nested : nested).utf8), at: at)
            return (bytes, Mutation(description: "inserted arrays nested \(depth) deep", mustReject: true))
        case 14:
            // Duplicate or invent a table header.
            let headers = lines.indices.filter { lines[$0].first == UInt8(ascii: "[") }
            guard !headers.isEmpty else { break }
            let header = lines[random.pick(headers)]
            let invented = random.pick([
                header, Array("[devices.fuzz]".utf8), Array("[arms.fuzz]".utf8), Array("[[steps]]".utf8),
                Array("[control.extra]".utf8), Array("[windows]".utf8), Array("[\"\"]".utf8),
            ])
            lines.insert(invented, at: random.below(lines.count + 1))
            return (
                join(lines),
                Mutation(description: "inserted header \(String(decoding: invented, as: UTF8.self))"))
        default:
            break
        }
        // Fallback and choice 15: flip bits in a few random bytes.
        var bytes = original
        let flips = 1 + random.below(4)
        for _ in 0..<flips where !bytes.isEmpty {
            let at = random.below(bytes.count)
            bytes[at] ^= UInt8(1 << random.below(8))
        }
        return (bytes, Mutation(description: "flipped \(flips) bits"))
    }
}

// MARK: - The fuzz run

/// Which loader a file goes through.
private enum FuzzTarget: CaseIterable {
    case daemonProduction, daemonDevelopment, cell, leftRecipe, rightRecipe

    var source: String {
        switch self {
        case .daemonProduction: "Systemd/lampcelld.toml"
        case .daemonDevelopment: "Systemd/lampcelld-dev.toml"
        case .cell: "Hardware/cell.toml"
        case .leftRecipe: "Hardware/recipes/left.toml"
        case .rightRecipe: "Hardware/recipes/right.toml"
        }
    }
}

/// Failures found on the worker thread, recorded as issues by the test afterwards.
final class FuzzLog: @unchecked Sendable {
    private let lock = NSLock()
    private var failures: [String] = []
    private(set) var loaded = 0
    private(set) var rejected = 0
    /// Failures beyond this many are counted, not kept.
    static let keptFailures = 40
    private(set) var failureCount = 0
    func fail(_ message: String) {
        lock.lock()
        failureCount += 1
        if failures.count < Self.keptFailures { failures.append(message) }
        lock.unlock()
    }
    func expect(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { fail(message()) }
    }
    func add(loaded wasLoaded: Bool) {
        lock.lock()
        if wasLoaded { loaded += 1 } else { rejected += 1 }
        lock.unlock()
    }
    var kept: [String] {
        lock.lock()
        defer { lock.unlock() }
        return failures
    }
}

/// Loads (and compiles) `path` as `target`; returns nil when it loaded and compiled, else the `ConfigError`.
/// Anything else that escapes is a failure.
private func loadThroughLoader(
    _ target: FuzzTarget, path: String, cell: CellDefinition, log: FuzzLog, context: String
) -> ConfigError? {
    /// A file that loaded must compile: a compile error means the loader let an invalid file through.
    func compileOrRecord<T>(_ path: String, _ body: () throws(ConfigError) -> T) -> T? {
        do {
            return try body()
        } catch {
            log.fail("\(context): \(path) loaded but does not compile: \(error)")
            return nil
        }
    }
    do throws(ConfigError) {
        switch target {
        case .daemonProduction, .daemonDevelopment:
            let configuration = try DaemonConfiguration.load(from: path)
            log.expect(
                DaemonConfiguration.periodMicrosecondsRange.contains(Int(configuration.periodNanoseconds / 1000))
                    && configuration.responseTimeoutNanoseconds < configuration.periodNanoseconds
                    && !configuration.recipePaths.isEmpty,
                "\(context): loaded an invalid configuration \(configuration)")
        case .cell:
            let definition = try CellDefinition.load(from: path)
            let compiled = compileOrRecord(path) { () throws(ConfigError) in try CompiledCell.compile(definition) }
            // The real recipes against the mutated cell: load (may reject, naming the recipe), and then compile.
            for recipe in [FuzzTarget.leftRecipe, .rightRecipe] {
                let recipePath = Repository.root + "/" + recipe.source
                do throws(ConfigError) {
                    let loaded = try Recipe.load(from: recipePath, cell: definition)
                    if let compiled {
                        _ = compileOrRecord(recipePath) { () throws(ConfigError) in
                            try CompiledRecipe.compile(loaded, cell: compiled)
                        }
                    }
                } catch {
                    log.expect(error.filePath == recipePath, "\(context): real recipe rejected without its name: \(error)")
                }
            }
        case .leftRecipe, .rightRecipe:
            let recipe = try Recipe.load(from: path, cell: cell)
            let compiledCell = try CompiledCell.compile(cell)
            _ = compileOrRecord(path) { () throws(ConfigError) in try CompiledRecipe.compile(recipe, cell: compiledCell) }
        }
        return nil
    } catch {
        return error
    }
}

/// Runs a closure on its own thread (large stack) with a deadline: a hang in a loader fails the test instead of
/// stalling the run. Returns false on timeout.
func runWithDeadline(seconds: Double, _ body: @escaping @Sendable () -> Void) -> Bool {
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        body()
        done.signal()
    }
    thread.stackSize = 64 << 20
    thread.start()
    return done.wait(timeout: .now() + seconds) == .success
}

@Suite("config mutation fuzzing", .serialized)
struct ConfigFuzzTests {
    /// Mutants per file by default (×5 files); LAMPCELL_FUZZ_ITERATIONS overrides.
    static let defaultMutantsPerFile = 400
    /// An error line (without the file path) longer than this is not "one clear line".
    static let maximumMessageCharacters = 600

    @Test("thousands of mutants of the real config, cell and recipe files: load and compile, or a ConfigError naming the file and key")
    func mutants() throws {
        let seed = FuzzSeed.value(default: FuzzSeed.fresh())
        let perFile = FuzzIterations.value(default: Self.defaultMutantsPerFile)
        print("config fuzz: seed \(seed), \(perFile) mutants per file (replay: LAMPCELL_FUZZ_SEED=\(seed))")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lampcell-fuzz-\(seed)-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let cell = try CellDefinition.load(from: Repository.cellDefinition)
        let directoryPath = directory.path
        let log = FuzzLog()
        let finished = runWithDeadline(seconds: 600) {
            for target in FuzzTarget.allCases {
                guard let original = try? Array(Data(contentsOf: URL(fileURLWithPath: Repository.root + "/" + target.source))) else {
                    log.fail("cannot read \(target.source)")
                    continue
                }
                var random = SplitMix64(seed: seed ^ target.source.hashValueStable)
                for index in 0..<perFile {
                    let (bytes, mutation) = ConfigMutator.mutate(original, &random)
                    let path = directoryPath + "/\(index)-" + (target.source as NSString).lastPathComponent
                    _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
                    let context = "seed \(seed) \(target.source) mutant \(index): \(mutation.description)"
                    let started = DispatchTime.now().uptimeNanoseconds
                    let error = loadThroughLoader(target, path: path, cell: cell, log: log, context: context)
                    let elapsed = DispatchTime.now().uptimeNanoseconds - started
                    log.expect(elapsed < 5_000_000_000, "\(context): took \(elapsed / 1_000_000) ms")
                    if let error {
                        log.add(loaded: false)
                        Self.check(error, path: path, mutation: mutation, context: context, log: log)
                    } else {
                        log.add(loaded: true)
                        log.expect(!mutation.mustReject, "\(context): loaded, but must be rejected")
                    }
                    try? FileManager.default.removeItem(atPath: path)
                }
            }
        }
        #expect(finished, "config fuzz seed \(seed) did not finish within 600 s (a loader hangs?)")
        for failure in log.kept { Issue.record(Comment(rawValue: failure)) }
        #expect(log.failureCount == 0, "seed \(seed): \(log.failureCount) failures (first \(FuzzLog.keptFailures) above)")
        print("config fuzz: seed \(seed): \(log.loaded) mutants loaded, \(log.rejected) rejected with a clear error")
        #expect(log.rejected > log.loaded, "most mutants must be rejected (the mutator works)")
    }

    static func check(_ error: ConfigError, path: String, mutation: Mutation, context: String, log: FuzzLog) {
        log.expect(error.filePath == path, "\(context): error names \(error.filePath): \(error)")
        log.expect(error.description.hasPrefix(path + ": "), "\(context): \(error)")
        log.expect(!error.description.contains("\n"), "\(context): more than one line: \(error)")
        log.expect(
            error.description.count < Self.maximumMessageCharacters + path.count,
            "\(context): the message is too long (\(error.description.count)): \(error.description.prefix(300))")
        log.expect(
            !error.description.unicodeScalars.contains { $0.properties.generalCategory == .control },
            "\(context): a control character in the message: \(error.description.debugDescription.prefix(300))")
        if let kind = mutation.expectedKind {
            log.expect(error.kind == kind, "\(context): expected \(kind), got \(error)")
        }
        if let key = mutation.expectedKey {
            log.expect(error.kind != .syntax, "\(context): a type change is not a syntax error: \(error)")
            log.expect(error.fieldPath.contains(key), "\(context): the error does not name \(key): \(error)")
        }
        if error.kind == .syntax {
            log.expect(error.line != nil, "\(context): a syntax error without a line: \(error)")
        }
    }

    /// Inputs that once crashed or misled a loader (kept as regression cases): each must be rejected with a
    /// `ConfigError` of `kind`, naming the file, at `line` when given.
    static let regressionInputs: [(name: String, text: String, kind: ConfigError.Kind, line: Int?)] = [
        // toml++ 3.4 asserted (abort in a debug build) on a '}' where an array value should be (fuzz seed 1,
        // left.toml mutant 180: a line "   }," duplicated into the station lane's array).
        ("array-closing-brace", "a = [ }\n", .syntax, 1),
        ("array-brace-after-comma", "a = [ 1, }\n", .syntax, 1),
        ("array-brace-after-comment", "a = [\n# c\n}\n", .syntax, 3),
        ("nested-array-brace", "a = [ [ 1 ], [ } ]\n", .syntax, 1),
        ("inline-table-array-brace", "a = { b = [ } }\n", .syntax, 1),
        // toml++ 3.4 asserted (abort in a debug build) on a table header starting with a character that cannot
        // start a key (fuzz seed 12345, lampcelld.toml mutant 166: a duplicated range left "[/lampcelld/…").
        ("header-slash", "[/lampcelld/lampcelld.toml). Relative\n", .syntax, 1),
        ("header-dot", "a = 1\n[.a]\n", .syntax, 2),
        ("array-header-dot", "[[.a]]\n", .syntax, 1),
        ("header-unicode", "[é]\n", .syntax, 1),
        ("header-open", "[\n", .syntax, 1),
        ("header-comment", "[# x\n", .syntax, 1),
        ("header-brace", "[{]\n", .syntax, 1),
        // toml++ quotes what it saw: a DEL (or ESC) reached the one-line message (fuzz seed 99, dev config mutant
        // 707: 0x7F inserted into "false").
        ("control-character-in-syntax-error", "lock_memory = fa\u{7F}lse\n", .syntax, 1),
        ("station-lane", "station = [\n  { station = \"infeed_advance\" },\n   },\n  {{ station = \"clamp\" },\n]\n", .syntax, nil),
    ]

    @Test("regression inputs: rejected with a clear error, never a crash")
    func regressions() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lampcell-fuzz-regressions-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let cell = try CellDefinition.load(from: Repository.cellDefinition)
        for input in Self.regressionInputs {
            let path = directory.appendingPathComponent(input.name + ".toml").path
            try input.text.write(toFile: path, atomically: true, encoding: .utf8)
            for loader in 0..<3 {
                do {
                    switch loader {
                    case 0: _ = try DaemonConfiguration.load(from: path)
                    case 1: _ = try CellDefinition.load(from: path)
                    default: _ = try Recipe.load(from: path, cell: cell)
                    }
                    Issue.record("\(input.name): loaded")
                } catch {
                    #expect(error.kind == input.kind, "\(input.name): \(error)")
                    #expect(error.filePath == path && error.description.hasPrefix(path + ": "), "\(input.name): \(error)")
                    if let line = input.line { #expect(error.line == line, "\(input.name): \(error)") }
                    #expect(!error.description.unicodeScalars.contains { $0.properties.generalCategory == .control }, "\(input.name): \(error.description.debugDescription)")
                }
            }
        }
        // The preflight scan leaves valid TOML alone: every real file and these tricky ones parse.
        let valid = [
            "a = [ \"}\", '}', \"\"\"}\n]\"\"\" ]\n", "a = [ { b = 1 }, { c = [ 2 ] } ]\n", "[\"x]}\".y]\nb = 1\n",
            "a = [ # }\n 1 ]\n", "a = [ [ ], [ [ ] ] ]\n", "[ a . \"b\" ]\n[[ 'c' ]]\n[ -d ]\n[_e]\n[9]\n", "a = \"\"\"\nx\\\n}\"\"\"\n",
        ]
        for text in valid {
            #expect(TOMLPreflight.findParserTrap(in: text) == nil, "\(text.debugDescription)")
        }
        for file in ["Systemd/lampcelld.toml", "Systemd/lampcelld-dev.toml", "Hardware/cell.toml", "Hardware/recipes/left.toml", "Hardware/recipes/right.toml"] {
            let text = try String(contentsOfFile: Repository.root + "/" + file, encoding: .utf8)
            #expect(TOMLPreflight.findParserTrap(in: text) == nil, "\(file)")
        }
    }
}

extension String {
    /// A hash that is the same in every process (Swift's `hashValue` is seeded per process).
    var hashValueStable: UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }
}
