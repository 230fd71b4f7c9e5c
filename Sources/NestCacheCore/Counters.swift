/// The counters of DESIGN §4 for one vCPU, or summed over a VM or a run.
///
/// Field order is the order of DESIGN §4 and of every output (`Counters.names`).
public struct Counters: Sendable, Equatable {
    public var events: UInt64 = 0
    public var loads: UInt64 = 0
    public var entries: UInt64 = 0
    public var clears: UInt64 = 0
    public var switches: UInt64 = 0
    public var hits: UInt64 = 0
    public var misses: UInt64 = 0
    public var allocs: UInt64 = 0
    public var recycles: UInt64 = 0
    public var uncached: UInt64 = 0
    public var steals: UInt64 = 0
    public var migrations: UInt64 = 0
    public var migrationHits: UInt64 = 0
    public var mapPages: UInt64 = 0
    public var unmapPages: UInt64 = 0

    public init() {}

    /// The JSON / Prometheus names, in DESIGN §4 order.
    public static let names = [
        "events", "loads", "entries", "clears", "switches", "hits", "misses", "allocs", "recycles",
        "uncached", "steals", "migrations", "migration_hits", "map_pages", "unmap_pages",
    ]

    /// The values in the order of `names`.
    public var values: [UInt64] {
        [events, loads, entries, clears, switches, hits, misses, allocs, recycles,
         uncached, steals, migrations, migrationHits, mapPages, unmapPages]
    }

    public static func += (a: inout Counters, b: Counters) {
        a.events &+= b.events
        a.loads &+= b.loads
        a.entries &+= b.entries
        a.clears &+= b.clears
        a.switches &+= b.switches
        a.hits &+= b.hits
        a.misses &+= b.misses
        a.allocs &+= b.allocs
        a.recycles &+= b.recycles
        a.uncached &+= b.uncached
        a.steals &+= b.steals
        a.migrations &+= b.migrations
        a.migrationHits &+= b.migrationHits
        a.mapPages &+= b.mapPages
        a.unmapPages &+= b.unmapPages
    }

    /// The identities of DESIGN §4 that involve counters only; nil when they hold, else which broke.
    public var brokenIdentity: String? {
        if hits &+ misses != switches { return "hits + misses != switches" }
        if allocs &+ recycles &+ uncached != misses { return "allocs + recycles + uncached != misses" }
        if loads &+ entries &+ clears != events { return "loads + entries + clears != events" }
        if migrationHits > hits { return "migration_hits > hits" }
        if steals > hits { return "steals > hits" }
        if migrations > switches { return "migrations > switches" }
        return nil
    }
}

/// The gauges of DESIGN §4, per VM (a total is the sum over VMs).
public struct Gauges: Sendable, Equatable {
    public var contexts: UInt64 = 0
    public var free: UInt64 = 0
    public var mappedPages: UInt64 = 0
    public var peakMappedPages: UInt64 = 0

    public init() {}

    public static let names = ["contexts", "free", "mapped_pages", "peak_mapped_pages"]
    public var values: [UInt64] { [contexts, free, mappedPages, peakMappedPages] }

    public static func += (a: inout Gauges, b: Gauges) {
        a.contexts &+= b.contexts
        a.free &+= b.free
        a.mappedPages &+= b.mappedPages
        a.peakMappedPages &+= b.peakMappedPages
    }
}

/// Nanosecond costs for `overhead_ns` (DESIGN §4).
///
/// The defaults are assumptions, not measurements, chosen to be the right order of magnitude for
/// x86-64 KVM: a `gfn_to_pfn_cache` refresh (hva lookup, get_user_pages-fast, a kmap that is free
/// with the direct map) costs a few hundred ns; its release (mark dirty, put page) somewhat less;
/// a hash or list lookup of a warm context a few tens. Where guest memory is *not* in the direct
/// map (guest_memfd without it), each map is a `memremap`/`vmap` and each unmap a TLB flush:
/// microseconds, so run with `--map-ns 2000 --unmap-ns 3000` for that case
/// (docs/DESIGN-NOTES.md).
public struct CostModel: Sendable, Equatable {
    public var mapNs: Double
    public var unmapNs: Double
    public var lookupNs: Double

    public init(mapNs: Double = 300, unmapNs: Double = 200, lookupNs: Double = 20) {
        self.mapNs = mapNs
        self.unmapNs = unmapNs
        self.lookupNs = lookupNs
    }

    public static let `default` = CostModel()
}

/// One VM's (or a run's) counters and gauges with what derives from them (DESIGN §4).
public struct StatsSnapshot: Sendable, Equatable {
    public var counters = Counters()
    public var gauges = Gauges()
    /// Bytes of guest memory, when known: the denominator of `exposure`.
    public var memoryBytes: UInt64?
    /// Whether switches are lookups (false only for map-per-entry).
    public var countsLookups = true

    public init() {}

    public var hitRatio: Double? {
        counters.switches == 0 ? nil : Double(counters.hits) / Double(counters.switches)
    }

    public var exposure: Double? {
        guard let m = memoryBytes, m > 0 else { return nil }
        return Double(gauges.peakMappedPages) * 4096 / Double(m)
    }

    public func overheadNs(_ cost: CostModel) -> Double {
        let lookups = countsLookups ? Double(counters.switches) : 0
        return Double(counters.mapPages) * cost.mapNs + Double(counters.unmapPages) * cost.unmapNs
            + lookups * cost.lookupNs
    }

    /// Sums counters and gauges; memory is summed only while every part knows it (and the sum
    /// fits: 4,096 VMs declaring `memory_mib=4294967296` overflow 64 bits, found by fuzzing the
    /// renderers; the total's exposure is then unknown, not a crash).
    public static func += (a: inout StatsSnapshot, b: StatsSnapshot) {
        a.counters += b.counters
        a.gauges += b.gauges
        if let x = a.memoryBytes, let y = b.memoryBytes, case (let sum, false) = x.addingReportingOverflow(y) {
            a.memoryBytes = sum
        } else {
            a.memoryBytes = nil
        }
        a.countsLookups = a.countsLookups && b.countsLookups
    }

    /// All identities of DESIGN §4 (counters and `map_pages - unmap_pages == mapped_pages`).
    public var brokenIdentity: String? {
        if let c = counters.brokenIdentity { return c }
        if counters.mapPages &- counters.unmapPages != gauges.mappedPages { return "map_pages - unmap_pages != mapped_pages" }
        if gauges.mappedPages > gauges.peakMappedPages { return "mapped_pages > peak_mapped_pages" }
        if gauges.free > gauges.contexts { return "free > contexts" }
        return nil
    }
}
