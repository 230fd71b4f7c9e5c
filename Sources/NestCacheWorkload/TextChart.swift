/// An ASCII chart of shares (0...1) over a few x positions, for text pasted into mail: at most
/// `width` columns, one marker per series, `#` where two series meet.
///
///     100% |                 o  o  o
///          |           *  o  *  *  *
///      50% |     o  *
///          |  *
///       0% +--+--+--+--+--+--+--+--
///             0  1  2  3  4  5  6  7  K
///
/// x positions are the points' indices spread evenly (so R = 1, 2, 4, 8, 16 are evenly spaced,
/// as on a log axis); y is rounded to the nearest tenth. Pure: the same input gives the same text.
public struct TextChart: Sendable {
    public struct Series: Sendable {
        public var marker: Character
        public var name: String
        /// One value per x label, nil where there is none.
        public var values: [Double?]

        public init(marker: Character, name: String, values: [Double?]) {
            self.marker = marker
            self.name = name
            self.values = values
        }
    }

    public var xLabels: [String]
    public var xName: String
    public var series: [Series]
    /// Rows from 0% to 100%: 10 steps of 10%.
    public static let steps = 10
    /// The y values labelled on the axis.
    public static let yTicks: [Double] = [0, 0.5, 1]

    public init(xLabels: [String], xName: String, series: [Series]) {
        self.xLabels = xLabels
        self.xName = xName
        self.series = series
    }

    /// The chart's lines (no trailing newline), each at most `width` columns. Labels that do
    /// not fit between their neighbours are left out.
    public func render(width: Int = 72) -> [String] {
        let margin = 6  // "100% |"
        let n = max(1, xLabels.count)
        // Columns for the points: evenly `step` apart (at most 6) when they fit, else spread
        // over the room left of the x name (then a label that would overlap is left out).
        let room = max(1, width - margin - 4 - xName.count)
        let step = max(1, min(6, room / max(1, n - 1)))
        let span = min((n - 1) * step, room)
        let plotWidth = span + 3
        let column = { (i: Int) in n > 1 ? 1 + i * span / (n - 1) : 1 }
        var grid = Array(repeating: Array(repeating: Character(" "), count: plotWidth), count: Self.steps + 1)
        for s in series {
            for (i, v) in s.values.enumerated() where i < n {
                guard let v, v.isFinite else { continue }
                let row = Self.steps - Int((min(1, max(0, v)) * Double(Self.steps)).rounded())
                let c = column(i)
                grid[row][c] = grid[row][c] == " " || grid[row][c] == s.marker ? s.marker : "#"
            }
        }
        var lines: [String] = []
        for (row, cells) in grid.enumerated() {
            let y = Double(Self.steps - row) / Double(Self.steps)
            var label = ""
            if Self.yTicks.contains(where: { abs($0 - y) < 1e-9 }) { label = format6((y * 100).rounded()) + "%" }
            let prefix = String(repeating: " ", count: max(0, margin - 2 - label.count)) + label + " |"
            lines.append(trimmed(prefix + String(cells)))
        }
        // The axis with a tick under each point, then the labels.
        var axis = Array(repeating: Character("-"), count: plotWidth)
        for i in 0..<n { axis[column(i)] = "+" }
        lines.append(String(repeating: " ", count: margin - 2) + " +" + String(axis))
        var labels = Array(repeating: Character(" "), count: plotWidth + 1 + xName.count)
        var free = 0
        for (i, text) in xLabels.enumerated() {
            let start = column(i) - (text.count - 1) / 2
            guard start >= free, start + text.count <= plotWidth else { continue }
            for (j, ch) in text.enumerated() { labels[start + j] = ch }
            free = start + text.count + 1
        }
        for (j, ch) in xName.enumerated() { labels[plotWidth + 1 + j] = ch }
        lines.append(trimmed(String(repeating: " ", count: margin) + String(labels)))
        lines.append(String(repeating: " ", count: margin) + series.map { "\($0.marker) \($0.name)" }.joined(separator: "   ") + "   # both")
        return lines
    }

    private func trimmed(_ s: String) -> String {
        var s = s
        while s.last == " " { s.removeLast() }
        return s
    }
}
