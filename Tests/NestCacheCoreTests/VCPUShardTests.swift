import NestCacheCore
import Testing

/// The daemon's per-vCPU shards (`VCPUShard`, fed migrations by `SwitchTracker`) count exactly
/// what one `Engine` over the whole VM counts, for every per-vCPU policy.
@Suite struct VCPUShardTests {
    @Test(arguments: [UInt64(1), 2, 3, 4, 5, 6, 7, 8])
    func shardsEqualTheWholeVMEngine(seed: UInt64) {
        let (registry, events) = randomStream(seed: seed, events: 3000)
        for spec in [PolicySpec.perVCPULRU(k: 2), .single, .mapPerEntry] {
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
                    while shards.count <= v { shards.append(spec.makeShard(info: info, defaultPagesPerContext: 4)!) }
                    let m = tracker.isMigration(vcpu: v, op: e.op, gpa: e.gpa)
                    [e].withUnsafeBufferPointer { ev in
                        [m].withUnsafeBufferPointer { mb in
                            shards[v].apply(ev, migrations: mb) { d in
                                units += d
                                peak = max(peak, units)
                            }
                        }
                    }
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
}
