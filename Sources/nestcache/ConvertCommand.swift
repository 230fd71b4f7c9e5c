import ArgumentParser
import NestCacheCore
import NestCacheSystem
import NestCacheWorkload

#if canImport(Glibc)
import Glibc
#endif

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a trace (Linux ftrace text or native) to the native format.",
        usage: "nestcache convert <input> [--to native] <output> [--format auto|native|ftrace] [--vm <name>] [--skip-invalid]",
        discussion: """
            The reader's figures (invalid_lines, evmcs_skipped, unresolved_clears, lost_events, \
            ..., and skipped_events: the lines of events it does not use, per event name) go to \
            standard error. ftrace times that step back (per-CPU buffers merged) are \
            raised to the previous event's, since native times never decrease; the order, and so \
            every counter of a replay, is kept. The output appears only once it is complete.
            """)

    enum Target: String, ExpressibleByArgument, CaseIterable { case native }

    @Argument(help: "The input trace ('-' for standard input).")
    var input: String

    @Option(help: "Output format (only native).")
    var to: Target = .native

    @Argument(help: "The output file ('-' for standard output).")
    var output: String

    @OptionGroup var reader: ReaderOptions

    func validate() throws {
        guard !output.isEmpty else { throw ValidationError("give an output file ('-' for standard output)") }
    }

    func run() throws {
        let source = reader.source([input])
        let summary = try exitingOnTraceError { () throws(TraceError) in try NativeTraceWriter.write(source, to: output) }
        reportWarnings(summary.warnings, figures: summary.figures)
        var figures = summary.figures.map { "\($0.name)=\($0.value)" }.joined(separator: " ")
        if let skipped = summary.skippedEvents {
            figures += " skipped_events=" + (skipped.isEmpty ? "none" : skipped.map { "\($0.name):\($0.count)" }.joined(separator: ","))
        }
        printError("nestcache: \(summary.events) event\(summary.events == 1 ? "" : "s") to \(output == "-" ? "standard output" : output)" + (figures.isEmpty ? "" : "; \(figures)"))
        if summary.raisedTimes > 0 {
            printError("nestcache: \(summary.raisedTimes) event time\(summary.raisedTimes == 1 ? "" : "s") raised to the previous event's (times never decrease in the native format)")
        }
    }
}
