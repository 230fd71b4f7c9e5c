import NestCacheCore
import Testing

@testable import NestCacheWorkload

// Hand-computed cases of BreakEven (DESIGN §11): c* = (L_P − L_B + s·L_B) / (W_B − W_P − s·W_B).

@Test func breakEvenAgainstSingleIsWhereTheSavingIsOnePercent() {
    // Both do the same lookups (96 ns per entry), as every caching policy and single do.
    // ΔW = 2 − 1.02 = 0.98; s·W_B = 0.02; denominator 0.96. Numerator: 0 + 0.01 · 96 = 0.96.
    // c* = 1. Check: at c = 1, overhead_B = 2 + 96 = 98, overhead_P = 1.02 + 96 = 97.02,
    // saving 0.98 = 1% of 98.
    let single = BreakEven.Line(pagesPerEntry: 2, fixedNsPerEntry: 96)
    let table = BreakEven.Line(pagesPerEntry: 1.02, fixedNsPerEntry: 96)
    let outcome = BreakEven.cost(of: table, over: single)
    #expect(abs((outcome.cost ?? -1) - 1) < 1e-12, "c* = \(outcome)")
    let saving = BreakEven.saving(of: table, over: single, atCost: 1)
    #expect(abs(saving - 0.98) < 1e-12)
    // Below c* the saving is under 1%, above it over.
    #expect(BreakEven.saving(of: table, over: single, atCost: 0.5) < 0.01 * single.overhead(atCost: 0.5))
    #expect(BreakEven.saving(of: table, over: single, atCost: 2) > 0.01 * single.overhead(atCost: 2))
}

@Test func breakEvenAgainstMapPerEntryPaysForTheLookups() {
    // map-per-entry: 2 pages per entry, no lookups. The policy: 0.5 pages, 7.4 ns of lookups.
    // Numerator 7.4 − 0 + 0 = 7.4; denominator 2 − 0.5 − 0.02 = 1.48; c* = 5.
    // Check: c = 5: 10 vs 2.5 + 7.4 = 9.9, saving 0.1 = 1% of 10.
    let mpe = BreakEven.Line(pagesPerEntry: 2, fixedNsPerEntry: 0)
    let policy = BreakEven.Line(pagesPerEntry: 0.5, fixedNsPerEntry: 7.4)
    let c = BreakEven.cost(of: policy, over: mpe).cost
    #expect(c.map { abs($0 - 5) < 1e-12 } == true, "c* = \(String(describing: c))")
    // The saving is 0 where c·1.5 = 7.4 and negative below.
    #expect(BreakEven.saving(of: policy, over: mpe, atCost: 1) < 0)
}

@Test func breakEvenNeverWhenThePageSavingIsUnderOnePercent() {
    // ΔW = 0.005 < 0.01 · 1: no cost makes the saving 1% of the baseline.
    let b = BreakEven.Line(pagesPerEntry: 1, fixedNsPerEntry: 5)
    #expect(BreakEven.cost(of: BreakEven.Line(pagesPerEntry: 0.995, fixedNsPerEntry: 5), over: b) == .never)
    // A policy that maps more pages never saves either.
    #expect(BreakEven.cost(of: BreakEven.Line(pagesPerEntry: 1.5, fixedNsPerEntry: 0), over: b) == .never)
    // Exactly at the share: the saving reaches 1% only in the limit: never.
    #expect(BreakEven.cost(of: BreakEven.Line(pagesPerEntry: 0.99, fixedNsPerEntry: 5), over: b) == .never)
}

@Test func breakEvenZeroWhenThePolicyHasNoFixedCostToRecover() {
    // The policy does 10 ns fewer lookups than the baseline: numerator 0 − 10 + 0.1 < 0, so it
    // saves at least 1% at every cost: c* = 0.
    let b = BreakEven.Line(pagesPerEntry: 2, fixedNsPerEntry: 10)
    let p = BreakEven.Line(pagesPerEntry: 1, fixedNsPerEntry: 0)
    #expect(BreakEven.cost(of: p, over: b) == .below(0))
}

@Test func breakEvenLineFromCounters() throws {
    // 500 entries, 100 switches; 1000 pages mapped, 996 unmapped. Model 300/200/20:
    // α = 0.6; W = (0.6 · 1000 + 0.4 · 996) / 500 = 998.4 / 500 = 1.9968; L = 100 · 20 / 500 = 4.
    var s = StatsSnapshot()
    s.counters.entries = 500
    s.counters.switches = 100
    s.counters.mapPages = 1000
    s.counters.unmapPages = 996
    let line = try #require(BreakEven.line(s, cost: CostModel(mapNs: 300, unmapNs: 200, lookupNs: 20)))
    #expect(abs(line.pagesPerEntry - 1.9968) < 1e-12)
    #expect(abs(line.fixedNsPerEntry - 4) < 1e-12)
    // At the model's own c = 500 the line is the model's overhead per entry.
    #expect(abs(line.overhead(atCost: 500) - s.overheadNs(.default) / 500) < 1e-9)
    // map-per-entry counts no lookups.
    s.countsLookups = false
    #expect(BreakEven.line(s, cost: .default)?.fixedNsPerEntry == 0)
    // No entries: no line.
    #expect(BreakEven.line(StatsSnapshot(), cost: .default) == nil)
}

@Test func breakEvenMapShare() {
    #expect(BreakEven.mapShare(.default) == 0.6)
    #expect(BreakEven.mapShare(CostModel(mapNs: 0, unmapNs: 0, lookupNs: 20)) == 0.5)
    #expect(BreakEven.modelCost(CostModel(mapNs: 2000, unmapNs: 3000, lookupNs: 0)) == 5000)
}
