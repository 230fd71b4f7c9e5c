import NestCacheCore
import Testing

@testable import NestCacheWorkload

// MARK: - DESIGN §4's selftest, swept over R and n
//
// One L1 vCPU, n L2 vCPUs, s rounds; the sweep's ratio is n. Capacity of per-vm-table:R is
// C = R * 1; of per-vcpu-lru:K it is K + 1 (same vCPU, no other). Derived by hand from DESIGN §3:
//
// migrate (load, enter, clear each L2 in turn): every clear puts the context on the free list's
//   tail, so the free list is in round order.
//   n <= C: round 1 allocs n; later rounds find every GPA: hits n(s-1), recycles 0, uncached 0.
//   n >  C: round 1 allocs C, then each miss recycles the free list's head, which is the GPA
//           cleared longest ago, i.e. the one needed C loads later... never the next one: every
//           switch misses. hits 0, recycles ns - C, uncached 0.
// sched (load, enter each, no clear): nothing is ever detached, so a full table cannot recycle.
//   n <= C: hits n(s-1).
//   n >  C: the first C GPAs stay filed and hit every later round: hits C(s-1); the other
//           n - C never get a context: uncached (n - C)s, recycles 0.
// Except sched with n = 1: every load after the first is of the vCPU's current GPA, which is no
//   switch (DESIGN §2): 1 switch, a miss (alloc; uncached for map-per-entry), and nothing else.
// per-vcpu-lru:K ignores clears, so both modes behave alike: n <= K + 1: hits n(s-1); n > K + 1:
//   cyclic access over an LRU one smaller than the cycle always misses: hits 0, recycles
//   ns - (K + 1).

struct Expected: Equatable, CustomStringConvertible {
    var hits: UInt64
    var recycles: UInt64
    var uncached: UInt64
    var description: String { "hits \(hits) recycles \(recycles) uncached \(uncached)" }
}

func expectedTable(_ mode: SelftestSpec.Mode, n: Int, s: Int, capacity c: Int) -> Expected {
    if n <= c { return Expected(hits: UInt64(n * (s - 1)), recycles: 0, uncached: 0) }
    switch mode {
    case .migrate: return Expected(hits: 0, recycles: UInt64(n * s - c), uncached: 0)
    case .sched: return Expected(hits: UInt64(c * (s - 1)), recycles: 0, uncached: UInt64((n - c) * s))
    }
}

func expectedLRU(n: Int, s: Int, k: Int) -> Expected {
    n <= k + 1
        ? Expected(hits: UInt64(n * (s - 1)), recycles: 0, uncached: 0)
        : Expected(hits: 0, recycles: UInt64(n * s - (k + 1)), uncached: 0)
}

let selftestRatios = [1, 2, 4, 7, 8, 9, 12, 16, 17, 32]

@Test(arguments: SelftestSpec.Mode.allCases)
func sweepOfSelftestGivesDesignCountsPerR(mode: SelftestSpec.Mode) throws {
    let preset = "selftest-\(mode.rawValue)"
    let sweep = try Sweep(input: .workload(WorkloadSpec.preset(named: preset)), ratios: selftestRatios)
    let result = try sweep.run(jobs: 1)
    #expect(result.rows.count == selftestRatios.count * Sweep.defaultPolicies.count)
    var i = 0
    for n in selftestRatios {
        for policy in Sweep.defaultPolicies {
            let row = result.rows[i]
            i += 1
            #expect(row.ratio == n && row.l1VCPUs == 1 && row.l2VCPUs == n && row.policy == policy)
            let c = row.stats.counters
            let got = Expected(hits: c.hits, recycles: c.recycles, uncached: c.uncached)
            let s = 4  // the preset's rounds
            let want: Expected
            if mode == .sched, n == 1 {
                want = Expected(hits: 0, recycles: 0, uncached: policy == .mapPerEntry ? 1 : 0)
                #expect(got == want, "\(preset) n=1 \(policy): got \(got), want \(want)")
                #expect(c.switches == 1, "\(preset) n=1 \(policy)")
                continue
            }
            switch policy.kind {
            case .perVMTable: want = expectedTable(mode, n: n, s: s, capacity: policy.parameter)
            case .perVCPULRU: want = expectedLRU(n: n, s: s, k: policy.parameter)
            case .single: want = expectedLRU(n: n, s: s, k: 0)
            case .mapPerEntry: want = Expected(hits: 0, recycles: 0, uncached: UInt64(n * s))
            default: Issue.record("no DESIGN §4 expectation for \(policy)"); continue
            }
            #expect(got == want, "\(preset) n=\(n) \(policy): got \(got), DESIGN §4 says \(want)")
            #expect(c.switches == UInt64(n * s), "\(preset) n=\(n) \(policy)")
            #expect(row.stats.brokenIdentity == nil, "\(preset) n=\(n) \(policy): \(row.stats.brokenIdentity ?? "")")
        }
    }
}

@Test func sweepOfSelftestSchedAtEightMatchesDesignLiterally() throws {
    // DESIGN §4 verbatim, per-vm-table:8, s = 4: n = 8 -> hits 24; n = 12 -> hits 24, uncached 16.
    let sweep = try Sweep(
        input: .workload(WorkloadSpec.preset(named: "selftest-sched")), ratios: [8, 12],
        policies: [.perVMTable(contextsPerVCPU: 8)])
    let rows = try sweep.run(jobs: 2).rows
    #expect(rows.map(\.stats.counters.hits) == [24, 24])
    #expect(rows.map(\.stats.counters.uncached) == [0, 16])
    #expect(rows.map(\.stats.counters.recycles) == [0, 0])
}

// MARK: - Determinism across jobs

@Test func sweepRowsAreIdenticalForOneAndTwoJobs() throws {
    var w = try WorkloadSpec.preset(named: "cloud-mixed")
    try w.apply(settings: "events=60000,l1_vcpus=4,scheduler=random")
    let sweep = try Sweep(input: .workload(w), ratios: [1, 2, 8])
    let one = try sweep.run(jobs: 1)
    let two = try sweep.run(jobs: 2)
    let many = try sweep.run(jobs: 5)
    #expect(one.rows == two.rows)
    #expect(one.rows == many.rows)
    #expect(one.rows.count == 3 * Sweep.defaultPolicies.count)
    #expect(one.rows.map(\.l2VCPUs) == [1, 2, 8].flatMap { r in Array(repeating: 4 * r, count: Sweep.defaultPolicies.count) })
    // Each row equals a plain single-engine replay of its stream.
    for row in one.rows where row.ratio == 2 {
        var w2 = w
        try w2.set("l2_vcpus", "8")
        var engines = [row.policy.makeEngine()]
        try Replay.drive(w2.makeSource(), into: &engines)
        #expect(engines[0].totals == row.stats, "\(row.policy)")
    }
}

@Test func tasksCoverEveryConfigurationOnce() throws {
    let sweep = try Sweep(input: .workload(.selftest(SelftestSpec(mode: .sched))), ratios: [1, 2, 3, 4, 5])
    for jobs in [1, 2, 3, 8, 64] {
        let tasks = sweep.tasks(jobs: jobs)
        var seen: [[Int]] = Array(repeating: [], count: sweep.streams.count)
        for t in tasks { seen[t.stream] += Array(t.policies) }
        #expect(seen.allSatisfy { $0 == Array(sweep.policies.indices) }, "jobs \(jobs): \(seen)")
        if jobs == 1 { #expect(tasks.count == sweep.streams.count) }
    }
}

// MARK: - Inputs and errors

@Test func ratiosSetL2VCPUsOrN() throws {
    var sim = SimulationSpec()
    sim.l1VCPUs = 3
    let s = try Sweep(input: .workload(.simulate(sim)), ratios: [1, 5])
    #expect(s.streams.map(\.l2VCPUs) == [3, 15])
    #expect(s.streams.map(\.l1VCPUs) == [3, 3])
    let d = try Sweep(input: .workload(.selftest(SelftestSpec(mode: .migrate))))
    #expect(d.streams.map(\.ratio) == Sweep.defaultRatios)
    #expect(d.streams.map(\.l2VCPUs) == Sweep.defaultRatios)
}

@Test func badRatiosAreUsageErrors() throws {
    #expect(throws: TraceError.self) { try Sweep.parseRatios("1,,2") }
    #expect(throws: TraceError.self) { try Sweep.parseRatios("0") }
    #expect(throws: TraceError.self) { try Sweep.parseRatios("x") }
    #expect(try Sweep.parseRatios(" 1, 2 ,32") == [1, 2, 32])
    do {
        // 4097 is above the selftest's n <= 4096.
        _ = try Sweep(input: .workload(.selftest(SelftestSpec(mode: .sched))), ratios: [4097])
        Issue.record("no error")
    } catch {
        #expect(error.kind == .usage)
        #expect(error.message.contains("ratio 4097"), "\(error)")
    }
    do {
        _ = try Sweep(input: .files(paths: ["a"], format: .auto, vm: nil, invalidLines: .fail), ratios: [1])
        Issue.record("no error")
    } catch {
        #expect(error.kind == .usage)
    }
}

@Test func missingTraceFileIsInputMissing() throws {
    let sweep = try Sweep(input: .files(paths: ["/nonexistent/nestcache.trace"], format: .native, vm: nil, invalidLines: .fail))
    for jobs in [1, 2] {
        do {
            _ = try sweep.run(jobs: jobs)
            Issue.record("no error")
        } catch {
            #expect(error.kind == .inputMissing, "jobs \(jobs): \(error)")
        }
    }
}

@Test func groupsPerStreamFollowsTheEstimate() throws {
    // Costs (engine pass = 1, simulated stream = 0.5, trace read = 1), 2 workers taking tasks in order:
    // 6 ratios x 11 policies: g = 1 -> 3 tasks of 11.5 each = 34.5; g = 2 -> 12 tasks of 6 or 7
    //   (1 + 5 or 6 policies, 0.5 + ...) = 36.3: one group, each stream made once.
    let defaults = try Sweep(input: .workload(.selftest(SelftestSpec(mode: .sched))))
    #expect(defaults.groupsPerStream(jobs: 2) == 1)
    // 5 ratios x 5 policies: g = 1 -> 5 tasks of 5.5, one worker runs 3 = 16.5; g = 2 -> groups
    //   of 2 and 3 (2.5, 3.5), the five 3.5s first: 10.5 | 7, then the 2.5s: 15.5 | 14.5.
    let five = try Sweep(
        input: .workload(.selftest(SelftestSpec(mode: .sched))), ratios: [1, 2, 4, 8, 16],
        policies: [1, 2, 4, 8, 16].map { .perVMTable(contextsPerVCPU: $0) })
    #expect(five.groupsPerStream(jobs: 2) == 2)
    // One trace, 11 policies: g = 1 -> 12; g = 2 -> 1 + 5 and 1 + 6 in parallel = 7.
    let files = try Sweep(input: .files(paths: ["x"], format: .native, vm: nil, invalidLines: .fail))
    #expect(files.groupsPerStream(jobs: 2) == 2)
    #expect(files.tasks(jobs: 1).count == 1)
}
