import CThreadPriority
import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import NestCacheCore
import NestCacheWorkload
import Synchronization

/// A VM's state as the control socket reports it (DESIGN §8).
/// `waiting`: a `[[live]]` source's VM whose capture brought no new line for `waiting_after_s`
/// (docs/DESIGN-NOTES.md).
public enum VMRunState: String, Sendable, CaseIterable {
    case running, paused, done, failed, waiting
}

/// How long vCPU queues waited for a VM's lock: one of the costs the review asked about (a
/// per-VM table needs a VM-wide lock; a per-vCPU LRU in the kernel would not).
public struct LockWait: Sendable, Equatable {
    public var totalNs: UInt64 = 0
    public var maxNs: UInt64 = 0
    /// Batches applied (each takes the lock once).
    public var acquisitions: UInt64 = 0

    public init(totalNs: UInt64 = 0, maxNs: UInt64 = 0, acquisitions: UInt64 = 0) {
        self.totalNs = totalNs
        self.maxNs = maxNs
        self.acquisitions = acquisitions
    }
}

/// What one consistent look at a VM gives: every policy's counters and gauges taken under the
/// VM's lock, so the identities of DESIGN §4 hold inside it while the engine runs.
public struct VMSnapshot: Sendable {
    public var id: String
    public var state: VMRunState
    /// `M`: declared, or the vCPUs seen so far.
    public var l1VCPUs: Int
    /// Primary first, then the shadows, in configuration order.
    public var policies: [PolicySpec]
    public var stats: [StatsSnapshot]
    /// The primary policy's per-vCPU counters (only when asked for).
    public var vcpus: [Counters]
    public var lockWait: LockWait
    /// Why the workload failed (`FILE:LINE: message`), in state `failed`.
    public var error: String?
    /// Events applied since start (or reset).
    public var events: UInt64 { stats.first?.counters.events ?? 0 }

    public init(id: String, state: VMRunState, l1VCPUs: Int, policies: [PolicySpec], stats: [StatsSnapshot], vcpus: [Counters],
                lockWait: LockWait) {
        self.id = id
        self.state = state
        self.l1VCPUs = l1VCPUs
        self.policies = policies
        self.stats = stats
        self.vcpus = vcpus
        self.lockWait = lockWait
    }
}

/// One VM served by the daemon: its engines (primary, then shadows) behind one lock, and one
/// serial DispatchQueue per L1 vCPU that applies that vCPU's batches.
///
/// Engines are fed batches of events that all name this VM as index 0 of `registry`.
public final class VMRuntime: Sendable {
    public let id: String
    public let policies: [PolicySpec]
    let registry: VMRegistry
    /// The declaration the VM was made with (a looping trace must not change it).
    var info: VMInfo { registry.infos[0] }

    struct Engines: Sendable {
        var engines: [any PolicyEngine]
        var lockWait = LockWait()
    }

    let engines: Locked<Engines>
    /// Serial queues by vCPU index, created as vCPUs appear.
    let queues = Locked<[DispatchQueue]>([])
    /// Batches handed to and finished by the queues: the watchdog's measure of progress.
    let submitted = Atomic<UInt64>(0)
    let completed = Atomic<UInt64>(0)
    let stateValue = Atomic<UInt8>(0)
    let failure = Locked<String?>(nil)
    /// The VM's recent switch sequence, for `show bounds VM`: written by the feeder once per
    /// batch (never by the vCPU queues), copied by a request (the copy shares its chunks until
    /// the feeder next writes one).
    /// nil with `bounds_window = 0`: nothing recorded, `show bounds` refused.
    let switchWindow: Locked<SwitchWindow>?

    /// `boundsWindow`: switches kept for `show bounds` (`[daemon] bounds_window`; 0: none).
    init(info: VMInfo, policies: [PolicySpec], defaultPagesPerContext: Int, boundsWindow: Int = 8192) {
        self.id = info.id
        self.switchWindow = boundsWindow > 0 ? Locked(SwitchWindow(capacity: boundsWindow)) : nil
        self.policies = policies
        var r = VMRegistry()
        r.update(r.intern(info.id), info)
        self.registry = r
        var engines = policies.map { $0.makeEngine(defaultPagesPerContext: defaultPagesPerContext) }
        for i in engines.indices { engines[i].sync(with: r) }
        self.engines = Locked(Engines(engines: engines))
        self.published = Locked(VMSnapshot(
            id: info.id, state: .running, l1VCPUs: engines.first?.l1VCPUs(vm: 0) ?? 0, policies: policies,
            stats: engines.map { $0.snapshot(vm: 0) }, vcpus: [], lockWait: LockWait()))
        if let m = info.l1VCPUs { _ = queue(m - 1) }
    }

    public var state: VMRunState {
        get { VMRunState.allCases[Int(stateValue.load(ordering: .relaxed))] }
    }

    func setState(_ s: VMRunState) {
        stateValue.store(UInt8(VMRunState.allCases.firstIndex(of: s) ?? 0), ordering: .relaxed)
    }

    func setError(_ message: String) {
        failure.withLock { $0 = message }
    }

    /// vCPU `v`'s queue, creating queues up to it.
    func queue(_ v: Int) -> DispatchQueue {
        queues.withLock { qs in
            while qs.count <= v {
                // Targeting the (non-overcommit) global queue keeps the thread count near the
                // core count: a serial queue of its own would be overcommit on Linux, and tens of
                // thousands of them, blocking on VM locks, would each get a thread.
                qs.append(DispatchQueue(label: "nestcache.\(id).vcpu\(qs.count)", target: .global()))
            }
            return qs[v]
        }
    }

    /// Applies events of this VM (index 0) to every engine under the VM's lock, recording the wait.
    /// Called on a vCPU queue (or inline in tests).
    func apply(_ events: UnsafeBufferPointer<Event>) {
        nestcache_lower_thread_priority_once(10)
        let asked = DispatchTime.now().uptimeNanoseconds
        engines.withLock { e in
            let waited = DispatchTime.now().uptimeNanoseconds &- asked
            e.lockWait.totalNs &+= waited
            e.lockWait.acquisitions &+= 1
            if waited > e.lockWait.maxNs { e.lockWait.maxNs = waited }
            for i in e.engines.indices { e.engines[i].apply(events, registry: registry) }
        }
    }

    /// Records a batch's events of this VM, in stream order, in the switch window: one lock
    /// per batch, on the feeder.
    func recordSwitches(_ events: [Event]) {
        switchWindow?.withLock { $0.record(events) }
    }

    /// The latest snapshot published at a batch boundary: what the control socket reads.
    ///
    /// Readers never take the engines' lock: vCPU queues re-take that lock back to back, and a
    /// futex is not fair, so a reader waiting on it under full load could wait for hundreds of
    /// milliseconds. Instead the feeder publishes a snapshot when a batch is done (the lock is
    /// then uncontended: it waits for its slices before the next batch), at most one batch
    /// (4096 events) behind the engines, and exact once the VM is paused, done or failed.
    let published: Locked<VMSnapshot>

    public func snapshot(vcpus: Bool = false) -> VMSnapshot {
        var s = published.withLock { $0 }
        s.state = state
        s.error = failure.withLock { $0 }
        if !vcpus { s.vcpus = [] }
        return s
    }

    /// Takes a snapshot under the engines' lock and publishes it. Called by the feeder between
    /// batches, and after a reset.
    func publish() {
        let s = engines.withLock { e in
            VMSnapshot(
                id: id, state: state, l1VCPUs: e.engines.first?.l1VCPUs(vm: 0) ?? 0, policies: policies,
                stats: e.engines.map { $0.snapshot(vm: 0) }, vcpus: e.engines.first?.vcpuCounters(vm: 0) ?? [],
                lockWait: e.lockWait)
        }
        published.withLock { $0 = s }
    }

    /// Zeroes every policy's counters and the lock statistics (state and mappings are kept).
    public func resetCounters() {
        engines.withLock { e in
            for i in e.engines.indices { e.engines[i].resetCounters(vm: 0) }
            e.lockWait = LockWait()
        }
        publish()
    }

    /// True when a batch has been waiting on some queue since `lastCompleted` was read.
    func isStalled(since lastCompleted: UInt64) -> Bool {
        completed.load(ordering: .relaxed) == lastCompleted && submitted.load(ordering: .relaxed) > lastCompleted
    }
}
