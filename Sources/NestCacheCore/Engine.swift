/// One VM under one policy: the rules of DESIGN §2, written once for every policy.
public struct VMEngine<Policy: ContextPolicy>: Sendable {
    public internal(set) var state: VMState
    public internal(set) var policy: Policy

    public init(info: VMInfo, defaultPagesPerContext: Int, policy: Policy) {
        self.state = VMState(info: info, defaultPagesPerContext: defaultPagesPerContext)
        self.policy = policy
    }

    /// Applies one event of this VM. The caller has checked `vcpu < VCPULimit.count`.
    ///
    /// The vCPU's record is touched in at most two accesses of `state.vcpus` (before the policy
    /// and after it), each through one buffer pointer: one copy-on-write check per access instead
    /// of one per counter bumped (perf showed `swift_isUniquelyReferenced` at 4-5% of a replay),
    /// and no copy of the whole record (copying it out and back cost a 136-byte `memcpy` per
    /// event, 13% of a replay).
    /// - Complexity: O(1) expected for the table policies (O(K) for per-vCPU lists); allocates
    ///   only when a new vCPU index, a new GPA or a new context first appears.
    ///
    /// `migration`: whether this event, if a switch, is a migration, when the caller knows it from
    /// the whole VM's stream (a per-vCPU shard of the daemon, `VCPUShard`, sees one vCPU only);
    /// nil: the engine decides from its own `lastSwitcher` map.
    @inline(__always)
    public mutating func apply(vcpu v: VCPU, op: TraceOp, gpa: GPA, migration: Bool? = nil) {
        state.see(v)
        let p = state.pagesPerContext

        // Before the policy: the event's own counts and the workload state of DESIGN §2.
        var isSwitch = false
        var active: Int32 = -1
        var unmapPages: UInt64 = 0
        var wasEntryMapped = false
        state.vcpus.withUnsafeMutableBufferPointer { vcpus in
            vcpus[v].counters.events &+= 1
            if !Policy.keepsMappings, vcpus[v].isEntryMapped {
                // map-per-entry: the exit to L1 came before this event, and unmapped the entry's pages.
                vcpus[v].isEntryMapped = false
                vcpus[v].counters.unmapPages &+= p
                wasEntryMapped = true
            }
            switch op {
            case .load:
                vcpus[v].counters.loads &+= 1
            case .enter:
                vcpus[v].counters.entries &+= 1
            case .clear:
                vcpus[v].counters.clears &+= 1
                // handle_vmclear: only this vCPU's current is dropped; others are not touched.
                if vcpus[v].current == gpa { vcpus[v].current = .none }
            }
            if op != .clear, vcpus[v].current != gpa {
                isSwitch = true
                vcpus[v].counters.switches &+= 1
                vcpus[v].current = gpa
            }
            active = vcpus[v].active
        }
        if wasEntryMapped { state.mappedUnits &-= 1 }

        // The policy, the migration map, the mapping at entry.
        var outcome = SwitchOutcome.uncached
        var isMigration = false
        if isSwitch {
            if let migration {
                isMigration = migration
            } else {
                let previous = state.lastSwitcher.updateValue(Int32(truncatingIfNeeded: v), for: gpa)
                isMigration = previous != nil && previous != Int32(truncatingIfNeeded: v)
            }
            outcome = policy.switchTo(gpa, on: v, active: &active, in: &state)
        } else if op == .clear {
            policy.clear(gpa, on: v, in: &state)
        }
        var mapPages: UInt64 = 0
        if op == .enter { mapPages = entry(gpa, active: &active, unmapPages: &unmapPages) }

        // After it: what the switch and the entry count.
        if isSwitch || op == .enter {
            state.vcpus.withUnsafeMutableBufferPointer { vcpus in
                if isSwitch {
                    if isMigration { vcpus[v].counters.migrations &+= 1 }
                    switch outcome {
                    case .hit(let stole):
                        vcpus[v].counters.hits &+= 1
                        if stole { vcpus[v].counters.steals &+= 1 }
                        if isMigration { vcpus[v].counters.migrationHits &+= 1 }
                    case .alloc:
                        vcpus[v].counters.misses &+= 1
                        vcpus[v].counters.allocs &+= 1
                    case .recycle:
                        vcpus[v].counters.misses &+= 1
                        vcpus[v].counters.recycles &+= 1
                    case .uncached:
                        vcpus[v].counters.misses &+= 1
                        vcpus[v].counters.uncached &+= 1
                    }
                }
                if !Policy.keepsMappings, op == .enter { vcpus[v].isEntryMapped = true }
                vcpus[v].active = active
                vcpus[v].counters.mapPages &+= mapPages
                vcpus[v].counters.unmapPages &+= unmapPages
            }
        }

        let mapped = state.mappedPages
        if mapped > state.peakMappedPages { state.peakMappedPages = mapped }
    }

    /// Mapping at entry (DESIGN §2): remap the vCPU's `active` context unless it already maps
    /// `gpa`. Returns the pages mapped; adds the pages unmapped to `unmapPages`.
    @inline(__always)
    mutating func entry(_ gpa: GPA, active: inout Int32, unmapPages: inout UInt64) -> UInt64 {
        let p = state.pagesPerContext
        guard Policy.keepsMappings else {
            // map-per-entry: pages mapped until the vCPU's next event.
            state.mappedUnits &+= 1
            return p
        }
        var c = active
        if c < 0 {
            // No context from the policy (an uncached first switch): the vCPU's own fallback,
            // outside any table, as KVM's per-vCPU gpcs.
            c = state.newContext()
            active = c
        }
        let old = state.mappedFor[Int(c)]
        if old == gpa { return 0 }
        if old != .none {
            unmapPages &+= p
        } else {
            state.mappedUnits &+= 1
        }
        state.mappedFor[Int(c)] = gpa
        return p
    }

    // MARK: - Reading

    /// Counters summed over the VM's vCPUs, its gauges, memory. O(vCPUs).
    public var snapshot: StatsSnapshot {
        var s = StatsSnapshot()
        for c in state.vcpus { s.counters += c.counters }
        s.gauges.contexts = UInt64(state.mappedFor.count)
        s.gauges.free = UInt64(policy.freeCount)
        s.gauges.mappedPages = state.mappedPages
        s.gauges.peakMappedPages = state.peakMappedPages
        s.memoryBytes = state.info.memoryMiB.map { UInt64($0) << 20 }
        s.countsLookups = Policy.keepsMappings
        return s
    }

    /// Per-vCPU counters, indexed by vCPU (indices never seen have all zeros).
    public var vcpuCounters: [Counters] { state.vcpus.map(\.counters) }

    /// Zeroes the counters and restarts the peak at the current mapping; state is kept.
    /// `map_pages - unmap_pages == mapped_pages` then holds again by counting what is mapped
    /// now as mapped since the reset.
    public mutating func resetCounters() {
        for v in state.vcpus.indices { state.vcpus[v].counters = Counters() }
        // Attribute the pages that stay mapped to vCPU 0's fresh map_pages, so the identity holds.
        if !state.vcpus.isEmpty { state.vcpus[0].counters.mapPages = state.mappedPages }
        state.peakMappedPages = state.mappedPages
    }

    // MARK: - Invariants

    /// Checks the engine's own rules, the policy's, and the identities of DESIGN §4. O(contexts + vCPUs).
    public func checkInvariants() {
        var mapped = 0
        for g in state.mappedFor where g != .none { mapped += 1 }
        if Policy.keepsMappings {
            precondition(mapped == state.mappedUnits, "\(state.info.id): \(mapped) mapped contexts, counted \(state.mappedUnits)")
        } else {
            precondition(state.mappedFor.isEmpty, "\(state.info.id): map-per-entry holds contexts")
            let n = state.vcpus.filter(\.isEntryMapped).count
            precondition(n == state.mappedUnits, "\(state.info.id): \(n) vCPUs mapped, counted \(state.mappedUnits)")
        }
        var seen = 0
        for (v, c) in state.vcpus.enumerated() {
            if c.isSeen { seen += 1 } else { precondition(c.counters == Counters(), "\(state.info.id): unseen vCPU \(v) has counts") }
            if let broken = c.counters.brokenIdentity { preconditionFailure("\(state.info.id) vCPU \(v): \(broken): \(c.counters)") }
            precondition(c.active < Int32(state.mappedFor.count), "\(state.info.id) vCPU \(v): active \(c.active) out of range")
        }
        precondition(seen == state.seenVCPUs, "\(state.info.id): seen \(seen) vCPUs, counted \(state.seenVCPUs)")
        if let m = state.info.l1VCPUs { precondition(state.vcpus.count <= m, "\(state.info.id): vCPU index past declared \(m)") }
        let s = snapshot
        if let broken = s.brokenIdentity { preconditionFailure("\(state.info.id): \(broken): \(s)") }
        state.lastSwitcher.checkInvariants()
        policy.checkInvariants(state)
    }
}
