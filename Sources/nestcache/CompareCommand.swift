import ArgumentParser
import NestCacheCore
import NestCacheSystem
import NestCacheWorkload

#if canImport(Glibc)
import Glibc
#endif

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Run several policies over the same stream, one row per policy.",
        usage: """
            nestcache compare <files> ... [options]
            nestcache compare (--simulate <spec> | --preset <name>) [--set <key=value> ...] [options]
            """,
        discussion: workloadHelp)

    @OptionGroup var trace: TraceOptions
    @OptionGroup var workload: WorkloadOptions
    @OptionGroup var model: ModelOptions

    @Option(help: "Comma-separated policies of \(PolicyKind.usageList) (default: \(PolicySpec.comparisonDefaults.map(\.description).joined(separator: ","))).",
            transform: parsePolicyList)
    var policies: [PolicySpec]?

    @Option(name: .customLong("output"), help: "Output: table, json, csv or markdown.")
    var output: CompareReport.Format = .table

    func validate() throws {
        _ = try sweepInput(workload, trace)  // one workload or the files, and no option of the other
    }

    func run() throws {
        var engines = (policies ?? PolicySpec.comparisonDefaults).map { $0.makeEngine(defaultPagesPerContext: model.pages) }
        let source: any EventSource
        if let w = try workload.workload() {
            // By reference, so the simulator's figures are read after the run, not from a copy.
            source = EventSourceReference(w.makeSource())
        } else {
            source = trace.source()
        }
        try exitingOnTraceError { () throws(TraceError) in try Replay.drive(source, into: &engines) }
        reportWarnings(source)
        let report = CompareReport(
            engines: engines, cost: model.cost, figures: source.figures, skippedEvents: source.skippedEvents)
        print(report.render(output), terminator: "")
    }
}
