import CSystemd
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NestCacheSystem

/// Why a ``JournaldLogHandler`` could not reach journald.
public enum JournaldError: Error, Equatable, Sendable {
    /// Nothing accepts datagrams at `path` (`errno` from `socket`/`connect`), and stderr is not a
    /// journal stream either.
    case journalUnreachable(path: String, errno: Int32)
}

/// A swift-log `LogHandler` that writes structured records to journald (DESIGN §7).
///
/// Each record is one `sd_journal_sendv` call with these fields:
/// - `MESSAGE`, `PRIORITY` (syslog 0-7, see ``priority(for:)``), `SYSLOG_IDENTIFIER` (``identifier``);
/// - `CODE_FILE`, `CODE_LINE`, `CODE_FUNC`;
/// - one field per metadata key, named by ``journalField(forMetadataKey:)``:
///   `nestcache.event` -> `NESTCACHE_EVENT`, `nestcache.vm` -> `NESTCACHE_VM`, `nestcache.vcpu`,
///   `nestcache.policy`, `nestcache.hit_ratio` likewise; any other key `k` -> `NESTCACHE_<K>`.
///   Per-call metadata wins over the metadata provider, which wins over the handler's metadata.
///   A `LogEvent`'s error, if any, becomes `NESTCACHE_ERROR`.
///
/// Where the records go is decided once, when the handler is made, never in ``log(event:)``:
/// - ``init(identifier:)`` throws unless journald is reachable;
/// - ``automatic(identifier:)`` falls back to ``Destination-swift.enum/stderr``: one line per
///   record, `LEVEL [event key=value ...] message` (see ``stderrLine(level:message:metadata:)``).
/// If journald dies later and leaves its socket file, `sd_journal_sendv` fails (`ECONNREFUSED`) and
/// that record is written to stderr instead; if the socket file itself is gone, libsystemd drops
/// the record and reports success (by design: "fail silently if the journal is not available").
/// `log` never throws.
///
/// libsystemd always sends to ``journalSocketPath``; no other path can be configured.
/// The handler is a value: copies share nothing but the destination (libsystemd keeps one socket
/// per process). Only `main` bootstraps the logging system; probe once there:
/// ```swift
/// let journal = JournaldLogHandler.automatic()
/// LoggingSystem.bootstrap { _ in journal }
/// ```
public struct JournaldLogHandler: LogHandler {
    /// Where records go.
    public enum Destination: Equatable, Sendable {
        /// `sd_journal_sendv` to ``JournaldLogHandler/journalSocketPath``.
        case journal
        /// One human-readable line per record on file descriptor 2.
        case stderr
    }

    /// The datagram socket libsystemd sends journal records to (fixed inside libsystemd).
    public static let journalSocketPath = "/run/systemd/journal/socket"

    /// `SYSLOG_IDENTIFIER` of every record: what `journalctl -t` selects on.
    public let identifier: String
    public let destination: Destination
    /// The level this handler's loggers log at: ``levelSetting``'s when one is given (the daemon's
    /// reloadable `log_level`), else its own.
    public var logLevel: Logger.Level {
        get { levelSetting?.level ?? ownLevel }
        set { if let levelSetting { levelSetting.level = newValue } else { ownLevel = newValue } }
    }
    public var levelSetting: LogLevelSetting?
    private var ownLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    /// A handler writing to journald; throws when journald is not reachable
    /// (see ``isJournalReachable(environment:socketPath:)``).
    public init(identifier: String = "nestcached") throws(JournaldError) {
        let probe = Self.probeSocket(Self.journalSocketPath)
        let journalStream = getenv("JOURNAL_STREAM").map { String(cString: $0) }
        if probe != 0 && !Self.isStderrJournalStream(journalStream) {
            throw .journalUnreachable(path: Self.journalSocketPath, errno: probe)
        }
        self.init(identifier: identifier, destination: .journal)
    }

    /// A handler with an explicit destination; no probing.
    public init(identifier: String = "nestcached", destination: Destination) {
        self.identifier = identifier
        self.destination = destination
    }

    /// journald when it is reachable, otherwise stderr. Probes once (one `connect`).
    public static func automatic(identifier: String = "nestcached") -> JournaldLogHandler {
        do {
            return try JournaldLogHandler(identifier: identifier)
        } catch {
            return JournaldLogHandler(identifier: identifier, destination: .stderr)
        }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let perCall = event.metadata { merged.merge(perCall) { _, new in new } }
        if let error = event.error, merged["nestcache.error"] == nil {
            merged["nestcache.error"] = .string(String(describing: error))
        }
        let message = event.message.description
        if destination == .journal {
            let fields = Self.journalFields(
                identifier: identifier, level: event.level, message: message, metadata: merged,
                file: event.file, line: event.line, function: event.function)
            if Self.send(fields) { return }
        }
        Stderr.write(Self.stderrLine(level: event.level, message: message, metadata: merged))
    }

    // MARK: Field mapping

    /// The syslog priority journald stores in `PRIORITY`: 7 debug ... 2 critical.
    public static func priority(for level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// The journald field for a metadata key: the key without a leading `nestcache.`, upper-cased,
    /// every character outside `[A-Z0-9_]` replaced by `_`, prefixed with `NESTCACHE_`, cut to
    /// journald's 64-byte limit. The prefix keeps it from starting with `_` (journald's trusted
    /// fields) or a digit, and from colliding with journald's own fields.
    public static func journalField(forMetadataKey key: String) -> String {
        let prefix = "nestcache."
        let bare = key.hasPrefix(prefix) ? key.dropFirst(prefix.count) : Substring(key)
        var field = "NESTCACHE_"
        for scalar in bare.unicodeScalars {
            guard field.utf8.count < 64 else { break }
            switch scalar {
            case "A"..."Z", "0"..."9", "_": field.unicodeScalars.append(scalar)
            case "a"..."z": field.unicodeScalars.append(Unicode.Scalar(UInt8(scalar.value) - 32))
            default: field.unicodeScalars.append("_")
            }
        }
        return field
    }

    /// The journald fields of one record, in the order they are sent: `MESSAGE`, `PRIORITY`,
    /// `SYSLOG_IDENTIFIER`, `CODE_*`, then metadata fields sorted by name. When two keys map to
    /// the same field, the key that sorts last wins.
    public static func journalFields(
        identifier: String, level: Logger.Level, message: String, metadata: Logger.Metadata,
        file: String, line: UInt, function: String
    ) -> [(name: String, value: String)] {
        var fields: [(name: String, value: String)] = [
            ("MESSAGE", message),
            ("PRIORITY", String(priority(for: level))),
            ("SYSLOG_IDENTIFIER", identifier),
            ("CODE_FILE", file),
            ("CODE_LINE", String(line)),
            ("CODE_FUNC", function),
        ]
        var byField: [String: String] = [:]
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            byField[journalField(forMetadataKey: key)] = value.flatDescription
        }
        fields += byField.sorted { $0.key < $1.key }.map { (name: $0.key, value: $0.value) }
        return fields
    }

    /// The stderr form of a record, one line: `WARNING [thrash vm=web0 vcpu=3] message`.
    /// The bracket holds `nestcache.event`'s value first, then the other keys without their
    /// `nestcache.` prefix, sorted by that name; it is left out when there is no metadata. Newlines in the message
    /// are written as `\n`.
    public static func stderrLine(level: Logger.Level, message: String, metadata: Logger.Metadata) -> String {
        let prefix = "nestcache."
        var tags: [String] = []
        if let event = metadata["nestcache.event"] { tags.append(event.flatDescription) }
        let named = metadata.compactMap { key, value in
            key == "nestcache.event"
                ? nil : (name: key.hasPrefix(prefix) ? String(key.dropFirst(prefix.count)) : key, value: value)
        }
        for (name, value) in named.sorted(by: { $0.name < $1.name }) { tags.append("\(name)=\(value.flatDescription)") }
        let head = level.rawValue.uppercased()
        let body = message.replacingNewlines
        return tags.isEmpty ? "\(head) \(body)" : "\(head) [\(tags.joined(separator: " "))] \(body)"
    }

    // MARK: Reachability

    /// Whether journald takes records: stderr is a journal stream (`JOURNAL_STREAM` names stderr's
    /// `device:inode`, as systemd sets it for services), or a datagram socket accepts a `connect`
    /// at `socketPath`.
    public static func isJournalReachable(
        environment: [String: String] = processEnvironment(),
        socketPath: String = journalSocketPath
    ) -> Bool {
        isStderrJournalStream(environment["JOURNAL_STREAM"]) || probeSocket(socketPath) == 0
    }

    /// Whether `journalStream` (`JOURNAL_STREAM`'s value, `"<dev>:<ino>"` in decimal) names this
    /// process's file descriptor 2, as systemd.exec(5) documents.
    public static func isStderrJournalStream(_ journalStream: String?) -> Bool {
        guard let journalStream else { return false }
        let parts = journalStream.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var status = stat()
        guard fstat(STDERR_FILENO, &status) == 0 else { return false }
        return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode
    }

    /// Connects a datagram socket to `path` and closes it: 0 when that works, else the errno.
    private static func probeSocket(_ path: String) -> Int32 {
        let fd = UnixSocketAddress.connect(path, type: Int32(SOCK_DGRAM.rawValue))
        guard fd >= 0 else { return -fd }
        close(fd)
        return 0
    }

    // MARK: Output

    /// One `sd_journal_sendv`; false when libsystemd reports an error (the caller then uses stderr).
    private static func send(_ fields: [(name: String, value: String)]) -> Bool {
        // Every "NAME=value" in one buffer; the iovecs point into it while it is pinned.
        var buffer: [UInt8] = []
        var ranges: [(offset: Int, count: Int)] = []
        for field in fields {
            let offset = buffer.count
            buffer.append(contentsOf: field.name.utf8)
            buffer.append(UInt8(ascii: "="))
            buffer.append(contentsOf: field.value.utf8)
            ranges.append((offset, buffer.count - offset))
        }
        let result: Int32 = buffer.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return -EINVAL }
            let vectors = ranges.map { iovec(iov_base: base + $0.offset, iov_len: $0.count) }
            return vectors.withUnsafeBufferPointer { sd_journal_sendv($0.baseAddress, Int32($0.count)) }
        }
        return result >= 0
    }
}

extension Logger.MetadataValue {
    /// The value as journald and the stderr line show it: strings as they are, lists and
    /// dictionaries in swift-log's `description` form.
    fileprivate var flatDescription: String {
        switch self {
        case .string(let string): string
        case .stringConvertible(let value): value.description
        default: description
        }
    }
}

extension String {
    /// Every line feed written as the two characters `\n` (journald's stderr line is one record).
    var replacingNewlines: String {
        guard utf8.contains(0x0A) else { return self }
        var out = String.UnicodeScalarView()
        for u in unicodeScalars {
            if u == "\n" {
                out.append("\\")
                out.append("n")
            } else {
                out.append(u)
            }
        }
        return String(out)
    }
}
