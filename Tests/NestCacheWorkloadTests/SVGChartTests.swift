import NestCacheCore
import Testing

@testable import NestCacheWorkload

@Test func svgChartMapsPointsIntoThePlot() {
    // x 0...10, y 0...1: (0, 0) is the plot's bottom-left corner, (10, 1) its top-right.
    let chart = SVGChart(title: "t", xLabel: "x", yLabel: "y",
                         xTicks: [.init(0, "0"), .init(10, "10")], yTicks: [.init(0, "0%"), .init(1, "100%")],
                         series: [.init(name: "s", points: [.init(0, 0), .init(10, 1)])])
    let svg = chart.svg()
    let left = SVGChart.left, bottom = SVGChart.height - SVGChart.bottom
    let right = SVGChart.width - SVGChart.right, top = SVGChart.top
    #expect(svg.contains("points=\"\(format6(left)),\(format6(bottom)) \(format6(right)),\(format6(top))\""), "\(svg)")
    // Nice ticks: 4300 / 4 = 1075 -> step 2000 (the first of 1, 2, 2.5, 5, 10 x 1000 >= 1075).
    #expect(SVGChart.niceTicks(upTo: 4300) { format6($0) }.map(\.value) == [0, 2000, 4000, 6000])
    #expect(SVGChart.niceTicks(upTo: 1) { format6($0) }.map(\.value) == [0, 0.25, 0.5, 0.75, 1])
}
