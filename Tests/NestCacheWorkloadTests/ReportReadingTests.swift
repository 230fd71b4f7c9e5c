import NestCacheCore
import Testing

@testable import NestCacheWorkload

// The reading rules, one branch each, numbers by hand.

@Test func isolationReadingBranches() {
    // Saving of the table over map-per-entry: 8000 − 2000 = 6000 pages per 1k entries.
    // single at 2600: (8000 − 2600) / 6000 = 90% -> "the gain is persistent mappings'".
    let mostly = ReportReading.isolation(mapPerEntry: 8000, single: 2600, table: 2000, tableName: "per-vm-table:8")
    #expect(mostly.text.contains("90%") && mostly.text.contains("persistent mappings', not the table's"), "\(mostly.text)")
    #expect(mostly.figures.first { $0.name == "single_share_of_saving" }?.value == 0.9)
    // single at 7400: 600 / 6000 = 10% -> "the gain is the table's".
    let table = ReportReading.isolation(mapPerEntry: 8000, single: 7400, table: 2000, tableName: "per-vm-table:8")
    #expect(table.text.contains("only 10%") && table.text.contains("the gain is the table's"), "\(table.text)")
    // single at 5000: 50% each.
    let split = ReportReading.isolation(mapPerEntry: 8000, single: 5000, table: 2000, tableName: "t")
    #expect(split.text.contains("gets 50% of") && split.text.contains("the other 50%"), "\(split.text)")
    // The table moves as many pages as map-per-entry: nothing to isolate.
    let none = ReportReading.isolation(mapPerEntry: 8000, single: 8000, table: 8000, tableName: "t")
    #expect(none.text.contains("no gain to isolate"), "\(none.text)")
    // single below the table.
    let all = ReportReading.isolation(mapPerEntry: 8000, single: 1900, table: 2000, tableName: "t")
    #expect(all.text.contains("all of the gain"), "\(all.text)")
    #expect(ReportReading.isolation(mapPerEntry: nil, single: nil, table: nil, tableName: "t").text.contains("no nested entries"))
}

@Test func sharingReadingBranches() {
    // 1000 switches. LRU:3 970 of an optimum of 1000 (97% >= 95%): "no smarter per-vCPU cache".
    // Sharing: OPT-VM 990 vs OPT-vCPU(K = 7) 985: 0.5 points <= 1: "a per-vCPU cache of 8 suffices".
    // Table 980 of 990: 99%; table − LRU:7 (975) = 0.5 points above.
    let near = ReportReading.sharing(k: 3, r: 8, switches: 1000, lruK: 970, optK: 1000, lruR: 975, optVCPUR: 985,
                                     optVMR: 990, tableR: 980)
    #expect(near.text.contains("per-vcpu-lru:3 reaches 97% of the per-vCPU optimum: no smarter per-vCPU cache helps"), "\(near.text)")
    #expect(near.text.contains("worth at most 0.5 points at 8 per vCPU: a per-vCPU cache of 8 suffices"), "\(near.text)")
    #expect(near.text.contains("per-vm-table:8 gets 99% of that shared optimum"), "\(near.text)")
    #expect(near.text.contains("0.5 points above per-vcpu-lru:7"), "\(near.text)")
    // LRU:3 at 500 of 800: 62.5%, 30 points below; sharing 900 − 600 = 30 points; table 450 of 900
    // = 50% ("only"); 450 − 600 = 15 points below the LRU of the same capacity.
    let far = ReportReading.sharing(k: 3, r: 8, switches: 1000, lruK: 500, optK: 800, lruR: 600, optVCPUR: 600,
                                    optVMR: 900, tableR: 450)
    #expect(far.text.contains("reaches only 62.5% of the per-vCPU optimum (30 points below it)"), "\(far.text)")
    #expect(far.text.contains("worth up to 30 points at 8 per vCPU"), "\(far.text)")
    #expect(far.text.contains("gets only 50% of that shared optimum"), "\(far.text)")
    #expect(far.text.contains("15 points below per-vcpu-lru:7"), "\(far.text)")
    let zero = ReportReading.sharing(k: 0, r: 1, switches: 10, lruK: 0, optK: 0, lruR: 0, optVCPUR: 0, optVMR: 0, tableR: 0)
    #expect(zero.text.contains("no cache of 1 context per vCPU can hit at all"), "\(zero.text)")
    #expect(ReportReading.sharing(k: 3, r: 8, switches: 0, lruK: 0, optK: 0, lruR: 0, optVCPUR: 0, optVMR: 0, tableR: 0)
        .text.contains("no switches"))
}

@Test func exposureReadingBranches() {
    let t8 = PolicySpec.perVMTable(contextsPerVCPU: 8)
    func row(_ ratio: Int?, _ p: PolicySpec, _ peak: UInt64, _ e: Double?, bound: UInt64? = nil) -> ReportData.ExposureRow {
        ReportData.ExposureRow(ratio: ratio, l1VCPUs: ratio == nil ? nil : 4, l2VCPUs: ratio.map { $0 * 4 }, policy: p,
                               peakMappedPages: peak, exposure: e, boundPages: bound)
    }
    // 4 vCPUs, P = 4: bound (8 + 1) * 4 * 4 = 144 pages. Peak 128 = 0.6 of memory at 8:1:
    // "the majority"; the bound's exposure is 0.6 * 144 / 128 = 0.675.
    let major = ReportReading.exposure([row(1, t8, 16, 0.075, bound: 144), row(8, t8, 128, 0.6, bound: 144)], r: 8, k: 3)
    #expect(major.text.contains("keeps up to 128 pages mapped at 8:1 (16 at 1:1)"), "\(major.text)")
    #expect(major.text.contains("at most 60% exposed: the majority of guest memory"), "\(major.text)")
    #expect(major.text.contains("caps it at 144 pages whatever the ratio (67.5%)"), "\(major.text)")
    let some = ReportReading.exposure([row(8, t8, 128, 0.02, bound: 144)], r: 8, k: 3)
    #expect(some.text.contains("over 1% of guest memory"), "\(some.text)")
    let small = ReportReading.exposure([row(8, t8, 128, 0.00002, bound: 144)], r: 8, k: 3)
    #expect(small.text.contains("0.002% exposed: under 1% of guest memory"), "\(small.text)")
    let unknown = ReportReading.exposure([row(8, t8, 128, nil, bound: 144)], r: 8, k: 3)
    #expect(unknown.text.contains("guest memory not declared"), "\(unknown.text)")
    let trace = ReportReading.exposure([row(nil, t8, 40, nil)], r: 8, k: 3)
    #expect(trace.text.contains("a trace is one L2:L1 ratio"), "\(trace.text)")
}

@Test func breakEvenReadingBranches() {
    // c* = 0.125 ns against a modelled 500 ns: 4000 times less.
    let fast = ReportReading.breakEven(tableName: "per-vm-table:8", overSingle: .below(0.125), overMapPerEntry: .below(1.5),
                                       modelCost: 500, lookupNs: 20)
    #expect(fast.text.contains("unless map+unmap costs under 0.13 ns per page, 4000 times less than the modelled 500 ns"), "\(fast.text)")
    #expect(fast.text.contains("against map-per-entry under 1.5 ns"), "\(fast.text)")
    let already = ReportReading.breakEven(tableName: "t", overSingle: .below(600), overMapPerEntry: .never, modelCost: 500, lookupNs: 20)
    #expect(already.text.contains("already saves under 1%") && already.text.contains("break-even 600 ns"), "\(already.text)")
    #expect(already.text.contains("against map-per-entry it never saves 1%"), "\(already.text)")
    let never = ReportReading.breakEven(tableName: "t", overSingle: .never, overMapPerEntry: nil, modelCost: 500, lookupNs: 20)
    #expect(never.text.contains("never saves 1%"), "\(never.text)")
    let any = ReportReading.breakEven(tableName: "t", overSingle: .below(0), overMapPerEntry: nil, modelCost: 500, lookupNs: 20)
    #expect(any.text.contains("at any map+unmap cost"), "\(any.text)")
}
