import NestCacheCore
import Testing

@testable import NestCacheWorkload

// MARK: - Text

@Test func wrapKeepsWordsAndWidth() {
    let lines = ReportData.wrap("aaa bbb ccc ddd", width: 7, indent: "  ")
    #expect(lines == ["aaa bbb", "  ccc", "  ddd"])
    // A word longer than a line is cut.
    #expect(ReportData.wrap(String(repeating: "x", count: 10), width: 4) == ["xxxx", "xxxx", "xx"])
    #expect(ReportData.wrap("", width: 4) == [""])
}

// MARK: - The whole report on the selftest (DESIGN §4 counts)

@Test func reportOnSelftestSchedHasTheDesignCounts() throws {
    // selftest-sched, n = 12, s = 4, one L1 vCPU: 48 switches, 48 entries.
    // per-vm-table:8: hits 8 · 3 = 24; per-vcpu-lru:K hits 0 for K + 1 < 12 (a cycle longer
    // than the LRU), 12 · 3 = 36 for K >= 11. The optima are Bounds' (tested there); here only
    // their order with the policies is checked.
    var report = Report(input: .workload(try WorkloadSpec.preset(named: "selftest-sched")))
    report.jobs = 1
    let data = try report.run()
    #expect(data.switches == 48)
    #expect(data.entries == 48)
    #expect(data.row(.perVMTable(contextsPerVCPU: 8))?.hits == 24)
    #expect(data.lruHits[3] == 0 && data.lruHits[11] == 36)
    for k in data.lruHits.indices { #expect(data.lruHits[k] <= data.optVCPUHits[k]) }
    for i in data.ratios.indices { #expect(data.tableHits[i] <= data.optVMHits[i]) }
    // R = 8 of a cycle of 12: the optimum also gets 24 (README), the table all of it.
    let i8 = try #require(data.ratios.firstIndex(of: 8))
    #expect(data.optVMHits[i8] == 24)
    #expect(data.readings.sharing.text.contains("per-vm-table:8 gets 100% of that shared optimum"), "\(data.readings.sharing.text)")
    // The exposure sweep: 6 ratios x 4 caching policies; the selftest declares no memory.
    #expect(data.exposure.count == 6 * 4)
    #expect(data.exposure.allSatisfy { $0.exposure == nil })
    #expect(data.readings.exposure.text.contains("guest memory not declared"))
    // Every line fits 72 columns; the four sections are there.
    let text = data.text
    for line in text.split(separator: "\n") { #expect(line.count <= ReportData.textWidth, "\(line)") }
    for title in ["1. Gain isolated", "2. Per-VM table", "3. Direct-map exposure", "4. Break-even"] {
        #expect(text.contains(title))
    }
}

@Test func htmlIsSelfContainedWithFourCharts() throws {
    var report = Report(input: .workload(try WorkloadSpec.preset(named: "selftest-migrate")))
    report.jobs = 1
    let data = try report.run()
    let html = data.html
    #expect(html.components(separatedBy: "<svg").count - 1 == 4)
    #expect(!html.contains("http://") && !html.contains("https://"))
    #expect(!html.contains("<script") && !html.contains("<link") && !html.contains("<img") && !html.contains("@import"))
    #expect(html.contains("prefers-color-scheme: dark"))
    // Standalone SVG names its namespace; each chart has its axis labels.
    for chart in data.charts {
        let svg = chart.svg(standalone: true)
        #expect(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
        #expect(svg.contains(htmlEscaped(chart.xLabel)) && svg.contains(htmlEscaped(chart.yLabel)))
        #expect(svg.hasSuffix("</svg>\n"))
    }
}

