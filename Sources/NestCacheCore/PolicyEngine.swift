/// One policy over a whole stream of many VMs: what the CLI and the daemon drive.
///
/// An existential over batches, so the per-event loop inside is specialized for the policy.
public protocol PolicyEngine: Sendable {
    var spec: PolicySpec { get }
    /// VMs known so far, in registry order.
    var vmCount: Int { get }

    /// Applies a batch of events in order. `registry` must know every VM the events name.
    mutating func apply(_ events: UnsafeBufferPointer<Event>, registry: VMRegistry)
    /// Applies a batch of events in order, taking whether each switch is a migration from
    /// `migrations` (one per event) instead of the engine's own map: the daemon decides it on
    /// its feeder, in stream order, once for every policy (`SwitchTracker`).
    mutating func apply(_ events: UnsafeBufferPointer<Event>, migrations: UnsafeBufferPointer<Bool>, registry: VMRegistry)
    /// Applies one event (tests, strict replay of single events).
    mutating func apply(_ event: Event, registry: VMRegistry)
    /// Creates the state of VMs that the registry knows and the engine does not yet.
    mutating func sync(with registry: VMRegistry)

    /// One VM's counters and gauges. O(vCPUs).
    func snapshot(vm: Int32) -> StatsSnapshot
    /// One VM's per-vCPU counters.
    func vcpuCounters(vm: Int32) -> [Counters]
    /// One VM's `M` (DESIGN §3): declared, else the distinct vCPUs seen so far.
    func l1VCPUs(vm: Int32) -> Int
    /// Zeroes one VM's counters (state and mappings are kept).
    mutating func resetCounters(vm: Int32)
    /// Checks the invariants of every VM (tests).
    func checkInvariants()
}

extension PolicyEngine {
    public mutating func apply(_ events: [Event], registry: VMRegistry) {
        events.withUnsafeBufferPointer { apply($0, registry: registry) }
    }

    /// The sum over VMs (gauges summed as DESIGN §4 says).
    public var totals: StatsSnapshot {
        var t = StatsSnapshot()
        t.memoryBytes = 0
        for i in 0..<vmCount { t += snapshot(vm: Int32(i)) }
        if vmCount == 0 { t.memoryBytes = nil }
        t.countsLookups = spec.keepsMappings
        return t
    }
}

/// `PolicyEngine` for one concrete policy: one `VMEngine` per VM, indexed like the registry.
public struct Engine<Policy: ContextPolicy>: PolicyEngine {
    public let spec: PolicySpec
    let prototype: Policy
    let defaultPagesPerContext: Int
    public internal(set) var vms: [VMEngine<Policy>] = []

    public init(spec: PolicySpec, prototype: Policy, defaultPagesPerContext: Int) {
        self.spec = spec
        self.prototype = prototype
        self.defaultPagesPerContext = defaultPagesPerContext
    }

    public var vmCount: Int { vms.count }

    public mutating func sync(with registry: VMRegistry) {
        while vms.count < registry.count {
            let info = registry.infos[vms.count]
            vms.append(VMEngine(info: info, defaultPagesPerContext: defaultPagesPerContext, policy: prototype))
        }
    }

    /// - Complexity: O(events) expected; the VM array is made unique once for the batch rather
    ///   than checked at every event.
    public mutating func apply(_ events: UnsafeBufferPointer<Event>, registry: VMRegistry) {
        if vms.count < registry.count { sync(with: registry) }
        vms.withUnsafeMutableBufferPointer { vms in
            for e in events {
                vms[Int(e.vm)].apply(vcpu: Int(e.vcpu), op: e.op, gpa: e.gpa)
            }
        }
    }

    public mutating func apply(_ events: UnsafeBufferPointer<Event>, migrations: UnsafeBufferPointer<Bool>, registry: VMRegistry) {
        precondition(migrations.count == events.count)
        if vms.count < registry.count { sync(with: registry) }
        vms.withUnsafeMutableBufferPointer { vms in
            for i in events.indices {
                let e = events[i]
                vms[Int(e.vm)].apply(vcpu: Int(e.vcpu), op: e.op, gpa: e.gpa, migration: migrations[i])
            }
        }
    }

    public mutating func apply(_ event: Event, registry: VMRegistry) {
        if vms.count < registry.count { sync(with: registry) }
        vms[Int(event.vm)].apply(vcpu: Int(event.vcpu), op: event.op, gpa: event.gpa)
    }

    public func snapshot(vm: Int32) -> StatsSnapshot { vms[Int(vm)].snapshot }
    public func vcpuCounters(vm: Int32) -> [Counters] { vms[Int(vm)].vcpuCounters }
    public func l1VCPUs(vm: Int32) -> Int { vms[Int(vm)].state.l1VCPUs }
    public mutating func resetCounters(vm: Int32) { vms[Int(vm)].resetCounters() }
    public func checkInvariants() { for vm in vms { vm.checkInvariants() } }
}

// MARK: - Concrete engines

/// What `PolicySpec.makeEngine` hands out: one non-generic type per policy type, declared in
/// the policy's file.
///
/// `Engine<Policy>`'s own conformance to `PolicyEngine` is generic, so a call through
/// `any PolicyEngine` would run the unspecialized engine: every policy call through a witness
/// table, every `VMEngine<Policy>`'s size and layout read from metadata (perf showed it: the
/// `keepsMappings` witness alone took 2% of a replay). A conformance of a concrete type is
/// compiled with the policy known, so these forwarders get the specialized, inlined loop.
protocol ConcreteEngine: PolicyEngine {
    associatedtype Policy: ContextPolicy
    var engine: Engine<Policy> { get set }
}

extension ConcreteEngine {
    public var spec: PolicySpec { engine.spec }
    public var vmCount: Int { engine.vmCount }
    public mutating func apply(_ events: UnsafeBufferPointer<Event>, registry: VMRegistry) { engine.apply(events, registry: registry) }
    public mutating func apply(_ event: Event, registry: VMRegistry) { engine.apply(event, registry: registry) }
    public mutating func apply(_ events: UnsafeBufferPointer<Event>, migrations: UnsafeBufferPointer<Bool>, registry: VMRegistry) {
        engine.apply(events, migrations: migrations, registry: registry)
    }
    public mutating func sync(with registry: VMRegistry) { engine.sync(with: registry) }
    public func snapshot(vm: Int32) -> StatsSnapshot { engine.snapshot(vm: vm) }
    public func vcpuCounters(vm: Int32) -> [Counters] { engine.vcpuCounters(vm: vm) }
    public func l1VCPUs(vm: Int32) -> Int { engine.l1VCPUs(vm: vm) }
    public mutating func resetCounters(vm: Int32) { engine.resetCounters(vm: vm) }
    public func checkInvariants() { engine.checkInvariants() }
}
