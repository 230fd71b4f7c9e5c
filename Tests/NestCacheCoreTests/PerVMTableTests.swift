import NestCacheCore
import Testing

/// One hand-worked trace per rule of DESIGN §3 (per-vm-table); counts derived in the comments.
@Suite struct PerVMTableTests {
    @Test func stealTakesAContextAttachedToAnotherVCPU() {
        // v0 switches to A: miss, alloc. v1 switches to A: A is attached to v0 -> hit, steal;
        // v0 was A's last switcher -> migration, migration hit. v1's entry finds A mapped: no map.
        let s = HandTrace(l1VCPUs: 2, ["0 load 0x1000", "0 enter 0x1000", "1 load 0x1000", "1 enter 0x1000"])
            .run(.perVMTable(contextsPerVCPU: 8))
        expectCounters(s, ["events": 4, "loads": 2, "entries": 2, "switches": 2, "hits": 1, "misses": 1, "allocs": 1,
                           "steals": 1, "migrations": 1, "migration_hits": 1, "map_pages": 4,
                           "contexts": 1, "mapped_pages": 4, "peak_mapped_pages": 4])
    }

    @Test func hitOnOwnAttachedContextIsNoSteal() {
        // v0: A alloc, B alloc, A hit (attached to v0 itself: no steal, no migration).
        let s = HandTrace(l1VCPUs: 1, ["0 load 0x1000", "0 load 0x2000", "0 load 0x1000"]).run(.perVMTable(contextsPerVCPU: 8))
        expectCounters(s, ["events": 3, "loads": 3, "switches": 3, "hits": 1, "misses": 2, "allocs": 2, "contexts": 2])
    }

    @Test func recycleKeepsItsOldMappingUntilTheNextEntry() {
        // R=1, M=1: capacity 1. A: alloc, enter maps 4. clear A: detached, free=1.
        // load B: table full, free list head is A's context -> recycle, still mapping A (4 pages).
        let trace = HandTrace(l1VCPUs: 1, ["0 load 0x1000", "0 enter 0x1000", "0 clear 0x1000", "0 load 0x2000"])
        let afterLoad = trace.run(.perVMTable(contextsPerVCPU: 1))
        expectCounters(afterLoad, ["events": 4, "loads": 2, "entries": 1, "clears": 1, "switches": 2, "misses": 2,
                                   "allocs": 1, "recycles": 1, "map_pages": 4, "contexts": 1, "free": 0,
                                   "mapped_pages": 4, "peak_mapped_pages": 4])
        // enter B remaps it: unmap 4 (A), map 4 (B).
        var entered = trace
        entered.lines.append("0 enter 0x2000")
        let s = entered.run(.perVMTable(contextsPerVCPU: 1))
        expectCounters(s, ["events": 5, "loads": 2, "entries": 2, "clears": 1, "switches": 2, "misses": 2,
                           "allocs": 1, "recycles": 1, "map_pages": 8, "unmap_pages": 4, "contexts": 1,
                           "mapped_pages": 4, "peak_mapped_pages": 4])
        // A is no longer filed: switching back to it is a miss again (recycle needs a free context:
        // none, so uncached).
        entered.lines.append("0 load 0x1000")
        let back = entered.run(.perVMTable(contextsPerVCPU: 1))
        #expect(back.counters.hits == 0)
        #expect(back.counters.uncached == 1)
    }

    @Test func uncachedSwitchClobbersTheActiveContext() {
        // R=1, M=1. A: alloc (ctx0), enter maps A. B: full, no free -> uncached; v0 keeps ctx0,
        // enter B remaps it (unmap 4, map 4) though the table still files ctx0 under A.
        // A again: hit (filed), but ctx0 maps B -> enter A remaps (unmap 4, map 4).
        let s = HandTrace(l1VCPUs: 1, ["0 load 0x1000", "0 enter 0x1000", "0 load 0x2000", "0 enter 0x2000",
                                       "0 load 0x1000", "0 enter 0x1000"]).run(.perVMTable(contextsPerVCPU: 1))
        expectCounters(s, ["events": 6, "loads": 3, "entries": 3, "switches": 3, "hits": 1, "misses": 2, "allocs": 1,
                           "uncached": 1, "map_pages": 12, "unmap_pages": 8, "contexts": 1, "mapped_pages": 4,
                           "peak_mapped_pages": 4])
    }

    @Test func uncachedFirstSwitchGetsAFallbackContext() {
        // R=1, M=2 declared: capacity 2. v0: A, B -> alloc, alloc (full). v1: C -> uncached, and v1
        // has no active context: its entry makes a private fallback (contexts 3) and maps C.
        let s = HandTrace(l1VCPUs: 2, ["0 load 0x1000", "0 load 0x2000", "1 load 0x3000", "1 enter 0x3000"])
            .run(.perVMTable(contextsPerVCPU: 1))
        expectCounters(s, ["events": 4, "loads": 3, "entries": 1, "switches": 3, "misses": 3, "allocs": 2, "uncached": 1,
                           "map_pages": 4, "contexts": 3, "mapped_pages": 4, "peak_mapped_pages": 4])
    }

    @Test func clearOfAnUnknownGPAChangesNothing() {
        // clear B (never loaded): counted, no free-list change, v0's current stays A, so the next
        // enter A is no switch.
        let s = HandTrace(l1VCPUs: 1, ["0 load 0x1000", "0 enter 0x1000", "0 clear 0x2000", "0 enter 0x1000"])
            .run(.perVMTable(contextsPerVCPU: 8))
        expectCounters(s, ["events": 4, "loads": 1, "entries": 2, "clears": 1, "switches": 1, "misses": 1, "allocs": 1,
                           "map_pages": 4, "contexts": 1, "free": 0, "mapped_pages": 4, "peak_mapped_pages": 4])
    }

    @Test func clearFromAnotherVCPUDetachesButLeavesTheOwnersCurrent() {
        // v0 loads and enters A. v1 clears A: the kernel does not check the owner, so A's context
        // goes to the free list (free 1); v0's current is untouched: its next enter A is no switch.
        // A clear of an already detached context changes nothing (free stays 1).
        let s = HandTrace(l1VCPUs: 2, ["0 load 0x1000", "0 enter 0x1000", "1 clear 0x1000", "1 clear 0x1000",
                                       "0 enter 0x1000"]).run(.perVMTable(contextsPerVCPU: 8))
        expectCounters(s, ["events": 5, "loads": 1, "entries": 2, "clears": 2, "switches": 1, "misses": 1, "allocs": 1,
                           "map_pages": 4, "contexts": 1, "free": 1, "mapped_pages": 4, "peak_mapped_pages": 4])
    }

    @Test func hitOnAFreeContextTakesItOffTheFreeListFromTheMiddle() {
        // A, B, C allocated and cleared in order: free = [A B C]. Hit on B (middle) -> free [A C].
        // R=1, M=3 (declared): capacity 3, full. D: recycle head A -> free [C]. E: recycle C.
        // F: no free -> uncached.
        let s = HandTrace(l1VCPUs: 3, [
            "0 load 0x1000", "0 clear 0x1000", "0 load 0x2000", "0 clear 0x2000", "0 load 0x3000", "0 clear 0x3000",
            "0 load 0x2000", "0 load 0x4000", "0 load 0x5000", "0 load 0x6000", "0 load 0x1000",
        ]).run(.perVMTable(contextsPerVCPU: 1))
        // Switches: A B C B D E F A = 8. Hits: B. A at the end: recycled away -> uncached.
        expectCounters(s, ["events": 11, "loads": 8, "clears": 3, "switches": 8, "hits": 1, "misses": 7, "allocs": 3,
                           "recycles": 2, "uncached": 2, "contexts": 3, "free": 0])
    }

    @Test func capacityGrowsAsUndeclaredVCPUsAppear() {
        // R=1, M undeclared. v0: A alloc (M=1, C=1). v0: B -> full, uncached. v1: C -> M=2, C=2,
        // alloc. v0: D -> full, uncached. v2: D -> M=3, alloc (D is filed; v0 last switched to D,
        // so this switch is a migration, and a miss).
        let s = HandTrace(["0 load 0x1000", "0 load 0x2000", "1 load 0x3000", "0 load 0x4000", "2 load 0x4000"])
            .run(.perVMTable(contextsPerVCPU: 1))
        expectCounters(s, ["events": 5, "loads": 5, "switches": 5, "misses": 5, "allocs": 3, "uncached": 2,
                           "migrations": 1, "contexts": 3])
    }

    @Test func policySelftestTable() {
        // DESIGN §4: one L1 vCPU, N L2 vCPUs, S = 4 rounds, per-vm-table:8.
        let s = 4
        for n in 2...16 {
            for declared in [1, nil] as [Int?] {
                let gpas = (0..<n).map { "0x\(String(0x10_0000 + $0 * 0x1000, radix: 16))" }
                let migrate = (0..<s).flatMap { _ in gpas.flatMap { ["0 load \($0)", "0 enter \($0)", "0 clear \($0)"] } }
                let sched = (0..<s).flatMap { _ in gpas.flatMap { ["0 load \($0)", "0 enter \($0)"] } }
                let m = HandTrace(l1VCPUs: declared, migrate).run(.seed).counters
                let r = HandTrace(l1VCPUs: declared, sched).run(.seed).counters
                let N = UInt64(n), S = UInt64(s)
                if n <= 8 {
                    #expect(m.hits == N * (S - 1) && m.recycles == 0, "migrate N=\(n)")
                    #expect(r.hits == N * (S - 1) && r.recycles == 0 && r.uncached == 0, "sched N=\(n)")
                } else {
                    #expect(m.hits == 0 && m.recycles == N * S - 8, "migrate N=\(n): \(m)")
                    #expect(r.hits == 8 * (S - 1) && r.recycles == 0 && r.uncached == (N - 8) * S, "sched N=\(n): \(r)")
                }
                #expect(m.switches == N * S && r.switches == N * S)
            }
        }
    }
}
