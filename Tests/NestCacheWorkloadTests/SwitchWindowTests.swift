import NestCacheCore
import Testing

@testable import NestCacheWorkload

// `SwitchWindow` (nestcached's `show bounds`): the ring keeps the last `capacity` switches of the
// stream in order across wrap-arounds and chunk boundaries, and its bounds are `nestcache
// bounds`'s when nothing was dropped.

@Test(arguments: 1...12)
func switchWindowKeepsTheLastSwitchesInOrder(seed: UInt64) throws {
    let (registry, events) = randomTrace(seed: seed, events: 700)
    let sequences = plainSwitchSequences(registry, events)
    let seen = plainSeenVCPUs(registry, events)
    for capacity in [1, 2, 3, 7, 16, 50, 10_000] {
        for vm in 0..<registry.count {
            var window = SwitchWindow(capacity: capacity, chunkSize: 4)
            let mine = events.filter { Int($0.vm) == vm }
            // Batches of varying size, as the feeder hands them over.
            var i = 0
            var size = 1
            while i < mine.count {
                let end = min(mine.count, i + size)
                window.record(mine[i..<end])
                window.checkInvariants()
                i = end
                size = size % 9 + 1
            }
            let seq = sequences[vm]
            let want = seq.suffix(capacity).map { SwitchWindow.Switch(gpa: GPA($0.gpa), vcpu: UInt16($0.vcpu)) }
            let label = "seed \(seed) capacity \(capacity) vm \(vm)"
            #expect(window.switches == want, "\(label)")
            #expect(window.count == want.count && window.switchesSeen == UInt64(seq.count), "\(label)")
            #expect(window.eventsSeen == UInt64(mine.count) && window.seenVCPUs == seen[vm], "\(label)")
            #expect(window.isTruncated == (seq.count > capacity), "\(label)")
            for j in 0..<window.count { #expect(window[j] == want[j], "\(label) [\(j)]") }
        }
    }
}

@Test(arguments: 1...8)
func switchWindowBoundsEqualBoundsOfTheWholeStream(seed: UInt64) throws {
    let (registry, events) = randomTrace(seed: seed, events: 900)
    let full = try Bounds(kmax: 5, ratios: [1, 3]).run(ArraySource(registry: registry, events: events))
    for (vm, info) in registry.infos.enumerated() {
        var window = SwitchWindow(capacity: 4096, chunkSize: 16)
        window.record(events.filter { Int($0.vm) == vm })
        let result = try window.bounds(id: info.id, declaredL1VCPUs: info.l1VCPUs, kmax: 5, ratios: [1, 3])
        #expect(result.vms == [try #require(full.vm(info.id))], "seed \(seed) \(info.id)")
        #expect(!result.spilled)
    }
}

@Test func switchWindowBoundsOfATruncatedWindowStartCold() throws {
    // v0: a b a b a b, window 3: b a b, cold: the first b misses, a misses, the last b hits
    // with two contexts per vCPU (K = 1) and not with one.
    var window = SwitchWindow(capacity: 3)
    for (i, g) in [0xa000, 0xb000, 0xa000, 0xb000, 0xa000, 0xb000].enumerated() {
        window.record(Event(timeNs: UInt64(i), vm: 0, vcpu: 0, op: .load, gpa: GPA(UInt64(g))))
    }
    // A clear and a load of the same GPA: a switch again (DESIGN §2).
    window.record(Event(timeNs: 9, vm: 0, vcpu: 0, op: .clear, gpa: GPA(0xb000)))
    window.record(Event(timeNs: 10, vm: 0, vcpu: 0, op: .load, gpa: GPA(0xb000)))
    window.checkInvariants()
    #expect(window.switches.map(\.gpa.raw) == [0xa000, 0xb000, 0xb000])
    #expect(window.switchesSeen == 7 && window.isTruncated)
    let vm = try #require(try window.bounds(id: "t", declaredL1VCPUs: nil, kmax: 1, ratios: [1]).vms.first)
    #expect(vm.switches == 3 && vm.l1VCPUs == 1)
    #expect(vm.lruHits == [1, 1])  // the b after the clear is at stack position 0
    #expect(vm.optVCPUHits == [1, 1])
}

@Test func switchWindowGrowsLazily() {
    var window = SwitchWindow()
    #expect(window.memoryBytes == 0)
    for i in 0..<10 {
        window.record(Event(timeNs: 0, vm: 0, vcpu: 0, op: .load, gpa: GPA(UInt64(0x1000 * (i + 1)))))
    }
    window.checkInvariants()
    #expect(window.count == 10)
    // Room for a few dozen switches and their GPAs, not a chunk (4 KiB), let alone the whole
    // capacity (4 MiB).
    #expect(window.memoryBytes < 1024)
    for i in 0..<100_000 {
        window.record(Event(timeNs: 0, vm: 0, vcpu: 0, op: .load, gpa: GPA(UInt64(0x1000 * (i % 7 + 1)))))
    }
    window.checkInvariants()
    // The chunks of 100,010 records of 4 bytes (the last one whole), and 7 GPAs.
    let chunks = (window.count + SwitchWindow.defaultChunkSize - 1) / SwitchWindow.defaultChunkSize
    #expect(window.memoryBytes < chunks * SwitchWindow.defaultChunkSize * 4 + 4096)
}

@Test func switchWindowGivesBackTheIDsOfGPAsThatLeftIt() {
    // 40 distinct GPAs through a window of 5: only the GPAs of the kept switches stay interned,
    // and ids are reused (the invariants check uses and the table at every step).
    var window = SwitchWindow(capacity: 5, chunkSize: 2)
    for i in 0..<200 {
        let g = UInt64(0x1000 * (i % 40 + 1))
        window.record(Event(timeNs: 0, vm: 0, vcpu: UInt16(i % 3), op: .load, gpa: GPA(g)))
        window.checkInvariants()
    }
    let want: [SwitchWindow.Switch] = (195..<200).map { i in
        SwitchWindow.Switch(gpa: GPA(UInt64(0x1000 * (i % 40 + 1))), vcpu: UInt16(i % 3))
    }
    #expect(window.switches == want)
    #expect(window.memoryBytes < 1024)
}

@Test func switchWindowPacksASwitchInOneWord() {
    #expect(MemoryLayout<SwitchWindow.Switch>.stride == 8)
    for (gpa, vcpu) in [(UInt64(0), UInt16(0)), (0x1000, 1), ((1 << 52) - 0x1000, .max), (0xdead_b000, 4095)] {
        let s = SwitchWindow.Switch(gpa: GPA(gpa), vcpu: vcpu)
        #expect(s.gpa == GPA(gpa) && s.vcpu == vcpu)
    }
}
