import NestCacheCore
import Testing

@testable import NestCacheWorkload

@Test func textChartPlacesMarkersAndFitsWidth() {
    // Three points: 0% and 100% for '*', 50% everywhere for 'o'; they never meet.
    let chart = TextChart(xLabels: ["0", "1", "2"], xName: "K", series: [
        .init(marker: "*", name: "a", values: [0, 1, nil]),
        .init(marker: "o", name: "b", values: [0.5, 0.5, 0.5]),
    ]).render(width: 72)
    #expect(chart.allSatisfy { $0.count <= 72 })
    #expect(chart.count == TextChart.steps + 4)
    // Row 0 is 100%: only the '*' at x = 1. Row 5 is 50%: three 'o'. Row 10 is 0%: the '*' at x = 0.
    #expect(chart[0].hasPrefix("100% |") && chart[0].filter { $0 == "*" }.count == 1)
    #expect(chart[5].hasPrefix(" 50% |") && chart[5].filter { $0 == "o" }.count == 3)
    #expect(chart[10].hasPrefix("  0% |") && chart[10].filter { $0 == "*" }.count == 1)
    // Two series on the same cell: '#'.
    let both = TextChart(xLabels: ["1"], xName: "R", series: [
        .init(marker: "*", name: "a", values: [1]), .init(marker: "o", name: "b", values: [1]),
    ]).render()
    #expect(both[0].contains("#") && !both[0].contains("*"))
    // Many points still fit: 64 labels.
    let wide = TextChart(xLabels: (0..<64).map(String.init), xName: "K", series: [
        .init(marker: "*", name: "a", values: (0..<64).map { Double($0) / 63 }),
    ]).render(width: 72)
    #expect(wide.allSatisfy { $0.count <= 72 }, "\(wide.joined(separator: "\n"))")
}
