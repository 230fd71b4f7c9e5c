import ArgumentParser
import NestCacheCore
import NestCacheSystem
import NestCacheWorkload

#if canImport(Glibc)
import Glibc
#endif

@main
struct NestCacheCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nestcache",
        abstract: "Replay, simulate and compare KVM nested-context caching policies.",
        subcommands: [
            ReplayCommand.self, Compare.self, Simulate.self, Convert.self, SweepCommand.self, BoundsCommand.self, ReportCommand.self,
            Record.self, Show.self, Ping.self, Reset.self, Pause.self, Resume.self, Reload.self,
        ])
}

/// How traces are read: shared by every command that reads them (`convert` too).
struct ReaderOptions: ParsableArguments {
    @Option(help: "Trace format: auto, native or ftrace.")
    var format: TraceFileSequence.Format = .auto

    @Flag(help: "Count malformed lines and go on (the first 10 are reported) instead of failing.")
    var skipInvalid = false

    @Option(help: "The VM id for ftrace files without a tgid column (default: the file's base name).")
    var vm: String?

    var invalidLines: InvalidLinePolicy { skipInvalid ? .skip : .fail }

    func source(_ paths: [String]) -> TraceFileSequence {
        TraceFileSequence(paths: paths, format: format, vm: vm, invalidLines: invalidLines)
    }
}

/// Trace files and how to read them.
struct TraceOptions: ParsableArguments {
    @Argument(help: "Trace files, in order ('-' for standard input).")
    var files: [String] = []

    @OptionGroup var reader: ReaderOptions

    func source() -> TraceFileSequence { reader.source(files) }

    /// For a simulated workload: the options that only apply to trace files must not be given.
    func validateNoTraceOptions() throws {
        guard files.isEmpty else {
            throw ValidationError("give trace files or --simulate/--preset, not both")
        }
        guard reader.format == .auto, reader.vm == nil, !reader.skipInvalid else {
            throw ValidationError("--format, --vm and --skip-invalid apply to trace files, not to --simulate/--preset")
        }
    }
}

/// A synthetic workload instead of trace files: `--simulate SPEC` or `--preset NAME`, changed by
/// `--set key=value` (DESIGN §6).
struct WorkloadOptions: ParsableArguments {
    @Option(name: .customLong("simulate"), help: ArgumentHelp(
        "Simulate a VM: key=value,key=value (see the keys below).", valueName: "spec"))
    var spec: String?

    @Option(help: ArgumentHelp("A named workload (see below).", valueName: "name"))
    var preset: String?

    @Option(name: .customLong("set"), help: ArgumentHelp(
        "Change one setting of --simulate or --preset (repeatable).", valueName: "key=value"))
    var settings: [String] = []

    /// The workload, or nil when neither --simulate nor --preset is given.
    func workload() throws -> WorkloadSpec? {
        try makeWorkload(spec: spec, specName: "--simulate", preset: preset, settings: settings)
    }
}

/// What `sweep` and `report` read: the workload, or else the trace files (one of them is needed).
func sweepInput(_ workload: WorkloadOptions, _ trace: TraceOptions) throws -> Sweep.Input {
    if let w = try workload.workload() {
        try trace.validateNoTraceOptions()
        return .workload(w)
    }
    guard !trace.files.isEmpty else {
        throw ValidationError("give trace files ('-' for standard input), --simulate SPEC or --preset NAME")
    }
    return .files(paths: trace.files, format: trace.reader.format, vm: trace.reader.vm, invalidLines: trace.reader.invalidLines)
}

/// `SPEC` or `--preset NAME`, then every `--set`; nil when neither is given. Errors are
/// `ValidationError`s (exit 64) with the workload's one-line message.
func makeWorkload(spec: String?, specName: String, preset: String?, settings: [String]) throws -> WorkloadSpec? {
    if spec != nil, preset != nil {
        throw ValidationError("give \(specName) or --preset, not both (change a preset with --set key=value)")
    }
    guard spec != nil || preset != nil else {
        if !settings.isEmpty { throw ValidationError("--set needs \(specName) or --preset") }
        return nil
    }
    do throws(TraceError) {
        var workload = try WorkloadSpec.make(preset: preset, settings: spec.map { [$0] } ?? [])
        for s in settings { try workload.apply(assignment: s) }
        return workload
    } catch {
        throw ValidationError(error.description)
    }
}

/// The `--help` text on workloads: presets and keys.
let workloadHelp = """
    Presets (--preset NAME):
    \(WorkloadSpec.presetListing)

    Simulation keys (--simulate, --set): \(SimulationSpec.keys.joined(separator: ", ")).
    Selftest keys (selftest presets, --set): \(SelftestSpec.keys.joined(separator: ", ")).
    """

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

/// `--policies a,b,...`, parsed once by ArgumentParser with `PolicySpec`'s message on error (64).
func parsePolicyList(_ text: String) throws -> [PolicySpec] {
    do { return try PolicySpec.parseList(text) } catch { throw ValidationError(error.description) }
}
extension CompareReport.Format: ExpressibleByArgument {}
extension SweepReport.Format: ExpressibleByArgument {}
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

func printError(_ s: String) { Stderr.write(s) }

func reportWarnings(_ source: some EventSource) {
    reportWarnings(source.warnings, figures: source.figures)
}

func reportWarnings(_ warnings: [String], figures: [(name: String, value: UInt64)]) {
    for w in warnings { printError("nestcache: skipped \(w)") }
    if let n = figures.first(where: { $0.name == "invalid_lines" })?.value, n > 0 {
        printError("nestcache: \(n) invalid line\(n == 1 ? "" : "s") skipped")
    }
}
