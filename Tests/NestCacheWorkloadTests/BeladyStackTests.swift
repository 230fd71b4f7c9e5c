import Testing

@testable import NestCacheWorkload

// `BeladyStack` (Mattson's OPT stack with bypass) on plain request sequences of one vCPU:
// against the exhaustive search on tiny ones, plain Belady per size on longer ones.

/// Next uses of `requests` (index of the next equal request, `never` if none).
func nextUses(_ requests: [UInt32]) -> [UInt64] {
    var last: [UInt32: UInt64] = [:]
    var out = Array(repeating: FutureRecord.never, count: requests.count)
    for i in requests.indices.reversed() {
        out[i] = last[requests[i]] ?? FutureRecord.never
        last[requests[i]] = UInt64(i)
    }
    return out
}

/// Runs one vCPU's `requests` through a stack cut at kmax + 1, invariants after every request.
func stackHits(_ requests: [UInt32], kmax: Int) -> [UInt64] {
    var stack = BeladyStack(kmax: kmax)
    for (i, next) in nextUses(requests).enumerated() {
        stack.access(requests[i], nextUse: next, at: UInt64(i), on: 0)
        stack.checkInvariants()
    }
    #expect(stack.accesses == UInt64(requests.count))
    return stack.hits
}

func randomRequests(_ rng: inout SplitMix64, count: Int, distinct: Int, skewed: Bool) -> [UInt32] {
    (0..<count).map { _ in
        let r = rng.next() % UInt64(distinct)
        // Skewed: the square of a uniform pick favours small keys (a hot set and a long tail).
        return UInt32(skewed ? r * r / UInt64(distinct) : r)
    }
}

@Test(arguments: 1...300)
func stackEqualsExhaustiveSearchOnTinySequences(seed: UInt64) {
    var rng = SplitMix64(seed: seed)
    let requests = randomRequests(&rng, count: 4 + Int(rng.next() % 10), distinct: 2 + Int(rng.next() % 4), skewed: seed % 2 == 0)
    let hits = stackHits(requests, kmax: 4)
    for k in 0...4 {
        let want = bruteForceOPT(requests.map(Int.init), capacity: k + 1)
        #expect(hits[k] == UInt64(want), "seed \(seed) \(requests) with \(k + 1) contexts: stack \(hits[k]), exhaustive \(want)")
    }
}

@Test(arguments: 1...40)
func stackEqualsPlainBeladyForEverySize(seed: UInt64) {
    var rng = SplitMix64(seed: 500 + seed)
    let distinct = 3 + Int(rng.next() % 40)
    let requests = randomRequests(&rng, count: 1500, distinct: distinct, skewed: seed % 2 == 1)
    let kmax = 12
    let hits = stackHits(requests, kmax: kmax)
    for k in 0...kmax {
        let want = plainBelady(requests.map(UInt64.init), capacity: k + 1)
        #expect(hits[k] == UInt64(want), "seed \(seed), \(distinct) keys, \(k + 1) contexts: stack \(hits[k]), plain Belady \(want)")
    }
    // Cutting the stack deeper changes nothing up to kmax.
    #expect(Array(stackHits(requests, kmax: 40).prefix(kmax + 1)) == hits, "seed \(seed)")
}

@Test func bypassIsPartOfTheRule() {
    // a b a with one context: leaving b out keeps a for its second request. A cache that must
    // take every miss (LRU, or Belady without bypass) gets nothing.
    #expect(stackHits([0, 1, 0], kmax: 1) == [1, 1])
    #expect(bruteForceOPT([0, 1, 0], capacity: 1) == 1)
}

@Test func theWorkedExampleOfTheDocComment() {
    // a b x a b x b x: before index 5 the list is [b:6 a:never x:5]; x (next use 7) is found at
    // position 2 and the list becomes [b:6 x:7 a:never].
    let (a, b, x): (UInt32, UInt32, UInt32) = (1, 2, 3)
    let requests = [a, b, x, a, b, x, b, x]
    let next = nextUses(requests)
    var stack = BeladyStack(kmax: 3)
    for i in 0..<5 { stack.access(requests[i], nextUse: next[i], at: UInt64(i), on: 0) }
    #expect(stack.row(0).map(\.key) == [b, a, x])
    #expect(stack.row(0).map(\.nextUse) == [6, FutureRecord.never, 5])
    let found = stack.access(x, nextUse: next[5], at: 5, on: 0)
    #expect(found == 2)
    #expect(stack.row(0).map(\.key) == [b, x, a])
    #expect(stack.row(0).map(\.nextUse) == [6, 7, FutureRecord.never])
    stack.checkInvariants()
}
