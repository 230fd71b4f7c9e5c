import NestCacheCore

/// A synthetic workload: a simulated VM (DESIGN §6) or the patch's selftest pattern (§4).
///
/// What `--simulate SPEC`, `--preset NAME`, `--set key=value` and the daemon's `[vm.simulate]`
/// tables produce; `makeSource()` turns it into a stream.
public enum WorkloadSpec: Sendable, Equatable, CustomStringConvertible {
    case simulate(SimulationSpec)
    case selftest(SelftestSpec)

    /// Applies one `key=value` setting (`--set`); the keys are those of the case's spec.
    public mutating func set(_ key: String, _ value: String) throws(TraceError) {
        switch self {
        case .simulate(var s):
            try s.set(key, value)
            self = .simulate(s)
        case .selftest(var s):
            try s.set(key, value)
            self = .selftest(s)
        }
    }

    /// Applies `key=value,key=value` in order.
    public mutating func apply(settings: some StringProtocol) throws(TraceError) {
        for (key, value) in try SimulationSpec.splitSettings(settings) { try set(key, value) }
    }

    /// Applies one `--set` argument, `key=value`.
    public mutating func apply(assignment: some StringProtocol) throws(TraceError) {
        let pairs = try SimulationSpec.splitSettings(assignment)
        guard pairs.count == 1 else {
            throw SimulationSpec.usage("bad setting '\(assignment)' (expected one key=value)")
        }
        try set(pairs[0].0, pairs[0].1)
    }

    /// A fresh stream from the start.
    public func makeSource() -> any EventSource {
        switch self {
        case .simulate(let s): Simulator(s)
        case .selftest(let s): SelftestSource(s)
        }
    }

    /// The VM the stream names.
    public var vm: String {
        switch self {
        case .simulate(let s): s.vm
        case .selftest(let s): s.vm
        }
    }

    /// `simulate:` or `selftest-migrate:` / `selftest-sched:` and the canonical settings.
    public var description: String {
        switch self {
        case .simulate(let s): "simulate:\(s)"
        case .selftest(let s): "selftest-\(s.mode.rawValue):\(s)"
        }
    }
}

/// A named workload: `nestcache compare --preset NAME`, `nestcache simulate --preset NAME`.
public struct WorkloadPreset: Sendable {
    public let name: String
    /// One line for `--help` and error messages.
    public let summary: String
    public let spec: WorkloadSpec
}

extension WorkloadSpec {
    /// Every preset, in listing order.
    ///
    /// - `selftest-migrate`, `selftest-sched`: DESIGN §4's selftest, n=12, s=4 (keys n, s).
    /// - `microvm-dense`: 8 L1 vCPUs, 16 one-vCPU microVMs homed on each (serverless / Kata in a
    ///   cloud VM), short runs (4 entries), 2 kHz switching, 1% migrations.
    /// - `cloud-mixed`: 16 L1 vCPUs, three large L2 guests with 8 vCPUs each (24 L2 vCPUs),
    ///   long runs (32 entries), 250 Hz switching, 5% load-balancing migrations.
    /// - `thrash`: 4 L1 vCPUs cycling 9 L2 vCPUs each (36 against `per-vm-table:8`'s 32
    ///   contexts), VMCLEAR on every switch so the free list recycles in LRU order: every switch
    ///   misses. `--set vmclear_on_switch=false` shows the uncached variant.
    public static let presets: [WorkloadPreset] = [
        WorkloadPreset(
            name: "selftest-migrate",
            summary: "the patch selftest: 1 L1 vCPU, n L2 vCPUs (12), s rounds (4) of load, enter, clear each",
            spec: .selftest(SelftestSpec(mode: .migrate))),
        WorkloadPreset(
            name: "selftest-sched",
            summary: "the patch selftest: 1 L1 vCPU, n L2 vCPUs (12), s rounds (4) of load, enter each, no clear",
            spec: .selftest(SelftestSpec(mode: .sched))),
        WorkloadPreset(
            name: "microvm-dense",
            summary: "8 L1 vCPUs, 16 pinned 1-vCPU microVMs each (serverless/Kata in a cloud VM), 1% migrations",
            spec: .simulate(simulation(
                vm: "microvm", l1: 8, l2: 128, scheduler: .pinned, migrationRate: 0.01,
                entriesPerSwitch: 4, switchRateHz: 2000, memoryMiB: 32768, events: 4_000_000))),
        WorkloadPreset(
            name: "cloud-mixed",
            summary: "16 L1 vCPUs, 3 large L2 guests (24 vCPUs), long runs, 5% load-balancing migrations",
            spec: .simulate(simulation(
                vm: "cloud", l1: 16, l2: 24, scheduler: .pinned, migrationRate: 0.05,
                entriesPerSwitch: 32, switchRateHz: 250, memoryMiB: 65536, events: 4_000_000))),
        WorkloadPreset(
            name: "thrash",
            summary: "4 L1 vCPUs cycling 9 L2 vCPUs each with VMCLEAR on switch: just above per-vm-table:8",
            spec: .simulate(simulation(
                vm: "thrash", l1: 4, l2: 36, scheduler: .pinned, migrationRate: 0,
                entriesPerSwitch: 1, switchRateHz: 1000, memoryMiB: 8192, events: 1_000_000,
                vmclearOnSwitch: true))),
    ]

    /// The preset `name`; unknown names are a `.usage` error listing the known ones.
    public static func preset(named name: String) throws(TraceError) -> WorkloadSpec {
        guard let p = presets.first(where: { $0.name == name }) else {
            throw SimulationSpec.usage(
                "unknown preset '\(name)' (known: \(presets.map(\.name).joined(separator: ", ")))")
        }
        return p.spec
    }

    /// One line per preset, `name  summary`, for `--help`.
    public static var presetListing: String {
        let width = presets.map(\.name.count).max() ?? 0
        return presets.map { p in
            p.name + String(repeating: " ", count: width - p.name.count + 2) + p.summary
        }.joined(separator: "\n")
    }

    /// The command line's workload: the preset's spec (no preset: the `SimulationSpec`
    /// defaults), then each of `settings` (`key=value[,key=value...]`, e.g. `--simulate SPEC`
    /// and every `--set`) applied in order.
    public static func make(preset: String?, settings: [String] = []) throws(TraceError) -> WorkloadSpec {
        var spec = WorkloadSpec.simulate(SimulationSpec())
        if let preset { spec = try Self.preset(named: preset) }
        for s in settings { try spec.apply(settings: s) }
        return spec
    }

    private static func simulation(
        vm: String, l1: Int, l2: Int, scheduler: SimulationSpec.Scheduler, migrationRate: Double,
        entriesPerSwitch: Double, switchRateHz: Double, memoryMiB: Int, events: UInt64,
        vmclearOnSwitch: Bool = false
    ) -> SimulationSpec {
        var s = SimulationSpec()
        s.vm = vm
        s.l1VCPUs = l1
        s.l2VCPUs = l2
        s.scheduler = scheduler
        s.migrationRate = migrationRate
        s.entriesPerSwitch = entriesPerSwitch
        s.switchRateHz = switchRateHz
        s.memoryMiB = memoryMiB
        s.length = .events(events)
        s.vmclearOnSwitch = vmclearOnSwitch
        return s
    }
}
