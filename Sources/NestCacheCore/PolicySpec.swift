/// A policy as spelled on the command line, in configs and on the socket (DESIGN §3): the only
/// parser of policy names.
public enum PolicySpec: Hashable, Sendable, CustomStringConvertible {
    case perVMTable(contextsPerVCPU: Int)
    case perVCPULRU(k: Int)
    case single
    case mapPerEntry

    /// Upper bounds that keep a typo from allocating gigabytes.
    public static let maxContextsPerVCPU = 4096
    public static let maxK = 1023

    /// The seed's design, the patch's defaults.
    public static let seed = PolicySpec.perVMTable(contextsPerVCPU: 8)

    /// `nestcache compare`'s default line-up (DESIGN §9).
    public static let comparisonDefaults: [PolicySpec] = [
        .mapPerEntry, .single, .perVCPULRU(k: 3), .perVCPULRU(k: 7), .perVMTable(contextsPerVCPU: 8),
    ]

    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// Parses `per-vm-table[:R]` (R >= 1, default 8), `per-vcpu-lru[:K]` (K >= 0, default 3),
    /// `single`, `map-per-entry`.
    public init(parsing text: some StringProtocol) throws(ParseError) {
        let s = String(text)
        let parts = s.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        let name = parts[0]
        let arg = parts.count > 1 ? String(parts[1]) : nil

        func number(_ what: String, _ min: Int, _ max: Int, default d: Int) throws(ParseError) -> Int {
            guard let arg else { return d }
            guard let n = Int(arg), n >= min, n <= max else {
                throw ParseError(description: "policy '\(s)': \(what) must be an integer from \(min) to \(max), got '\(arg)'")
            }
            return n
        }

        switch name {
        case "per-vm-table":
            self = .perVMTable(contextsPerVCPU: try number("R (contexts per L1 vCPU)", 1, Self.maxContextsPerVCPU, default: 8))
        case "per-vcpu-lru":
            self = .perVCPULRU(k: try number("K (previous contexts per vCPU)", 0, Self.maxK, default: 3))
        case "single", "map-per-entry":
            guard arg == nil else { throw ParseError(description: "policy '\(s)': '\(name)' takes no parameter") }
            self = name == "single" ? .single : .mapPerEntry
        default:
            throw ParseError(description: "unknown policy '\(s)' (expected per-vm-table:R, per-vcpu-lru:K, single or map-per-entry)")
        }
    }

    /// Parses a comma-separated list, e.g. `single,per-vcpu-lru:3`.
    public static func parseList(_ text: some StringProtocol) throws(ParseError) -> [PolicySpec] {
        var out: [PolicySpec] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let trimmed = item.trimmingSpaces
            guard !trimmed.isEmpty else { throw ParseError(description: "empty policy name in '\(text)'") }
            out.append(try PolicySpec(parsing: trimmed))
        }
        return out
    }

    /// The canonical spelling (parameters always written).
    public var description: String {
        switch self {
        case .perVMTable(let r): "per-vm-table:\(r)"
        case .perVCPULRU(let k): "per-vcpu-lru:\(k)"
        case .single: "single"
        case .mapPerEntry: "map-per-entry"
        }
    }

    /// An engine for this policy over a whole stream. The policy's concrete type is chosen here,
    /// once, and wrapped in a non-generic engine type (`ConcreteEngine`), so the per-event loop
    /// behind `any PolicyEngine` is specialized for it.
    public func makeEngine(defaultPagesPerContext: Int = 4) -> any PolicyEngine {
        switch self {
        case .perVMTable(let r):
            PerVMTableEngine(engine: Engine(spec: self, prototype: PerVMTable(contextsPerVCPU: r), defaultPagesPerContext: defaultPagesPerContext))
        case .perVCPULRU(let k):
            PerVCPULRUEngine(engine: Engine(spec: self, prototype: PerVCPULRU(k: k), defaultPagesPerContext: defaultPagesPerContext))
        case .single:
            PerVCPULRUEngine(engine: Engine(spec: self, prototype: PerVCPULRU(k: 0), defaultPagesPerContext: defaultPagesPerContext))
        case .mapPerEntry:
            MapPerEntryEngine(engine: Engine(spec: self, prototype: MapPerEntry(), defaultPagesPerContext: defaultPagesPerContext))
        }
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs.
    public var trimmingSpaces: Substring {
        let s = Substring(self)
        guard let a = s.firstIndex(where: { $0 != " " && $0 != "\t" }),
              let b = s.lastIndex(where: { $0 != " " && $0 != "\t" }) else { return "" }
        return s[a...b]
    }
}
