import NestCacheCore

/// The patch's selftest `vmx_l2_switch_test` as a workload (DESIGN §4, end): one L1 vCPU, `n`
/// L2 vCPUs, `s` rounds; an exact pattern, no randomness.
///
///     migrate round:  load g0, enter g0, clear g0, load g1, enter g1, clear g1, ...
///     sched round:    load g0, enter g0, load g1, enter g1, ...
///
/// Under `per-vm-table:8` DESIGN §4 expects: migrate, n <= 8: hits n(s-1), recycles 0; n > 8:
/// hits 0, recycles ns-8. sched, n <= 8: hits n(s-1); n > 8: hits 8(s-1), uncached (n-8)s.
public struct SelftestSpec: Sendable, Equatable, CustomStringConvertible {
    public enum Mode: String, Sendable, CaseIterable {
        /// Each L2 vCPU is VMCLEARed after its entry, as when it migrates away.
        case migrate
        /// No VMCLEAR: L1 switches among its L2 vCPUs on one CPU.
        case sched
    }

    public var mode: Mode
    /// L2 vCPUs.
    public var n = 12
    /// Rounds.
    public var s = 4
    public var vm = "selftest"
    /// nil: not declared (no `exposure`).
    public var memoryMiB: Int? = nil
    public var pagesPerContext: Int? = nil

    public static let keys = ["n", "s", "vm", "memory_mib", "pages_per_context"]
    public static let maxN = 4096
    public static let maxRounds = 1_000_000

    public init(mode: Mode, n: Int = 12, s: Int = 4) {
        self.mode = mode
        self.n = n
        self.s = s
    }

    /// Applies one setting; errors as `SimulationSpec.set`.
    public mutating func set(_ key: String, _ value: String) throws(TraceError) {
        switch key {
        case "n": n = try SimulationSpec.integer(key, value, 1, Self.maxN)
        case "s": s = try SimulationSpec.integer(key, value, 1, Self.maxRounds)
        case "vm":
            guard VMInfo.isValidID(value.utf8) else {
                throw SimulationSpec.usage("vm must match [A-Za-z0-9_.:-]{1,64}, got '\(value)'")
            }
            vm = value
        case "memory_mib": memoryMiB = try SimulationSpec.integer(key, value, 1, SimulationSpec.maxMemoryMiB)
        case "pages_per_context":
            pagesPerContext = value == "default"
                ? nil : try SimulationSpec.integer(key, value, 1, SimulationSpec.maxPagesPerContext)
        default:
            throw SimulationSpec.usage(
                "unknown selftest key '\(key)' (known: \(Self.keys.joined(separator: ", ")))")
        }
    }

    /// `n=..,s=..,vm=..` and the optional keys that are set.
    public var description: String {
        var items = ["n=\(n)", "s=\(s)", "vm=\(vm)"]
        if let mem = memoryMiB { items.append("memory_mib=\(mem)") }
        if let p = pagesPerContext { items.append("pages_per_context=\(p)") }
        return items.joined(separator: ",")
    }

    /// Events in the whole stream: 3ns (migrate) or 2ns (sched).
    public var eventCount: Int { n * s * (mode == .migrate ? 3 : 2) }

    public var vmInfo: VMInfo {
        VMInfo(id: vm, l1VCPUs: 1, memoryMiB: memoryMiB, pagesPerContext: pagesPerContext)
    }
}

/// The `SelftestSpec` pattern as an `EventSource`: L2 vCPU `i` at GPA `0x1_0000_0000 + i *
/// 0x1000`, all on L1 vCPU 0, one event every 1000 ns.
public struct SelftestSource: EventSource, Sendable {
    public let spec: SelftestSpec
    public private(set) var registry = VMRegistry()
    public var figures: [(name: String, value: UInt64)] { [] }

    private let ops: [TraceOp]
    private var index = 0
    private let total: Int

    public init(_ spec: SelftestSpec) {
        self.spec = spec
        ops = spec.mode == .migrate ? [.load, .enter, .clear] : [.load, .enter]
        total = spec.eventCount
        let i = registry.intern(spec.vm)
        registry.update(i, spec.vmInfo)
    }

    public mutating func next(into batch: inout [Event], limit: Int) throws(TraceError) -> Bool {
        batch.removeAll(keepingCapacity: true)
        guard limit > 0 else { return index < total }
        let end = min(total, index + limit)
        batch.reserveCapacity(end - index)
        let perL2 = ops.count
        while index < end {
            let l2 = (index / perL2) % spec.n
            let gpa = GPA(Simulator.gpaBase + UInt64(l2) << 12)
            batch.append(Event(timeNs: UInt64(index + 1) * 1000, vm: 0, vcpu: 0, op: ops[index % perL2], gpa: gpa))
            index += 1
        }
        return !batch.isEmpty
    }
}
