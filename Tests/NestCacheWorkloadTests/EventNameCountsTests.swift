import Testing

@testable import NestCacheWorkload

@Suite struct EventNameCountsTests {
    static func add(_ c: inout EventNameCounts, _ name: String) {
        var copy = name
        copy.withUTF8 { c.add($0) }
    }

    /// Runs and interleavings count the same; output is sorted by name, whatever the order seen.
    @Test func countsPerNameSortedByName() {
        var c = EventNameCounts()
        #expect(c.isEmpty)
        for name in ["kvm_fpu", "kvm_fpu", "sched:sched_switch", "kvm_msr", "kvm_fpu", "kvm_msr", "kvm_fp"] {
            Self.add(&c, name)
        }
        #expect(!c.isEmpty)
        #expect(c.sorted.map { "\($0.name)=\($0.count)" } == ["kvm_fp=1", "kvm_fpu=3", "kvm_msr=2", "sched:sched_switch=1"])
    }

    /// 1,000 names (the table grows from 64 slots several times), each seen k % 7 + 1 times,
    /// interleaved: every count survives the growth.
    @Test func growthKeepsEveryCount() {
        var c = EventNameCounts()
        for round in 0..<7 {
            for k in 0..<1000 where round <= k % 7 {
                Self.add(&c, "event_\(k)")
            }
        }
        let counts = Dictionary(uniqueKeysWithValues: c.sorted.map { ($0.name, $0.count) })
        #expect(counts.count == 1000)
        for k in 0..<1000 { #expect(counts["event_\(k)"] == UInt64(k % 7 + 1), "event_\(k)") }
    }

    /// Past `limit` distinct names, further names go to one overflow count (bounded memory).
    @Test func namesPastTheLimitAreCountedTogether() {
        var c = EventNameCounts()
        for k in 0..<(EventNameCounts.limit + 3) { Self.add(&c, "e\(k)") }
        Self.add(&c, "e0")
        let sorted = c.sorted
        #expect(sorted.count == EventNameCounts.limit + 1)
        #expect(sorted.last.map { "\($0.name)=\($0.count)" } == "\(EventNameCounts.overflowName)=3")
        #expect(sorted.first { $0.name == "e0" }?.count == 2)
    }
}
