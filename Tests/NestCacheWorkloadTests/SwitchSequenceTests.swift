import NestCacheCore
import Testing

@testable import NestCacheWorkload

// `SwitchSequence`: DESIGN §2's switches, and the keys it numbers GPAs with.

@Test func switchesFollowDesignSection2() throws {
    // v0 load a, v0 enter a, v0 load b, v0 clear b, v0 load b, v1 clear a, v0 load a, v1 load a
    //   switch     -          switch     -           switch     -          switch     switch
    // (v1's clear of a does not touch v0, whose current is b; a on v1 is a new key? no: same VM,
    // same GPA, same key.) Another VM's a is another key.
    var seq = SwitchSequence()
    let (a, b) = (GPA(0xa000), GPA(0xb000))
    let events: [(Int32, UInt16, TraceOp, GPA)] = [
        (0, 0, .load, a), (0, 0, .enter, a), (0, 0, .load, b), (0, 0, .clear, b), (0, 0, .load, b),
        (0, 1, .clear, a), (0, 0, .load, a), (0, 1, .load, a), (1, 0, .enter, a),
    ]
    var keys: [UInt32?] = []
    for (vm, v, op, g) in events { keys.append(try seq.apply(Event(timeNs: 0, vm: vm, vcpu: v, op: op, gpa: g))) }
    #expect(keys == [0, nil, 1, nil, 1, nil, 0, 0, 2])
    #expect(seq.count == 6)
    #expect(seq.vms.map(\.switches) == [5, 1])
    #expect(seq.vms.map(\.seenVCPUs) == [2, 1])
    #expect(seq.vmOfKey == [0, 0, 1] && seq.localOfKey == [0, 1, 0])
    #expect(seq.distinctGPAs(0) == 2 && seq.distinctGPAs(1) == 1 && seq.distinctGPAs(5) == 0)
}

@Test(arguments: 1...10)
func switchCountsEqualTheEngines(seed: UInt64) throws {
    let (registry, events) = randomTrace(seed: 40 + seed)
    var seq = SwitchSequence()
    for e in events { _ = try seq.apply(e) }
    let replay = replayHits(registry, events, .single)
    let plain = plainSwitchSequences(registry, events)
    for vm in 0..<seq.vms.count {
        #expect(seq.vms[vm].switches == replay.switches[vm], "seed \(seed) vm \(vm)")
        #expect(seq.vms[vm].switches == UInt64(plain[vm].count), "seed \(seed) vm \(vm)")
        #expect(seq.vms[vm].seenVCPUs == plainSeenVCPUs(registry, events)[vm], "seed \(seed) vm \(vm)")
    }
}
