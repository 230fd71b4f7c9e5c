/// The daemon's way to run a per-vCPU policy without a VM-wide lock (docs/DESIGN-NOTES.md,
/// "Locks"): each L1 vCPU's state under such a policy is a shard of its own, touched only by that
/// vCPU's queue, as the kernel's per-vCPU `prev_roots` need no VM lock.
///
/// Under `per-vcpu-lru:K`, `single` and `map-per-entry` everything a vCPU's events change is that
/// vCPU's own: its current GPA, its list, its contexts (a context is created by one vCPU and
/// never leaves its list), its fallback, its counters. Two VM-wide facts remain, and the shard
/// takes them from outside: whether a switch is a migration (`SwitchTracker`, run where the
/// VM's events are in stream order) and the VM's mapped pages, whose changes it reports
/// per event so the caller can keep the VM-wide count and its peak.
public protocol VCPUShard: Sendable {
    /// Applies events of this shard's vCPU, in order. `migrations[i]`: whether event `i`, if it
    /// is a switch, is a migration (`SwitchTracker`). `mappedChanged(d)` is called after each
    /// event whose net change of mapped units (contexts, or map-per-entry vCPUs, with pages
    /// mapped; a unit is P pages) is `d != 0`.
    mutating func apply(_ events: UnsafeBufferPointer<Event>, migrations: UnsafeBufferPointer<Bool>, mappedChanged: (Int) -> Void)
    /// The vCPU's counters and the shard's gauges; `peak_mapped_pages` is the shard's own (the
    /// VM's peak is the caller's). O(1).
    var snapshot: StatsSnapshot { get }
    /// Mapped units (P pages each).
    var mappedUnits: Int { get }
    /// Whether the vCPU has had an event.
    var isSeen: Bool { get }
    /// Zeroes the counters (state and mappings kept; map_pages restarts at the mapped pages).
    mutating func resetCounters()
    func checkInvariants()
}

extension PolicySpec {
    /// True for the policies that keep nothing VM-wide (`per-vcpu-lru:K`, `single`,
    /// `map-per-entry`): they can run as one `VCPUShard` per vCPU.
    public var isPerVCPU: Bool { kind.isPerVCPU }

    /// One vCPU's shard of this policy for a VM declared as `info`; nil for `per-vm-table`.
    /// (The VM's `M` is the caller's; per-vCPU policies do not use it.)
    public func makeShard(info: VMInfo, defaultPagesPerContext: Int) -> (any VCPUShard)? {
        kind.makeShard?(self, info, defaultPagesPerContext)
    }
}

/// The workload state of DESIGN §2 that spans vCPUs: each vCPU's current control block and the
/// vCPU that last switched to each GPA. Fed a VM's events in stream order, it says which are
/// migrations, exactly as `VMEngine` counts them (the same rules; tested against it).
public struct SwitchTracker: Sendable {
    var current: [GPA] = []
    var lastSwitcher = GPAMap()

    public init() {}

    /// Advances over one event of the VM: true when it is a switch (a load or enter of another
    /// GPA than the vCPU's current, DESIGN §2) to a GPA another vCPU switched to last.
    /// - Complexity: O(1) expected: one `GPAMap` update per switch, none otherwise.
    @inline(__always)
    public mutating func isMigration(vcpu v: Int, op: TraceOp, gpa: GPA) -> Bool {
        if v >= current.count { current.append(contentsOf: repeatElement(.none, count: v + 1 - current.count)) }
        if op == .clear {
            if current[v] == gpa { current[v] = .none }
            return false
        }
        guard current[v] != gpa else { return false }
        current[v] = gpa
        let previous = lastSwitcher.updateValue(Int32(truncatingIfNeeded: v), for: gpa)
        return previous != nil && previous != Int32(truncatingIfNeeded: v)
    }

    /// `isMigration` over each of `events`, one VM's in stream order (their `vm` is ignored):
    /// `migrations[i]` says whether event `i` is a migration, and the index of each switch is
    /// appended to `switches`. The daemon's feeder runs it once per batch; one loop here, over
    /// the vCPUs' current GPAs in place, costs a fraction of a call per event.
    /// - Complexity: O(events.count + highest vCPU index); one `GPAMap` update per switch.
    public mutating func advance(over events: UnsafeBufferPointer<Event>, migrations: UnsafeMutableBufferPointer<Bool>,
                                 switches: inout [Int32]) {
        precondition(migrations.count >= events.count, "\(migrations.count) flags for \(events.count) events")
        var top = -1
        for e in events where Int(e.vcpu) > top { top = Int(e.vcpu) }
        if top >= current.count { current.append(contentsOf: repeatElement(.none, count: top + 1 - current.count)) }
        // Moved out while the loop runs, so the buffer access below is not one to `self`.
        var current = self.current
        self.current = []
        defer { self.current = current }
        current.withUnsafeMutableBufferPointer { current in
            for i in events.indices {
                let e = events[i]
                let v = Int(e.vcpu)
                var isMigration = false
                if e.op == .clear {
                    if current[v] == e.gpa { current[v] = .none }
                } else if current[v] != e.gpa {
                    current[v] = e.gpa
                    let previous = self.lastSwitcher.updateValue(Int32(truncatingIfNeeded: v), for: e.gpa)
                    isMigration = previous != nil && previous != Int32(truncatingIfNeeded: v)
                    switches.append(Int32(truncatingIfNeeded: i))
                }
                migrations[i] = isMigration
            }
        }
    }
}
