// Reading a TOML file into a plain value tree, and typed, path-aware access to it for the loaders.
//
// TOMLKit parses; everything after that works on `ConfigValue`, so every check can name the file and the field.

import CellCore
#if canImport(Glibc)
import Glibc
#endif
import TOMLKit

/// A parsed TOML value, detached from TOMLKit.
indirect enum ConfigValue {
    case table([String: ConfigValue])
    case array([ConfigValue])
    case string(String)
    case integer(Int)
    case float(Double)
    case bool(Bool)
    /// Dates and times: LampCell's files use none; kept only to name the type in an error.
    case other(String)

    /// "a string", "an integer", … for "expected …, found …" messages.
    var typeDescription: String {
        switch self {
        case .table: "a table"
        case .array: "an array"
        case .string: "a string"
        case .integer: "an integer"
        case .float: "a floating-point number"
        case .bool: "a boolean"
        case .other(let name): "a \(name)"
        }
    }
}

/// Limits of the file reader.
enum ConfigFileLimits {
    /// Larger files are rejected: the cell's files are a few kilobytes.
    static let maximumFileBytes = 1 << 20
    /// Bytes read per `read(2)` call.
    static let readChunkBytes = 16 << 10
}

/// A dotted field path with indices, e.g. `arms.loader.teach_points.home.joints[2]`.
struct FieldPath: CustomStringConvertible {
    private(set) var description: String

    static let root = FieldPath(description: "")

    /// The path of `key` inside this table (keys that are not bare TOML keys are quoted).
    func key(_ key: String) -> FieldPath {
        let bare = !key.isEmpty && key.unicodeScalars.allSatisfy { scalar in
            (scalar >= "a" && scalar <= "z") || (scalar >= "A" && scalar <= "Z") || (scalar >= "0" && scalar <= "9")
                || scalar == "_" || scalar == "-"
        }
        let shown = bare && key.count <= ConfigExcerptLimits.maximumCharacters ? key : "\"\(configExcerpt(key))\""
        return FieldPath(description: description.isEmpty ? shown : description + "." + shown)
    }

    /// The path of element `index` of this array.
    func index(_ index: Int) -> FieldPath {
        FieldPath(description: description + "[\(index)]")
    }
}

/// Reads `path` and parses it as TOML into a table of `ConfigValue`s.
func loadConfigTable(path: String) throws(ConfigError) -> ConfigTable {
    let text = try readConfigText(path: path)
    if let trap = TOMLPreflight.findParserTrap(in: text) {
        throw ConfigError(
            filePath: path, fieldPath: "", kind: .syntax, message: "TOML syntax error: \(trap.message)",
            line: trap.line, column: trap.column)
    }
    let root: TOMLTable
    do {
        root = try TOMLTable(string: text)
    } catch let error as TOMLParseError {
        let begin = error.source.begin
        throw ConfigError(
            filePath: path, fieldPath: "", kind: .syntax,
            message: "TOML syntax error: "
                + configExcerpt(error.description, maximumCharacters: ConfigExcerptLimits.maximumParserMessageCharacters),
            line: begin.line > 0 ? begin.line : nil, column: begin.column > 0 ? begin.column : nil)
    } catch {
        throw ConfigError(
            filePath: path, fieldPath: "", kind: .syntax,
            message: "TOML syntax error: "
                + configExcerpt("\(error)", maximumCharacters: ConfigExcerptLimits.maximumParserMessageCharacters))
    }
    guard case .table(let entries) = convert(root) else {
        throw ConfigError(filePath: path, fieldPath: "", kind: .syntax, message: "the document is not a TOML table")
    }
    return ConfigTable(entries: entries, path: .root, filePath: path)
}

/// Input that toml++ (inside TOMLKit) does not survive, found before it parses.
///
/// toml++ 3.4 asserts (`!is_value_terminator(*cp)` in `parser::parse_value`, toml.hpp) when an array holds a `}`
/// where a value should be (`a = [ }`, `a = [ 1, }`), and (`is_bare_key_character(*cp) || …` in
/// `parser::parse_key`) when a table header starts with a character that cannot start a key (`[/a]`, `[.a]`): in
/// a debug build those assertions abort the process; a release build reports a syntax error. Found by the
/// configuration fuzzer (ConfigFuzzTests); the same input is rejected here, as a syntax error with its line and
/// column, in every build. The scan is a small lexer (strings, comments, table headers, bracket nesting) that only
/// ever reports these patterns, which are never valid TOML.
enum TOMLPreflight {
    struct Trap {
        var line: Int
        var column: Int
        var message: String
    }

    static func findParserTrap(in text: String) -> Trap? {
        let bytes = Array(text.utf8)
        enum Open { case array, table }
        var stack: [Open] = []
        var line = 1
        var lineStart = 0
        var index = 0
        /// Just after `[` of an array or a `,` inside one: the next token must be a value (or `]`).
        var expectingArrayValue = false
        var atLineStart = true
        func byte(_ offset: Int) -> UInt8? { offset < bytes.count ? bytes[offset] : nil }
        while index < bytes.count {
            let c = bytes[index]
            switch c {
            case UInt8(ascii: "\n"):
                line += 1
                lineStart = index + 1
                atLineStart = true
                index += 1
                continue
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"):
                index += 1
                continue
            case UInt8(ascii: "#"):
                while index < bytes.count && bytes[index] != UInt8(ascii: "\n") { index += 1 }
                continue
            default:
                break
            }
            let wasAtLineStart = atLineStart
            atLineStart = false
            if c == UInt8(ascii: "}") && expectingArrayValue && stack.last == .array {
                return Trap(
                    line: line, column: index - lineStart + 1,
                    message: "expected a value or closing ']' in an array, saw '}'")
            }
            expectingArrayValue = false
            switch c {
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                // Strings, basic ("…", with escapes) or literal ('…'), single- or multi-line.
                let multiLine = byte(index + 1) == c && byte(index + 2) == c
                let escapes = c == UInt8(ascii: "\"")
                index += multiLine ? 3 : 1
                while index < bytes.count {
                    let d = bytes[index]
                    if escapes && d == UInt8(ascii: "\\") {
                        index += 2
                        continue
                    }
                    if d == UInt8(ascii: "\n") {
                        if !multiLine { break }  // unterminated: toml++ reports it
                        line += 1
                        lineStart = index + 1
                    }
                    if d == c && (!multiLine || (byte(index + 1) == c && byte(index + 2) == c)) {
                        index += multiLine ? 3 : 1
                        // A multi-line string may end with up to two more quotes.
                        while multiLine && byte(index) == c { index += 1 }
                        break
                    }
                    index += 1
                }
                continue
            case UInt8(ascii: "["):
                if stack.isEmpty && wasAtLineStart {
                    // A table header. toml++ asserts (`is_bare_key_character(*cp) || is_string_delimiter(*cp)` in
                    // `parser::parse_key`) when its first key starts with anything but a bare-key character or a
                    // quote (`[/a]`, `[.a]`, `[é]`, `[`): refuse that here.
                    var first = index + 1
                    if byte(first) == UInt8(ascii: "[") { first += 1 }
                    while byte(first) == UInt8(ascii: " ") || byte(first) == UInt8(ascii: "\t") { first += 1 }
                    let startsKey = byte(first).map { b in
                        (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
                            || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "_")
                            || b == UInt8(ascii: "-") || b == UInt8(ascii: "\"") || b == UInt8(ascii: "'")
                            || b == UInt8(ascii: "]")
                    } ?? false
                    if !startsKey {
                        return Trap(
                            line: line, column: first - lineStart + 1,
                            message: "a table header must start with a bare key (A-Z a-z 0-9 _ -) or a quoted key")
                    }
                    // Skip to the end of the line (its quoted keys are strings).
                    while index < bytes.count && bytes[index] != UInt8(ascii: "\n") && bytes[index] != UInt8(ascii: "#") {
                        if bytes[index] == UInt8(ascii: "\"") || bytes[index] == UInt8(ascii: "'") {
                            let quote = bytes[index]
                            index += 1
                            while index < bytes.count && bytes[index] != quote && bytes[index] != UInt8(ascii: "\n") { index += 1 }
                        }
                        index += 1
                    }
                    continue
                }
                stack.append(.array)
                expectingArrayValue = true
            case UInt8(ascii: "{"):
                stack.append(.table)
            case UInt8(ascii: "]"):
                if stack.last == .array { stack.removeLast() }
            case UInt8(ascii: "}"):
                if stack.last == .table { stack.removeLast() }
            case UInt8(ascii: ","):
                expectingArrayValue = stack.last == .array
            default:
                break
            }
            index += 1
        }
        return nil
    }
}

/// The whole file as UTF-8 text; errors name the file and the system's reason.
func readConfigText(path: String) throws(ConfigError) -> String {
    func failure(_ message: String) -> ConfigError {
        ConfigError(filePath: path, fieldPath: "", kind: .fileUnreadable, message: message)
    }
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else {
        throw failure("cannot open the file: \(String(cString: strerror(errno)))")
    }
    defer { close(descriptor) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: ConfigFileLimits.readChunkBytes)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EINTR { continue }
            throw failure("cannot read the file: \(String(cString: strerror(errno)))")
        }
        if count == 0 { break }
        bytes.append(contentsOf: chunk[0..<count])
        if bytes.count > ConfigFileLimits.maximumFileBytes {
            throw failure("the file is larger than \(ConfigFileLimits.maximumFileBytes) bytes")
        }
    }
    guard let text = String(validating: bytes, as: UTF8.self) else {
        throw failure("the file is not valid UTF-8 text")
    }
    return text
}

private func convert(_ value: TOMLValueConvertible) -> ConfigValue {
    switch value.type {
    case .table:
        guard let table = value.table else { return .other("table") }
        var entries: [String: ConfigValue] = [:]
        for (key, element) in table { entries[key] = convert(element) }
        return .table(entries)
    case .array:
        guard let array = value.array else { return .other("array") }
        var elements: [ConfigValue] = []
        for element in array { elements.append(convert(element)) }
        return .array(elements)
    case .string:
        return value.string.map(ConfigValue.string) ?? .other("string")
    case .int:
        return value.int.map(ConfigValue.integer) ?? .other("integer")
    case .double:
        return value.double.map(ConfigValue.float) ?? .other("floating-point number")
    case .bool:
        return value.bool.map(ConfigValue.bool) ?? .other("boolean")
    case .date, .time, .dateTime:
        return .other(value.type.description)
    }
}

/// One TOML table with its field path, and typed accessors that throw `ConfigError`s naming the field.
struct ConfigTable {
    let entries: [String: ConfigValue]
    let path: FieldPath
    let filePath: String

    /// The keys, sorted (TOML tables are unordered).
    var sortedKeys: [String] { entries.keys.sorted() }

    func error(_ field: FieldPath, _ kind: ConfigError.Kind, _ message: String) -> ConfigError {
        ConfigError(filePath: filePath, fieldPath: field.description, kind: kind, message: message)
    }

    /// Rejects any key not in `allowed` (typos), naming the key and the allowed ones.
    func rejectUnknownKeys(allowed: [String]) throws(ConfigError) {
        for key in sortedKeys where !allowed.contains(key) {
            throw error(
                path.key(key), .unknownKey,
                "unknown key '\(configExcerpt(key))' (expected one of: \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    /// The value of a required key.
    func value(_ key: String, expected: String) throws(ConfigError) -> ConfigValue {
        guard let value = entries[key] else {
            throw error(path.key(key), .missingField, "missing required field (expected \(expected))")
        }
        return value
    }

    func string(_ key: String) throws(ConfigError) -> String {
        try ConfigTable.string(value(key, expected: "a string"), at: path.key(key), in: self)
    }

    func number(_ key: String) throws(ConfigError) -> Double {
        try ConfigTable.number(value(key, expected: "a number"), at: path.key(key), in: self)
    }

    func integer(_ key: String) throws(ConfigError) -> Int {
        let field = path.key(key)
        switch try value(key, expected: "an integer") {
        case .integer(let value): return value
        case let other: throw error(field, .wrongType, "expected an integer, found \(other.typeDescription)")
        }
    }

    func table(_ key: String) throws(ConfigError) -> ConfigTable {
        try ConfigTable.table(value(key, expected: "a table"), at: path.key(key), in: self)
    }

    func array(_ key: String, expected: String) throws(ConfigError) -> [ConfigValue] {
        let field = path.key(key)
        switch try value(key, expected: expected) {
        case .array(let elements): return elements
        case let other: throw error(field, .wrongType, "expected \(expected), found \(other.typeDescription)")
        }
    }

    /// Exactly `count` finite numbers (integers are accepted as numbers).
    func numbers(_ key: String, count: Int) throws(ConfigError) -> [Double] {
        let expected = "an array of \(count) numbers"
        let elements = try array(key, expected: expected)
        let field = path.key(key)
        guard elements.count == count else {
            throw error(field, .invalidValue, "expected \(count) numbers, found \(elements.count)")
        }
        var result: [Double] = []
        for (index, element) in elements.enumerated() {
            result.append(try ConfigTable.number(element, at: field.index(index), in: self))
        }
        return result
    }

    /// A word from a fixed vocabulary: the raw value of `Word`.
    func word<Word: RawRepresentable & CaseIterable>(_ key: String, as _: Word.Type, what: String)
        throws(ConfigError) -> Word where Word.RawValue == String
    {
        try ConfigTable.word(value(key, expected: what), at: path.key(key), in: self, what: what)
    }

    static func string(_ value: ConfigValue, at field: FieldPath, in table: ConfigTable) throws(ConfigError) -> String {
        guard case .string(let text) = value else {
            throw table.error(field, .wrongType, "expected a string, found \(value.typeDescription)")
        }
        return text
    }

    static func number(_ value: ConfigValue, at field: FieldPath, in table: ConfigTable) throws(ConfigError) -> Double {
        let number: Double
        switch value {
        case .float(let value): number = value
        case .integer(let value): number = Double(value)
        default: throw table.error(field, .wrongType, "expected a number, found \(value.typeDescription)")
        }
        guard number.isFinite else {
            throw table.error(field, .invalidValue, "expected a finite number, found \(number)")
        }
        return number
    }

    static func table(_ value: ConfigValue, at field: FieldPath, in table: ConfigTable) throws(ConfigError)
        -> ConfigTable
    {
        guard case .table(let entries) = value else {
            throw table.error(field, .wrongType, "expected a table, found \(value.typeDescription)")
        }
        return ConfigTable(entries: entries, path: field, filePath: table.filePath)
    }

    static func word<Word: RawRepresentable & CaseIterable>(
        _ value: ConfigValue, at field: FieldPath, in table: ConfigTable, what: String
    ) throws(ConfigError) -> Word where Word.RawValue == String {
        let text = try string(value, at: field, in: table)
        guard let word = Word(rawValue: text) else {
            let choices = Word.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
            throw table.error(field, .invalidValue, "unknown \(what) \"\(configExcerpt(text))\" (expected one of: \(choices))")
        }
        return word
    }
}

/// Names of things in the files (device, arm, teach point, event names, ids): ASCII letters, digits, `_`, `-`,
/// `.`; 1 to `maximumNameLength` characters.
enum ConfigName {
    static let maximumNameLength = 64

    static func isValid(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= maximumNameLength else { return false }
        return name.unicodeScalars.allSatisfy { scalar in
            (scalar >= "a" && scalar <= "z") || (scalar >= "A" && scalar <= "Z") || (scalar >= "0" && scalar <= "9")
                || scalar == "_" || scalar == "-" || scalar == "."
        }
    }

    static let rule = "1 to \(maximumNameLength) characters from A-Z a-z 0-9 _ - ."

    /// Checks `name` (found at `field`) and returns it.
    static func check(_ name: String, what: String, at field: FieldPath, in table: ConfigTable) throws(ConfigError)
        -> String
    {
        guard isValid(name) else {
            throw table.error(field, .invalidValue, "\"\(configExcerpt(name))\" is not a valid \(what) (\(rule))")
        }
        return name
    }
}

/// Limits of text quoted from a file into an error message.
enum ConfigExcerptLimits {
    /// Longer text is cut to this many characters and "…" (a message stays one readable line).
    static let maximumCharacters = 64
    /// The TOML parser's own message (it quotes what it saw) is cut to this many characters.
    static let maximumParserMessageCharacters = 300
}

/// `text` as quoted in an error message: control characters escaped (`\u{1B}`), at most
/// `ConfigExcerptLimits.maximumCharacters` characters, then "…". (Found by the configuration fuzzer: a 100 kB string
/// value made a 100 kB error line, and an ESC in a value reached the terminal.)
func configExcerpt(_ text: String, maximumCharacters: Int = ConfigExcerptLimits.maximumCharacters) -> String {
    var result = ""
    var count = 0
    for scalar in text.unicodeScalars {
        if count == maximumCharacters {
            result += "…"
            break
        }
        if scalar.properties.generalCategory == .control || scalar == "\u{2028}" || scalar == "\u{2029}" {
            result += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
        } else {
            result.unicodeScalars.append(scalar)
        }
        count += 1
    }
    return result
}

/// Formats a number for messages without float noise (1.9, not 1.8999999999999999).
func formatNumber(_ value: Double) -> String {
    if value == value.rounded(), abs(value) < 1e15 { return String(Int(value)) }
    var text = String(value)
    if text.count > 10 {
        // Round to 6 significant decimals for display only.
        let scale = 1_000_000.0
        text = String((value * scale).rounded() / scale)
    }
    return text
}
