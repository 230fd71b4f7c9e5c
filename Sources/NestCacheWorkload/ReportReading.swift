import NestCacheCore

/// The one-line readings of `nestcache report`: rules with thresholds over the report's numbers,
/// never fixed prose. Each reading carries the figures it quotes (`Figure`), so the JSON has
/// every number the text shows. Pure functions of their arguments; thresholds are constants here
/// and in the JSON (`thresholds`).
public enum ReportReading {
    /// LRU at or above this share of the per-vCPU optimum: no smarter per-vCPU cache helps;
    /// the table at or above it of the shared optimum: it leaves little on the floor.
    public static let nearOptimal = 0.95
    /// Sharing across vCPUs worth at most this much hit ratio (1 point): a per-vCPU cache suffices.
    public static let negligibleGain = 0.01
    /// `single` giving at least this share of the table's page saving: persistent mappings are
    /// the gain; at most `1 - mostly`: the table is.
    public static let mostly = 0.9
    /// Exposure above this: "the majority of guest memory" (the review's words).
    public static let majority = 0.5
    /// Exposure below this: "under 1% of guest memory".
    public static let smallExposure = 0.01

    /// A number a reading quotes, under the JSON name it has there.
    public struct Figure: Sendable, Equatable {
        public var name: String
        public var value: Double
    }

    public struct Reading: Sendable, Equatable {
        public var text: String
        public var figures: [Figure]

        public init(_ text: String, _ figures: [Figure] = []) {
            self.text = text
            self.figures = figures
        }
    }

    public struct Readings: Sendable, Equatable {
        public var isolation = Reading("")
        public var sharing = Reading("")
        public var exposure = Reading("")
        public var breakEven = Reading("")
    }

    static func fig(_ name: String, _ value: Double) -> Figure { Figure(name: name, value: value) }

    /// All four readings of `data`.
    public static func readings(_ d: ReportData) -> Readings {
        let table = PolicySpec.perVMTable(contextsPerVCPU: d.r)
        var out = Readings()
        out.isolation = isolation(
            mapPerEntry: d.row(.mapPerEntry)?.pagesPer1kEntries, single: d.row(.single)?.pagesPer1kEntries,
            table: d.row(table)?.pagesPer1kEntries, tableName: table.description)
        let ri = d.ratios.firstIndex(of: d.r)
        out.sharing = sharing(
            k: d.k, r: d.r, switches: d.switches,
            lruK: d.lruHits[safe: d.k], optK: d.optVCPUHits[safe: d.k],
            lruR: d.lruHits[safe: d.r - 1], optVCPUR: d.optVCPUHits[safe: d.r - 1],
            optVMR: ri.flatMap { d.optVMHits[safe: $0] }, tableR: ri.flatMap { d.tableHits[safe: $0] })
        out.exposure = exposure(d.exposure, r: d.r, k: d.k)
        let be = d.breakEven.first { $0.policy == table }
        out.breakEven = breakEven(
            tableName: table.description, overSingle: be?.overSingle, overMapPerEntry: be?.overMapPerEntry,
            modelCost: BreakEven.modelCost(d.cost), lookupNs: d.cost.lookupNs)
        return out
    }

    // MARK: - 1. Gain isolated from persistent mappings

    /// From (un)map pages per 1,000 entries: the share of the table's saving over
    /// `map-per-entry` that `single` already gets.
    public static func isolation(mapPerEntry: Double?, single: Double?, table: Double?, tableName: String) -> Reading {
        guard let mpe = mapPerEntry, let single, let table else {
            return Reading("no nested entries: no page mapping to compare")
        }
        let total = mpe - table
        guard total > 0 else {
            return Reading(
                "\(tableName) moves no fewer pages than map-per-entry (\(n1(table)) vs \(n1(mpe)) per 1k entries): there is no gain to isolate",
                [fig("table_pages_per_1k_entries", table), fig("map_per_entry_pages_per_1k_entries", mpe)])
        }
        let f = (mpe - single) / total
        let figures = [fig("single_share_of_saving", f), fig("table_share_of_saving", 1 - f)]
        if f >= 1 {
            return Reading(
                "single alone moves no more pages than \(tableName) (\(n1(single)) vs \(n1(table)) per 1k entries): all of the gain is persistent mappings'",
                [fig("single_pages_per_1k_entries", single), fig("table_pages_per_1k_entries", table)])
        }
        if f >= mostly {
            return Reading("single alone gets \(pct(f)) of \(tableName)'s page saving: the gain is persistent mappings', not the table's", figures)
        }
        if 1 - f >= mostly {
            return Reading("single alone gets only \(pct(f)) of \(tableName)'s page saving: the gain is the table's, not persistent mappings'", figures)
        }
        return Reading("single alone gets \(pct(f)) of \(tableName)'s page saving, the table itself the other \(pct(1 - f))", figures)
    }

    // MARK: - 2. Per-VM table vs per-vCPU LRU, with both optima

    public static func sharing(
        k: Int, r: Int, switches: UInt64, lruK: UInt64?, optK: UInt64?, lruR: UInt64?, optVCPUR: UInt64?,
        optVMR: UInt64?, tableR: UInt64?
    ) -> Reading {
        guard switches > 0, let lruK, let optK, let lruR, let optVCPUR, let optVMR, let tableR else {
            return Reading("no switches: nothing to cache")
        }
        let s = Double(switches)
        let lru = "per-vcpu-lru:\(k)"
        let table = "per-vm-table:\(r)"
        var parts: [String] = []
        var figures: [Figure] = []
        if optK == 0 {
            parts.append("no cache of \(k + 1) context\(k == 0 ? "" : "s") per vCPU can hit at all")
        } else {
            let share = Double(lruK) / Double(optK)
            figures.append(fig("lru_share_of_opt_vcpu", share))
            if share >= nearOptimal {
                parts.append("\(lru) reaches \(pct(share)) of the per-vCPU optimum: no smarter per-vCPU cache helps")
            } else {
                let gap = Double(optK - min(optK, lruK)) / s
                figures.append(fig("lru_gap_to_opt_vcpu", gap))
                parts.append("\(lru) reaches only \(pct(share)) of the per-vCPU optimum (\(points(gap)) points below it)")
            }
        }
        let sharingGain = (Double(optVMR) - Double(optVCPUR)) / s
        figures.append(fig("sharing_gain", sharingGain))
        if sharingGain <= negligibleGain {
            parts.append("sharing contexts across vCPUs is worth at most \(points(sharingGain)) points at \(r) per vCPU: a per-vCPU cache of \(r) suffices")
        } else {
            parts.append("sharing contexts across vCPUs is worth up to \(points(sharingGain)) points at \(r) per vCPU")
        }
        if optVMR > 0 {
            let share = Double(tableR) / Double(optVMR)
            figures.append(fig("table_share_of_opt_vm", share))
            parts.append("\(table) gets \(share >= nearOptimal ? "" : "only ")\(pct(share)) of that shared optimum")
        }
        let vsLRU = (Double(tableR) - Double(lruR)) / s
        figures.append(fig("table_minus_lru_same_capacity", vsLRU))
        parts.append("\(points(abs(vsLRU))) points \(vsLRU >= 0 ? "above" : "below") per-vcpu-lru:\(r - 1) of the same capacity")
        return Reading(parts.joined(separator: "; "), figures)
    }

    // MARK: - 3. Direct-map exposure as the L2:L1 ratio grows

    public static func exposure(_ rows: [ReportData.ExposureRow], r: Int, k: Int) -> Reading {
        let table = PolicySpec.perVMTable(contextsPerVCPU: r)
        let lru = PolicySpec.perVCPULRU(k: k)
        let tableRows = rows.filter { $0.policy == table }
        guard let first = tableRows.first, let last = tableRows.last else { return Reading("no rows") }
        let lruLast = rows.last { $0.policy == lru && $0.ratio == last.ratio }
        var figures = [fig("table_peak_mapped_pages", Double(last.peakMappedPages))]
        var text: String
        if let ratio = last.ratio, let ratio0 = first.ratio {
            text = "\(table) keeps up to \(last.peakMappedPages) pages mapped at \(ratio):1"
            if ratio0 != ratio { text += " (\(first.peakMappedPages) at \(ratio0):1)" }
            figures.append(fig("table_peak_mapped_pages_first_ratio", Double(first.peakMappedPages)))
        } else {
            text = "\(table) keeps up to \(last.peakMappedPages) pages mapped"
        }
        if let l = lruLast {
            text += ", \(lru) \(l.peakMappedPages)"
            figures.append(fig("lru_peak_mapped_pages", Double(l.peakMappedPages)))
        }
        let worst = tableRows.compactMap(\.exposure).max()
        if let e = worst {
            figures.append(fig("table_max_exposure", e))
            let share = e >= majority ? "the majority of" : e >= smallExposure ? "over 1% of" : "under 1% of"
            text += "; at most \(pct4(e)) exposed: \(share) guest memory"
        } else {
            text += " (guest memory not declared: no exposure share)"
        }
        if let b = last.boundPages {
            figures.append(fig("table_bound_pages", Double(b)))
            text += "; capacity caps it at \(b) pages whatever the ratio"
            if let e = last.exposure, last.peakMappedPages > 0 {
                let boundExposure = e * Double(b) / Double(last.peakMappedPages)
                figures.append(fig("table_bound_exposure", boundExposure))
                text += " (\(pct4(boundExposure)))"
            }
        } else if last.ratio == nil {
            text += "; a trace is one L2:L1 ratio (simulate to sweep it)"
        }
        return Reading(text, figures)
    }

    // MARK: - 4. Break-even map cost

    public static func breakEven(
        tableName: String, overSingle: BreakEven.Outcome?, overMapPerEntry: BreakEven.Outcome?,
        modelCost: Double, lookupNs: Double
    ) -> Reading {
        guard let overSingle else { return Reading("no nested entries: no break-even") }
        var figures = [fig("model_map_unmap_ns", modelCost)]
        var text: String
        switch overSingle {
        case .never:
            text = "\(tableName) never saves 1% of single's overhead, whatever map+unmap costs"
        case .below(let c):
            figures.append(fig("break_even_over_single_ns", c))
            if c == 0 {
                text = "\(tableName) saves at least 1% of single's overhead at any map+unmap cost"
            } else if c >= modelCost {
                text = "at the modelled \(ns(modelCost)) ns per page \(tableName) already saves under 1% of single's overhead (break-even \(ns(c)) ns): the table does not matter"
            } else {
                let factor = modelCost / c
                figures.append(fig("speedup_needed", factor))
                figures.append(fig("lookup_ns", lookupNs))
                text = "\(tableName) saves 1% or more of single's overhead unless map+unmap costs under \(ns(c)) ns per page, \(n1(factor)) times less than the modelled \(ns(modelCost)) ns (lookups at \(ns(lookupNs)) ns)"
            }
        }
        if let c = overMapPerEntry?.cost {
            figures.append(fig("break_even_over_map_per_entry_ns", c))
            text += "; against map-per-entry under \(ns(c)) ns"
        } else if overMapPerEntry == .never {
            text += "; against map-per-entry it never saves 1%"
        }
        return Reading(text, figures)
    }

    // MARK: - Number formats shared by the report's text and HTML

    /// A share as a percentage to 0.1 (`97.3%`).
    public static func pct(_ x: Double) -> String { format6((x * 1000).rounded() / 10) + "%" }
    /// A share as a percentage to 0.0001 (exposure: `0.0031%`).
    public static func pct4(_ x: Double) -> String { format6((x * 1_000_000).rounded() / 10_000) + "%" }
    /// Hit-ratio points to 0.1.
    public static func points(_ x: Double) -> String { format6((x * 1000).rounded() / 10) }
    /// A number to 0.1.
    public static func n1(_ x: Double) -> String { format6((x * 10).rounded() / 10) }
    /// ns to 0.01.
    public static func ns(_ x: Double) -> String { format6((x * 100).rounded() / 100) }
}

extension Array {
    subscript(safe i: Int) -> Element? { indices.contains(i) ? self[i] : nil }
}
