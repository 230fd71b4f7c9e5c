#if canImport(Glibc)
import Glibc
#endif
import Logging
import NestCacheCore
import NestCacheWorkload
import NestCacheControl

/// A configuration problem: `FILE:LINE: message`, exit 78 (DESIGN §7, §10).
public struct ConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    public var file: String
    public var line: Int?
    public var message: String

    public init(file: String, line: Int?, _ message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String {
        if let line { return "\(file):\(line): \(message)" }
        return "\(file): \(message)"
    }

    public static let exitCode: Int32 = 78
}

/// How fast a workload is fed: as fast as the queues take it, at its own timestamps, or scaled.
public enum Speed: Sendable, Equatable, CustomStringConvertible {
    case max
    case realtime
    /// `factor` times real time (2 = twice as fast).
    case factor(Double)

    public init?(text: String) {
        switch text {
        case "max": self = .max
        case "realtime": self = .realtime
        default:
            guard let f = Double(text), f.isFinite, f > 0, f <= 1e9 else { return nil }
            self = .factor(f)
        }
    }

    public var description: String {
        switch self {
        case .max: "max"
        case .realtime: "realtime"
        case .factor(let f): format(f)
        }
    }

    /// Wall-clock nanoseconds per trace nanosecond; nil for `max`.
    var scale: Double? {
        switch self {
        case .max: nil
        case .realtime: 1
        case .factor(let f): 1 / f
        }
    }
}

/// `strict`: trace order, counters identical to `nestcache replay`; `concurrent`: vCPU queues
/// of a VM may interleave (DESIGN §7).
public enum Ordering: String, Sendable, Equatable, CaseIterable {
    case strict, concurrent
}

/// The daemon's configuration (DESIGN §7), validated.
public struct DaemonConfig: Sendable, Equatable {
    public struct DaemonSection: Sendable, Equatable {
        /// nil: `/run/nestcache/nestcached.sock` as root, else `$XDG_RUNTIME_DIR/nestcache/...`.
        public var socket: String?
        public var socketMode: UInt32 = 0o660
        public var maxClients = 64
        public var idleTimeoutS = 30.0
        public var logLevel = Logger.Level.info
        public var summaryIntervalS = 60.0
        public var textfile: String?
        /// Switches kept per VM for `show bounds` (0: none).
        public var boundsWindow = 8192
        /// `HOST:PORT` for `GET /metrics` over HTTP; nil: off.
        public var metricsListen: MetricsListen?
    }

    public struct Defaults: Sendable, Equatable {
        public var policy = PolicySpec.seed
        public var shadowPolicies: [PolicySpec] = [.perVCPULRU(k: 3), .single, .mapPerEntry]
        public var pagesPerContext = 4
        public var cost = CostModel.default
    }

    /// A `[[vm]]`: one simulated VM. Equal definitions keep their counters across a reload.
    public struct SimulatedVM: Sendable, Equatable {
        public var id: String
        public var workload: WorkloadSpec
        public var policy: PolicySpec
        public var shadowPolicies: [PolicySpec]
        public var speed: Speed

        public init(id: String, workload: WorkloadSpec, policy: PolicySpec, shadowPolicies: [PolicySpec], speed: Speed) {
            self.id = id
            self.workload = workload
            self.policy = policy
            self.shadowPolicies = shadowPolicies
            self.speed = speed
        }
    }

    /// A `[[replay]]`: a trace whose VMs are all served under their own ids.
    public struct ReplaySource: Sendable, Equatable {
        public var trace: String
        public var format: TraceFileSequence.Format
        public var speed: Speed
        public var loop: Bool
        public var ordering: Ordering
        public var vm: String?
        public var policy: PolicySpec
        public var shadowPolicies: [PolicySpec]
    }

    /// A `[[live]]`: a capture followed as it is written (a FIFO, a growing file, `trace_pipe`),
    /// applied in arrival order (strict), so its counters equal `nestcache replay` of the same text.
    public struct LiveSource: Sendable, Equatable {
        public var trace: String
        public var format: LiveTrace.Format
        /// The VM of ftrace lines without a tgid; nil: the file's base name.
        public var vm: String?
        public var policy: PolicySpec
        public var shadowPolicies: [PolicySpec]
        /// Seconds without a new line after which the source and its VMs show `waiting`.
        public var waitingAfterS: Double

        public init(trace: String, format: LiveTrace.Format = .ftrace, vm: String? = nil, policy: PolicySpec,
                    shadowPolicies: [PolicySpec], waitingAfterS: Double = 10) {
            self.trace = trace
            self.format = format
            self.vm = vm
            self.policy = policy
            self.shadowPolicies = shadowPolicies
            self.waitingAfterS = waitingAfterS
        }
    }

    public var daemon = DaemonSection()
    public var defaults = Defaults()
    public var vms: [SimulatedVM] = []
    public var replays: [ReplaySource] = []
    public var lives: [LiveSource] = []
    /// Where it came from (`(embedded default)` for the built-in one) and its text, for `show config`.
    public var path = ""
    public var text = ""

    public init() {}

    /// The socket path: configured, else DESIGN §8's default for this user.
    public func socketPath(uid: UInt32, environment: [String: String]) -> String {
        daemon.socket ?? ControlSocket.defaultPath(uid: uid, environment: environment)
    }
}

func format(_ d: Double) -> String {
    d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)
}

/// `[daemon] metrics_listen = "HOST:PORT"`: where `GET /metrics` is served (DESIGN §7). HOST is an
/// IPv4 literal, a bracketed IPv6 literal (`[::1]`, `[::]`) or `localhost` (127.0.0.1: no name
/// lookup, so the address does not depend on `/etc/hosts` or the resolver). Port 0 takes any
/// free port (`show info` gives the one bound).
public struct MetricsListen: Sendable, Equatable, CustomStringConvertible {
    /// A numeric address.
    public var host: String
    public var port: Int

    public init?(parsing text: String) {
        let host: Substring
        let port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            port = rest.dropFirst()
            guard Self.isAddress(String(host), family: AF_INET6) else { return nil }
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
            guard host == "localhost" || Self.isAddress(String(host), family: AF_INET) else { return nil }
        }
        guard !port.isEmpty, port.count <= 5, port.allSatisfy(\.isASCII), port.allSatisfy(\.isNumber),
              let n = Int(port), n <= 65535 else { return nil }
        self.host = host == "localhost" ? "127.0.0.1" : String(host)
        self.port = n
    }

    /// A parsed address with another port (the one bound for port 0).
    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    static func isAddress(_ s: String, family: Int32) -> Bool {
        var buf = [UInt8](repeating: 0, count: 16)
        return inet_pton(family, s, &buf) == 1
    }
}
