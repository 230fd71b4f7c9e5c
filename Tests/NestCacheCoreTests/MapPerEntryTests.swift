import NestCacheCore
import Testing

@Suite struct MapPerEntryTests {
    @Test func pagesStayMappedUntilTheVCPUsNextEvent() {
        // P=5. v0 enter A: map 5. v1 enter A: map 5 (10 mapped, the peak; a migration). v0 load B:
        // v0's next event unmaps its 5. v0 clear B: nothing mapped on v0. v1 clear A: unmaps 5.
        // Every switch (v0 A, v1 A, v0 B) is a miss counted as uncached.
        let s = HandTrace(l1VCPUs: 2, pages: 5, ["0 enter 0x1000", "1 enter 0x1000", "0 load 0x2000", "0 clear 0x2000",
                                                 "1 clear 0x1000"]).run(.mapPerEntry)
        expectCounters(s, ["events": 5, "loads": 1, "entries": 2, "clears": 2, "switches": 3, "misses": 3, "uncached": 3,
                           "migrations": 1, "map_pages": 10, "unmap_pages": 10, "contexts": 0, "mapped_pages": 0,
                           "peak_mapped_pages": 10])
    }

    @Test func repeatedEntriesMapEveryTime() {
        // Three entries of A with no switch after the first: map 3 * 4, unmap 2 * 4, 4 still mapped.
        let s = HandTrace(l1VCPUs: 1, ["0 enter 0x1000", "0 enter 0x1000", "0 enter 0x1000"]).run(.mapPerEntry)
        expectCounters(s, ["events": 3, "entries": 3, "switches": 1, "misses": 1, "uncached": 1, "map_pages": 12,
                           "unmap_pages": 8, "mapped_pages": 4, "peak_mapped_pages": 4])
    }
}
