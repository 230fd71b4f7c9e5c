/// A problem with a workload's input, reported as `FILE:LINE: message` (DESIGN §5).
public struct TraceError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The data is not what the format says: exit 65.
        case badData
        /// The input cannot be opened: exit 66.
        case inputMissing
        /// A bad option or parameter (a preset, `--set`): exit 64.
        case usage
        /// A read or write failed: exit 1.
        case io
        /// What the command needs from the system is not there or not accessible (no tracefs,
        /// no KVM events, not root: `nestcache record`): exit 69.
        case unavailable
    }

    public var kind: Kind
    public var file: String
    /// 1-based; nil when the problem is not on a line (open, read).
    public var line: Int?
    public var message: String

    public init(_ kind: Kind, file: String, line: Int? = nil, _ message: String) {
        self.kind = kind
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String {
        if let line { return "\(file):\(line): \(message)" }
        return file.isEmpty ? message : "\(file): \(message)"
    }

    /// The exit code of DESIGN §10.
    public var exitCode: Int32 {
        switch kind {
        case .badData: 65
        case .inputMissing: 66
        case .usage: 64
        case .io: 1
        case .unavailable: 69
        }
    }
}
