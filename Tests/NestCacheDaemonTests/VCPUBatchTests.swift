@testable import NestCacheDaemon
import NestCacheCore
import NestCacheWorkload
import Testing

/// `VCPUBatch`: what the feeder works out once per batch (each vCPU's chain, migration flags,
/// switches) gives each vCPU exactly its events in order, with the flags `SwitchTracker` gives
/// event by event.
@Suite struct VCPUBatchTests {
    static func event(_ vcpu: UInt16, _ op: TraceOp, _ gpa: UInt64, vm: Int32 = 3) -> Event {
        Event(timeNs: 0, vm: vm, vcpu: vcpu, op: op, gpa: GPA(gpa))
    }

    /// The type's diagram: a0 b0 a1 c0 b1 a2 (a, b, c = vCPUs 0, 1, 2).
    ///   a0 load G1   switch                      b0 load G2   switch
    ///   a1 enter G1  G1 is a's current: none     c0 load G1   switch; G1's last switcher a: migration
    ///   b1 clear G2  b's current is now none     a2 load G2   switch; G2's last switcher b: migration
    @Test func handWorkedBatch() {
        let (g1, g2): (UInt64, UInt64) = (0x1000, 0x2000)
        let stream = [Self.event(0, .load, g1), Self.event(1, .load, g2), Self.event(0, .enter, g1),
                      Self.event(2, .load, g1), Self.event(1, .clear, g2), Self.event(0, .load, g2)]
        let batch = VCPUBatch()
        batch.stream = stream
        var tracker = SwitchTracker()
        batch.fill(tracker: &tracker)
        #expect(batch.runs.map(\.vcpu) == [0, 1, 2])
        #expect(batch.runs.map(\.first) == [0, 1, 3])
        #expect(batch.runs.map(\.count) == [3, 2, 1])
        let want: [[(Int, Bool)]] = [[(0, false), (2, false), (5, true)], [(1, false), (4, false)], [(3, true)]]
        for (run, want) in zip(batch.runs, want) {
            batch.withRun(run) { events, flags in
                #expect(events.map(\.vm) == Array(repeating: 0, count: want.count), "vCPU \(run.vcpu): VM index 0")
                #expect(events.map(\.gpa) == want.map { stream[$0.0].gpa }, "vCPU \(run.vcpu)")
                #expect(events.map(\.op) == want.map { stream[$0.0].op }, "vCPU \(run.vcpu)")
                #expect(Array(flags) == want.map(\.1), "vCPU \(run.vcpu)")
            }
        }
        #expect(batch.switches == [.init(gpa: GPA(g1), vcpu: 0), .init(gpa: GPA(g2), vcpu: 1),
                                   .init(gpa: GPA(g1), vcpu: 2), .init(gpa: GPA(g2), vcpu: 0)])
    }

    /// Random batches of shrinking and growing sizes through one reused batch: every vCPU gets
    /// its events in stream order, with the per-event tracker's flags, and the switches are the
    /// window's.
    @Test(arguments: [UInt64(1), 2, 3, 4])
    func randomBatchesEqualTheEventByEventSplit(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let batch = VCPUBatch()
        var tracker = SwitchTracker()
        var reference = SwitchTracker()
        var window = SwitchWindow(capacity: 1 << 16)
        var fed = SwitchWindow(capacity: 1 << 16)
        for size in [500, 37, 1, 900, 0, 64, 2000, 5] {
            let stream = (0..<size).map { _ in
                Self.event(UInt16(rng.next() % 7), TraceOp.allCases[Int(rng.next() % 3)], 0x1000 * (1 + rng.next() % 9))
            }
            let flags = stream.map { reference.isMigration(vcpu: Int($0.vcpu), op: $0.op, gpa: $0.gpa) }
            window.record(stream)
            batch.stream = stream
            batch.fill(tracker: &tracker)
            fed.record(switches: batch.switches, events: batch.count, vcpus: batch.runs.map(\.vcpu))
            #expect(batch.runs.reduce(0) { $0 + $1.count } == size)
            #expect(Set(batch.runs.map(\.vcpu)).count == batch.runs.count)
            for run in batch.runs {
                let mine = stream.indices.filter { Int(stream[$0].vcpu) == run.vcpu }
                #expect(run.first == Int32(mine[0]))
                batch.withRun(run) { events, got in
                    #expect(events.map(\.gpa) == mine.map { stream[$0].gpa }, "seed \(seed) size \(size) vCPU \(run.vcpu)")
                    #expect(events.map(\.op) == mine.map { stream[$0].op })
                    #expect(events.allSatisfy { Int($0.vcpu) == run.vcpu && $0.vm == 0 })
                    #expect(Array(got) == mine.map { flags[$0] }, "seed \(seed) size \(size) vCPU \(run.vcpu)")
                }
            }
            #expect(fed.switches == window.switches && fed.switchesSeen == window.switchesSeen)
            #expect(fed.eventsSeen == window.eventsSeen && fed.seenVCPUs == window.seenVCPUs)
        }
    }
}
