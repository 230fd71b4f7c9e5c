/// The trace formats of DESIGN §5, as `--format` spells them (`auto` is `detect(path:)`).
public enum TraceFormat: String, Sendable, CaseIterable {
    case native
    case ftrace

    /// The number of leading lines `detect` looks at.
    static let peekLines = 32

    /// Guesses the format of a file from its first lines: the native magic, or ftrace headers and
    /// event lines (`FtraceReader.looksLikeFtrace`). Undecided files are `native`, whose reader
    /// then names what it expected.
    ///
    /// Standard input (`-`) cannot be peeked at without consuming it, so it is `native` unless
    /// `--format ftrace` is given.
    /// - Throws: `.inputMissing` when the file cannot be opened; read errors and over-long lines.
    public static func detect(path: String) throws(TraceError) -> TraceFormat {
        if path == "-" { return .native }
        // 64 KiB reads: the first lines, not the 2 MiB a reader's first read fills (and faults
        // in) before the real reader reads the same bytes again.
        let reader = try LineReader(path: path, readSize: 1 << 16)
        var first: [String] = []
        while first.count < peekLines, let line = try reader.nextLine() {
            first.append(String(decoding: line, as: UTF8.self))
        }
        return FtraceReader.looksLikeFtrace(firstLines: first) ? .ftrace : .native
    }
}
