/// A line chart drawn as SVG by the project: axes with labelled ticks, one polyline (and point
/// markers) per series, a legend, optional vertical marks. No script, no external font, style or
/// image: colours come from an inline `<style>` with light and dark variants
/// (`prefers-color-scheme`), so the same markup works inside the HTML page and as a file.
///
///     +--------------------------------------------+
///     | title                                      |
///     | -- series 1   - - series 2                 |
///     | y label |                                  |
///     |    100% |   *-----*-----*                  |
///     |     50% |  /                               |
///     |      0% +--+-----+-----+---                |
///     |           0     1     2                    |
///     |                x label                     |
///     +--------------------------------------------+
public struct SVGChart: Sendable {
    public struct Point: Sendable, Equatable {
        public var x: Double
        public var y: Double
        public init(_ x: Double, _ y: Double) { self.x = x; self.y = y }
    }

    public struct Series: Sendable {
        public var name: String
        public var points: [Point]
        /// Drawn dashed (the optimum curves).
        public var dashed: Bool
        public init(name: String, points: [Point], dashed: Bool = false) {
            self.name = name
            self.points = points
            self.dashed = dashed
        }
    }

    public struct Tick: Sendable, Equatable {
        public var value: Double
        public var label: String
        public init(_ value: Double, _ label: String) { self.value = value; self.label = label }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var xTicks: [Tick]
    public var yTicks: [Tick]
    public var series: [Series]
    /// Vertical lines with a label (e.g. the model's map cost).
    public var marks: [Tick] = []

    public static let width = 640.0
    public static let height = 380.0
    static let left = 72.0, right = 24.0, top = 72.0, bottom = 56.0
    /// Series colours, light then dark (Okabe-Ito, distinguishable with colour-blindness).
    static let colours = [("#0072b2", "#56b4e9"), ("#d55e00", "#ff9a5c"), ("#009e73", "#3fd1a0"),
                          ("#cc79a7", "#e7a3cc"), ("#8a6d00", "#f0c05a")]

    public init(title: String, xLabel: String, yLabel: String, xTicks: [Tick], yTicks: [Tick], series: [Series]) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.xTicks = xTicks
        self.yTicks = yTicks
        self.series = series
    }

    /// The x and y ranges: the ticks' extent (and the points', should one fall outside).
    var xRange: ClosedRange<Double> { Self.range(xTicks.map(\.value) + series.flatMap { $0.points.map(\.x) }) }
    var yRange: ClosedRange<Double> { Self.range(yTicks.map(\.value) + series.flatMap { $0.points.map(\.y) }) }

    static func range(_ values: [Double]) -> ClosedRange<Double> {
        let finite = values.filter(\.isFinite)
        let lo = finite.min() ?? 0, hi = finite.max() ?? 1
        return lo < hi ? lo...hi : (lo - 0.5)...(lo + 0.5)
    }

    /// The chart's markup. `standalone`: with the XML namespace, for an `.svg` file; inline in
    /// HTML the namespace is implied and left out (so the page names no URL at all).
    public func svg(standalone: Bool = false) -> String {
        let (w, h) = (Self.width, Self.height)
        let plotW = w - Self.left - Self.right, plotH = h - Self.top - Self.bottom
        let xr = xRange, yr = yRange
        let px = { (x: Double) in Self.left + (x - xr.lowerBound) / (xr.upperBound - xr.lowerBound) * plotW }
        let py = { (y: Double) in Self.top + plotH - (y - yr.lowerBound) / (yr.upperBound - yr.lowerBound) * plotH }
        var s = "<svg"
        if standalone { s += " xmlns=\"http://www.w3.org/2000/svg\"" }
        s += " class=\"nc-chart\" viewBox=\"0 0 \(f(w)) \(f(h))\" width=\"\(f(w))\" height=\"\(f(h))\" role=\"img\" aria-label=\"\(htmlEscaped(title))\">\n"
        s += "<title>\(htmlEscaped(title))</title>\n"
        s += "<style>\(Self.style)</style>\n"
        s += "<rect class=\"nc-bg\" x=\"0\" y=\"0\" width=\"\(f(w))\" height=\"\(f(h))\"/>\n"
        s += "<text class=\"nc-title\" x=\"\(f(Self.left))\" y=\"20\">\(htmlEscaped(title))</text>\n"
        // Legend: a short line in the series' style, then its name; a second row when the
        // first is full.
        var lx = Self.left, ly = 34.0
        for (i, series) in series.enumerated() {
            let c = "nc-s\(i % Self.colours.count)"
            let itemWidth = 40 + Double(series.name.count) * 7
            if lx > Self.left, lx + itemWidth > w - Self.right {
                lx = Self.left
                ly += 16
            }
            s += "<line class=\"\(c)\(series.dashed ? " nc-dash" : "")\" x1=\"\(f(lx))\" y1=\"\(f(ly))\" x2=\"\(f(lx + 22))\" y2=\"\(f(ly))\"/>"
            s += "<text x=\"\(f(lx + 28))\" y=\"\(f(ly + 4))\">\(htmlEscaped(series.name))</text>\n"
            lx += itemWidth
        }
        // Grid and ticks.
        for t in yTicks {
            let y = py(t.value)
            s += "<line class=\"nc-grid\" x1=\"\(f(Self.left))\" y1=\"\(f(y))\" x2=\"\(f(w - Self.right))\" y2=\"\(f(y))\"/>"
            s += "<text class=\"nc-ytick\" x=\"\(f(Self.left - 6))\" y=\"\(f(y + 4))\">\(htmlEscaped(t.label))</text>\n"
        }
        for t in xTicks {
            let x = px(t.value)
            s += "<line class=\"nc-axis\" x1=\"\(f(x))\" y1=\"\(f(Self.top + plotH))\" x2=\"\(f(x))\" y2=\"\(f(Self.top + plotH + 5))\"/>"
            s += "<text class=\"nc-xtick\" x=\"\(f(x))\" y=\"\(f(Self.top + plotH + 18))\">\(htmlEscaped(t.label))</text>\n"
        }
        for m in marks {
            let x = px(m.value)
            s += "<line class=\"nc-mark\" x1=\"\(f(x))\" y1=\"\(f(Self.top))\" x2=\"\(f(x))\" y2=\"\(f(Self.top + plotH))\"/>"
            s += "<text class=\"nc-marklabel\" x=\"\(f(x + 4))\" y=\"\(f(Self.top + 12))\">\(htmlEscaped(m.label))</text>\n"
        }
        s += "<line class=\"nc-axis\" x1=\"\(f(Self.left))\" y1=\"\(f(Self.top + plotH))\" x2=\"\(f(w - Self.right))\" y2=\"\(f(Self.top + plotH))\"/>"
        s += "<line class=\"nc-axis\" x1=\"\(f(Self.left))\" y1=\"\(f(Self.top))\" x2=\"\(f(Self.left))\" y2=\"\(f(Self.top + plotH))\"/>\n"
        s += "<text class=\"nc-xlabel\" x=\"\(f(Self.left + plotW / 2))\" y=\"\(f(h - 12))\">\(htmlEscaped(xLabel))</text>\n"
        s += "<text class=\"nc-ylabel\" transform=\"translate(16 \(f(Self.top + plotH / 2))) rotate(-90)\">\(htmlEscaped(yLabel))</text>\n"
        // Series.
        for (i, series) in series.enumerated() {
            let c = "nc-s\(i % Self.colours.count)"
            let pts = series.points.filter { $0.x.isFinite && $0.y.isFinite }
            if pts.count > 1 {
                let path = pts.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
                s += "<polyline class=\"\(c)\(series.dashed ? " nc-dash" : "")\" points=\"\(path)\"/>\n"
            }
            for p in pts {
                s += "<circle class=\"\(c) nc-dot\" cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"\(series.dashed ? 2.5 : 3.5)\"/>"
            }
            s += "\n"
        }
        s += "</svg>\n"
        return s
    }

    static var style: String {
        var light = "", dark = ""
        for (i, (l, d)) in colours.enumerated() {
            light += ".nc-s\(i){stroke:\(l);fill:none}.nc-s\(i).nc-dot{fill:\(l)}"
            dark += ".nc-s\(i){stroke:\(d)}.nc-s\(i).nc-dot{fill:\(d)}"
        }
        return ".nc-chart{font:12px sans-serif;max-width:100%;height:auto}"
            + ".nc-bg{fill:#ffffff}.nc-chart text{fill:#1a1a1a}.nc-title{font-weight:bold;font-size:14px}"
            + ".nc-ytick{text-anchor:end}.nc-xtick,.nc-xlabel,.nc-ylabel{text-anchor:middle}"
            + ".nc-axis{stroke:#333333}.nc-grid{stroke:#dddddd}.nc-mark{stroke:#888888;stroke-dasharray:2 3}"
            + "polyline,line{stroke-width:2}.nc-grid,.nc-axis,.nc-mark{stroke-width:1}.nc-dash{stroke-dasharray:6 4}"
            + light
            + "@media (prefers-color-scheme: dark){.nc-bg{fill:#121212}.nc-chart text{fill:#e6e6e6}"
            + ".nc-axis{stroke:#bbbbbb}.nc-grid{stroke:#3a3a3a}.nc-mark{stroke:#999999}" + dark + "}"
    }

    /// Ticks at 0 and multiples of a 1, 2, 2.5 or 5 step, about `count` of them, up to `max`.
    public static func niceTicks(upTo max: Double, count: Int = 5, label: (Double) -> String) -> [Tick] {
        guard max > 0, max.isFinite else { return [Tick(0, label(0)), Tick(1, label(1))] }
        let raw = max / Double(Swift.max(1, count - 1))
        var magnitude = 1.0
        while magnitude * 10 <= raw { magnitude *= 10 }
        while magnitude > raw { magnitude /= 10 }
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? magnitude * 10
        let n = Int((max / step).rounded(.up))
        return (0...n).map { i in let v = Double(i) * step; return Tick(v, label(v)) }
    }
}

/// A coordinate to 0.1.
private func f(_ x: Double) -> String { format6((x * 10).rounded() / 10) }

/// Text for HTML and SVG: `&`, `<`, `>`, `"` escaped.
public func htmlEscaped(_ s: String) -> String {
    var out = ""
    for ch in s {
        switch ch {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        default: out.append(ch)
        }
    }
    return out
}
