import Testing

@testable import NestCacheWorkload

// `BeladyCache` (one size, a heap) against the exhaustive search, plain Belady, and the stack.

func cacheHits(_ requests: [UInt32], capacity: Int) -> UInt64 {
    var cache = BeladyCache(capacity: capacity)
    for (i, next) in nextUses(requests).enumerated() {
        cache.access(requests[i], nextUse: next)
        cache.checkInvariants()
    }
    #expect(cache.accesses == UInt64(requests.count))
    return cache.hits
}

@Test(arguments: 1...300)
func cacheEqualsExhaustiveSearchOnTinySequences(seed: UInt64) {
    var rng = SplitMix64(seed: 9000 + seed)
    let requests = randomRequests(&rng, count: 4 + Int(rng.next() % 10), distinct: 2 + Int(rng.next() % 4), skewed: seed % 2 == 0)
    for c in 0...4 {
        let want = bruteForceOPT(requests.map(Int.init), capacity: c)
        #expect(cacheHits(requests, capacity: c) == UInt64(want), "seed \(seed) \(requests) C=\(c): exhaustive \(want)")
    }
}

@Test(arguments: 1...30)
func cacheEqualsPlainBeladyAndTheStack(seed: UInt64) {
    var rng = SplitMix64(seed: 7000 + seed)
    let distinct = 5 + Int(rng.next() % 300)
    let requests = randomRequests(&rng, count: 3000, distinct: distinct, skewed: seed % 2 == 0)
    let stack = stackHits(requests, kmax: 24)
    for c in [1, 2, 3, 5, 8, 13, 25, 64, 200] {
        let got = cacheHits(requests, capacity: c)
        let want = plainBelady(requests.map(UInt64.init), capacity: c)
        #expect(got == UInt64(want), "seed \(seed), \(distinct) keys, C=\(c): heap \(got), plain Belady \(want)")
        if c <= 25 { #expect(got == stack[c - 1], "seed \(seed) C=\(c): heap \(got), stack \(stack[c - 1])") }
    }
}

@Test func zeroCapacityNeverHitsAndHoldsNothing() {
    var cache = BeladyCache(capacity: 0, keys: 2)
    let first = cache.access(0, nextUse: 1)
    let second = cache.access(0, nextUse: FutureRecord.never)
    #expect(!first && !second)
    #expect(cache.cached.isEmpty && cache.hits == 0)
    cache.checkInvariants()
}

@Test func aHitRaisesTheNextUseAndTheFurthestIsLeftOut() {
    // 0 1 2 0 1 0 2 with C = 2: 0 (next 3), 1 (next 4) cached; 2 (next 6) is furthest: bypassed;
    // 0 hits (next 5); 1 hits (never again); 0 hits; 2 misses. 3 hits.
    #expect(cacheHits([0, 1, 2, 0, 1, 0, 2], capacity: 2) == 3)
    #expect(bruteForceOPT([0, 1, 2, 0, 1, 0, 2], capacity: 2) == 3)
}
