import NestCacheCore

/// `nestcache compare`: one row per policy over the same stream (DESIGN §9).
public struct CompareReport: Sendable {
    public struct Row: Sendable {
        public var policy: PolicySpec
        public var stats: StatsSnapshot
    }

    public enum Format: String, Sendable, CaseIterable { case table, json, csv, markdown }

    public var rows: [Row]
    public var cost: CostModel
    public var figures: [(name: String, value: UInt64)]
    /// The reader's lines of unused events per name (ftrace input), or nil.
    public var skippedEvents: EventCounts?

    public init(
        engines: [any PolicyEngine], cost: CostModel, figures: [(name: String, value: UInt64)],
        skippedEvents: EventCounts? = nil
    ) {
        self.rows = engines.map { Row(policy: $0.spec, stats: $0.totals) }
        self.cost = cost
        self.figures = figures
        self.skippedEvents = skippedEvents
    }

    /// Column keys, in output order.
    public static let columns = [
        "policy", "switches", "hit_ratio", "misses", "recycles", "uncached", "steals",
        "map_unmap_pages_per_1k_entries", "peak_mapped_pages", "exposure", "overhead_ns_per_entry",
    ]
    /// Headers for people.
    static let headers = [
        "policy", "switches", "hit ratio", "misses", "recycles", "uncached", "steals",
        "(un)map pages/1k entries", "peak mapped pages", "exposure", "overhead ns/entry",
    ]

    static func perEntry(_ x: Double, _ entries: UInt64) -> Double? {
        entries == 0 ? nil : x / Double(entries)
    }

    func values(_ r: Row) -> [JSON] {
        let c = r.stats.counters
        let pagesMoved = Double(c.mapPages + c.unmapPages)
        return [
            .string(r.policy.description), .uint(c.switches), .number(r.stats.hitRatio), .uint(c.misses),
            .uint(c.recycles), .uint(c.uncached), .uint(c.steals),
            .number(Self.perEntry(pagesMoved * 1000, c.entries)), .uint(r.stats.gauges.peakMappedPages),
            .number(r.stats.exposure), .number(Self.perEntry(r.stats.overheadNs(cost), c.entries)),
        ]
    }

    public func render(_ format: Format) -> String {
        switch format {
        case .json: return json.serialized() + "\n"
        case .csv:
            var out = Self.columns.joined(separator: ",") + "\n"
            for r in rows { out += values(r).map(Self.plain).joined(separator: ",") + "\n" }
            return out
        case .markdown:
            var out = "| " + Self.headers.joined(separator: " | ") + " |\n"
            out += "|" + Self.headers.indices.map { $0 == 0 ? " --- |" : " ---: |" }.joined() + "\n"
            for r in rows { out += "| " + humanValues(r).joined(separator: " | ") + " |\n" }
            return out
        case .table:
            return TextTable.render([Self.headers] + rows.map(humanValues))
        }
    }

    public var json: JSON {
        .object([
            ("cost_model", .object([("map_ns", .double(cost.mapNs)), ("unmap_ns", .double(cost.unmapNs)), ("lookup_ns", .double(cost.lookupNs))])),
            ("policies", .array(rows.map { r in .object(Array(zip(Self.columns, values(r)))) })),
        ] + figures.map { ($0.name, JSON.uint($0.value)) } + skippedEventsMembers(skippedEvents))
    }

    /// CSV cell: JSON scalars without quotes; null as empty.
    static func plain(_ v: JSON) -> String {
        switch v {
        case .null: ""
        case .string(let s): s
        default: v.serialized()
        }
    }

    /// Cells for people: hit ratio and exposure as percentages, other fractions to 0.01, null as -.
    func humanValues(_ r: Row) -> [String] {
        values(r).enumerated().map { TextTable.human(column: Self.columns[$0], $1) }
    }
}
