// The one error type of the `Hardware/` loaders (cell definition and recipes).

/// Why a cell definition or recipe file was rejected: which file, which field, what is wrong.
///
/// Its `description` is one line, `<file>: <field>: <what is wrong>`, for example
/// `Hardware/cell.toml: arms.loader.teach_points.home.joints[2]: 1.9 rad is outside J3's limits -2.967..1.309 rad`.
/// A TOML syntax error names the line and column instead of a field. Value type; any thread.
public struct ConfigError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What kind of mistake the file contains.
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        /// The file does not exist or cannot be read (or is not UTF-8 text, or is too large).
        case fileUnreadable
        /// The text is not valid TOML.
        case syntax
        /// A required field (or a required entry, like an arm's `home` point) is absent.
        case missingField
        /// A field has the wrong TOML type ("expected a number, found a string").
        case wrongType
        /// A number lies outside its allowed range (joint limits, register ranges, …).
        case outOfRange
        /// A key that the format does not know (usually a typo).
        case unknownKey
        /// A name that refers to nothing: an unknown teach point, arm, device or event.
        case unknownReference
        /// A name or address used twice where it must be unique.
        case duplicateName
        /// A value of the right type that is still wrong: an unknown enumeration word, min ≥ max, a deadlock, …
        case invalidValue
    }

    /// The file as the caller named it (e.g. `Hardware/cell.toml`).
    public let filePath: String
    /// Where in the file, as a dotted path with indices (e.g. `arms.loader.teach_points.home.joints[2]`); empty
    /// when the error concerns the whole file.
    public let fieldPath: String
    /// The line (1-based) for syntax errors, when the TOML parser reports it.
    public let line: Int?
    /// The column (1-based) for syntax errors, when the TOML parser reports it.
    public let column: Int?
    /// The kind of mistake.
    public let kind: Kind
    /// What is wrong, one line, without the file and field.
    public let message: String

    /// Creates an error; newlines in `message` are folded into spaces so the description stays one line.
    public init(
        filePath: String, fieldPath: String, kind: Kind, message: String, line: Int? = nil, column: Int? = nil
    ) {
        self.filePath = filePath
        self.fieldPath = fieldPath
        self.kind = kind
        self.message = ConfigError.oneLine(message)
        self.line = line
        self.column = column
    }

    /// `<file>: <field>: <message>`, or `<file>: line L, column C: <message>` for syntax errors; one line.
    public var description: String {
        var text = filePath + ": "
        if let line {
            text += "line \(line)"
            if let column { text += ", column \(column)" }
            text += ": "
        }
        if !fieldPath.isEmpty { text += fieldPath + ": " }
        return text + message
    }

    private static func oneLine(_ text: String) -> String {
        var result = ""
        var lastWasSpace = false
        for character in text {
            if character.isNewline || character == "\t" {
                if !lastWasSpace { result.append(" ") }
                lastWasSpace = true
            } else {
                result.append(character)
                lastWasSpace = character == " "
            }
        }
        while result.last == " " { result.removeLast() }
        return result
    }
}
