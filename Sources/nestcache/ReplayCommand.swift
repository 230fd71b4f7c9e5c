import ArgumentParser
import NestCacheCore
import NestCacheSystem
import NestCacheWorkload

#if canImport(Glibc)
import Glibc
#endif

struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Replay traces under one policy and print its counters per VM and in total.")

    @OptionGroup var trace: TraceOptions
    @OptionGroup var model: ModelOptions

    @Option(help: "The policy: \(PolicyKind.usageList).")
    var policy: PolicySpec = .seed

    @Flag(help: "Print one line of JSON.")
    var json = false

    func validate() throws {
        guard !trace.files.isEmpty else { throw ValidationError("give at least one trace file ('-' for standard input)") }
    }

    func run() throws {
        let source = trace.source()
        var engines = [policy.makeEngine(defaultPagesPerContext: model.pages)]
        try exitingOnTraceError { () throws(TraceError) in try Replay.drive(source, into: &engines) }
        reportWarnings(source)
        let report = StatsReport.replayJSON(
            engine: engines[0], registry: source.registry, pagesPerContext: model.pages, cost: model.cost,
            figures: source.figures, skippedEvents: source.skippedEvents)
        if json {
            print(report.serialized())
        } else {
            print(StatsReport.text(report))
        }
    }
}
