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
    public var isPerVCPU: Bool {
        if case .perVMTable = self { return false }
        return true
    }

    /// One vCPU's shard of this policy for a VM declared as `info`; nil for `per-vm-table`.
    /// (The VM's `M` is the caller's; per-vCPU policies do not use it.)
    public func makeShard(info: VMInfo, defaultPagesPerContext: Int) -> (any VCPUShard)? {
        let p = UInt64(info.pagesPerContext ?? defaultPagesPerContext)
        return switch self {
        case .perVMTable: nil
        case .perVCPULRU(let k): LRUShard(k: k, pagesPerContext: p)
        case .single: LRUShard(k: 0, pagesPerContext: p)
        case .mapPerEntry: MapPerEntryShard(pagesPerContext: p)
        }
    }
}

/// The workload state of DESIGN §2 that spans vCPUs: each vCPU's current control block and the
/// vCPU that last switched to each GPA. Fed a VM's events in stream order, it says which are
/// migrations, exactly as `VMEngine` counts them (the same rules; tested against it).
public struct SwitchTracker: Sendable {
    var current: [GPA] = []
    var lastSwitcher = GPAMap()

    public init() {}

    /// Advances over one event of the VM; true when it is a switch to a GPA another vCPU
    /// switched to last.
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
}
