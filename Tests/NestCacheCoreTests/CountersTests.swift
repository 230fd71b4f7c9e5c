import Testing
@testable import NestCacheCore

@Suite struct CountersTests {
    /// DESIGN §4's names and order, which every output (JSON, Prometheus, tables) follows.
    @Test func namesAreDesignsInDesignsOrder() {
        #expect(Counters.names == ["events", "loads", "entries", "clears", "switches", "hits", "misses", "allocs",
                                   "recycles", "uncached", "steals", "migrations", "migration_hits", "map_pages", "unmap_pages"])
        #expect(Gauges.names == ["contexts", "free", "mapped_pages", "peak_mapped_pages"])
    }

    /// `values` and `+=` walk a row as words, right only because every stored property is a field
    /// of the table, in table order (they trap otherwise).
    @Test func storedLayoutIsTheTable() {
        #expect(Counters.isWordsInTableOrder)
        #expect(Gauges.isWordsInTableOrder)
        #expect(Set(Counters.fields.map { MemoryLayout<Counters>.offset(of: $0.keyPath) }).count == Counters.fields.count)
    }

    /// Each field set alone shows up under its own name and nowhere else, so a key path listed
    /// under the wrong name fails here.
    @Test func eachFieldIsItsOwnWord() {
        for (i, f) in Counters.fields.enumerated() {
            var c = Counters()
            c[keyPath: f.keyPath] = 7
            #expect(c.values == Counters.fields.indices.map { $0 == i ? 7 : 0 }, "\(f.name)")
        }
        var c = Counters()
        c.migrationHits = 1
        c.unmapPages = 2
        #expect(c.values[Counters.names.firstIndex(of: "migration_hits")!] == 1)
        #expect(c.values[Counters.names.firstIndex(of: "unmap_pages")!] == 2)
    }

    @Test func sumIsFieldWiseAndWraps() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<100 {
            var a = Counters(), b = Counters(), want = Counters()
            for f in Counters.fields {
                let x = UInt64.random(in: 0...UInt64.max, using: &rng), y = UInt64.random(in: 0...UInt64.max, using: &rng)
                a[keyPath: f.keyPath] = x
                b[keyPath: f.keyPath] = y
                want[keyPath: f.keyPath] = x &+ y
            }
            a += b
            #expect(a == want)
        }
        var g = Gauges()
        g.peakMappedPages = 5
        var h = Gauges()
        h.peakMappedPages = 6
        h.free = 1
        g += h
        #expect(g.values == [0, 1, 0, 11])
    }

    @Test func namesAndHelpAreFilledAndUnique() {
        let names = Counters.names + Gauges.names
        #expect(Set(names).count == names.count)
        for f in Counters.fields { #expect(f.help.hasSuffix(".") && f.help.count > 8, "\(f.name)") }
        for f in Gauges.fields { #expect(f.help.hasSuffix(".") && f.help.count > 8, "\(f.name)") }
    }
}
