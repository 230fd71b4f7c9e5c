import NestCacheCore
import Testing

@testable import NestCacheWorkload

/// `VCPUSplit`: what the daemon's feeder works out once per batch (each vCPU's events, migration
/// flags, switches) gives each vCPU exactly its events in order, with the flags `SwitchTracker`
/// gives event by event; and the simulator's own split equals that general path.
@Suite struct VCPUSplitTests {
    static func event(_ vcpu: UInt16, _ op: TraceOp, _ gpa: UInt64, vm: Int32 = 3) -> Event {
        Event(timeNs: 0, vm: vm, vcpu: vcpu, op: op, gpa: GPA(gpa))
    }

    /// Each vCPU's events and flags, by vCPU, in the split's order of first appearance.
    static func runs(_ split: borrowing VCPUSplit) -> [(vcpu: Int, events: [Event], flags: [Bool])] {
        split.vcpus.map { v in split.withRun(v) { (v, Array($0), Array($1)) } }
    }

    /// A paced VM's split: after a whole first read, batches of a few events give the big buffer
    /// back (`shrinkIfOversized`), and the next batches are split as before; a batch that uses
    /// a quarter of the buffer or more keeps it.
    @Test func oversizedBufferIsGivenBack() {
        var split = VCPUSplit()
        var tracker = SwitchTracker()
        let big = (0..<256).map { Self.event(UInt16($0 % 8), .enter, 0x1000 * UInt64(1 + $0 % 5)) }
        big.withUnsafeBufferPointer { split.fill($0, tracker: &tracker) }
        split.shrinkIfOversized()
        #expect(split.count == 256 && split.bufferCapacity >= 256, "a full batch keeps its buffer")
        let small = [Self.event(3, .load, 0x9000), Self.event(5, .enter, 0x1000), Self.event(3, .enter, 0x9000)]
        small.withUnsafeBufferPointer { split.fill($0, tracker: &tracker) }
        split.shrinkIfOversized()
        #expect(split.count == 0 && split.vcpus.isEmpty && split.switches.isEmpty && split.bufferCapacity == 0)
        small.withUnsafeBufferPointer { split.fill($0, tracker: &tracker) }
        #expect(split.bufferCapacity < 64)
        let runs = Self.runs(split)
        #expect(runs.map(\.vcpu) == [3, 5])
        #expect(runs[0].events.map(\.gpa) == [GPA(0x9000), GPA(0x9000)] && runs[1].events.map(\.gpa) == [GPA(0x1000)])
        // vCPU 3 switched to 0x9000 in the batch before: the same vCPU again, no migration.
        #expect(runs[0].flags == [false, false] && runs[1].flags == [false])
    }

    /// a0 b0 a1 c0 b1 a2 (a, b, c = vCPUs 0, 1, 2).
    ///   a0 load G1   switch                      b0 load G2   switch
    ///   a1 enter G1  G1 is a's current: none     c0 load G1   switch; G1's last switcher a: migration
    ///   b1 clear G2  b's current is now none     a2 load G2   switch; G2's last switcher b: migration
    @Test func handWorkedBatch() {
        let (g1, g2): (UInt64, UInt64) = (0x1000, 0x2000)
        let stream = [Self.event(0, .load, g1), Self.event(1, .load, g2), Self.event(0, .enter, g1),
                      Self.event(2, .load, g1), Self.event(1, .clear, g2), Self.event(0, .load, g2)]
        var split = VCPUSplit()
        var tracker = SwitchTracker()
        stream.withUnsafeBufferPointer { split.fill($0, tracker: &tracker) }
        let runs = Self.runs(split)
        #expect(runs.map(\.vcpu) == [0, 1, 2])
        #expect(split.count == 6)
        let want: [[(Int, Bool)]] = [[(0, false), (2, false), (5, true)], [(1, false), (4, false)], [(3, true)]]
        for (run, want) in zip(runs, want) {
            #expect(run.events.map(\.vm) == Array(repeating: 0, count: want.count), "vCPU \(run.vcpu): VM index 0")
            #expect(run.events.map(\.gpa) == want.map { stream[$0.0].gpa }, "vCPU \(run.vcpu)")
            #expect(run.events.map(\.op) == want.map { stream[$0.0].op }, "vCPU \(run.vcpu)")
            #expect(run.flags == want.map(\.1), "vCPU \(run.vcpu)")
        }
        #expect(split.switches == [.init(gpa: GPA(g1), vcpu: 0), .init(gpa: GPA(g2), vcpu: 1),
                                   .init(gpa: GPA(g1), vcpu: 2), .init(gpa: GPA(g2), vcpu: 0)])
    }

    /// Random batches of shrinking and growing sizes through one reused split: every vCPU gets
    /// its events in stream order, with the per-event tracker's flags, and the switches are the
    /// window's.
    @Test(arguments: [UInt64(1), 2, 3, 4])
    func randomBatchesEqualTheEventByEventSplit(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var split = VCPUSplit()
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
            stream.withUnsafeBufferPointer { split.fill($0, tracker: &tracker) }
            fed.record(switches: split.switches, events: split.count, vcpus: split.vcpus)
            let runs = Self.runs(split)
            #expect(split.count == size && runs.reduce(0) { $0 + $1.events.count } == size)
            #expect(Set(runs.map(\.vcpu)).count == runs.count)
            for run in runs {
                let mine = stream.indices.filter { Int(stream[$0].vcpu) == run.vcpu }
                #expect(run.events.map(\.gpa) == mine.map { stream[$0].gpa }, "seed \(seed) size \(size) vCPU \(run.vcpu)")
                #expect(run.events.map(\.op) == mine.map { stream[$0].op })
                #expect(run.events.allSatisfy { Int($0.vcpu) == run.vcpu && $0.vm == 0 })
                #expect(run.flags == mine.map { flags[$0] }, "seed \(seed) size \(size) vCPU \(run.vcpu)")
            }
            #expect(runs.map(\.vcpu) == stream.map { Int($0.vcpu) }.reduce(into: []) { if !$0.contains($1) { $0.append($1) } })
            #expect(fed.switches == window.switches && fed.switchesSeen == window.switchesSeen)
            #expect(fed.eventsSeen == window.eventsSeen && fed.seenVCPUs == window.seenVCPUs)
        }
    }

    /// Per vCPU, its events and flags over a whole stream, and the switches, from batches.
    struct Collected: Equatable {
        var events: [Int: [Event]] = [:]
        var flags: [Int: [Bool]] = [:]
        var switches: [SwitchWindow.Switch] = []
        var count = 0

        mutating func add(_ split: borrowing VCPUSplit) {
            for run in VCPUSplitTests.runs(split) {
                events[run.vcpu, default: []] += run.events
                flags[run.vcpu, default: []] += run.flags
            }
            switches += split.switches
            count += split.count
        }
    }

    /// The simulator's split (`next(split:limit:)`) equals the stream of `next(into:limit:)` split
    /// by `VCPUSplit.fill` with a `SwitchTracker`, event for event (times included), flag for
    /// flag, switch for switch, over schedulers, VMX with and without VMCLEARs, SVM, and lengths
    /// that end inside a step; its batches are whole steps from `limit` on.
    @Test(arguments: [
        "preset:cloud-mixed", "preset:microvm-dense", "preset:thrash",
        "l1_vcpus=4,l2_vcpus=9,scheduler=round-robin,entries_per_switch=1,vmclear_on_switch=true",
        "l1_vcpus=6,l2_vcpus=20,scheduler=random,entries_per_switch=2,vmclear_on_migrate=false",
        "l1_vcpus=5,l2_vcpus=40,scheduler=zipf,entries_per_switch=3,isa=svm",
        "l1_vcpus=3,l2_vcpus=7,scheduler=pinned,migration_rate=0.3,entries_per_switch=1,isa=svm",
        "l1_vcpus=8,l2_vcpus=30,scheduler=pinned,migration_rate=0.2,entries_per_switch=1.5,vmclear_on_switch=true",
    ])
    func simulatorSplitEqualsTheGeneralPath(setting: String) throws {
        var spec: SimulationSpec
        if setting.hasPrefix("preset:"), case .simulate(let s) = try WorkloadSpec.preset(named: String(setting.dropFirst(7))) {
            spec = s
        } else {
            spec = try SimulationSpec(parsing: setting)
        }
        spec.length = .events(30_011)
        var streamed = Simulator(spec)
        var general = Collected()
        var split = VCPUSplit()
        var tracker = SwitchTracker()
        var batch: [Event] = []
        while try streamed.next(into: &batch, limit: 1000) {
            batch.withUnsafeBufferPointer { split.fill($0, tracker: &tracker) }
            general.add(split)
        }
        for limit in [1, 777, 4096] {
            var splitting = Simulator(spec)
            var direct = Collected()
            while splitting.next(split: &split, limit: limit) {
                #expect(split.count >= limit || direct.count + split.count == 30_011, "\(setting): a short batch before the end")
                #expect(split.count < limit + Simulator.maxEventsPerStep, "\(setting): more than a step past the limit")
                direct.add(split)
            }
            #expect(split.count == 0)
            #expect(direct.count == 30_011)
            #expect(direct == general, "\(setting), limit \(limit)")
            #expect(splitting.switches == streamed.switches && splitting.migrations == streamed.migrations)
        }
        // The simulator's figures also count the switch of a step the stream's end cut off.
        let migrations = UInt64(general.flags.values.joined().filter { $0 }.count)
        #expect((0...1).contains(streamed.switches - UInt64(general.switches.count)))
        #expect((0...1).contains(streamed.migrations - migrations))
    }
}
