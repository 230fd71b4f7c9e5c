/// A policy with its parameter, as spelled on the command line, in configs and on the socket
/// (DESIGN §3): a row of `PolicyKind.registry` and an integer. The only parser of policy names.
public struct PolicySpec: Hashable, Sendable, CustomStringConvertible {
    public let kind: PolicyKind
    /// R, K: within `kind.parameter`'s range; 0 when the kind takes none.
    public let parameter: Int

    /// Unchecked: callers in this module pass values in range (the constructors in `Policies/`).
    init(kind: PolicyKind, parameter: Int) {
        self.kind = kind
        self.parameter = parameter
    }

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

    /// Parses `NAME` or `NAME:N` for a row of the registry: `per-vm-table[:R]` (R >= 1, default
    /// 8), `per-vcpu-lru[:K]` (K >= 0, default 3), `single`, `map-per-entry`.
    public init(parsing text: some StringProtocol) throws(ParseError) {
        let s = String(text)
        let parts = s.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        let arg = parts.count > 1 ? String(parts[1]) : nil
        guard let kind = PolicyKind.named(parts[0]) else {
            throw ParseError(description: "unknown policy '\(s)' (expected \(PolicyKind.usageList))")
        }
        guard let p = kind.parameter else {
            guard arg == nil else { throw ParseError(description: "policy '\(s)': '\(kind.name)' takes no parameter") }
            self.init(kind: kind, parameter: 0)
            return
        }
        guard let arg else {
            self.init(kind: kind, parameter: p.defaultValue)
            return
        }
        guard let n = Int(arg), p.range.contains(n) else {
            throw ParseError(description: "policy '\(s)': \(p.letter) (\(p.meaning)) must be an integer from \(p.range.lowerBound) to \(p.range.upperBound), got '\(arg)'")
        }
        self.init(kind: kind, parameter: n)
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
    public var description: String { kind.parameter == nil ? kind.name : "\(kind.name):\(parameter)" }

    /// `lru:3`, `table:8`, `single`: a column header that fits a 72-column table.
    public var shortName: String { kind.parameter == nil ? kind.shortName : "\(kind.shortName):\(parameter)" }

    /// False for `map-per-entry` (`PolicyKind.keepsMappings`).
    public var keepsMappings: Bool { kind.keepsMappings }

    /// Contexts the policy can ever keep mapped, per L1 vCPU (fallbacks included).
    public var maxMappedContextsPerVCPU: Int { kind.maxMappedContextsPerVCPU(parameter) }

    /// An engine for this policy over a whole stream. The policy's concrete type is chosen by
    /// its row, once, and wrapped in a non-generic engine type (`ConcreteEngine`), so the
    /// per-event loop behind `any PolicyEngine` is specialized for it.
    public func makeEngine(defaultPagesPerContext: Int = 4) -> any PolicyEngine {
        kind.makeEngine(self, defaultPagesPerContext)
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
