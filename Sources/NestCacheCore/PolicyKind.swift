/// One row of the policy registry: everything outside a policy's own file needs to know of it.
///
/// Parsing, `description`, engine and shard construction, help texts, report columns and the
/// tests' policy lists all read `PolicyKind.registry`, so adding a policy is:
/// 1. one file in `Policies/`: the `ContextPolicy`, its non-generic engine wrapper (see
///    `ConcreteEngine`), its `PolicyKind` and a `PolicySpec` constructor;
/// 2. one row in `registry` below (`PolicyRegistryTests` fails while a policy file declares a
///    kind that has no row);
/// 3. its rules in `NestCacheReference.ReferenceModel`, the independent model every engine is
///    checked against (`PolicyRegistryTests` fails while a row has none; `EngineTests` compares
///    every row's engine with it on random traces);
/// 4. if its state is per-vCPU, a `VCPUShard` (`makeShard`) so the daemon runs it without a
///    VM lock (without one the daemon gives it a VM-wide lock, like `per-vm-table`):
///    `EngineShard(info:defaultPagesPerContext:policy:)` serves any policy as it is (boxed, about
///    600 bytes per vCPU); a compact shard like `LRUShard`, with an array in the daemon's lanes,
///    when its memory matters.
public struct PolicyKind: Sendable, Hashable, CustomStringConvertible {
    /// A policy's one integer parameter (`per-vm-table:R`).
    public struct Parameter: Sendable {
        /// `R`, `K`: as DESIGN §3 writes it.
        public let letter: String
        /// What it counts, for error messages and help texts.
        public let meaning: String
        public let range: ClosedRange<Int>
        public let defaultValue: Int
    }

    /// The spelling in configs, on the command line and on the socket.
    public let name: String
    /// Nil for a policy without parameter (`single`); its specs carry 0.
    public let parameter: Parameter?
    /// A report column header's stem (`lru` for `lru:3`), at most 6 characters.
    public let shortName: String
    /// False for `map-per-entry`: no contexts, so switches are not lookups (`overhead_ns`).
    public let keepsMappings: Bool
    /// What the policy can keep mapped at most, in contexts per L1 vCPU, for a parameter.
    let maxMappedContextsPerVCPU: @Sendable (Int) -> Int
    let makeEngine: @Sendable (PolicySpec, _ defaultPagesPerContext: Int) -> any PolicyEngine
    /// One vCPU's state as a shard; nil when the policy keeps state shared by the VM's vCPUs.
    let makeShard: (@Sendable (PolicySpec, VMInfo, _ defaultPagesPerContext: Int) -> any VCPUShard)?

    init<Policy: ContextPolicy>(
        name: String, parameter: Parameter?, shortName: String, policy: Policy.Type,
        maxMappedContextsPerVCPU: @escaping @Sendable (Int) -> Int,
        makeEngine: @escaping @Sendable (PolicySpec, Int) -> any PolicyEngine,
        makeShard: (@Sendable (PolicySpec, VMInfo, Int) -> any VCPUShard)?
    ) {
        self.name = name
        self.parameter = parameter
        self.shortName = shortName
        self.keepsMappings = Policy.keepsMappings
        self.maxMappedContextsPerVCPU = maxMappedContextsPerVCPU
        self.makeEngine = makeEngine
        self.makeShard = makeShard
    }

    /// Every policy, in the order help texts list them.
    public static let registry: [PolicyKind] = [.perVMTable, .perVCPULRU, .single, .mapPerEntry]

    /// The row named `name`, if any.
    public static func named(_ name: some StringProtocol) -> PolicyKind? {
        registry.first { $0.name == name }
    }

    /// `per-vm-table:R`, `single`: how the kind is written with its parameter's letter.
    public var usage: String { parameter.map { "\(name):\($0.letter)" } ?? name }

    /// `per-vm-table:R, per-vcpu-lru:K, single or map-per-entry`.
    public static var usageList: String {
        let all = registry.map(\.usage)
        return all.dropLast().joined(separator: ", ") + (all.count > 1 ? " or " : "") + (all.last ?? "")
    }

    /// Whether the daemon runs it as one lock-free `VCPUShard` per vCPU.
    public var isPerVCPU: Bool { makeShard != nil }

    public var description: String { name }
    public static func == (a: PolicyKind, b: PolicyKind) -> Bool { a.name == b.name }
    public func hash(into h: inout Hasher) { h.combine(name) }
}
