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

/// How long vCPU queues waited for one of a VM's locks: one of the costs the review asked about
/// (a per-VM table needs a VM-wide lock; a per-vCPU LRU needs none). Reported per policy: a
/// per-vm-table policy's engine lock, or, for a per-vCPU policy, the vCPU lane locks it lives
/// under (summed over vCPUs; max is the largest single wait).
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

    /// One acquisition that waited `ns`.
    mutating func record(_ ns: UInt64) {
        totalNs &+= ns
        acquisitions &+= 1
        if ns > maxNs { maxNs = ns }
    }

    /// Adds another lock's statistics (totals add, max is the larger).
    mutating func merge(_ o: LockWait) {
        totalNs &+= o.totalNs
        acquisitions &+= o.acquisitions
        if o.maxNs > maxNs { maxNs = o.maxNs }
    }
}

/// What one look at a VM gives: every policy's counters and gauges, each policy's read under
/// the locks that guard it, so the identities of DESIGN §4 hold for every policy inside it while
/// the engines run (docs/DESIGN-NOTES.md, "Locks", says what a snapshot guarantees).
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
    /// The primary policy's lock wait (what `lock_wait` of a VM has always reported).
    public var lockWait: LockWait
    /// Every policy's lock wait, like `policies` (empty when not known).
    public var lockWaits: [LockWait]
    /// Why the workload failed (`FILE:LINE: message`), in state `failed`.
    public var error: String?
    /// Events applied since start (or reset).
    public var events: UInt64 { stats.first?.counters.events ?? 0 }

    public init(id: String, state: VMRunState, l1VCPUs: Int, policies: [PolicySpec], stats: [StatsSnapshot], vcpus: [Counters],
                lockWait: LockWait, lockWaits: [LockWait] = []) {
        self.id = id
        self.state = state
        self.l1VCPUs = l1VCPUs
        self.policies = policies
        self.stats = stats
        self.vcpus = vcpus
        self.lockWait = lockWait
        self.lockWaits = lockWaits
    }
}

/// The VM-wide mapped units (contexts or vCPUs with P pages mapped) of one per-vCPU policy and
/// their peak, kept without a lock: vCPU lanes add their changes, event by event.
final class MappedUnits: Sendable {
    let units = Atomic<Int>(0)
    let peak = Atomic<Int>(0)

    func add(_ d: Int) {
        raisePeak(to: units.wrappingAdd(d, ordering: .relaxed).newValue)
    }

    func raisePeak(to v: Int) {
        var p = peak.load(ordering: .relaxed)
        while v > p {
            let (exchanged, original) = peak.compareExchange(expected: p, desired: v, ordering: .relaxed)
            if exchanged { break }
            p = original
        }
    }
}

/// One VM served by the daemon: its policies' state and one serial DispatchQueue per L1 vCPU
/// that applies that vCPU's batches.
///
/// Locks, as the kernel would take them (docs/DESIGN-NOTES.md, "Locks"):
/// - a `per-vm-table` policy is one engine for the whole VM behind its own lock (the table's
///   spinlock): vCPU queues contend for it;
/// - the per-vCPU policies (`per-vcpu-lru:K`, `single`, `map-per-entry`) are one `VCPUShard` per
///   vCPU, all of one vCPU in that vCPU's *lane*, behind the lane's lock. Only that vCPU's queue
///   applies events to it; `publish` and `resetCounters` are the only other takers. The VM-wide
///   facts come from outside: migrations from the feeder (`SwitchTracker`, in stream order),
///   mapped pages and their peak from `MappedUnits` (atomics).
///
/// Engines are fed batches of events of one vCPU that all name this VM as index 0 of `registry`.
public final class VMRuntime: Sendable {
    public let id: String
    public let policies: [PolicySpec]
    let registry: VMRegistry
    /// The declaration the VM was made with (a looping trace must not change it).
    var info: VMInfo { registry.infos[0] }
    let defaultPagesPerContext: Int
    /// `P`.
    let pagesPerContext: UInt64

    /// A per-vm-table policy: its engine behind its own lock.
    struct TableSlot: Sendable {
        var engine: any PolicyEngine
        var lockWait = LockWait()
    }

    /// One vCPU's shards of every per-vCPU policy and its lock's wait. The shards sit in one typed
    /// array per shard type, not as `[any VCPUShard]`: no box per shard, and the loop over a batch
    /// is specialized for the type. `VMRuntime.shardRefs` says where policy `j` is. A shard type
    /// without an array of its own (a new per-vCPU policy) runs from `others`, boxed: it works
    /// as it is, and gets an array and a `ShardRef` case here when its memory matters.
    ///
    /// A new lane is a copy of `VMRuntime.laneTemplate` and shares its arrays' storage until its
    /// first batch writes them (copy on write): a vCPU that has not run costs only its lock.
    struct LaneState: Sendable {
        var lru: [LRUShard] = []
        var mapPerEntry: [MapPerEntryShard] = []
        var others: [any VCPUShard] = []
        var lockWait = LockWait()

        // By `ShardRef`, each a switch over the concrete arrays (no existential box per call:
        // `publish` reads every shard of every lane).
        func snapshot(_ r: ShardRef) -> StatsSnapshot {
            switch r {
            case .lru(let i): lru[i].snapshot
            case .mapPerEntry(let i): mapPerEntry[i].snapshot
            case .other(let i): others[i].snapshot
            }
        }

        func isSeen(_ r: ShardRef) -> Bool {
            switch r {
            case .lru(let i): lru[i].isSeen
            case .mapPerEntry(let i): mapPerEntry[i].isSeen
            case .other(let i): others[i].isSeen
            }
        }

        func mappedUnits(_ r: ShardRef) -> Int {
            switch r {
            case .lru(let i): lru[i].mappedUnits
            case .mapPerEntry(let i): mapPerEntry[i].mappedUnits
            case .other(let i): others[i].mappedUnits
            }
        }

        func checkInvariants() {
            for s in lru { s.checkInvariants() }
            for s in mapPerEntry { s.checkInvariants() }
            for s in others { s.checkInvariants() }
        }

        mutating func resetCounters() {
            for i in lru.indices { lru[i].resetCounters() }
            for i in mapPerEntry.indices { mapPerEntry[i].resetCounters() }
            for i in others.indices { others[i].resetCounters() }
        }
    }

    /// Where a per-vCPU policy's shard sits in each lane.
    enum ShardRef: Sendable {
        case lru(Int)
        case mapPerEntry(Int)
        case other(Int)
    }

    /// Where policy `i` (configuration order) lives.
    enum Placement: Sendable {
        case table(Int)
        case shards(Int)
    }

    let placements: [Placement]
    let tables: [Locked<TableSlot>]
    let shardPolicies: [PolicySpec]
    /// Per per-vCPU policy (`shardPolicies` order): where its shard is in a lane.
    let shardRefs: [ShardRef]
    /// The shards of a vCPU that has not run, copied into each new lane.
    let laneTemplate: LaneState
    /// Per per-vCPU policy (`shardPolicies` order).
    let mapped: [MappedUnits]
    /// `mapped`, by position in the lanes' arrays.
    let lruMapped: [MappedUnits]
    let mapPerEntryMapped: [MappedUnits]
    let otherMapped: [MappedUnits]
    /// Lanes by vCPU index, each created when its vCPU first has events (none without per-vCPU
    /// policies); nil: a vCPU that has not run, which counts zero everywhere.
    let lanes = Locked<[Locked<LaneState>?]>([])
    /// Serial queues by vCPU index, each created when its vCPU first has events: a declared vCPU
    /// that never runs costs neither a queue nor a lane.
    let queues = Locked<[DispatchQueue?]>([])
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
        self.defaultPagesPerContext = defaultPagesPerContext
        self.pagesPerContext = UInt64(info.pagesPerContext ?? defaultPagesPerContext)
        var r = VMRegistry()
        r.update(r.intern(info.id), info)
        self.registry = r
        var placements: [Placement] = []
        var tables: [Locked<TableSlot>] = []
        var shardPolicies: [PolicySpec] = []
        for p in policies {
            if p.isPerVCPU {
                placements.append(.shards(shardPolicies.count))
                shardPolicies.append(p)
            } else {
                placements.append(.table(tables.count))
                var e = p.makeEngine(defaultPagesPerContext: defaultPagesPerContext)
                e.sync(with: r)
                tables.append(Locked(TableSlot(engine: e)))
            }
        }
        self.placements = placements
        self.tables = tables
        self.shardPolicies = shardPolicies
        let mapped = shardPolicies.map { _ in MappedUnits() }
        self.mapped = mapped
        var template = LaneState()
        var refs: [ShardRef] = []
        var lruMapped: [MappedUnits] = []
        var mapPerEntryMapped: [MappedUnits] = []
        var otherMapped: [MappedUnits] = []
        for (j, p) in shardPolicies.enumerated() {
            switch p.makeShard(info: info, defaultPagesPerContext: defaultPagesPerContext) {
            case let s as LRUShard:
                refs.append(.lru(template.lru.count))
                template.lru.append(s)
                lruMapped.append(mapped[j])
            case let s as MapPerEntryShard:
                refs.append(.mapPerEntry(template.mapPerEntry.count))
                template.mapPerEntry.append(s)
                mapPerEntryMapped.append(mapped[j])
            case let s?:
                refs.append(.other(template.others.count))
                template.others.append(s)
                otherMapped.append(mapped[j])
            case nil:
                preconditionFailure("\(p) is per-vCPU but made no shard")
            }
        }
        self.shardRefs = refs
        self.laneTemplate = template
        self.lruMapped = lruMapped
        self.mapPerEntryMapped = mapPerEntryMapped
        self.otherMapped = otherMapped
        self.published = Locked(VMSnapshot(
            id: info.id, state: .running, l1VCPUs: info.l1VCPUs ?? 0, policies: policies,
            stats: [], vcpus: [], lockWait: LockWait()))
        publish()
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

    /// vCPU `v`'s queue, created on first use.
    func queue(_ v: Int) -> DispatchQueue {
        queues.withLock { qs in
            if qs.count <= v { qs.append(contentsOf: repeatElement(nil, count: v + 1 - qs.count)) }
            if let q = qs[v] { return q }
            // Targeting the (non-overcommit) global queue keeps the thread count near the core
            // count: a serial queue of its own would be overcommit on Linux, and tens of thousands
            // of them, blocking on VM locks, would each get a thread.
            let q = DispatchQueue(label: "nestcache.\(id).vcpu\(v)", target: .global())
            qs[v] = q
            return q
        }
    }

    /// vCPU `v`'s lane, creating lanes up to it; nil when the VM has no per-vCPU policy.
    func lane(_ v: Int) -> Locked<LaneState>? {
        guard !shardPolicies.isEmpty else { return nil }
        return lanes.withLock { ls in
            if ls.count <= v { ls.append(contentsOf: repeatElement(nil, count: v + 1 - ls.count)) }
            if let l = ls[v] { return l }
            let l = Locked(laneTemplate)
            ls[v] = l
            return l
        }
    }

    /// Applies events of one vCPU of this VM (index 0): to each per-vm-table engine under its
    /// lock, then to the vCPU's shards under its lane's lock, recording each wait. `migrations`:
    /// from the feeder's `SwitchTracker`, one per event; `lane`: that vCPU's, from `lane(_:)`
    /// (nil when the VM has no per-vCPU policy). Called on a vCPU queue.
    func apply(_ events: UnsafeBufferPointer<Event>, migrations: UnsafeBufferPointer<Bool>, lane: Locked<LaneState>?) {
        nestcache_lower_thread_priority_once(10)
        for t in tables {
            let asked = DispatchTime.now().uptimeNanoseconds
            t.withLock { s in
                s.lockWait.record(DispatchTime.now().uptimeNanoseconds &- asked)
                s.engine.apply(events, migrations: migrations, registry: registry)
            }
        }
        guard let lane else { return }
        let asked = DispatchTime.now().uptimeNanoseconds
        lane.withLock { l in
            l.lockWait.record(DispatchTime.now().uptimeNanoseconds &- asked)
            for i in l.lru.indices {
                let m = lruMapped[i]
                l.lru[i].apply(events, migrations: migrations) { m.add($0) }
            }
            for i in l.mapPerEntry.indices {
                let m = mapPerEntryMapped[i]
                l.mapPerEntry[i].apply(events, migrations: migrations) { m.add($0) }
            }
            for i in l.others.indices {
                let m = otherMapped[i]
                l.others[i].apply(events, migrations: migrations) { m.add($0) }
            }
        }
    }

    /// Records a batch's events of this VM, in stream order, in the switch window: one lock
    /// per batch, on the feeder (strict ordering).
    func recordSwitches(_ events: [Event]) {
        switchWindow?.withLock { w in events.withUnsafeBufferPointer { for e in $0 { w.record(e) } } }
    }

    /// Records the switches the feeder's split found in a batch of this VM, in stream order:
    /// one lock per batch, O(switches) (concurrent ordering).
    func recordSwitches(of batch: VCPUBatch) {
        switchWindow?.withLock { w in
            w.record(switches: batch.split.switches, events: batch.split.count, vcpus: batch.split.vcpus)
        }
    }

    /// The latest snapshot published at a batch boundary: what the control socket reads.
    ///
    /// Readers never take the engines' locks: vCPU queues re-take a per-VM table's lock back to
    /// back, and a futex is not fair, so a reader waiting on it under full load could wait for
    /// hundreds of milliseconds. Instead the feeder publishes a snapshot when a batch is done (the
    /// locks are then uncontended: it waits for its slices before the next batch), at most one
    /// batch (16,384 events for a simulated VM at speed max, 4096 for a trace) behind the engines,
    /// and exact once the VM is paused, done or failed. (One exception: the first read of a VM's
    /// per-vCPU counters, below, publishes itself.)
    let published: Locked<VMSnapshot>

    /// Whether `publish` copies the primary's per-vCPU counters: only once something has read
    /// them (`show vcpus`, metrics), as most VMs are never asked (64 vCPUs' counters are 7.7 KB
    /// per VM, 7.7 MB for 1,000 VMs). Set under `publishing`, after the publish that first
    /// includes them, so a reader that sees it set finds them published.
    let isVCPUsWanted = Atomic<Bool>(false)
    /// Serializes `publish` (the feeder's, a reset's, a first per-vCPU read's): a later publish
    /// reads later engine state, so the published snapshot never goes back.
    let publishing = Locked(())

    /// The published snapshot; with `vcpus`, the primary's per-vCPU counters too. The first such
    /// read of a VM publishes itself (taking the engines' locks once); later publishes keep them.
    public func snapshot(vcpus: Bool = false) -> VMSnapshot {
        if vcpus, !isVCPUsWanted.load(ordering: .acquiring) {
            publishing.withLock { _ in
                guard !isVCPUsWanted.load(ordering: .relaxed) else { return }
                publishLocked(withVCPUs: true)
                isVCPUsWanted.store(true, ordering: .releasing)
            }
        }
        var s = published.withLock { $0 }
        s.state = state
        s.error = failure.withLock { $0 }
        if !vcpus { s.vcpus = [] }
        return s
    }

    /// Takes a snapshot and publishes it: each table under its lock, then each lane under its
    /// lock. Called by the feeder between batches, and after a reset.
    ///
    /// A per-vCPU policy's counters and `mapped_pages` are the sum of its lanes, each read
    /// consistently, so DESIGN §4's identities hold (they hold per vCPU); in concurrent ordering
    /// the lanes are read one after another, not at one instant. `peak_mapped_pages` is the
    /// highest VM-wide count after any event in the order the lanes applied them (exact in
    /// strict ordering), raised to `mapped_pages` if the sum read is higher.
    func publish() {
        publishing.withLock { _ in publishLocked(withVCPUs: isVCPUsWanted.load(ordering: .relaxed)) }
    }

    /// `publish`, under `publishing`.
    private func publishLocked(withVCPUs: Bool) {
        var stats = [StatsSnapshot](repeating: StatsSnapshot(), count: policies.count)
        var waits = [LockWait](repeating: LockWait(), count: policies.count)
        var vcpus: [Counters] = []
        var l1 = info.l1VCPUs ?? 0
        for (i, p) in placements.enumerated() {
            guard case .table(let t) = p else { continue }
            tables[t].withLock { s in
                stats[i] = s.engine.snapshot(vm: 0)
                waits[i] = s.lockWait
                if i == 0 {
                    if withVCPUs { vcpus = s.engine.vcpuCounters(vm: 0) }
                    l1 = s.engine.l1VCPUs(vm: 0)
                }
            }
        }
        if !shardPolicies.isEmpty {
            var sums = [StatsSnapshot](repeating: StatsSnapshot(), count: shardPolicies.count)
            var laneWait = LockWait()
            var seen = 0
            var primary: [Counters] = []
            if withVCPUs { primary.reserveCapacity(lanes.withLock { $0.count }) }
            var lastSeen = -1
            for (v, lane) in lanes.withLock({ $0 }).enumerated() {
                guard let lane else {
                    if withVCPUs { primary.append(Counters()) }
                    continue
                }
                lane.withLock { l in
                    for (j, r) in shardRefs.enumerated() {
                        let s = l.snapshot(r)
                        sums[j].counters += s.counters
                        sums[j].gauges += s.gauges
                        if j == 0, withVCPUs { primary.append(s.counters) }
                    }
                    if let r = shardRefs.first, l.isSeen(r) {
                        seen += 1
                        lastSeen = v
                    }
                    laneWait.merge(l.lockWait)
                }
            }
            for (i, p) in placements.enumerated() {
                guard case .shards(let j) = p else { continue }
                var s = sums[j]
                s.memoryBytes = info.memoryMiB.map { UInt64($0) << 20 }
                s.countsLookups = policies[i].keepsMappings
                s.gauges.free = 0
                mapped[j].raisePeak(to: Int(s.gauges.mappedPages / max(pagesPerContext, 1)))
                s.gauges.peakMappedPages = max(UInt64(mapped[j].peak.load(ordering: .relaxed)) &* pagesPerContext, s.gauges.mappedPages)
                stats[i] = s
                waits[i] = laneWait
                if i == 0 {
                    vcpus = Array(primary.prefix(lastSeen + 1))
                    l1 = info.l1VCPUs ?? seen
                }
            }
        }
        let s = VMSnapshot(id: id, state: state, l1VCPUs: l1, policies: policies, stats: stats, vcpus: vcpus,
                           lockWait: waits.first ?? LockWait(), lockWaits: waits)
        published.withLock { $0 = s }
    }

    /// Zeroes every policy's counters and the lock statistics (state and mappings are kept; each
    /// peak restarts at what is mapped now).
    public func resetCounters() {
        for t in tables {
            t.withLock { s in
                s.engine.resetCounters(vm: 0)
                s.lockWait = LockWait()
            }
        }
        for case let lane? in lanes.withLock({ $0 }) {
            lane.withLock { l in
                l.resetCounters()
                l.lockWait = LockWait()
            }
        }
        for m in mapped { m.peak.store(m.units.load(ordering: .relaxed), ordering: .relaxed) }
        publish()
    }

    /// Checks every engine's and shard's invariants, and that the VM-wide mapped counts equal
    /// the lanes' sums (tests; call it when no batch is in flight).
    func checkInvariants() {
        for t in tables { t.withLock { $0.engine.checkInvariants() } }
        var units = [Int](repeating: 0, count: shardPolicies.count)
        for case let lane? in lanes.withLock({ $0 }) {
            lane.withLock { l in
                l.checkInvariants()
                for (j, r) in shardRefs.enumerated() { units[j] += l.mappedUnits(r) }
            }
        }
        for j in units.indices {
            precondition(units[j] == mapped[j].units.load(ordering: .relaxed), "\(id) \(shardPolicies[j]): lanes map \(units[j]) units, counted \(mapped[j].units.load(ordering: .relaxed))")
            precondition(units[j] <= mapped[j].peak.load(ordering: .relaxed), "\(id) \(shardPolicies[j]): peak below the mapped units")
        }
    }

    /// True when a batch has been waiting on some queue since `lastCompleted` was read.
    func isStalled(since lastCompleted: UInt64) -> Bool {
        completed.load(ordering: .relaxed) == lastCompleted && submitted.load(ordering: .relaxed) > lastCompleted
    }
}
