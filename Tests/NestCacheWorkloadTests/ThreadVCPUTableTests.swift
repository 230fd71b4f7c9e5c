@testable import NestCacheWorkload
import Testing

@Suite struct ThreadVCPUTableTests {
    /// Random pids, many colliding in a small table that grows, against a Dictionary, with the
    /// invariants after every operation.
    @Test(arguments: [UInt64(1), 2, 3])
    func agreesWithADictionary(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var table = ThreadVCPUTable(capacity: 2)
        var model: [Int32: UInt16] = [:]
        for _ in 0..<5000 {
            // Pids from a small range (repeats, the last-pid cache) and a wide one (growth).
            let pid = Int32(rng.next() % 2 == 0 ? rng.next() % 40 : rng.next() % 100_000)
            if rng.next() % 3 == 0 {
                let v = UInt16(truncatingIfNeeded: rng.next())
                table.set(pid, v)
                model[pid] = v
            } else {
                #expect(table.vcpu(of: pid) == model[pid], "pid \(pid)")
            }
            table.checkInvariants()
        }
        #expect(table.count == model.count)
        for (pid, v) in model { #expect(table.vcpu(of: pid) == v) }
    }
}
