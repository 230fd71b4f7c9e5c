import NestCacheCore

/// The parameters of a simulated VM (DESIGN §6), as `key=value` settings.
///
/// Spelled the same on the command line (`--simulate SPEC`, `--set key=value`), in the daemon's
/// `[vm.simulate]` tables and in `description`, which writes every setting in canonical form so
/// `SimulationSpec(parsing: spec.description) == spec`. `set(_:_:)` is the only parser of keys.
///
/// The model is described on `Simulator`.
public struct SimulationSpec: Sendable, Equatable, CustomStringConvertible {
    /// How an L1 vCPU chooses the next L2 vCPU when its current one stops running.
    public enum Scheduler: String, Sendable, CaseIterable {
        /// One global cyclic order over all L2 vCPUs; each L1 vCPU takes the next one that is not
        /// running elsewhere (a shared FIFO run queue: L2 vCPUs wander over all L1 vCPUs).
        case roundRobin = "round-robin"
        /// A uniformly random L2 vCPU among all of them.
        case random
        /// L2 vCPU `i` is chosen with weight `(i + 1)^-zipf_s` among all of them (hot and cold
        /// L2 vCPUs, e.g. busy and idle microVMs).
        case zipf
        /// Each L2 vCPU `i` is homed on L1 vCPU `i mod l1_vcpus`; an L1 vCPU cycles through its
        /// residents. With `migration_rate`, a switch instead takes an L2 vCPU homed elsewhere.
        case pinned
    }

    /// VMX (VMPTRLD/VMCLEAR/VMLAUNCH/VMRESUME) or SVM (VMRUN only).
    public enum ISA: String, Sendable, CaseIterable {
        case vmx
        /// No VMCLEAR and no VMPTRLD: a switch is an `enter` of the new VMCB; `vmclear_on_*`
        /// have no effect.
        case svm
    }

    /// Where the L2 vCPUs' control blocks are.
    public enum GPALayout: String, Sendable, CaseIterable {
        /// `0x1_0000_0000 + i * 0x1000`: easy to read in an emitted trace.
        case linear
        /// Distinct pages spread over a region 64 times the number of L2 vCPUs (at least 16 MiB)
        /// above 4 GiB, as a guest's page allocator would scatter them; the layout depends on
        /// the seed.
        case scattered
    }

    /// How long the stream is.
    public enum Length: Sendable, Equatable {
        /// Exactly this many events (the last switch may be cut short).
        case events(UInt64)
        /// Until simulated time reaches this many seconds.
        case duration(seconds: Double)
    }

    public var vm = "sim0"
    public var l1VCPUs = 4
    public var l2VCPUs = 16
    public var scheduler = Scheduler.pinned
    /// Zipf exponent (`scheduler=zipf` only); 0 is uniform.
    public var zipfS = 1.0
    /// `scheduler=pinned` only: the chance that a switch takes an L2 vCPU homed on another L1
    /// vCPU (it runs there for one burst, then goes home). The global schedulers migrate as their
    /// choice falls, and ignore it.
    public var migrationRate = 0.01
    /// VMX: a `clear` on the old L1 vCPU before an L2 vCPU is loaded on a new one, as L1
    /// hypervisors do (KVM's `loaded_vmcs_clear` by IPI).
    public var vmclearOnMigrate = true
    /// VMX: the L1 VMCLEARs the outgoing L2 vCPU's control block on every switch.
    public var vmclearOnSwitch = false
    /// Mean number of `enter` events per switch (geometric, at least 1).
    public var entriesPerSwitch = 8.0
    /// Mean switches per second on each L1 vCPU, for timestamps.
    public var switchRateHz = 1000.0
    public var length = Length.events(1_000_000)
    public var memoryMiB = 8192
    /// `P` for this VM; nil: the run's default.
    public var pagesPerContext: Int? = nil
    public var seed: UInt64 = 1
    public var isa = ISA.vmx
    public var gpaLayout = GPALayout.linear

    public init() {}

    /// The defaults with `key=value,key=value` applied (spaces around items are ignored).
    public init(parsing settings: some StringProtocol) throws(TraceError) {
        self.init()
        try apply(settings: settings)
    }

    /// Every key, in canonical order.
    public static let keys = [
        "vm", "l1_vcpus", "l2_vcpus", "scheduler", "zipf_s", "migration_rate", "vmclear_on_migrate",
        "vmclear_on_switch", "entries_per_switch", "switch_rate_hz", "events", "duration_s",
        "memory_mib", "pages_per_context", "seed", "isa", "gpa_layout",
    ]

    /// Bounds that keep a typo from asking for gigabytes or centuries.
    public static let maxL2VCPUs = 1 << 20
    public static let maxEvents: UInt64 = 1 << 48
    public static let maxDurationS = 31_536_000.0
    public static let maxMemoryMiB = 1 << 24
    public static let maxPagesPerContext = 64

    /// Applies one setting. Errors are `.usage` with a one-line message naming the key, what it
    /// accepts, and what it got. Setting `events` drops `duration_s` and the reverse.
    public mutating func set(_ key: String, _ value: String) throws(TraceError) {
        switch key {
        case "vm":
            guard VMInfo.isValidID(value.utf8) else {
                throw Self.usage("vm must match [A-Za-z0-9_.:-]{1,64}, got '\(value)'")
            }
            vm = value
        case "l1_vcpus": l1VCPUs = try Self.integer(key, value, 1, VCPULimit.count)
        case "l2_vcpus": l2VCPUs = try Self.integer(key, value, 1, Self.maxL2VCPUs)
        case "scheduler": scheduler = try Self.choice(key, value, Scheduler.self)
        case "zipf_s": zipfS = try Self.number(key, value, 0, 10)
        case "migration_rate": migrationRate = try Self.number(key, value, 0, 1)
        case "vmclear_on_migrate": vmclearOnMigrate = try Self.boolean(key, value)
        case "vmclear_on_switch": vmclearOnSwitch = try Self.boolean(key, value)
        case "entries_per_switch": entriesPerSwitch = try Self.number(key, value, 1, 1_000_000)
        case "switch_rate_hz":
            switchRateHz = try Self.number(key, value, 0.001, 10_000_000)
        case "events":
            length = .events(UInt64(try Self.integer(key, value, 0, Int(Self.maxEvents))))
        case "duration_s":
            let d = try Self.number(key, value, 0, Self.maxDurationS)
            guard d > 0 else { throw Self.usage("duration_s must be a number above 0 and at most \(Self.maxDurationS), got '\(value)'") }
            length = .duration(seconds: d)
        case "memory_mib": memoryMiB = try Self.integer(key, value, 1, Self.maxMemoryMiB)
        case "pages_per_context":
            pagesPerContext = value == "default" ? nil : try Self.integer(key, value, 1, Self.maxPagesPerContext)
        case "seed":
            guard let s = Self.parseSeed(value) else {
                throw Self.usage("seed must be an unsigned 64-bit integer (decimal or 0x hex), got '\(value)'")
            }
            seed = s
        case "isa": isa = try Self.choice(key, value, ISA.self)
        case "gpa_layout": gpaLayout = try Self.choice(key, value, GPALayout.self)
        default:
            throw Self.usage("unknown simulation key '\(key)' (known: \(Self.keys.joined(separator: ", ")))")
        }
    }

    /// Applies `key=value,key=value` in order.
    public mutating func apply(settings: some StringProtocol) throws(TraceError) {
        for (key, value) in try Self.splitSettings(settings) { try set(key, value) }
    }

    /// Every setting in canonical order, `key=value` joined by commas (`pages_per_context` only
    /// when set; `events` or `duration_s`, whichever applies).
    public var description: String {
        var items = [
            "vm=\(vm)", "l1_vcpus=\(l1VCPUs)", "l2_vcpus=\(l2VCPUs)", "scheduler=\(scheduler.rawValue)",
            "zipf_s=\(zipfS)", "migration_rate=\(migrationRate)", "vmclear_on_migrate=\(vmclearOnMigrate)",
            "vmclear_on_switch=\(vmclearOnSwitch)", "entries_per_switch=\(entriesPerSwitch)",
            "switch_rate_hz=\(switchRateHz)",
        ]
        switch length {
        case .events(let n): items.append("events=\(n)")
        case .duration(let s): items.append("duration_s=\(s)")
        }
        items.append("memory_mib=\(memoryMiB)")
        if let p = pagesPerContext { items.append("pages_per_context=\(p)") }
        items += ["seed=\(seed)", "isa=\(isa.rawValue)", "gpa_layout=\(gpaLayout.rawValue)"]
        return items.joined(separator: ",")
    }

    /// What the registry declares for the simulated VM.
    public var vmInfo: VMInfo {
        VMInfo(id: vm, l1VCPUs: l1VCPUs, memoryMiB: memoryMiB, pagesPerContext: pagesPerContext)
    }

    // MARK: - Value parsers, shared with the selftest spec

    static func usage(_ message: String) -> TraceError { TraceError(.usage, file: "", message) }

    /// Splits `k=v,k=v`; an item without `=` or with an empty key is an error.
    static func splitSettings(_ text: some StringProtocol) throws(TraceError) -> [(String, String)] {
        var out: [(String, String)] = []
        if text.trimmingSpaces.isEmpty { return out }
        for raw in text.split(separator: ",", omittingEmptySubsequences: false) {
            let item = raw.trimmingSpaces
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw usage("bad setting '\(item)' in '\(text)' (expected key=value)")
            }
            out.append((String(item[..<eq]), String(item[item.index(after: eq)...])))
        }
        return out
    }

    static func integer(_ key: String, _ value: String, _ min: Int, _ max: Int) throws(TraceError) -> Int {
        guard let n = Int(value), n >= min, n <= max else {
            throw usage("\(key) must be an integer from \(min) to \(max), got '\(value)'")
        }
        return n
    }

    /// A finite decimal number in `min...max` (parsed by `Double(_:)`, i.e. correctly rounded
    /// `strtod`: the same bits everywhere).
    static func number(_ key: String, _ value: String, _ min: Double, _ max: Double) throws(TraceError) -> Double {
        guard let x = Double(value), x.isFinite, x >= min, x <= max else {
            throw usage("\(key) must be a number from \(format(min)) to \(format(max)), got '\(value)'")
        }
        return x
    }

    static func boolean(_ key: String, _ value: String) throws(TraceError) -> Bool {
        switch value {
        case "true", "1": return true
        case "false", "0": return false
        default: throw usage("\(key) must be true or false, got '\(value)'")
        }
    }

    static func choice<T: RawRepresentable & CaseIterable>(_ key: String, _ value: String, _: T.Type) throws(TraceError) -> T
    where T.RawValue == String {
        guard let c = T(rawValue: value) else {
            let names = T.allCases.map(\.rawValue).joined(separator: ", ")
            throw usage("\(key) must be one of \(names), got '\(value)'")
        }
        return c
    }

    static func parseSeed(_ value: String) -> UInt64? {
        if value.hasPrefix("0x") || value.hasPrefix("0X") {
            return UInt64(value.dropFirst(2), radix: 16)
        }
        return UInt64(value)
    }

    /// `1`, not `1.0`, for whole bounds in messages.
    static func format(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : "\(x)"
    }
}
