import NestCacheCore

extension ReportData {
    /// The four charts of DESIGN §11, in order: hit ratio vs K (LRU and its optimum), hit ratio
    /// vs R (table and the shared optimum), overhead vs map+unmap cost, exposure vs L2:L1 ratio.
    public var charts: [SVGChart] { [hitRatioByKChart, hitRatioByRChart, overheadChart, exposureChart] }

    static func percentTicks() -> [SVGChart.Tick] {
        [0, 0.25, 0.5, 0.75, 1].map { SVGChart.Tick($0, format6($0 * 100) + "%") }
    }

    var hitRatioByKChart: SVGChart {
        let pts = { (hits: [UInt64]) in
            hits.enumerated().compactMap { k, h in ratio(h).map { SVGChart.Point(Double(k), $0) } }
        }
        let step = max(1, (kmax + 8) / 9)
        return SVGChart(
            title: "Hit ratio vs K: per-vCPU LRU and the per-vCPU optimum",
            xLabel: "K (per-vcpu-lru:K keeps K + 1 contexts per vCPU)", yLabel: "hit ratio",
            xTicks: stride(from: 0, through: max(0, kmax), by: step).map { SVGChart.Tick(Double($0), String($0)) },
            yTicks: Self.percentTicks(),
            series: [
                .init(name: "per-vcpu-lru:K", points: pts(lruHits)),
                .init(name: "OPT-vCPU (Belady, K + 1 per vCPU)", points: pts(optVCPUHits), dashed: true),
            ])
    }

    var hitRatioByRChart: SVGChart {
        // R evenly spaced by index (1, 2, 4, 8, 16 read as a log axis).
        let pts = { (hits: [UInt64]) in
            hits.enumerated().compactMap { i, h in ratio(h).map { SVGChart.Point(Double(i), $0) } }
        }
        return SVGChart(
            title: "Hit ratio vs R: per-VM table and the shared optimum",
            xLabel: "R (contexts per L1 vCPU; R x M for the VM)", yLabel: "hit ratio",
            xTicks: ratios.enumerated().map { SVGChart.Tick(Double($0), String($1)) },
            yTicks: Self.percentTicks(),
            series: [
                .init(name: "per-vm-table:R", points: pts(tableHits)),
                .init(name: "OPT-VM (Belady, R x M shared)", points: pts(optVMHits), dashed: true),
            ])
    }

    /// The largest map+unmap cost drawn: twice the model's, and at least 5,000 ns (the case
    /// without the direct map, DESIGN-NOTES).
    var overheadChartMaxCost: Double { max(5000, 2 * BreakEven.modelCost(cost)) }

    var overheadChart: SVGChart {
        let cmax = overheadChartMaxCost
        let lines = policies.compactMap { p in p.line.map { (p.policy.description, $0) } }
        let ymax = lines.map { $0.1.overhead(atCost: cmax) }.max() ?? 1
        var chart = SVGChart(
            title: "Overhead per nested entry vs map+unmap cost",
            xLabel: "c: ns to map one page and unmap it later", yLabel: "overhead, ns per entry",
            xTicks: SVGChart.niceTicks(upTo: cmax, count: 6) { format6($0) },
            yTicks: SVGChart.niceTicks(upTo: ymax) { format6($0) },
            series: lines.map { name, line in
                .init(name: name, points: [SVGChart.Point(0, line.overhead(atCost: 0)), SVGChart.Point(cmax, line.overhead(atCost: cmax))])
            })
        chart.marks = [SVGChart.Tick(BreakEven.modelCost(cost), "model: \(ReportReading.ns(BreakEven.modelCost(cost))) ns")]
        return chart
    }

    /// Exposure (% of guest memory) where every row knows the memory, else peak mapped pages.
    var exposureChart: SVGChart {
        var keys: [Int?] = []
        for row in exposure where !keys.contains(row.ratio) { keys.append(row.ratio) }
        let asShare = !exposure.isEmpty && exposure.allSatisfy { $0.exposure != nil }
        let value = { (row: ExposureRow) in asShare ? (row.exposure ?? 0) * 100 : Double(row.peakMappedPages) }
        let series = exposurePolicies.map { p in
            SVGChart.Series(name: p.description, points: exposure.filter { $0.policy == p }.compactMap { row in
                keys.firstIndex(of: row.ratio).map { SVGChart.Point(Double($0), value(row)) }
            })
        }
        let ymax = exposure.map(value).max() ?? 1
        return SVGChart(
            title: asShare ? "Direct-map exposure vs L2:L1 ratio" : "Peak mapped pages vs L2:L1 ratio",
            xLabel: keys.first == nil ? "the trace (one ratio)" : "L2 vCPUs per L1 vCPU",
            yLabel: asShare ? "peak mapped / guest memory, %" : "peak mapped pages (guest memory not declared)",
            xTicks: keys.enumerated().map { SVGChart.Tick(Double($0), $1.map { "\($0):1" } ?? "trace") },
            yTicks: SVGChart.niceTicks(upTo: ymax) { format6($0) + (asShare ? "%" : "") },
            series: series)
    }

    /// One self-contained page: inline CSS (light and dark), the text's tables and readings,
    /// the four SVG charts inline. It references no URL: no script, font, style or image.
    public var html: String {
        var s = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <meta name="color-scheme" content="light dark">
            <title>nestcache report</title>
            <style>
            :root{color-scheme:light dark;--fg:#1a1a1a;--bg:#ffffff;--muted:#555555;--rule:#dddddd;--accent:#0072b2}
            @media (prefers-color-scheme: dark){:root{--fg:#e6e6e6;--bg:#121212;--muted:#aaaaaa;--rule:#3a3a3a;--accent:#56b4e9}}
            body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,sans-serif}
            main{max-width:60rem;margin:0 auto;padding:1rem 1.5rem 3rem}
            h1{font-size:1.6rem;margin:.5rem 0}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid var(--rule)}
            .meta{color:var(--muted);margin:.2rem 0;overflow-wrap:anywhere}
            table{border-collapse:collapse;margin:.8rem 0;font-variant-numeric:tabular-nums}
            th,td{padding:.2rem .7rem;border-bottom:1px solid var(--rule);text-align:right}
            th:first-child,td:first-child{text-align:left}
            .reading{border-left:4px solid var(--accent);padding:.3rem .8rem;margin:1rem 0}
            figure{margin:1rem 0}svg{display:block;max-width:100%;height:auto}
            </style>
            </head>
            <body>
            <main>
            <h1>nestcache report</h1>

            """
        let R = ReportReading.self
        s += "<p class=\"meta\">input: \(htmlEscaped(input))</p>\n"
        s += "<p class=\"meta\">\(vms) VM\(vms == 1 ? "" : "s"), \(l1VCPUs) L1 vCPUs, \(switches) switches, \(entries) nested entries; cost model (assumed): map \(R.ns(cost.mapNs)) ns, unmap \(R.ns(cost.unmapNs)) ns per page, lookup \(R.ns(cost.lookupNs)) ns</p>\n"
        let c = charts
        s += section("1. Gain isolated from the switch to persistent mappings", [
            Self.table(isolationRows), reading(readings.isolation),
        ])
        s += section("2. Per-VM table vs per-vCPU LRU, with both optima", [
            figure(c[0]), Self.table(kRows), figure(c[1]), Self.table(rRows), reading(readings.sharing),
        ])
        s += section("3. Direct-map exposure as the L2:L1 ratio grows", [
            figure(c[3]), Self.table(exposureRows), reading(readings.exposure),
        ])
        s += section("4. Break-even map+unmap cost", [
            figure(c[2]), Self.table(breakEvenRows, headerRows: 2),
            "<p class=\"meta\">c: ns to map one page and unmap it later (\(R.pct(BreakEven.mapShare(cost))) of it the map); break-even: the c below which a policy saves under 1% of the baseline's overhead; saved: ns per entry at the model's c.</p>\n",
            reading(readings.breakEven),
        ])
        s += "</main>\n</body>\n</html>\n"
        return s
    }

    private func section(_ title: String, _ parts: [String]) -> String {
        "<section>\n<h2>\(htmlEscaped(title))</h2>\n" + parts.joined() + "</section>\n"
    }

    private func figure(_ chart: SVGChart) -> String { "<figure>\n" + chart.svg() + "</figure>\n" }

    private func reading(_ r: ReportReading.Reading) -> String {
        "<p class=\"reading\"><strong>Reading:</strong> \(htmlEscaped(r.text))</p>\n"
    }

    static func table(_ rows: [[String]], headerRows: Int = 1) -> String {
        var s = "<table>\n"
        for (i, row) in rows.enumerated() {
            let tag = i < headerRows ? "th" : "td"
            s += "<tr>" + row.map { "<\(tag)>\(htmlEscaped($0))</\(tag)>" }.joined() + "</tr>\n"
        }
        return s + "</table>\n"
    }
}
