import NestCacheCore
import NestCacheReference
import NestCacheWorkload
import Testing


/// A random multi-VM stream: few GPAs per VM so hits, steals, recycles and uncached all happen.
func randomStream(seed: UInt64, events: Int) -> (VMRegistry, [Event]) {
    var rng = SplitMix64(seed: seed)
    var registry = VMRegistry()
    let vmCount = Int.random(in: 1...3, using: &rng)
    var shapes: [(vcpus: Int, gpas: Int)] = []
    for i in 0..<vmCount {
        let idx = registry.intern("vm\(i)")
        let vcpus = Int.random(in: 1...6, using: &rng)
        let declared = Bool.random(using: &rng)
        registry.update(idx, VMInfo(id: "vm\(i)", l1VCPUs: declared ? vcpus : nil, memoryMiB: 64,
                                    pagesPerContext: Bool.random(using: &rng) ? 5 : nil))
        shapes.append((vcpus, Int.random(in: 1...40, using: &rng)))
    }
    var out: [Event] = []
    for t in 0..<events {
        let vm = Int.random(in: 0..<vmCount, using: &rng)
        let v = UInt16(Int.random(in: 0..<shapes[vm].vcpus, using: &rng))
        let g = GPA(UInt64(0x10_0000 + Int.random(in: 0..<shapes[vm].gpas, using: &rng) * 0x1000))
        let roll = Int.random(in: 0..<10, using: &rng)
        let op: TraceOp = roll < 3 ? .load : roll < 8 ? .enter : .clear
        out.append(Event(timeNs: UInt64(t), vm: Int32(vm), vcpu: v, op: op, gpa: g))
    }
    return (registry, out)
}

/// Every row of the registry; a parameter at its two smallest values, 3, 7 and its default.
let everyPolicy: [PolicySpec] = PolicyKind.registry.flatMap { kind -> [PolicySpec] in
    guard let p = kind.parameter else { return [try! PolicySpec(parsing: kind.name)] }
    return Set([p.range.lowerBound, p.range.lowerBound + 1, 3, 7, p.defaultValue]).filter(p.range.contains).sorted()
        .map { try! PolicySpec(parsing: "\(kind.name):\($0)") }
}

@Suite struct EngineTests {
    /// Random traces under every policy: invariants and DESIGN §4 identities after every event,
    /// and every counter and gauge of every VM and vCPU equal to the reference model's.
    @Test(arguments: everyPolicy)
    func randomTracesAgreeWithTheReferenceModel(_ spec: PolicySpec) {
        for seed in UInt64(1)...60 {
            let (registry, events) = randomStream(seed: seed, events: 400)
            var engine = spec.makeEngine()
            let reference = ReferenceModel(spec: spec)
            for e in events {
                engine.apply(e, registry: registry)
                reference.apply(e, registry: registry)
                engine.checkInvariants()
            }
            for vm in 0..<Int32(registry.count) {
                let s = engine.snapshot(vm: vm)
                let r = reference.snapshot(vm: vm)
                #expect(s.counters == r.counters, "seed \(seed) \(spec) vm\(vm)")
                #expect(s.gauges == r.gauges, "seed \(seed) \(spec) vm\(vm)")
                #expect(s.brokenIdentity == nil, "seed \(seed) \(spec) vm\(vm): \(s.brokenIdentity ?? "")")
                for (v, c) in engine.vcpuCounters(vm: vm).enumerated() {
                    #expect(c == reference.vcpuCounters(vm: vm, vcpu: v), "seed \(seed) \(spec) vm\(vm) vCPU \(v)")
                }
            }
            #expect(engine.totals.brokenIdentity == nil, "seed \(seed) \(spec)")
        }
    }

    /// Batch application equals event-at-a-time application.
    @Test func batchesEqualSingleEvents() {
        let (registry, events) = randomStream(seed: 99, events: 5000)
        for spec in everyPolicy {
            var a = spec.makeEngine()
            var b = spec.makeEngine()
            a.apply(events, registry: registry)
            for e in events { b.apply(e, registry: registry) }
            for vm in 0..<Int32(registry.count) { #expect(a.snapshot(vm: vm) == b.snapshot(vm: vm), "\(spec)") }
        }
    }

    /// The stream's counters (`CounterField.Role.stream`: events, switches, migrations, ...) are
    /// counted identically under every policy (DESIGN §2).
    @Test func streamCountersDoNotDependOnThePolicy() {
        var migrations: UInt64 = 0
        for seed in UInt64(100)...120 {
            let (registry, events) = randomStream(seed: seed, events: 500)
            let totals = everyPolicy.map { spec in
                var e = spec.makeEngine()
                e.apply(events, registry: registry)
                return e.totals.counters
            }
            for f in Counters.fields where f.role == .stream {
                #expect(Set(totals.map { $0[keyPath: f.keyPath] }).count == 1, "seed \(seed) \(f.name)")
            }
            migrations += totals[0].migrations
        }
        #expect(migrations > 0, "the streams should have migrations")
    }

    @Test func resetCountersKeepsStateAndIdentities() {
        let (registry, events) = randomStream(seed: 7, events: 2000)
        for spec in everyPolicy {
            var e = spec.makeEngine()
            e.apply(Array(events[..<1000]), registry: registry)
            let before = e.snapshot(vm: 0)
            e.resetCounters(vm: 0)
            let after = e.snapshot(vm: 0)
            #expect(after.counters.events == 0 && after.counters.switches == 0, "\(spec)")
            #expect(after.gauges.contexts == before.gauges.contexts && after.gauges.mappedPages == before.gauges.mappedPages)
            #expect(after.brokenIdentity == nil, "\(spec): \(after.brokenIdentity ?? "")")
            e.apply(Array(events[1000...]), registry: registry)
            e.checkInvariants()
            #expect(e.snapshot(vm: 0).brokenIdentity == nil, "\(spec)")
        }
    }
}
