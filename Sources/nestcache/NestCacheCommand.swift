import ArgumentParser
import NestCacheCore
import NestCacheWorkload

#if canImport(Glibc)
import Glibc
#endif

@main
struct NestCacheCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nestcache",
        abstract: "Replay, simulate and compare KVM nested-context caching policies.",
        subcommands: [Replay.self, Compare.self, Show.self, Ping.self, Reset.self, Pause.self, Resume.self, Reload.self])
}

/// Options shared by the commands that read traces.
struct TraceOptions: ParsableArguments {
    @Argument(help: "Trace files, in order ('-' for standard input).")
    var files: [String] = []

    @Option(help: "Trace format: auto, native or ftrace.")
    var format: TraceFileSequence.Format = .auto

    @Flag(help: "Count malformed lines and go on (the first 10 are reported) instead of failing.")
    var skipInvalid = false

    @Option(help: "The VM id for ftrace files without a tgid column (default: the file's base name).")
    var vm: String?

    func source() -> TraceFileSequence {
        TraceFileSequence(paths: files, format: format, vm: vm, invalidLines: skipInvalid ? .skip : .fail)
    }
}

/// Options of the model: pages per context and costs.
struct ModelOptions: ParsableArguments {
    @Option(help: "Pages per context (P) for VMs that do not declare it.")
    var pages: Int = 4

    @Option(help: "Cost of mapping one page, ns (an assumption; see README).")
    var mapNs: Double = CostModel.default.mapNs
    @Option(help: "Cost of unmapping one page, ns (an assumption; see README).")
    var unmapNs: Double = CostModel.default.unmapNs
    @Option(help: "Cost of one context lookup, ns (an assumption; see README).")
    var lookupNs: Double = CostModel.default.lookupNs

    var cost: CostModel { CostModel(mapNs: mapNs, unmapNs: unmapNs, lookupNs: lookupNs) }

    func validate() throws {
        guard (1...64).contains(pages) else { throw ValidationError("--pages must be from 1 to 64") }
        guard mapNs >= 0, unmapNs >= 0, lookupNs >= 0 else { throw ValidationError("costs must be >= 0") }
    }
}

extension TraceFileSequence.Format: ExpressibleByArgument {}
extension CompareReport.Format: ExpressibleByArgument {}
extension PolicySpec: ExpressibleByArgument {
    public init?(argument: String) { try? self.init(parsing: argument) }
}

/// Runs `body`, mapping workload errors to DESIGN §10 exit codes with a one-line message.
func exitingOnTraceError<T>(_ body: () throws(TraceError) -> T) throws -> T {
    do {
        return try body()
    } catch {
        printError("nestcache: \(error)")
        throw ExitCode(error.exitCode)
    }
}

func printError(_ s: String) {
    var line = s + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

func reportWarnings(_ source: some EventSource) {
    for w in source.warnings { printError("nestcache: skipped \(w)") }
    if let n = source.figures.first(where: { $0.name == "invalid_lines" })?.value, n > 0 {
        printError("nestcache: \(n) invalid line\(n == 1 ? "" : "s") skipped")
    }
}

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replay traces under one policy and print its counters per VM and in total.")

    @OptionGroup var trace: TraceOptions
    @OptionGroup var model: ModelOptions

    @Option(help: "The policy: per-vm-table:R, per-vcpu-lru:K, single or map-per-entry.")
    var policy: PolicySpec = .seed

    @Flag(help: "Print one line of JSON.")
    var json = false

    func validate() throws {
        guard !trace.files.isEmpty else { throw ValidationError("give at least one trace file ('-' for standard input)") }
    }

    func run() throws {
        let source = trace.source()
        var engines = [policy.makeEngine(defaultPagesPerContext: model.pages)]
        try exitingOnTraceError { () throws(TraceError) in try NestCacheWorkload.Replay.drive(source, into: &engines) }
        reportWarnings(source)
        let report = StatsReport.replayJSON(
            engine: engines[0], registry: source.registry, pagesPerContext: model.pages, cost: model.cost,
            figures: source.figures)
        if json {
            print(report.serialized())
        } else {
            print(StatsReport.text(report))
        }
    }
}

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run several policies over the same stream, one row per policy.")

    @OptionGroup var trace: TraceOptions
    @OptionGroup var model: ModelOptions

    @Option(help: "Comma-separated policies (default: map-per-entry,single,per-vcpu-lru:3,per-vcpu-lru:7,per-vm-table:8).")
    var policies: String?

    @Option(name: .customLong("output"), help: "Output: table, json, csv or markdown.")
    var output: CompareReport.Format = .table

    func validate() throws {
        guard !trace.files.isEmpty else { throw ValidationError("give at least one trace file ('-' for standard input)") }
        if let policies {
            do { _ = try PolicySpec.parseList(policies) } catch { throw ValidationError(error.description) }
        }
    }

    func run() throws {
        let specs = (try? policies.map { try PolicySpec.parseList($0) }) ?? nil
        var engines = (specs ?? PolicySpec.comparisonDefaults).map { $0.makeEngine(defaultPagesPerContext: model.pages) }
        let source = trace.source()
        try exitingOnTraceError { () throws(TraceError) in try NestCacheWorkload.Replay.drive(source, into: &engines) }
        reportWarnings(source)
        let report = CompareReport(engines: engines, cost: model.cost, figures: source.figures)
        print(report.render(output), terminator: "")
    }
}
