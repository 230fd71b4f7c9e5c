/// The control protocol's requests (DESIGN §8), parsed from one line: the only parser of them.
public enum ControlCommand: Equatable, Sendable {
    case help, version, ping, quit
    case showInfo
    case showStats(vm: String?)
    case showVCPUs(vm: String)
    /// DESIGN §8/§11: the optimal bounds of the VM's recent switch sequence.
    case showBounds(vm: String)
    case showMetrics
    case showConfig
    // Admin commands: peer uid 0 or the daemon's own.
    case resetCounters(vm: String?)
    case pause(vm: String)
    case resume(vm: String)
    case reload

    public var isAdmin: Bool {
        switch self {
        case .resetCounters, .pause, .resume, .reload: true
        default: false
        }
    }
}

/// A request: the command and whether the answer is one line of JSON. Clients build it as a value
/// and send `line`; the daemon parses a line back with `init(parsing:)`.
public struct ControlRequest: Equatable, Sendable {
    public var command: ControlCommand
    public var json: Bool

    public init(_ command: ControlCommand, json: Bool = false) {
        self.command = command
        self.json = json
    }

    /// The request as sent on the socket, without its newline: `init(parsing:)` gives it back.
    public var line: String {
        let words: [String?] = switch command {
        case .help: ["help"]
        case .version: ["version"]
        case .ping: ["ping"]
        case .quit: ["quit"]
        case .showInfo: ["show", "info"]
        case .showStats(let vm): ["show", "stats", vm]
        case .showVCPUs(let vm): ["show", "vcpus", vm]
        case .showBounds(let vm): ["show", "bounds", vm]
        case .showMetrics: ["show", "metrics"]
        case .showConfig: ["show", "config"]
        case .resetCounters(let vm): ["reset", "counters", vm]
        case .pause(let vm): ["pause", vm]
        case .resume(let vm): ["resume", vm]
        case .reload: ["reload"]
        }
        return (words.compactMap { $0 } + (json ? ["json"] : [])).joined(separator: " ")
    }

    /// Whether the command has a JSON form (`show metrics` and `show config` are text only).
    public var commandHasJSON: Bool {
        switch command {
        case .showMetrics, .showConfig: false
        default: true
        }
    }
}

/// Error codes of DESIGN §8.
public enum ControlErrorCode: String, Sendable {
    case unknownCommand = "unknown-command"
    case badArgument = "bad-argument"
    case noSuchVM = "no-such-vm"
    case permissionDenied = "permission-denied"
    case lineTooLong = "line-too-long"
    case busy
}

public struct ControlError: Error, Equatable, Sendable {
    public var code: ControlErrorCode
    public var message: String

    public init(_ code: ControlErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }
}

extension ControlRequest {
    /// The longest request line, newline excluded (DESIGN §8).
    public static let maxLineLength = 4096

    /// Whether `json` is the line's last word (words split on spaces, tabs and `\r`, as the
    /// parser splits them): a request that fails to parse is answered in the form it asked for.
    public static func endsWithJSON(_ line: some Collection<UInt8>) -> Bool {
        guard let last = line.split(whereSeparator: { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }).last else { return false }
        return last.elementsEqual("json".utf8)
    }

    /// Parses one line (without its newline; a trailing `\r` is allowed). Words are separated by
    /// spaces or tabs; `json` as the last word asks for JSON.
    public init(parsing line: some Collection<UInt8>) throws(ControlError) {
        guard let text = String(validating: line, as: UTF8.self) else {
            throw ControlError(.badArgument, "request is not UTF-8 text")
        }
        var words = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
        json = Self.endsWithJSON(line)
        if json { words.removeLast() }
        guard let first = words.first else { throw ControlError(.unknownCommand, "empty request; try 'help'") }
        let args = Array(words.dropFirst())

        func noArgs(_ c: ControlCommand) throws(ControlError) -> ControlCommand {
            guard args.isEmpty else { throw ControlError(.badArgument, "'\(first)' takes no arguments") }
            return c
        }
        func vmArg(_ usage: String, optional: Bool) throws(ControlError) -> String? {
            guard args.count <= 1, optional || args.count == 1 else { throw ControlError(.badArgument, "usage: \(usage)") }
            return args.first
        }

        switch first {
        case "help": command = try noArgs(.help)
        case "version": command = try noArgs(.version)
        case "ping": command = try noArgs(.ping)
        case "quit", "exit": command = try noArgs(.quit)
        case "reload": command = try noArgs(.reload)
        case "pause", "resume":
            guard args.count == 1 else { throw ControlError(.badArgument, "usage: \(first) VM") }
            command = first == "pause" ? .pause(vm: args[0]) : .resume(vm: args[0])
        case "reset":
            guard args.first == "counters", args.count <= 2 else { throw ControlError(.badArgument, "usage: reset counters [VM]") }
            command = .resetCounters(vm: args.count == 2 ? args[1] : nil)
        case "show":
            guard let what = args.first else {
                throw ControlError(.badArgument, "usage: show info|stats [VM]|vcpus VM|bounds VM|metrics|config")
            }
            let rest = Array(args.dropFirst())
            switch what {
            case "info":
                guard rest.isEmpty else { throw ControlError(.badArgument, "usage: show info [json]") }
                command = .showInfo
            case "stats":
                guard rest.count <= 1 else { throw ControlError(.badArgument, "usage: show stats [VM] [json]") }
                command = .showStats(vm: rest.first)
            case "vcpus":
                guard rest.count == 1 else { throw ControlError(.badArgument, "usage: show vcpus VM [json]") }
                command = .showVCPUs(vm: rest[0])
            case "bounds":
                guard rest.count == 1 else { throw ControlError(.badArgument, "usage: show bounds VM [json]") }
                command = .showBounds(vm: rest[0])
            case "metrics":
                guard rest.isEmpty, !json else { throw ControlError(.badArgument, "usage: show metrics (Prometheus text only)") }
                command = .showMetrics
            case "config":
                guard rest.isEmpty, !json else { throw ControlError(.badArgument, "usage: show config") }
                command = .showConfig
            default:
                throw ControlError(.badArgument, "unknown 'show \(what.prefix(64))'; expected info, stats, vcpus, bounds, metrics or config")
            }
        default:
            throw ControlError(.unknownCommand, "unknown command '\(first.prefix(64))'; try 'help'")
        }
    }
}

/// Splits a byte stream into request lines with DESIGN §8's 4096-byte cap. Each byte is looked
/// at once, so a slow or byte-at-a-time client costs no rescans.
///
/// An over-long line yields `.tooLong` once, then is discarded up to its newline; the
/// connection goes on.
public struct LineFramer: Sendable {
    public enum Item: Equatable, Sendable {
        case line([UInt8])
        case tooLong
    }

    var buffer: [UInt8] = []
    var isDiscarding = false
    let limit: Int

    public init(limit: Int = ControlRequest.maxLineLength) {
        self.limit = limit
    }

    /// Adds bytes and returns the complete items they finish.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [Item] {
        var items: [Item] = []
        for b in bytes {
            if b == 0x0A {
                if isDiscarding {
                    isDiscarding = false
                } else {
                    items.append(.line(buffer))
                }
                buffer.removeAll(keepingCapacity: true)
                continue
            }
            if isDiscarding { continue }
            if buffer.count == limit {
                items.append(.tooLong)
                isDiscarding = true
                buffer.removeAll(keepingCapacity: true)
                continue
            }
            buffer.append(b)
        }
        return items
    }

    /// Bytes of an unfinished line held.
    public var pendingCount: Int { buffer.count }
}
