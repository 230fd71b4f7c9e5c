/// The shards `PolicySpec.makeShard` hands out: one vCPU's whole state under one per-vCPU policy,
/// in one value with its counters and contexts inline.
///
/// Why not a one-vCPU `VMEngine` (what a shard was first): the daemon holds one shard per vCPU and
/// per-vCPU policy, 192,000 of them for 1,000 VMs of 64 vCPUs with three shadows, and a
/// `VMEngine` costs five heap blocks even for one vCPU (its vCPU array, its context array, the
/// policy's three row arrays), about 600 bytes with malloc's headers and rounding, plus a box
/// for the existential (BENCHMARKS.md, "Memory of the lanes"). These hold the same state in
/// 128 (`per-vcpu-lru:K`) and 72 (`map-per-entry`) bytes, and at most one heap block
/// (`per-vcpu-lru:K`'s list behind its front, K > 0). They keep only the counters that are not
/// derived: `counters` computes the others from DESIGN §4's identities and what the policy can
/// never do (a per-vCPU list never steals; map-per-entry never hits).
///
/// They apply DESIGN §2 for one vCPU whose policy keeps nothing VM-wide, as `VMEngine.apply`
/// does for such a policy, and count the same: `VCPUShardTests` compares their sums with an
/// `Engine` over the whole VM on random streams, checking invariants after every event; the
/// daemon's strict-ordering tests compare them with `nestcache replay`. A change to
/// `VMEngine.apply`'s rules must be made here too.

/// A compact shard's batch: `one(op, gpa, migration)` per event, reporting each nonzero change of
/// mapped units. Inlined into each shard's `apply`, so the per-event call is too.
@inline(__always)
func forEachEvent(
    _ events: UnsafeBufferPointer<Event>, _ migrations: UnsafeBufferPointer<Bool>, _ mappedChanged: (Int) -> Void,
    _ one: (TraceOp, GPA, Bool) -> Int
) {
    precondition(migrations.count == events.count)
    for i in events.indices {
        let d = one(events[i].op, events[i].gpa, migrations[i])
        if d != 0 { mappedChanged(d) }
    }
}

/// DESIGN §2's workload state of one vCPU, as a compact shard keeps it: its current control block
/// and the counts that do not depend on the policy.
struct VCPUStream: Sendable, Equatable {
    /// The vCPU's current control block (VMX `current_vmptr`), or `GPA.none`.
    var current = GPA.none
    var loads: UInt64 = 0
    var entries: UInt64 = 0
    var clears: UInt64 = 0
    var migrations: UInt64 = 0

    /// Counts `op` of `gpa`; true when it is a switch (a load or entry of another GPA than the
    /// current one, which it becomes). A clear of the current GPA drops it (`handle_vmclear`).
    @inline(__always)
    mutating func count(_ op: TraceOp, _ gpa: GPA, migration: Bool) -> Bool {
        switch op {
        case .load: loads &+= 1
        case .enter: entries &+= 1
        case .clear:
            clears &+= 1
            if current == gpa { current = .none }
            return false
        }
        guard current != gpa else { return false }
        current = gpa
        if migration { migrations &+= 1 }
        return true
    }

    /// Zeroes the counts; the current control block stays.
    mutating func resetCounts() { (loads, entries, clears, migrations) = (0, 0, 0, 0) }

    /// These counts as `Counters` (`events` their sum), with the pages; the policy's own 0.
    func counters(mapPages: UInt64, unmapPages: UInt64) -> Counters {
        var c = Counters()
        (c.loads, c.entries, c.clears, c.events) = (loads, entries, clears, loads &+ entries &+ clears)
        (c.migrations, c.mapPages, c.unmapPages) = (migrations, mapPages, unmapPages)
        return c
    }
}

/// `per-vcpu-lru:K` (`single` is K = 0) for one vCPU.
///
/// A per-vCPU LRU's context never leaves its vCPU's list (it is created there and recycled there),
/// so a context *is* its slot: no context ids, the `contexts` gauge is the list's length, and the
/// active context is always the front. Each slot holds the GPA the context is filed under and the
/// GPA its pages map (or `GPA.none`). The front is inline; the K slots behind it are an array
/// allocated at the second distinct switch target (exactly K slots), never for `single`:
///
///     front | rest[0] rest[1] ... rest[count-2]      most recently switched first
///     hit on g at i:        [a b g c] -> [g a b c]
///     miss, list full:      [a b c d] -> [d' a b c]  d' = d refiled under g, still mapping d's GPA
///     miss, room left:      [a b]     -> [n a b]     n = new, unmapped
///     entry of g:           front maps g (map_pages += P; unmap_pages += P if it mapped another)
///
/// - Complexity: O(K) per switch (a scan and a shift of the list, as KVM's `prev_roots`), O(1)
///   otherwise; allocates only at the vCPU's second distinct switch target (K > 0).
public struct LRUShard: VCPUShard {
    struct Slot: Sendable, Equatable {
        /// The GPA the context is filed under.
        var filed: GPA
        /// The GPA whose pages the context maps, or `GPA.none`.
        var mapped: GPA
    }

    // The small fields first (one 16-byte word with its padding), then the words.
    /// Slots besides the front: K (at most `PolicySpec.maxK`).
    let k: UInt16
    /// Slots in use: 0 ... K+1.
    var count: UInt16 = 0
    /// Slots whose `mapped` is a GPA, and the most there have been (the shard's own peak).
    var mapped: UInt16 = 0
    var peakMapped: UInt16 = 0
    /// `P`.
    let pagesPerContext: UInt32
    var isSeenFlag = false
    var stream = VCPUStream()
    var front = Slot(filed: .none, mapped: .none)
    var rest: [Slot] = []
    // The policy's counters that are not derived.
    var hits: UInt64 = 0
    var allocs: UInt64 = 0
    var recycles: UInt64 = 0
    var migrationHits: UInt64 = 0
    var mapPages: UInt64 = 0
    var unmapPages: UInt64 = 0

    public init(k: Int, pagesPerContext: UInt64) {
        precondition(k >= 0 && k < Int(UInt16.max), "per-vcpu-lru: K = \(k) out of range")
        precondition(pagesPerContext <= UInt64(UInt32.max), "per-vcpu-lru: \(pagesPerContext) pages per context")
        self.k = UInt16(k)
        self.pagesPerContext = UInt32(pagesPerContext)
    }

    /// This vCPU's counters of DESIGN §4: events = loads + entries + clears, misses = allocs +
    /// recycles, switches = hits + misses, no steals, nothing uncached.
    var counters: Counters {
        var c = stream.counters(mapPages: mapPages, unmapPages: unmapPages)
        c.hits = hits
        c.misses = allocs &+ recycles
        c.switches = hits &+ c.misses
        c.allocs = allocs
        c.recycles = recycles
        c.migrationHits = migrationHits
        return c
    }

    public mutating func apply(_ events: UnsafeBufferPointer<Event>, migrations: UnsafeBufferPointer<Bool>, mappedChanged: (Int) -> Void) {
        forEachEvent(events, migrations, mappedChanged) { apply(op: $0, gpa: $1, migration: $2) }
    }

    /// One event (DESIGN §2, as `VMEngine.apply`); returns the change of mapped contexts.
    @inline(__always)
    mutating func apply(op: TraceOp, gpa: GPA, migration: Bool) -> Int {
        isSeenFlag = true
        // A clear drops the current block only: the list is a pure LRU of switch targets.
        if stream.count(op, gpa, migration: migration) { switchTo(gpa, migration: migration) }
        guard op == .enter, front.mapped != gpa else { return 0 }
        // Mapping at entry through the active context, the front: an entry is a switch or
        // follows one, and a switch always leaves a front here.
        precondition(count > 0, "per-vcpu-lru:\(k): entry without an active context")
        let p = UInt64(pagesPerContext)
        mapPages &+= p
        let wasMapped = front.mapped != .none
        front.mapped = gpa
        if wasMapped {
            unmapPages &+= p
            return 0
        }
        mapped &+= 1
        if mapped > peakMapped { peakMapped = mapped }
        return 1
    }

    /// The policy's part of a switch: find, allocate or recycle, then move to the front.
    @inline(__always)
    mutating func switchTo(_ gpa: GPA, migration: Bool) {
        let n = Int(count)
        var i = 0
        if n > 0, front.filed != gpa {
            i = 1
            rest.withUnsafeBufferPointer { r in
                while i < n, r[i &- 1].filed != gpa { i &+= 1 }
            }
        }
        if i < n {
            hits &+= 1
            if migration { migrationHits &+= 1 }
            if i > 0 { moveToFront(i, filed: gpa) }
        } else if n <= Int(k) {
            allocs &+= 1
            if n > 0 {
                if rest.capacity < Int(k) { rest.reserveCapacity(Int(k)) }
                rest.insert(front, at: 0)
            }
            front = Slot(filed: gpa, mapped: .none)
            count &+= 1
        } else {
            recycles &+= 1
            if n == 1 {
                front.filed = gpa  // K = 0: the one context is refiled in place
            } else {
                moveToFront(n &- 1, filed: gpa)
            }
        }
    }

    /// Moves slot `i` (1 ..< count) to the front, filed under `filed`; slots 0 ..< i move back one.
    @inline(__always)
    mutating func moveToFront(_ i: Int, filed: GPA) {
        let oldFront = front
        rest.withUnsafeMutableBufferPointer { r in
            var s = r[i &- 1]
            s.filed = filed
            var j = i &- 1
            while j > 0 {
                r[j] = r[j &- 1]
                j &-= 1
            }
            r[0] = oldFront
            front = s
        }
    }

    var mappedPages: UInt64 { UInt64(mapped) &* UInt64(pagesPerContext) }

    /// The list, most recent first: (filed under, maps).
    var slots: [Slot] { count == 0 ? [] : [front] + rest.prefix(Int(count) - 1) }

    public var snapshot: StatsSnapshot {
        var s = StatsSnapshot()
        s.counters = counters
        s.gauges.contexts = UInt64(count)
        s.gauges.mappedPages = mappedPages
        s.gauges.peakMappedPages = UInt64(peakMapped) &* UInt64(pagesPerContext)
        s.memoryBytes = nil  // the VM's, the caller's
        return s
    }

    public var mappedUnits: Int { Int(mapped) }
    public var isSeen: Bool { isSeenFlag }

    public mutating func resetCounters() {
        stream.resetCounts()
        (hits, allocs, recycles, migrationHits) = (0, 0, 0, 0)
        // What stays mapped counts as mapped since the reset: map_pages - unmap_pages == mapped_pages.
        mapPages = mappedPages
        unmapPages = 0
        peakMapped = mapped
    }

    /// The list's rules, the counts kept beside it, DESIGN §4's identities. O(K).
    public func checkInvariants() {
        let list = slots
        precondition(count <= k &+ 1, "per-vcpu-lru:\(k): \(count) contexts > K+1\n\(self)")
        precondition(rest.count == max(0, Int(count) - 1), "per-vcpu-lru:\(k): \(rest.count) slots behind the front, \(count) in use\n\(self)")
        precondition(Set(list.map(\.filed)).count == list.count, "per-vcpu-lru:\(k): a GPA filed twice\n\(self)")
        precondition(!list.contains { $0.filed == .none }, "per-vcpu-lru:\(k): a context filed under no GPA\n\(self)")
        precondition(list.filter { $0.mapped != .none }.count == Int(mapped), "per-vcpu-lru:\(k): \(mapped) mapped counted\n\(self)")
        precondition(mapped <= peakMapped, "per-vcpu-lru:\(k): \(mapped) mapped, above the peak \(peakMapped)\n\(self)")
        if !isSeenFlag { precondition(counters == Counters() && count == 0, "per-vcpu-lru:\(k): unseen vCPU has state\n\(self)") }
        if let broken = snapshot.brokenIdentity { preconditionFailure("per-vcpu-lru:\(k): \(broken): \(counters)\n\(self)") }
    }
}

extension LRUShard: CustomStringConvertible {
    public var description: String {
        "  current \(stream.current): [" + slots.map { "\($0.filed) maps \($0.mapped)" }.joined(separator: ", ") + "]"
    }
}

/// `map-per-entry` for one vCPU: no contexts; an entry maps P pages until the vCPU's next event
/// (the exit to L1 came before it), and every switch is an uncached miss.
///
/// - Complexity: O(1) per event; never allocates.
public struct MapPerEntryShard: VCPUShard {
    /// `P`.
    let pagesPerContext: UInt32
    var isSeenFlag = false
    /// The pages of the last entry are still mapped.
    var isEntryMapped = false
    /// The shard's own peak: whether pages were ever mapped (since a reset).
    var wasEntryMapped = false
    var stream = VCPUStream()
    // The counters that are not derived.
    var switches: UInt64 = 0
    var mapPages: UInt64 = 0
    var unmapPages: UInt64 = 0

    public init(pagesPerContext: UInt64) {
        precondition(pagesPerContext <= UInt64(UInt32.max), "map-per-entry: \(pagesPerContext) pages per context")
        self.pagesPerContext = UInt32(pagesPerContext)
    }

    /// This vCPU's counters of DESIGN §4: events = loads + entries + clears, every switch an
    /// uncached miss.
    var counters: Counters {
        var c = stream.counters(mapPages: mapPages, unmapPages: unmapPages)
        c.switches = switches
        c.misses = switches
        c.uncached = switches
        return c
    }

    public mutating func apply(_ events: UnsafeBufferPointer<Event>, migrations: UnsafeBufferPointer<Bool>, mappedChanged: (Int) -> Void) {
        forEachEvent(events, migrations, mappedChanged) { apply(op: $0, gpa: $1, migration: $2) }
    }

    /// One event (DESIGN §2, as `VMEngine.apply` with `MapPerEntry`); returns the net change of
    /// mapped vCPUs (an entry after an entry unmaps and maps: 0).
    @inline(__always)
    mutating func apply(op: TraceOp, gpa: GPA, migration: Bool) -> Int {
        isSeenFlag = true
        let p = UInt64(pagesPerContext)
        var d = 0
        if isEntryMapped {
            isEntryMapped = false
            unmapPages &+= p
            d = -1
        }
        if stream.count(op, gpa, migration: migration) { switches &+= 1 }
        if op == .enter {
            isEntryMapped = true
            wasEntryMapped = true
            mapPages &+= p
            d &+= 1
        }
        return d
    }

    var mappedPages: UInt64 { isEntryMapped ? UInt64(pagesPerContext) : 0 }

    public var snapshot: StatsSnapshot {
        var s = StatsSnapshot()
        s.counters = counters
        s.gauges.mappedPages = mappedPages
        s.gauges.peakMappedPages = wasEntryMapped ? UInt64(pagesPerContext) : 0
        s.memoryBytes = nil  // the VM's, the caller's
        s.countsLookups = false
        return s
    }

    public var mappedUnits: Int { isEntryMapped ? 1 : 0 }
    public var isSeen: Bool { isSeenFlag }

    public mutating func resetCounters() {
        stream.resetCounts()
        (switches, unmapPages) = (0, 0)
        mapPages = mappedPages
        wasEntryMapped = isEntryMapped
    }

    /// DESIGN §4's identities; the peak covers what is mapped. O(1).
    public func checkInvariants() {
        if !isSeenFlag { precondition(counters == Counters() && !isEntryMapped, "map-per-entry: unseen vCPU has state: \(counters)") }
        precondition(wasEntryMapped || !isEntryMapped, "map-per-entry: mapped above the peak")
        if let broken = snapshot.brokenIdentity { preconditionFailure("map-per-entry: \(broken): \(counters)") }
    }
}

/// Any per-vCPU policy as a shard: a `VMEngine` over one vCPU (index 0), with the engine's own
/// DESIGN §2. What a new per-vCPU policy's row hands out until it has a compact shard of its own
/// like `LRUShard`: correct at once, but about 600 bytes in five heap blocks per vCPU, and the
/// daemon runs it boxed (a lane's `others`).
public struct EngineShard<Policy: ContextPolicy>: VCPUShard {
    var engine: VMEngine<Policy>

    public init(info: VMInfo, defaultPagesPerContext: Int, policy: Policy) {
        // Declared as a VM of one vCPU: room for one record, not M (the VM's M is the caller's;
        // per-vCPU policies do not use it).
        var info = info
        info.l1VCPUs = 1
        engine = VMEngine(info: info, defaultPagesPerContext: defaultPagesPerContext, policy: policy)
    }

    public mutating func apply(_ events: UnsafeBufferPointer<Event>, migrations: UnsafeBufferPointer<Bool>, mappedChanged: (Int) -> Void) {
        precondition(migrations.count == events.count)
        for i in events.indices {
            let before = engine.state.mappedUnits
            engine.apply(vcpu: 0, op: events[i].op, gpa: events[i].gpa, migration: migrations[i])
            let d = engine.state.mappedUnits &- before
            if d != 0 { mappedChanged(d) }
        }
    }

    public var snapshot: StatsSnapshot { engine.snapshot }
    public var mappedUnits: Int { engine.state.mappedUnits }
    public var isSeen: Bool { engine.state.seenVCPUs > 0 }
    public mutating func resetCounters() { engine.resetCounters() }
    public func checkInvariants() { engine.checkInvariants() }
}
