/// One field of a row of `UInt64` counters (`Counters`, `Gauges`): the row's table of these is the
/// one place a field's name, meaning and storage are listed together. Names, arithmetic, JSON,
/// Prometheus (name and HELP) and the tests' checks all iterate the table.
public struct CounterField<Row>: Sendable {
    /// What a counter is a fact of. The stream's counters are the same under every policy.
    public enum Role: Sendable { case stream, decision, pages, gauge }

    /// The JSON and Prometheus name (DESIGN §4).
    public let name: String
    public let role: Role
    /// One sentence: the Prometheus HELP text.
    public let help: String
    public nonisolated(unsafe) let keyPath: WritableKeyPath<Row, UInt64>

    init(_ name: String, _ role: Role, _ keyPath: WritableKeyPath<Row, UInt64>, _ help: String) {
        self.name = name
        self.role = role
        self.keyPath = keyPath
        self.help = help
    }
}

/// A struct whose stored properties are exactly the `UInt64`s of its `fields` table.
///
/// Reading fields through key paths costs about a microsecond per row (measured: 1.19 µs for 15
/// fields against 2.7 ns for a loop over the words), and the daemon sums rows on every publish,
/// so arithmetic and `values` walk the row as words. That is right only while the stored layout is
/// the table's (every field a word, in table order): checked once per type, at the first use, and
/// by `CountersTests`.
public protocol CounterRow: Sendable, Equatable {
    static var fields: [CounterField<Self>] { get }
    /// The fields' names in table order, computed once (`static let names = fieldNames()`): a
    /// key path or closure over a generic `CounterField<Self>` built at every call cost 7 µs, a
    /// third of a 1,000-VM `replay --json`'s run.
    static var names: [String] { get }
    /// `wordLayoutMatchesFields()`, computed once (a `static let` in the conforming type).
    static var isWordsInTableOrder: Bool { get }
    init()
}

extension CounterRow {
    public static func fieldNames() -> [String] { fields.map { $0.name } }

    /// Whether the stored layout is one word per field, in table order.
    public static func wordLayoutMatchesFields() -> Bool {
        MemoryLayout<Self>.size == fields.count * 8
            && fields.indices.allSatisfy { MemoryLayout<Self>.offset(of: fields[$0].keyPath) == $0 * 8 }
    }

    /// The values in the order of `names`.
    public var values: [UInt64] {
        precondition(Self.isWordsInTableOrder, "\(Self.self)'s stored properties are not its fields table")
        return withUnsafeBytes(of: self) { Array($0.bindMemory(to: UInt64.self)) }
    }

    /// Field-wise sum, wrapping.
    public static func += (a: inout Self, b: Self) {
        precondition(isWordsInTableOrder, "\(Self.self)'s stored properties are not its fields table")
        withUnsafeMutableBytes(of: &a) { a in
            withUnsafeBytes(of: b) { b in
                let x = a.bindMemory(to: UInt64.self), y = b.bindMemory(to: UInt64.self)
                for i in x.indices { x[i] &+= y[i] }
            }
        }
    }
}

/// The counters of DESIGN §4 for one vCPU, or summed over a VM or a run.
///
/// The stored properties are `fields`, in the same order: DESIGN §4's, and every output's.
public struct Counters: CounterRow {
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

    public static let names = fieldNames()
    public static let isWordsInTableOrder = wordLayoutMatchesFields()
    public static let fields: [CounterField<Counters>] = [
        .init("events", .stream, \.events, "Events applied (load + enter + clear)."),
        .init("loads", .stream, \.loads, "VMPTRLD events."),
        .init("entries", .stream, \.entries, "Nested VM entries (VMLAUNCH/VMRESUME/VMRUN)."),
        .init("clears", .stream, \.clears, "VMCLEAR events."),
        .init("switches", .stream, \.switches, "Switches to another control block."),
        .init("hits", .decision, \.hits, "Switches served by a cached context."),
        .init("misses", .decision, \.misses, "Switches not served by a cached context."),
        .init("allocs", .decision, \.allocs, "Misses that allocated a new context."),
        .init("recycles", .decision, \.recycles, "Misses that recycled an existing context."),
        .init("uncached", .decision, \.uncached, "Misses that got no context."),
        .init("steals", .decision, \.steals, "Hits on a context attached to another vCPU."),
        .init("migrations", .stream, \.migrations, "Switches to a control block last switched to on another vCPU."),
        .init("migration_hits", .decision, \.migrationHits, "Migrations served by a cached context."),
        .init("map_pages", .pages, \.mapPages, "Guest pages mapped into the host."),
        .init("unmap_pages", .pages, \.unmapPages, "Guest pages unmapped from the host."),
    ]

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
public struct Gauges: CounterRow {
    public var contexts: UInt64 = 0
    public var free: UInt64 = 0
    public var mappedPages: UInt64 = 0
    public var peakMappedPages: UInt64 = 0

    public init() {}

    public static let names = fieldNames()
    public static let isWordsInTableOrder = wordLayoutMatchesFields()
    public static let fields: [CounterField<Gauges>] = [
        .init("contexts", .gauge, \.contexts, "Contexts that exist (tables, per-vCPU lists, fallbacks)."),
        .init("free", .gauge, \.free, "Contexts on the per-VM free list."),
        .init("mapped_pages", .gauge, \.mappedPages, "Guest pages mapped into the host right now."),
        .init("peak_mapped_pages", .gauge, \.peakMappedPages, "Highest mapped_pages after any event."),
    ]
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
