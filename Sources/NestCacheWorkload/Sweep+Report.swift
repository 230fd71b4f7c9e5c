import NestCacheCore

/// The output of `nestcache sweep`: one row per (ratio, policy), in the sweep's order.
///
/// Columns (keys of the JSON rows and the CSV header): `ratio`, `l1_vcpus`, `l2_vcpus` (null /
/// empty for trace files), `policy`, `switches`, `hits`, `hit_ratio`, `misses`, `recycles`,
/// `uncached`, `steals`, `map_unmap_pages_per_1k_entries` (`(map_pages + unmap_pages) * 1000 /
/// entries`), `peak_mapped_pages`, `exposure` (DESIGN §4; null when the memory is not known) and
/// `overhead_ns_per_entry` (the cost model's assumption, as in `compare`).
public struct SweepReport: Sendable {
    public enum Format: String, Sendable, CaseIterable { case table, csv, json, markdown }

    public var sweep: Sweep
    public var result: Sweep.Result
    public var cost: CostModel

    public init(sweep: Sweep, result: Sweep.Result, cost: CostModel) {
        self.sweep = sweep
        self.result = result
        self.cost = cost
    }

    /// Column keys, in output order.
    public static let columns = [
        "ratio", "l1_vcpus", "l2_vcpus", "policy", "switches", "hits", "hit_ratio", "misses", "recycles",
        "uncached", "steals", "map_unmap_pages_per_1k_entries", "peak_mapped_pages", "exposure",
        "overhead_ns_per_entry",
    ]
    /// Headers for people.
    static let headers = [
        "L2:L1", "L1 vCPUs", "L2 vCPUs", "policy", "switches", "hits", "hit ratio", "misses", "recycles",
        "uncached", "steals", "(un)map pages/1k entries", "peak mapped pages", "exposure",
        "overhead ns/entry",
    ]

    func values(_ r: Sweep.Row) -> [JSON] {
        let c = r.stats.counters
        let pagesMoved = Double(c.mapPages) + Double(c.unmapPages)
        let int = { (x: Int?) in x.map { JSON.int(Int64($0)) } ?? .null }
        return [
            int(r.ratio), int(r.l1VCPUs), int(r.l2VCPUs), .string(r.policy.description), .uint(c.switches),
            .uint(c.hits), .number(r.stats.hitRatio), .uint(c.misses), .uint(c.recycles), .uint(c.uncached),
            .uint(c.steals), .number(CompareReport.perEntry(pagesMoved * 1000, c.entries)),
            .uint(r.stats.gauges.peakMappedPages), .number(r.stats.exposure),
            .number(CompareReport.perEntry(r.stats.overheadNs(cost), c.entries)),
        ]
    }

    /// The workload before ratios were applied, for the JSON header; nil for trace files.
    var workloadDescription: String? {
        if case .workload(let w) = sweep.input { return w.description }
        return nil
    }

    public var json: JSON {
        var top: [(String, JSON)] = [
            ("cost_model", .object([
                ("map_ns", .double(cost.mapNs)), ("unmap_ns", .double(cost.unmapNs)),
                ("lookup_ns", .double(cost.lookupNs)),
            ])),
            ("pages_per_context", .int(Int64(sweep.pagesPerContext))),
        ]
        if let w = workloadDescription { top.append(("workload", .string(w))) }
        top.append(("rows", .array(result.rows.map { r in .object(Array(zip(Self.columns, values(r)))) })))
        for f in result.figures { top.append((f.name, .uint(f.value))) }
        top += skippedEventsMembers(result.skippedEvents)
        return .object(top)
    }

    public func render(_ format: Format) -> String {
        switch format {
        case .json:
            return json.serialized() + "\n"
        case .csv:
            var out = Self.columns.joined(separator: ",") + "\n"
            for r in result.rows { out += values(r).map(CompareReport.plain).joined(separator: ",") + "\n" }
            return out
        case .markdown:
            var out = "| " + Self.headers.joined(separator: " | ") + " |\n"
            out += "|" + Self.headers.indices.map { Self.columns[$0] == "policy" ? " --- |" : " ---: |" }.joined() + "\n"
            for r in result.rows { out += "| " + humanValues(r).joined(separator: " | ") + " |\n" }
            return out
        case .table:
            let policy = Set(Self.columns.indices.filter { Self.columns[$0] == "policy" })
            return TextTable.render([Self.headers] + result.rows.map(humanValues), leftAligned: policy)
        }
    }

    /// Cells for people: hit ratio and exposure as percentages, other fractions to 0.01, null as -.
    func humanValues(_ r: Sweep.Row) -> [String] {
        values(r).enumerated().map { TextTable.human(column: Self.columns[$0], $1) }
    }
}
