import NestCacheCore
import Testing

@testable import NestCacheWorkload

// `LRUStackDistance`: its cut lists give the positions of the full (uncut) LRU lists, and its
// rows are the engine's `per-vcpu-lru:kmax` rows.

@Test(arguments: 1...20)
func cutListsGiveTheFullListsPositions(seed: UInt64) {
    var rng = SplitMix64(seed: 300 + seed)
    let kmax = Int(rng.next() % 6)
    var lru = LRUStackDistance(kmax: kmax)
    var full = Array(repeating: [UInt32](), count: 3)
    for i in 0..<2000 {
        let v = Int(rng.next() % 3)
        let key = UInt32(rng.next() % (4 + seed))
        let p = full[v].firstIndex(of: key)
        if let p { full[v].remove(at: p) }
        full[v].insert(key, at: 0)
        let want = p.flatMap { $0 <= kmax ? $0 : nil }
        let got = lru.access(key, on: v)
        #expect(got == want, "seed \(seed) kmax \(kmax) switch \(i): full list position \(p.map(String.init) ?? "none")")
        #expect(lru.row(v) == Array(full[v].prefix(kmax + 1)), "seed \(seed) switch \(i)")
        lru.checkInvariants()
    }
    #expect(lru.accesses == 2000)
}

@Test func rowsAreTheEnginesPerVCPULRURows() {
    var rng = SplitMix64(seed: 42)
    var registry = VMRegistry()
    _ = registry.intern("vm0")
    var engine = VMEngine(info: registry.infos[0], defaultPagesPerContext: 4, policy: PerVCPULRU(k: 3))
    var lru = LRUStackDistance(kmax: 3)
    var keys: [GPA: UInt32] = [:]
    for _ in 0..<3000 {
        let v = Int(rng.next() % 4)
        let g = GPA(0x1000 * (1 + rng.next() % 9))
        let isSwitch = engine.state.vcpus.count <= v || engine.state.vcpus[v].current != g
        engine.apply(vcpu: v, op: .load, gpa: g)
        guard isSwitch else { continue }
        let key = keys[g] ?? UInt32(keys.count)
        keys[g] = key
        lru.access(key, on: v)
        #expect(lru.row(v) == engine.policy.row(v).map { keys[$0.gpa] ?? .max })
    }
}

@Test func aSwitchBackAfterAClearIsAtPositionZero() {
    // DESIGN §11: p = 0 happens after a clear (the GPA is no longer current, but it is still
    // the vCPU's most recent switch target).
    var lru = LRUStackDistance(kmax: 0)
    let first = lru.access(7, on: 0)
    let again = lru.access(7, on: 0)
    #expect(first == nil && again == 0)
    #expect(lru.hits == [1])
}
