import NestCacheCore
import Testing

@Suite struct PerVCPULRUTests {
    @Test func lruOrderRecyclesTheLeastRecentAndKeepsItsMapping() {
        // K=1 (2 ways). A alloc [A], enter maps A. B alloc [B A], enter maps B.
        // A hit [A B] (no map: A's context maps A). C: full -> recycle B's context [C' A];
        // C' still maps B until enter C: unmap 4, map 4. B: recycle A's [B' C'].
        let s = HandTrace(l1VCPUs: 1, ["0 enter 0x1000", "0 enter 0x2000", "0 enter 0x1000", "0 load 0x3000",
                                       "0 enter 0x3000", "0 load 0x2000"]).run(.perVCPULRU(k: 1))
        expectCounters(s, ["events": 6, "loads": 2, "entries": 4, "switches": 5, "hits": 1, "misses": 4, "allocs": 2,
                           "recycles": 2, "map_pages": 12, "unmap_pages": 4, "contexts": 2, "mapped_pages": 8,
                           "peak_mapped_pages": 8])
    }

    @Test func eachVCPUCachesForItselfAndClearDoesNothing() {
        // v0 and v1 both switch to A: two contexts, two misses, no steal; the second is a
        // migration without a hit. clear A on v0 drops v0's current only: load A again on v0 is a
        // switch and a hit (its list still files A).
        let s = HandTrace(l1VCPUs: 2, ["0 enter 0x1000", "1 enter 0x1000", "0 clear 0x1000", "0 load 0x1000"])
            .run(.perVCPULRU(k: 3))
        expectCounters(s, ["events": 4, "loads": 1, "entries": 2, "clears": 1, "switches": 3, "hits": 1, "misses": 2,
                           "allocs": 2, "migrations": 2, "migration_hits": 1, "map_pages": 8, "contexts": 2,
                           "mapped_pages": 8, "peak_mapped_pages": 8])
    }

    @Test func singleHitsAfterAClear() {
        // single = per-vcpu-lru:0. A alloc, maps. clear A drops current; load A is a switch and a
        // hit (the one context is still filed under A); enter maps nothing.
        let s = HandTrace(l1VCPUs: 1, ["0 load 0x1000", "0 enter 0x1000", "0 clear 0x1000", "0 load 0x1000",
                                       "0 enter 0x1000"]).run(.single)
        expectCounters(s, ["events": 5, "loads": 2, "entries": 2, "clears": 1, "switches": 2, "hits": 1, "misses": 1,
                           "allocs": 1, "map_pages": 4, "contexts": 1, "mapped_pages": 4, "peak_mapped_pages": 4])
    }

    @Test func singleRemapsWheneverTheEnteredGPAChanges() {
        // A, B, A on one vCPU with one context: 3 misses (1 alloc, 2 recycles), 3 maps, 2 unmaps.
        let s = HandTrace(l1VCPUs: 1, ["0 enter 0x1000", "0 enter 0x2000", "0 enter 0x1000"]).run(.single)
        expectCounters(s, ["events": 3, "entries": 3, "switches": 3, "misses": 3, "allocs": 1, "recycles": 2,
                           "map_pages": 12, "unmap_pages": 8, "contexts": 1, "mapped_pages": 4, "peak_mapped_pages": 4])
    }
}
