/// Tables for people, shared by `compare`, `sweep` and the daemon's text answers.
public enum TextTable {
    /// Columns padded to their widest cell, two spaces apart; the columns in `leftAligned`
    /// (text) are left-aligned, the others (numbers) right-aligned.
    /// A cell holding a control character (a newline in a VM id the caller did not check) is
    /// shown with `?` in its place: a row stays one line, and a daemon answer never gets an
    /// empty line inside it (found by the render fuzz target).
    public static func render(_ rows: [[String]], leftAligned: Set<Int> = [0]) -> String {
        let rows = rows.map { $0.map(printable) }
        guard let first = rows.first else { return "" }
        let widths = first.indices.map { col in rows.map { $0[col].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { col, text in
                let pad = String(repeating: " ", count: widths[col] - text.count)
                return leftAligned.contains(col) ? text + pad : pad + text
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }

    /// `cell` with each control character shown as `?`.
    public static func printable(_ cell: String) -> String {
        guard cell.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return cell }
        return String(String.UnicodeScalarView(cell.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : $0 }))
    }

    /// A report cell for people: hit ratio and exposure as percentages, other fractions to
    /// 0.01, null as `-`.
    public static func human(column: String, _ v: JSON) -> String {
        switch (column, v) {
        case (_, .null): "-"
        case (_, .string(let s)): s
        case ("hit_ratio", .double(let d)): format6((d * 10_000).rounded() / 100) + "%"
        case ("exposure", .double(let d)): format6((d * 1_000_000).rounded() / 10_000) + "%"
        case (_, .double(let d)): format6((d * 100).rounded() / 100)
        default: v.serialized()
        }
    }
}
