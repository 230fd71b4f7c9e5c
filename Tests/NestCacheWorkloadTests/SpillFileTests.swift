import Testing

@testable import NestCacheWorkload

// `SpillFile`: the records come back last first, in memory or through the temporary file,
// across chunk boundaries.

struct Pair: BitwiseCopyable, Equatable {
    var a: UInt64
    var b: UInt32
}

@Test(arguments: [(0, 1), (0, 4), (3, 2), (10, 7), (100, 3), (1000, 64)])
func recordsComeBackLastFirst(memoryRecords: Int, chunkRecords: Int) throws {
    for count in [0, 1, 2, 9, 10, 11, 57] {
        let file = SpillFile<Pair>(label: "test", memoryRecords: memoryRecords, chunkRecords: chunkRecords)
        let records = (0..<count).map { Pair(a: UInt64($0) * 0x1_0000_0001, b: UInt32(truncatingIfNeeded: ~$0)) }
        for r in records { try file.append(r) }
        #expect(file.count == count)
        #expect(file.isSpilled == (count > memoryRecords), "\(count) records, \(memoryRecords) in memory")
        var back: [Pair] = []
        try file.forEachReversed { back.append($0) }
        #expect(back == records.reversed(), "\(count) records, memory \(memoryRecords), chunk \(chunkRecords)")
        // A second reading gives the same.
        var again: [Pair] = []
        try file.forEachReversed { again.append($0) }
        #expect(again == back)
    }
}

@Test func anErrorFromTheBodyStopsTheReading() throws {
    let file = SpillFile<Pair>(label: "test", memoryRecords: 0, chunkRecords: 2)
    for i in 0..<5 { try file.append(Pair(a: UInt64(i), b: 0)) }
    var seen = 0
    #expect(throws: TraceError.self) {
        try file.forEachReversed { (_: Pair) throws(TraceError) in
            seen += 1
            if seen == 3 { throw TraceError(.io, file: "x", "stop") }
        }
    }
    #expect(seen == 3)
}
