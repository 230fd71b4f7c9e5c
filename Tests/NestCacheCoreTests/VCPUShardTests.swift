import NestCacheCore
import Testing

/// The daemon's per-vCPU shards (`VCPUShard`, fed migrations by `SwitchTracker`) count exactly
/// what one `Engine` over the whole VM counts, for every per-vCPU policy of the registry, both
/// the compact shards the rows hand out and the generic `EngineShard`.
@Suite struct VCPUShardTests {
    typealias MakeShard = @Sendable (PolicySpec, VMInfo) -> any VCPUShard

    static let rowShard: MakeShard = { spec, info in spec.makeShard(info: info, defaultPagesPerContext: 4)! }
    /// `EngineShard` of the policies whose types this test knows; nil for the others.
    static func engineShard(_ spec: PolicySpec) -> MakeShard? {
        switch spec.kind {
        case .mapPerEntry: { _, info in EngineShard(info: info, defaultPagesPerContext: 4, policy: MapPerEntry()) }
        case .single, .perVCPULRU: { _, info in EngineShard(info: info, defaultPagesPerContext: 4, policy: PerVCPULRU(k: spec.parameter)) }
        default: nil
        }
    }

    @Test(arguments: [UInt64(1), 2, 3, 4, 5, 6, 7, 8], [true, false])
    func shardsEqualTheWholeVMEngine(seed: UInt64, generic: Bool) {
        let (registry, events) = randomStream(seed: seed, events: 3000)
        for spec in everyPolicy where spec.isPerVCPU {
            guard let make = generic ? Self.engineShard(spec) : Self.rowShard else { continue }
            var engine = spec.makeEngine()
            engine.sync(with: registry)
            engine.apply(events, registry: registry)
            for vm in 0..<registry.count {
                let info = registry.infos[vm]
                var tracker = SwitchTracker()
                var shards: [any VCPUShard] = []
                var units = 0
                var peak = 0
                for e in events where Int(e.vm) == vm {
                    let v = Int(e.vcpu)
                    while shards.count <= v { shards.append(make(spec, info)) }
                    let m = tracker.isMigration(vcpu: v, op: e.op, gpa: e.gpa)
                    [e].withUnsafeBufferPointer { ev in
                        [m].withUnsafeBufferPointer { mb in
                            shards[v].apply(ev, migrations: mb) { d in
                                units += d
                                peak = max(peak, units)
                            }
                        }
                    }
                    shards[v].checkInvariants()
                }
                var sum = StatsSnapshot()
                for s in shards {
                    s.checkInvariants()
                    sum.counters += s.snapshot.counters
                    sum.gauges.contexts += s.snapshot.gauges.contexts
                    sum.gauges.mappedPages += s.snapshot.gauges.mappedPages
                }
                let whole = engine.snapshot(vm: Int32(vm))
                let p = UInt64(info.pagesPerContext ?? 4)
                #expect(sum.counters == whole.counters, "\(spec) vm\(vm)")
                #expect(sum.gauges.contexts == whole.gauges.contexts, "\(spec) vm\(vm)")
                #expect(sum.gauges.mappedPages == whole.gauges.mappedPages, "\(spec) vm\(vm)")
                #expect(UInt64(units) * p == whole.gauges.mappedPages, "\(spec) vm\(vm)")
                #expect(UInt64(peak) * p == whole.gauges.peakMappedPages, "\(spec) vm\(vm)")
            }
        }
    }

    /// `per-vcpu-lru:1`, P = 4, one vCPU, counts derived by hand:
    ///   enter A   switch, alloc          [A]         map A: map 4, mapped 1
    ///   enter B   switch, alloc          [B A]       map B: map 8, mapped 2
    ///   enter A   switch, hit            [A B]       maps A already
    ///   enter C   switch, recycle B      [C' A]      C' maps B: unmap 4, map 12
    ///   clear C   current dropped, the list kept
    ///   enter C   switch, hit at front   [C A]       maps C already
    @Test func lruShardHandWorked() {
        let (a, b, c) = (GPA(0x1000), GPA(0x2000), GPA(0x3000))
        let ops: [(TraceOp, GPA)] = [(.enter, a), (.enter, b), (.enter, a), (.enter, c), (.clear, c), (.enter, c)]
        var shard = PolicySpec.perVCPULRU(k: 1).makeShard(info: VMInfo(id: "vm"), defaultPagesPerContext: 4)!
        let changes = Self.drive(&shard, ops)
        let s = shard.snapshot
        #expect(s.counters.events == 6 && s.counters.entries == 5 && s.counters.clears == 1)
        #expect(s.counters.switches == 5 && s.counters.hits == 2 && s.counters.misses == 3)
        #expect(s.counters.allocs == 2 && s.counters.recycles == 1 && s.counters.uncached == 0)
        #expect(s.counters.mapPages == 12 && s.counters.unmapPages == 4)
        #expect(s.gauges.contexts == 2 && s.gauges.mappedPages == 8 && s.gauges.peakMappedPages == 8)
        #expect(changes == [1, 1])
        shard.resetCounters()
        shard.checkInvariants()
        #expect(shard.snapshot.counters.mapPages == 8 && shard.snapshot.gauges.peakMappedPages == 8)
    }

    /// Applies `ops` to `shard` as vCPU 0's events, one at a time and none a migration, checking
    /// its invariants after each; returns the changes of mapped contexts it reported.
    static func drive(_ shard: inout any VCPUShard, _ ops: [(TraceOp, GPA)]) -> [Int] {
        var changes: [Int] = []
        for (op, g) in ops {
            [Event(timeNs: 0, vm: 0, vcpu: 0, op: op, gpa: g)].withUnsafeBufferPointer { ev in
                [false].withUnsafeBufferPointer { shard.apply(ev, migrations: $0) { changes.append($0) } }
            }
            shard.checkInvariants()
        }
        return changes
    }

    /// The sizes the lanes' memory rests on (BENCHMARKS.md, "Memory of the lanes").
    @Test func shardsAreCompact() {
        #expect(MemoryLayout<LRUShard>.stride == 128)
        #expect(MemoryLayout<MapPerEntryShard>.stride == 72)
    }

    /// `map-per-entry`, P = 4, one vCPU:
    ///   enter A   switch (uncached)            map 4, mapped 1
    ///   enter A   the exit unmapped: unmap 4   map 8, mapped 1 (net 0: no change reported)
    ///   load B    unmap 8, switch (uncached)   mapped 0
    ///   clear B   current dropped
    @Test func mapPerEntryShardHandWorked() {
        let (a, b) = (GPA(0x1000), GPA(0x2000))
        let ops: [(TraceOp, GPA)] = [(.enter, a), (.enter, a), (.load, b), (.clear, b)]
        var shard = PolicySpec.mapPerEntry.makeShard(info: VMInfo(id: "vm", pagesPerContext: 4), defaultPagesPerContext: 5)!
        let changes = Self.drive(&shard, ops)
        let s = shard.snapshot
        #expect(s.counters.events == 4 && s.counters.entries == 2 && s.counters.loads == 1 && s.counters.clears == 1)
        #expect(s.counters.switches == 2 && s.counters.misses == 2 && s.counters.uncached == 2 && s.counters.hits == 0)
        #expect(s.counters.mapPages == 8 && s.counters.unmapPages == 8)
        #expect(s.gauges.contexts == 0 && s.gauges.mappedPages == 0 && s.gauges.peakMappedPages == 4)
        #expect(changes == [1, -1])
        shard.resetCounters()
        shard.checkInvariants()
        #expect(shard.snapshot.counters == Counters() && shard.snapshot.gauges.peakMappedPages == 0)
    }
}
