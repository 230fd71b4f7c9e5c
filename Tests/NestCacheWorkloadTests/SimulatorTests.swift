import NestCacheCore
import Testing

@testable import NestCacheWorkload

// MARK: - PRNG reference vectors
//
// Expected values come from published vectors and from an independent Python implementation of
// the reference C code (run by hand, not by the tests):
//
//     M = (1 << 64) - 1
//     def splitmix64(seed):
//         s = seed
//         while True:
//             s = (s + 0x9E3779B97F4A7C15) & M
//             z = s
//             z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
//             z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
//             yield z ^ (z >> 31)
//     def rotl(x, k): return ((x << k) | (x >> (64 - k))) & M
//     def xoshiro256ss(s):
//         s = list(s)
//         while True:
//             r = (rotl((s[1] * 5) & M, 7) * 9) & M
//             t = (s[1] << 17) & M
//             s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45)
//             yield r
//     def bounded(g, n):                      # Lemire
//         m = next(g) * n
//         if (m & M) < n:
//             t = ((1 << 64) - n) % n
//             while (m & M) < t: m = next(g) * n
//         return m >> 64

@Test func splitMix64MatchesRosettaCodeReference() {
    // Rosetta Code, "Pseudo-random numbers/Splitmix64": seed 1234567. The Python above agrees.
    var g = SplitMix64(seed: 1_234_567)
    let got = (0..<5).map { _ in g.next() }
    #expect(got == [
        6_457_827_717_110_365_317, 3_203_168_211_198_807_973, 9_817_491_932_198_370_423,
        4_593_380_528_125_082_431, 16_408_922_859_458_223_821,
    ])
}

@Test func xoshiro256StarStarMatchesReferenceVector() {
    // rand_xoshiro's test vector for state {1, 2, 3, 4} (from the reference C code); the Python
    // above agrees.
    var g = Xoshiro256StarStar(state: (1, 2, 3, 4))
    let got = (0..<10).map { _ in g.next() }
    #expect(got == [
        11520, 0, 1_509_978_240, 1_215_971_899_390_074_240, 1_216_172_134_540_287_360,
        607_988_272_756_665_600, 16_172_922_978_634_559_625, 8_476_171_486_693_032_832,
        10_595_114_339_597_558_777, 2_904_607_092_377_533_576,
    ])
}

@Test func xoshiroSeededThroughSplitMixMatchesPython() {
    // State = four SplitMix64 outputs of 42; values from the Python above.
    var g = Xoshiro256StarStar(seed: 42)
    #expect((0..<3).map { _ in g.next() } == [
        1_546_998_764_402_558_742, 6_990_951_692_964_543_102, 12_544_586_762_248_559_009,
    ])
    var d = Xoshiro256StarStar(seed: 42)
    // (x >> 11) * 2^-53 of the same outputs, as Python's float repr prints them.
    #expect((0..<3).map { _ in d.nextDouble() } == [0.08386297105988216, 0.3789802506626686, 0.6800434110281394])
    var b = Xoshiro256StarStar(seed: 42)
    #expect((0..<8).map { _ in b.bounded(10) } == [0, 3, 6, 9, 9, 7, 7, 8])
    #expect((0..<8).map { _ in b.bounded(3) } == [2, 1, 2, 0, 2, 0, 2, 2])
    #expect(b.bounded(.max) == 11_377_242_330_661_449_620)
}

@Test func chanceThresholds() {
    #expect(Chance(0).threshold == 0 && !Chance(0).isCertain)
    #expect(Chance(1).isCertain)
    #expect(Chance(0.5).threshold == 1 << 63)
    #expect(Chance(0.25).threshold == 1 << 62)
    var g = Xoshiro256StarStar(seed: 7)
    #expect(!(0..<1000).contains { _ in g.happens(Chance(0)) })
    #expect((0..<1000).allSatisfy { _ in g.happens(Chance(1)) })
}

@Test func portableMathIsAccurate() {
    func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= 4 * b.ulp }
    #expect(close(PortableMath.log(2), 0.693_147_180_559_945_3))
    #expect(close(PortableMath.log(10), 2.302_585_092_994_046))
    #expect(PortableMath.log(1) == 0)
    #expect(close(PortableMath.exp(1), 2.718_281_828_459_045))
    #expect(close(PortableMath.exp(-10), 4.539_992_976_248_485e-05))
    #expect(close(PortableMath.inversePower(2, 1), 0.5))
    #expect(close(PortableMath.inversePower(10, 2), 0.01))
    #expect(PortableMath.inversePower(123, 0) == 1)
    let cdf = Simulator.zipfWeights(count: 3, s: 1)
    #expect(close(cdf[2], 1 + 0.5 + 1.0 / 3))
}

// MARK: - Helpers

/// The whole stream, read in batches of `limit`.
func drain(_ spec: WorkloadSpec, limit: Int = 4096) throws -> (events: [Event], source: any EventSource) {
    var source = spec.makeSource()
    var all: [Event] = []
    var batch: [Event] = []
    while try source.next(into: &batch, limit: limit) {
        #expect(batch.count <= limit)
        all += batch
    }
    #expect(batch.isEmpty)
    return (all, source)
}

func sim(_ settings: String) throws -> SimulationSpec { try SimulationSpec(parsing: settings) }

func counters(_ spec: WorkloadSpec, policy: PolicySpec) throws -> Counters {
    var source = spec.makeSource()
    var engine = policy.makeEngine()
    var batch: [Event] = []
    while try source.next(into: &batch, limit: 1000) {
        engine.apply(batch, registry: source.registry)
    }
    engine.checkInvariants()
    #expect(engine.totals.brokenIdentity == nil)
    return engine.totals.counters
}

/// Replays DESIGN §2's workload state over a stream and checks the simulator's structural
/// promises. Returns (switches, migrations) as §2 counts them.
struct StreamChecker {
    var current: [Int: GPA] = [:]
    var lastSwitcher: [GPA: Int] = [:]
    /// GPAs cleared on their last switcher since that switch.
    var clearedByLastSwitcher: Set<GPA> = []
    var switches: UInt64 = 0
    var migrations: UInt64 = 0
    var migrationsWithoutClear = 0
    var currentOnTwo = 0
    var lastTime: UInt64 = 0

    mutating func feed(_ e: Event, m: Int) {
        #expect(e.timeNs >= lastTime)
        lastTime = e.timeNs
        #expect(e.vm == 0 && Int(e.vcpu) < m && e.gpa.isValid)
        let v = Int(e.vcpu)
        switch e.op {
        case .clear:
            if current[v] == e.gpa { current[v] = nil }
            if lastSwitcher[e.gpa] == v { clearedByLastSwitcher.insert(e.gpa) }
        case .load, .enter:
            guard current[v] != e.gpa else { return }
            switches += 1
            if let u = lastSwitcher[e.gpa], u != v {
                migrations += 1
                if !clearedByLastSwitcher.contains(e.gpa) { migrationsWithoutClear += 1 }
            }
            lastSwitcher[e.gpa] = v
            clearedByLastSwitcher.remove(e.gpa)
            current[v] = e.gpa
            if current.values.filter({ $0 == e.gpa }).count > 1 { currentOnTwo += 1 }
        }
    }
}

func check(_ spec: SimulationSpec) throws -> (StreamChecker, [Event], any EventSource) {
    let (events, source) = try drain(.simulate(spec))
    var c = StreamChecker()
    for e in events { c.feed(e, m: spec.l1VCPUs) }
    return (c, events, source)
}

func figure(_ source: any EventSource, _ name: String) -> UInt64? {
    source.figures.first { $0.name == name }?.value
}

// MARK: - Determinism

@Test(arguments: ["pinned", "round-robin", "random", "zipf"])
func sameSeedSameStreamDifferentSeedDifferent(scheduler: String) throws {
    let base = "l1_vcpus=6,l2_vcpus=20,events=20000,migration_rate=0.1,scheduler=\(scheduler)"
    let a = try drain(.simulate(sim(base + ",seed=5"))).events
    let b = try drain(.simulate(sim(base + ",seed=5")), limit: 7).events
    let c = try drain(.simulate(sim(base + ",seed=6"))).events
    #expect(a.count == 20000)
    #expect(a == b, "seed 5, \(scheduler): batch size changed the stream")
    #expect(a != c, "seeds 5 and 6 gave the same \(scheduler) stream")
}

@Test(arguments: [0, 1, 2, 3, 4, 5, 1000, 99_999, 100_000])
func eventCountIsExact(events: Int) throws {
    for limit in [1, 2, 3, 5, 4096] {
        let spec = try sim("events=\(events),vmclear_on_switch=true,migration_rate=0.3,seed=9")
        let got = try drain(.simulate(spec), limit: limit).events
        #expect(got.count == events, "events=\(events) limit=\(limit)")
    }
}

@Test func durationBoundsTime() throws {
    // 100 Hz * 5 entries: 2 ms rounds; 0.1 s is 50 rounds, 4 vCPUs each one enter per round.
    let spec = try sim("duration_s=0.1,switch_rate_hz=100,entries_per_switch=5,l1_vcpus=4,l2_vcpus=4,isa=svm")
    let (c, events, _) = try check(spec)
    #expect(events.filter { $0.op == .enter }.count == 200)
    #expect(c.lastTime < 100_000_000)
    #expect(events.first?.timeNs == 0)
}

// MARK: - Structure

@Test(arguments: ["pinned", "round-robin", "random", "zipf"])
func vmclearOnMigrateClearsTheOldVCPUFirst(scheduler: String) throws {
    let spec = try sim("l1_vcpus=8,l2_vcpus=24,events=200000,migration_rate=0.2,scheduler=\(scheduler),seed=3")
    let (c, events, source) = try check(spec)
    #expect(c.migrations > 100, "too few migrations to test: \(c.migrations)")
    #expect(c.migrationsWithoutClear == 0, "seed 3 \(scheduler)")
    #expect(c.currentOnTwo == 0, "seed 3 \(scheduler)")
    #expect(events.contains { $0.op == .clear })
    #expect(figure(source, "simulated_switches") == c.switches)
    #expect(figure(source, "simulated_migrations") == c.migrations)
}

@Test func noVMClearOnMigrateLeavesStaleCurrents() throws {
    let spec = try sim("l1_vcpus=4,l2_vcpus=8,events=100000,migration_rate=0.3,vmclear_on_migrate=false,seed=4")
    let (c, events, _) = try check(spec)
    #expect(!events.contains { $0.op == .clear })
    #expect(c.migrations > 0 && c.migrationsWithoutClear == Int(c.migrations))
    #expect(c.currentOnTwo > 0)
}

@Test func vmclearOnSwitchClearsTheOutgoingOne() throws {
    let spec = try sim("l1_vcpus=2,l2_vcpus=6,events=50000,migration_rate=0,vmclear_on_switch=true,seed=8")
    let (c, events, _) = try check(spec)
    #expect(c.migrations == 0)
    // Every load but each vCPU's first is preceded, on that vCPU, by a clear of its current.
    var current: [UInt16: GPA] = [:]
    var firstLoads = 0
    var lastOp: [UInt16: Event] = [:]
    for e in events {
        if e.op == .load {
            if let prev = current[e.vcpu] {
                #expect(lastOp[e.vcpu]?.op == .clear && lastOp[e.vcpu]?.gpa == prev)
            } else {
                firstLoads += 1
            }
            current[e.vcpu] = e.gpa
        }
        lastOp[e.vcpu] = e
    }
    #expect(firstLoads == 2)
}

@Test(arguments: ["pinned", "random"])
func svmHasOnlyEnters(scheduler: String) throws {
    let spec = try sim("isa=svm,l1_vcpus=4,l2_vcpus=12,events=50000,migration_rate=0.2,scheduler=\(scheduler)")
    let (c, events, source) = try check(spec)
    #expect(events.allSatisfy { $0.op == .enter })
    #expect(c.switches > 1000 && c.migrations > 0)
    #expect(figure(source, "simulated_switches") == c.switches)
}

@Test func pinnedWithoutMigrationStaysHome() throws {
    let spec = try sim("l1_vcpus=4,l2_vcpus=10,events=50000,migration_rate=0,scheduler=pinned")
    let (c, events, _) = try check(spec)
    #expect(c.migrations == 0)
    let base = Simulator.gpaBase
    #expect(events.allSatisfy { Int(($0.gpa.raw - base) >> 12) % 4 == Int($0.vcpu) })
}

@Test func registryDeclaresTheVM() throws {
    let spec = try sim("vm=web-1,l1_vcpus=3,memory_mib=2048,pages_per_context=5,events=10")
    let source = Simulator(spec)
    #expect(source.registry.infos == [VMInfo(id: "web-1", l1VCPUs: 3, memoryMiB: 2048, pagesPerContext: 5)])
}

@Test func scatteredControlBlocksAreDistinctAndValid() throws {
    for n in [1, 7, 1000, 65536] {
        let gpas = Simulator(try sim("l2_vcpus=\(n),gpa_layout=scattered,seed=11")).controlBlocks
        #expect(Set(gpas).count == n)
        #expect(gpas.allSatisfy { $0.isValid })
    }
    let a = Simulator(try sim("gpa_layout=scattered,seed=1")).controlBlocks
    let b = Simulator(try sim("gpa_layout=scattered,seed=2")).controlBlocks
    #expect(a != b)
}

/// The simulator's switch and migration figures are the engines' counters, under every policy.
@Test(arguments: PolicySpec.comparisonDefaults)
func figuresMatchEngineCounters(policy: PolicySpec) throws {
    for settings in [
        "l1_vcpus=8,l2_vcpus=40,events=100000,migration_rate=0.05,seed=21",
        "l1_vcpus=4,l2_vcpus=16,events=100000,scheduler=zipf,vmclear_on_migrate=false,seed=22",
        "l1_vcpus=3,l2_vcpus=5,events=100000,scheduler=round-robin,vmclear_on_switch=true,seed=23",
    ] {
        let spec = WorkloadSpec.simulate(try sim(settings))
        let got = try counters(spec, policy: policy)
        let (_, source) = try drain(spec)
        #expect(got.events == 100_000)
        #expect(got.switches == figure(source, "simulated_switches"), "\(policy) \(settings)")
        #expect(got.migrations == figure(source, "simulated_migrations"), "\(policy) \(settings)")
    }
}

// MARK: - Selftest (DESIGN §4)

@Test(arguments: 2...16)
func selftestMigrateMatchesDesign(n: Int) throws {
    var spec = try WorkloadSpec.preset(named: "selftest-migrate")
    try spec.apply(settings: "n=\(n),s=4")
    let c = try counters(spec, policy: .seed)
    let s: UInt64 = 4
    let n = UInt64(n)
    #expect(c.events == 3 * n * s)
    #expect(c.switches == n * s)
    // N <= 8: every round after the first finds all N on the free list; N > 8: the free list
    // recycles in LRU order, so nothing survives a round.
    #expect(c.hits == (n <= 8 ? n * (s - 1) : 0), "n=\(n)")
    #expect(c.recycles == (n <= 8 ? 0 : n * s - 8), "n=\(n)")
    #expect(c.uncached == 0, "n=\(n)")
}

@Test(arguments: 2...16)
func selftestSchedMatchesDesign(n: Int) throws {
    var spec = try WorkloadSpec.preset(named: "selftest-sched")
    try spec.set("n", "\(n)")
    try spec.set("s", "4")
    let c = try counters(spec, policy: .seed)
    let s: UInt64 = 4
    let n = UInt64(n)
    #expect(c.events == 2 * n * s)
    // No clears: the first 8 are allocated and stay; the rest are uncached every time.
    #expect(c.hits == min(n, 8) * (s - 1), "n=\(n)")
    #expect(c.recycles == 0, "n=\(n)")
    #expect(c.uncached == (n <= 8 ? 0 : (n - 8) * s), "n=\(n)")
}

@Test func selftestPatternIsExact() throws {
    var spec = try WorkloadSpec.preset(named: "selftest-migrate")
    try spec.apply(settings: "n=2,s=2")
    let events = try drain(spec, limit: 4).events
    let g0 = GPA(0x1_0000_0000), g1 = GPA(0x1_0000_1000)
    #expect(events.map(\.op) == [
        .load, .enter, .clear, .load, .enter, .clear, .load, .enter, .clear, .load, .enter, .clear,
    ])
    #expect(events.map(\.gpa) == [g0, g0, g0, g1, g1, g1, g0, g0, g0, g1, g1, g1])
    #expect(events.allSatisfy { $0.vcpu == 0 })
}

// MARK: - Presets

@Test func presetsAreListedAndBuild() throws {
    #expect(WorkloadSpec.presets.map(\.name) == [
        "selftest-migrate", "selftest-sched", "microvm-dense", "cloud-mixed", "thrash",
    ])
    #expect(WorkloadSpec.presetListing.split(separator: "\n").count == 5)
    for p in WorkloadSpec.presets {
        var spec = try WorkloadSpec.preset(named: p.name)
        if case .simulate = spec { try spec.set("events", "5000") }
        let (events, source) = try drain(spec)
        #expect(!events.isEmpty, "\(p.name)")
        #expect(source.registry.count == 1)
    }
}

@Test func microvmDenseHasEightToThirtyTwoPerL1VCPU() throws {
    guard case .simulate(let s) = try WorkloadSpec.preset(named: "microvm-dense") else {
        Issue.record("microvm-dense is not a simulation")
        return
    }
    #expect(s.scheduler == .pinned && s.migrationRate > 0)
    #expect((8...32).contains(s.l2VCPUs / s.l1VCPUs))
}

@Test func thrashDefeatsPerVMTable8AndPerVCPULRU7() throws {
    var spec = try WorkloadSpec.preset(named: "thrash")
    try spec.set("events", "100000")
    // 4 vCPUs cycle 9 residents each with VMCLEAR on switch: 36 GPAs through a 32-context
    // table whose free list recycles the least recently cleared: each GPA comes back after 35
    // other switches, by which time its context was recycled. No hits.
    #expect(try counters(spec, policy: .seed).hits == 0)
    // 8 contexts per vCPU against a cycle of 9: LRU keeps missing.
    #expect(try counters(spec, policy: .perVCPULRU(k: 7)).hits == 0)
    // 9 contexts per vCPU hold the cycle: only the 36 first switches miss.
    let fits = try counters(spec, policy: .perVCPULRU(k: 8))
    #expect(fits.misses == 36)
}

@Test func presetsTakeOverrides() throws {
    let spec = try WorkloadSpec.make(preset: "cloud-mixed", settings: ["l2_vcpus=64,seed=9", "isa=svm"])
    guard case .simulate(let s) = spec else {
        Issue.record("cloud-mixed is not a simulation")
        return
    }
    #expect(s.l2VCPUs == 64 && s.seed == 9 && s.isa == .svm && s.l1VCPUs == 16)
}

// MARK: - Settings and messages

@Test func specRoundTripsThroughDescription() throws {
    let plain = SimulationSpec()
    #expect(try SimulationSpec(parsing: plain.description) == plain)
    let s = try sim(" l1_vcpus=12 , scheduler=zipf,zipf_s=1.25,seed=0xff,duration_s=2.5,pages_per_context=5,isa=svm ")
    #expect(s.l1VCPUs == 12 && s.scheduler == .zipf && s.seed == 255 && s.length == .duration(seconds: 2.5))
    #expect(try SimulationSpec(parsing: s.description) == s)
    #expect(try SimulationSpec(parsing: "") == plain)
}

@Test func badSettingsGiveOneLineUsageErrors() {
    func message(_ settings: String) -> String? {
        do {
            _ = try SimulationSpec(parsing: settings)
            return nil
        } catch {
            #expect(error.kind == .usage && error.exitCode == 64)
            return error.description
        }
    }
    #expect(message("foo=1") == "unknown simulation key 'foo' (known: " + SimulationSpec.keys.joined(separator: ", ") + ")")
    #expect(message("l1_vcpus=0") == "l1_vcpus must be an integer from 1 to 4096, got '0'")
    #expect(message("l1_vcpus=4097") == "l1_vcpus must be an integer from 1 to 4096, got '4097'")
    #expect(message("l2_vcpus=two") == "l2_vcpus must be an integer from 1 to 1048576, got 'two'")
    #expect(message("migration_rate=1.5") == "migration_rate must be a number from 0 to 1, got '1.5'")
    #expect(message("migration_rate=nan") == "migration_rate must be a number from 0 to 1, got 'nan'")
    #expect(message("entries_per_switch=0.5") == "entries_per_switch must be a number from 1 to 1000000, got '0.5'")
    #expect(message("scheduler=fifo") == "scheduler must be one of round-robin, random, zipf, pinned, got 'fifo'")
    #expect(message("isa=arm") == "isa must be one of vmx, svm, got 'arm'")
    #expect(message("vmclear_on_migrate=maybe") == "vmclear_on_migrate must be true or false, got 'maybe'")
    #expect(message("seed=-1") == "seed must be an unsigned 64-bit integer (decimal or 0x hex), got '-1'")
    #expect(message("vm=bad name") == "vm must match [A-Za-z0-9_.:-]{1,64}, got 'bad name'")
    #expect(message("duration_s=0") == "duration_s must be a number above 0 and at most 31536000.0, got '0'")
    #expect(message("l1_vcpus") == "bad setting 'l1_vcpus' in 'l1_vcpus' (expected key=value)")
    #expect(message("events=5,,seed=1") == "bad setting '' in 'events=5,,seed=1' (expected key=value)")
    for (key, good) in [("events", "0"), ("zipf_s", "0"), ("switch_rate_hz", "0.5"), ("memory_mib", "1")] {
        #expect(message("\(key)=\(good)") == nil, "\(key)=\(good)")
    }
}

@Test func badPresetAndSelftestKeys() {
    #expect(throws: TraceError(.usage, file: "",
        "unknown preset 'nope' (known: selftest-migrate, selftest-sched, microvm-dense, cloud-mixed, thrash)")) {
        _ = try WorkloadSpec.preset(named: "nope")
    }
    #expect(throws: TraceError(.usage, file: "",
        "unknown selftest key 'l2_vcpus' (known: n, s, vm, memory_mib, pages_per_context)")) {
        var spec = try WorkloadSpec.preset(named: "selftest-sched")
        try spec.set("l2_vcpus", "3")
    }
    #expect(throws: TraceError(.usage, file: "", "n must be an integer from 1 to 4096, got '0'")) {
        var spec = try WorkloadSpec.preset(named: "selftest-sched")
        try spec.apply(assignment: "n=0")
    }
}

/// A copy of a simulator mid-stream goes on independently: its per-vCPU state (one shared
/// allocation until a batch writes it) is copied on write.
@Test func aCopyGoesOnIndependently() throws {
    var a = Simulator(try sim("l1_vcpus=4,l2_vcpus=12,scheduler=random,entries_per_switch=2,events=5000"))
    var batch: [Event] = []
    _ = try a.next(into: &batch, limit: 1000)
    var b = a
    var fromA: [Event] = []
    while try a.next(into: &batch, limit: 300) { fromA += batch }
    var fromB: [Event] = []
    while try b.next(into: &batch, limit: 700) { fromB += batch }
    #expect(fromA.count == 4000 && fromA == fromB)
}
