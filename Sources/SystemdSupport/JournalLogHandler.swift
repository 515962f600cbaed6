import CSystemd
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// A swift-log `LogHandler` that writes structured journal entries through `sd_journal_sendv(3)`:
///
/// | field | value |
/// |---|---|
/// | `MESSAGE` | the message (plus ` key=value` for each metadata item when `metadataInMessage`) |
/// | `PRIORITY` | syslog priority: trace/debug 7, info 6, notice 5, warning 4, error 3, critical 2 |
/// | `SYSLOG_IDENTIFIER` | the identifier given (`lampcelld`) |
/// | `CODE_FILE`, `CODE_LINE`, `CODE_FUNC` | swift-log's source location (`#fileID`, `#line`, `#function`) |
/// | `LOGGER_LABEL`, `LOGGER_SOURCE` | the logger's label and swift-log's source (module) |
/// | one per metadata key | the key as a journal field name: `lamp_serial` → `LAMP_SERIAL`, `packml-state` → `PACKML_STATE` |
///
/// So `journalctl -u lampcelld LAMP_SERIAL=…` finds a lamp's lines. When the journal cannot be reached the line goes
/// to stderr instead. Any thread (not the control thread: it formats and sends a datagram).
public struct JournalLogHandler: LogHandler {
    /// Longest journal field name (journald's limit).
    public static let maximumFieldNameBytes = 64
    /// Prefix for a metadata key that would otherwise overwrite one of the handler's own fields (`message` →
    /// `META_MESSAGE`) or has nothing usable left (`_` → `META_`).
    public static let collisionPrefix = "META_"
    /// Fields this handler sets itself; metadata keys that map to these get `collisionPrefix`.
    public static let reservedFieldNames: Set<String> = [
        "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "LOGGER_LABEL",
        "LOGGER_SOURCE", "MESSAGE_ID", "SYSLOG_FACILITY", "SYSLOG_PID", "ERRNO",
    ]

    /// The logger's label.
    public let label: String
    /// `SYSLOG_IDENTIFIER`.
    public let identifier: String
    /// Whether metadata is also appended to `MESSAGE` (plain `journalctl` shows only `MESSAGE`).
    public var metadataInMessage: Bool
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    /// - Parameters:
    ///   - label: the logger's label (swift-log's factory argument).
    ///   - identifier: `SYSLOG_IDENTIFIER`, the program's name.
    ///   - metadataInMessage: also append ` key=value` items to `MESSAGE`.
    public init(
        label: String, identifier: String, metadataInMessage: Bool = true,
        metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider
    ) {
        self.label = label
        self.identifier = identifier
        self.metadataInMessage = metadataInMessage
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let fields = Self.fields(
            level: event.level, message: event.message.description, metadata: merged, label: label,
            identifier: identifier, source: event.source, file: event.file, function: event.function,
            line: event.line, metadataInMessage: metadataInMessage)
        if !Self.send(fields) {
            let text = fields.first { $0.name == "MESSAGE" }?.value ?? event.message.description
            let line = "\(identifier)[\(event.level)]: \(text)\n"
            _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
        }
    }

    /// The journal fields of one entry, in order (the handler's own fields, then metadata sorted by key). Pure; any
    /// thread.
    public static func fields(
        level: Logger.Level, message: String, metadata: Logger.Metadata, label: String, identifier: String,
        source: String, file: String, function: String, line: UInt, metadataInMessage: Bool = true
    ) -> [(name: String, value: String)] {
        let items = metadata.sorted { $0.key < $1.key }
        var text = message
        if metadataInMessage {
            for (key, value) in items { text += " \(key)=\(value)" }
        }
        var fields: [(name: String, value: String)] = [
            ("MESSAGE", text),
            ("PRIORITY", String(priority(of: level))),
            ("SYSLOG_IDENTIFIER", identifier),
            ("CODE_FILE", file),
            ("CODE_LINE", String(line)),
            ("CODE_FUNC", function),
            ("LOGGER_LABEL", label),
            ("LOGGER_SOURCE", source),
        ]
        for (key, value) in items {
            fields.append((fieldName(forMetadataKey: key), "\(value)"))
        }
        return fields
    }

    /// The syslog priority of a swift-log level (`PRIORITY=`).
    public static func priority(of level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// A metadata key as a journal field name: upper case; every character other than A–Z, 0–9 and `_` becomes `_`;
    /// leading underscores and digits dropped (journald reserves `_…` for trusted fields); at most 64 bytes;
    /// `collisionPrefix` before names the handler sets itself or that came out empty.
    public static func fieldName(forMetadataKey key: String) -> String {
        var name = ""
        for scalar in key.uppercased().unicodeScalars {
            let allowed = ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar) || scalar == "_"
            name.unicodeScalars.append(allowed ? scalar : "_")
        }
        while let first = name.unicodeScalars.first, first == "_" || ("0"..."9").contains(first) {
            name.unicodeScalars.removeFirst()
        }
        if name.isEmpty || reservedFieldNames.contains(name) { name = collisionPrefix + name }
        return String(name.prefix(maximumFieldNameBytes))
    }

    /// Sends the fields as one entry with `sd_journal_sendv`; false when the journal could not be reached.
    static func send(_ fields: [(name: String, value: String)]) -> Bool {
        var storage: [UInt8] = []
        var ranges: [(offset: Int, count: Int)] = []
        for field in fields {
            let start = storage.count
            storage.append(contentsOf: field.name.utf8)
            storage.append(UInt8(ascii: "="))
            storage.append(contentsOf: field.value.utf8)
            ranges.append((start, storage.count - start))
        }
        return storage.withUnsafeMutableBytes { raw -> Bool in
            guard let base = raw.baseAddress else { return false }
            var vectors = ranges.map { iovec(iov_base: base + $0.offset, iov_len: $0.count) }
            return sd_journal_sendv(&vectors, Int32(vectors.count)) >= 0
        }
    }
}
