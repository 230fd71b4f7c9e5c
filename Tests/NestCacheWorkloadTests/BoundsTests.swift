import NestCacheCore
import Testing

@testable import NestCacheWorkload

// `nestcache bounds` end to end (DESIGN §11): `Bounds.run` against the engine's replays and the
// independent oracles of BoundsOracles.swift, on seeded random streams (seed in every message).

/// Bounds with every invariant checked after every switch.
func checkedBounds(kmax: Int, ratios: [Int], memoryRecords: Int = 1 << 20, chunkRecords: Int = 1 << 16) throws -> Bounds {
    var b = try Bounds(kmax: kmax, ratios: ratios)
    b.checksInvariants = true
    b.memoryRecords = memoryRecords
    b.chunkRecords = chunkRecords
    return b
}

@Test(arguments: 1...24)
func lruHitsEqualReplayOfEveryK(seed: UInt64) throws {
    let (registry, events) = randomTrace(seed: seed, events: 800, gpasPerVM: 7 + Int(seed % 5))
    let kmax = 6
    // Every third seed through the spill files, with chunks that do not divide the sequence.
    let bounds = try checkedBounds(kmax: kmax, ratios: [1, 2], memoryRecords: seed % 3 == 0 ? 0 : 1 << 20, chunkRecords: 5)
    let result = try bounds.run(ArraySource(registry: registry, events: events))
    #expect(result.vms.map(\.id) == registry.infos.map(\.id).sorted(), "seed \(seed)")
    for k in 0...kmax {
        let replay = replayHits(registry, events, .perVCPULRU(k: k))
        for (i, info) in registry.infos.enumerated() {
            let vm = try #require(result.vm(info.id), "seed \(seed)")
            #expect(vm.lruHits[k] == replay.hits[i], "seed \(seed) \(info.id) K=\(k): bounds \(vm.lruHits[k]), per-vcpu-lru:\(k) replay \(replay.hits[i])")
            #expect(vm.switches == replay.switches[i], "seed \(seed) \(info.id): switches")
            #expect(vm.l1VCPUs == replay.m[i], "seed \(seed) \(info.id): M")
        }
    }
}

@Test(arguments: 1...24)
func optimaEqualPlainBeladyAndBoundThePolicies(seed: UInt64) throws {
    let (registry, events) = randomTrace(seed: 1000 + seed, events: 900, vms: 2, gpasPerVM: 6 + Int(seed % 7), vcpusPerVM: 3)
    let kmax = 5
    let ratios = [1, 2, 3, 5]
    let result = try checkedBounds(kmax: kmax, ratios: ratios).run(ArraySource(registry: registry, events: events, batch: 64))
    let sequences = plainSwitchSequences(registry, events)
    let seen = plainSeenVCPUs(registry, events)
    for (i, info) in registry.infos.enumerated() {
        let vm = try #require(result.vm(info.id))
        let seq = sequences[i]
        let m = info.l1VCPUs ?? seen[i]
        #expect(vm.switches == UInt64(seq.count), "seed \(seed) \(info.id)")
        #expect(vm.l1VCPUs == m, "seed \(seed) \(info.id)")
        let vcpus = Set(seq.map(\.vcpu))
        for k in 0...kmax {
            let want = vcpus.map { v in plainBelady(seq.filter { $0.vcpu == v }.map(\.gpa), capacity: k + 1) }.reduce(0, +)
            #expect(vm.optVCPUHits[k] == UInt64(want), "seed \(seed) \(info.id) K=\(k): bounds \(vm.optVCPUHits[k]), plain Belady \(want)")
            #expect(vm.optVCPUHits[k] >= vm.lruHits[k], "seed \(seed) \(info.id) K=\(k): OPT below LRU")
            if k > 0 {
                #expect(vm.optVCPUHits[k] >= vm.optVCPUHits[k - 1] && vm.lruHits[k] >= vm.lruHits[k - 1], "seed \(seed) \(info.id) K=\(k): not monotone")
            }
        }
        for (j, r) in ratios.enumerated() {
            let want = plainBelady(seq.map(\.gpa), capacity: r * m)
            #expect(vm.optVMHits[j] == UInt64(want), "seed \(seed) \(info.id) R=\(r): bounds \(vm.optVMHits[j]), plain Belady \(want)")
            let table = replayHits(registry, events, .perVMTable(contextsPerVCPU: r)).hits[i]
            #expect(vm.optVMHits[j] >= table, "seed \(seed) \(info.id) R=\(r): OPT-VM \(vm.optVMHits[j]) below per-vm-table:\(r) \(table)")
            if j > 0 { #expect(vm.optVMHits[j] >= vm.optVMHits[j - 1], "seed \(seed) \(info.id) R=\(r): not monotone") }
            #expect(vm.optVMHits[j] <= vm.switches, "seed \(seed) \(info.id)")
        }
    }
}

@Test(arguments: 1...200)
func optimaOnTinyStreamsEqualExhaustiveSearch(seed: UInt64) throws {
    // One VM, two vCPUs, at most 4 GPAs, about a dozen switches: every decision can be tried.
    var rng = SplitMix64(seed: seed)
    var registry = VMRegistry()
    _ = registry.intern("tiny")
    let gpas = 2 + Int(rng.next() % 3)
    var events: [Event] = []
    for t in 0..<14 {
        let v = UInt16(rng.next() % 2)
        let g = GPA(0x1000 * (1 + rng.next() % UInt64(gpas)))
        events.append(Event(timeNs: UInt64(t), vm: 0, vcpu: v, op: rng.next() % 5 == 0 ? .clear : .load, gpa: g))
    }
    let result = try checkedBounds(kmax: 3, ratios: [1, 2]).run(ArraySource(registry: registry, events: events))
    let vm = try #require(result.vm("tiny"))
    let seq = plainSwitchSequences(registry, events)[0]
    let small = { (g: UInt64) in Int(g / 0x1000) }
    for k in 0...3 {
        let want = Set(seq.map(\.vcpu)).map { v in bruteForceOPT(seq.filter { $0.vcpu == v }.map { small($0.gpa) }, capacity: k + 1) }.reduce(0, +)
        #expect(vm.optVCPUHits[k] == UInt64(want), "seed \(seed) K=\(k): bounds \(vm.optVCPUHits[k]), exhaustive \(want); \(seq)")
    }
    for (j, r) in [1, 2].enumerated() {
        let want = bruteForceOPT(seq.map { small($0.gpa) }, capacity: r * vm.l1VCPUs)
        #expect(vm.optVMHits[j] == UInt64(want), "seed \(seed) R=\(r): bounds \(vm.optVMHits[j]), exhaustive \(want); \(seq)")
    }
}

@Test(arguments: [(0, 1), (0, 3), (4, 2), (50, 7), (1 << 20, 1 << 16)])
func spilledAndInMemoryRunsAgree(memoryRecords: Int, chunkRecords: Int) throws {
    let (registry, events) = randomTrace(seed: 77, events: 1500, vms: 3)
    let reference = try Bounds(kmax: 8, ratios: [1, 4]).run(ArraySource(registry: registry, events: events))
    #expect(!reference.spilled)
    let spilled = try checkedBounds(kmax: 8, ratios: [1, 4], memoryRecords: memoryRecords, chunkRecords: chunkRecords)
        .run(ArraySource(registry: registry, events: events))
    #expect(spilled.vms == reference.vms)
    #expect(spilled.spilled == (memoryRecords < 1 << 20))
}

// Hand-worked (DESIGN §2, §11), one VM declaring 2 L1 vCPUs, so M = 2:
//
//   v0 load a    switch 0: v0 a
//   v0 enter a   (a is current: no switch)
//   v0 load b    switch 1: v0 b
//   v0 clear b   (v0's current is dropped)
//   v0 load b    switch 2: v0 b   (a switch again, after the clear)
//   v1 load a    switch 3: v1 a   (a migrates)
//   v0 load a    switch 4: v0 a
//   v1 load b    switch 5: v1 b
//   v1 load a    switch 6: v1 a
//
// v0 switches to a b b a, v1 to a b a; the VM to a b b a a b a.
// LRU, position of each switch's GPA in its vCPU's list: v0: new, new, 0, 1; v1: new, new, 1.
//   K = 0: 1 hit (the switch back after the clear); K >= 1: 3.
// OPT per vCPU, 1 context: v0 a b b a: keep a or b, either way 1 hit; v1 a b a: b is never
//   needed again, so it is left out (bypass) and a hits: 1. K = 0: 2, one more than LRU.
//   2 contexts: v0 hits b and a (2), v1 hits a (1): K >= 1: 3.
// OPT for the VM, C = R * M = 2 or 4 holds both GPAs: every switch but the first to each: 5.
@Test func handWorkedTrace() throws {
    var registry = VMRegistry()
    registry.update(registry.intern("hand"), VMInfo(id: "hand", l1VCPUs: 2))
    let lines: [(UInt16, TraceOp, UInt64)] = [
        (0, .load, 0xa000), (0, .enter, 0xa000), (0, .load, 0xb000), (0, .clear, 0xb000), (0, .load, 0xb000),
        (1, .load, 0xa000), (0, .load, 0xa000), (1, .load, 0xb000), (1, .load, 0xa000),
    ]
    let events = lines.enumerated().map { Event(timeNs: UInt64($0), vm: 0, vcpu: $1.0, op: $1.1, gpa: GPA($1.2)) }
    let result = try checkedBounds(kmax: 2, ratios: [2, 1]).run(ArraySource(registry: registry, events: events))
    #expect(result.ratios == [1, 2])
    #expect(result.vms == [BoundsResult.VM(id: "hand", switches: 7, l1VCPUs: 2, lruHits: [1, 3, 3], optVCPUHits: [2, 3, 3], optVMHits: [5, 5])])
    #expect(result.json.serialized() == #"{"vms":{"hand":{"switches":7,"l1_vcpus":2,"lru_hits":[1,3,3],"opt_vcpu_hits":[2,3,3],"opt_vm_hits":{"1":5,"2":5}}}}"#)
}

@Test func declaredVMWithoutEventsHasZeros() throws {
    var registry = VMRegistry()
    registry.update(registry.intern("quiet"), VMInfo(id: "quiet", l1VCPUs: 3))
    _ = registry.intern("blank")
    let result = try Bounds(kmax: 1, ratios: [2]).run(ArraySource(registry: registry, events: []))
    #expect(result.vms == [
        BoundsResult.VM(id: "blank", switches: 0, l1VCPUs: 0, lruHits: [0, 0], optVCPUHits: [0, 0], optVMHits: [0]),
        BoundsResult.VM(id: "quiet", switches: 0, l1VCPUs: 3, lruHits: [0, 0], optVCPUHits: [0, 0], optVMHits: [0]),
    ])
    #expect(result.text.contains("vm quiet: 0 switches, M = 3 L1 vCPUs"))
}

@Test func boundsOfTheSelftestFollowDesign() throws {
    // selftest-sched with n = 12 L2 vCPUs on 1 L1 vCPU (M = 1), s = 4 rounds: the cycle
    // g1..g12 four times, 48 switches. Each GPA's reuse intervals are 12 switches long, so any
    // 12 consecutive ones hold at most c of the kept intervals with c contexts: with the 36
    // reuses cut into 3 such windows, no cache of c < 12 hits more than 3c; keeping g1..gc
    // throughout (bypassing the rest) hits exactly 3c. With c >= 12: every reuse, 36.
    // LRU of c < 12 on a cycle of 12 never hits (DESIGN §4's selftest; SweepTests).
    // opt_vcpu_hits[K] = 3(K + 1) up to 36; opt_vm_hits[8] = 24, which is per-vm-table:8's
    // DESIGN §4 count 8(s - 1): on this schedule the seed's table is optimal.
    var spec = try WorkloadSpec.preset(named: "selftest-sched")
    try spec.set("n", "12")
    let result = try Bounds(kmax: 12, ratios: [8, 12]).run(spec.makeSource())
    let vm = try #require(result.vms.first)
    #expect(vm.switches == 48 && vm.l1VCPUs == 1)
    #expect(vm.lruHits == Array(repeating: 0, count: 11) + [36, 36])
    let optimum: [UInt64] = (0...12).map { k in UInt64(min(36, 3 * (k + 1))) }
    #expect(vm.optVCPUHits == optimum)
    #expect(vm.optVMHits == [24, 36])
}

@Test func usageErrors() throws {
    #expect(throws: TraceError.self) { try Bounds(kmax: -1) }
    #expect(throws: TraceError.self) { try Bounds(kmax: PolicySpec.maxK + 1) }
    #expect(throws: TraceError.self) { try Bounds(ratios: []) }
    #expect(throws: TraceError.self) { try Bounds(ratios: [0]) }
    #expect(throws: TraceError.self) { try Bounds(ratios: [PolicySpec.maxContextsPerVCPU + 1]) }
    #expect(throws: TraceError.self) { try Bounds.parseRatios("1,,2") }
    #expect(throws: TraceError.self) { try Bounds.parseRatios("x") }
    #expect(try Bounds.parseRatios(" 4, 1 ,2") == [4, 1, 2])
    #expect(try Bounds(ratios: [16, 1, 4, 1]).ratios == [1, 4, 16])
    do {
        _ = try Bounds(kmax: 2000)
    } catch {
        #expect(error.exitCode == 64 && error.description.contains("--kmax"))
    }
}
