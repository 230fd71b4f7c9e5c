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
            Replay.self, Compare.self, Simulate.self, Convert.self, SweepCommand.self, BoundsCommand.self, ReportCommand.self,
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
            figures: source.figures, skippedEvents: source.skippedEvents)
        if json {
            print(report.serialized())
        } else {
            print(StatsReport.text(report))
        }
    }
}

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run several policies over the same stream, one row per policy.",
        usage: """
            nestcache compare <files> ... [options]
            nestcache compare (--simulate <spec> | --preset <name>) [--set <key=value> ...] [options]
            """,
        discussion: workloadHelp)

    @OptionGroup var trace: TraceOptions
    @OptionGroup var workload: WorkloadOptions
    @OptionGroup var model: ModelOptions

    @Option(help: "Comma-separated policies (default: map-per-entry,single,per-vcpu-lru:3,per-vcpu-lru:7,per-vm-table:8).",
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
        try exitingOnTraceError { () throws(TraceError) in try NestCacheWorkload.Replay.drive(source, into: &engines) }
        reportWarnings(source)
        let report = CompareReport(
            engines: engines, cost: model.cost, figures: source.figures, skippedEvents: source.skippedEvents)
        print(report.render(output), terminator: "")
    }
}

struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a simulated workload (DESIGN §6) as a native trace.",
        usage: """
            nestcache simulate (<spec> | --preset <name>) [--set <key=value> ...] --emit <file>
            nestcache simulate --list-presets
            """,
        discussion: workloadHelp + """


            The same settings and seed give the same trace on every machine. The file appears \
            only once it is complete (written to FILE.tmp-PID, then renamed); a failed run leaves \
            nothing behind.
            """)

    @Argument(help: ArgumentHelp("Simulate a VM: key=value,key=value (see the keys below).", valueName: "spec"))
    var spec: String?

    @Option(help: ArgumentHelp("A named workload (see below).", valueName: "name"))
    var preset: String?

    @Option(name: .customLong("set"), help: ArgumentHelp(
        "Change one setting of the spec or preset (repeatable).", valueName: "key=value"))
    var settings: [String] = []

    @Option(help: ArgumentHelp("Write the trace to this file ('-' for standard output).", valueName: "file"))
    var emit: String?

    @Flag(help: "Print the presets, one per line, and exit.")
    var listPresets = false

    func validate() throws {
        if listPresets {
            guard spec == nil, preset == nil, settings.isEmpty, emit == nil else {
                throw ValidationError("--list-presets takes no other argument")
            }
            return
        }
        guard try workload() != nil else { throw ValidationError("give a spec (key=value,...) or --preset NAME") }
        guard let emit, !emit.isEmpty else { throw ValidationError("give --emit FILE ('-' for standard output)") }
    }

    func workload() throws -> WorkloadSpec? {
        try makeWorkload(spec: spec, specName: "a spec", preset: preset, settings: settings)
    }

    func run() throws {
        if listPresets {
            print(WorkloadSpec.presetListing)
            return
        }
        guard let w = try workload(), let emit else { throw ValidationError("give a spec and --emit FILE") }
        _ = try exitingOnTraceError { () throws(TraceError) in try NativeTraceWriter.write(w.makeSource(), to: emit) }
    }
}

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
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

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Policies and capacities across L2:L1 ratios: one row per (ratio, policy).",
        usage: """
            nestcache sweep <files> ... [options]
            nestcache sweep (--simulate <spec> | --preset <name>) [--set <key=value> ...] [--ratios 1,2,4,...] [options]
            """,
        discussion: """
            Default policies: \(Sweep.defaultPolicies.map(\.description).joined(separator: ",")).
            A simulated workload is run once per ratio R with l2_vcpus = R * l1_vcpus (a selftest \
            preset: n = R); trace files are one stream. Configurations run in parallel (--jobs); \
            the output does not depend on it.

            """ + workloadHelp)

    @OptionGroup var trace: TraceOptions
    @OptionGroup var workload: WorkloadOptions
    @OptionGroup var model: ModelOptions

    @Option(help: ArgumentHelp(
        "L2:L1 ratios for a simulated workload (default: \(Sweep.defaultRatios.map(String.init).joined(separator: ","))).",
        valueName: "r,r,..."))
    var ratios: String?

    @Option(help: "Comma-separated policies (default: the list below).", transform: parsePolicyList)
    var policies: [PolicySpec]?

    @Option(name: .customLong("output"), help: "Output: table, csv, json or markdown.")
    var output: SweepReport.Format = .table

    @Option(help: "Configurations run at once (default: the number of online processors).")
    var jobs: Int?

    func validate() throws {
        _ = try makeSweep()
        if let jobs, !(1...Sweep.maxJobs).contains(jobs) {
            throw ValidationError("--jobs must be an integer from 1 to \(Sweep.maxJobs), got \(jobs)")
        }
    }

    func makeSweep() throws -> Sweep {
        let input = try sweepInput(workload, trace)
        do throws(TraceError) {
            let specs = policies ?? Sweep.defaultPolicies
            var parsedRatios: [Int]?
            if let ratios { parsedRatios = try Sweep.parseRatios(ratios) }
            return try Sweep(input: input, ratios: parsedRatios, policies: specs, pagesPerContext: model.pages)
        } catch {
            throw ValidationError(error.description)
        }
    }

    func run() throws {
        let sweep = try makeSweep()
        let jobs = self.jobs ?? Sweep.defaultJobs
        let result = try exitingOnTraceError { () throws(TraceError) in try sweep.run(jobs: jobs) }
        reportWarnings(result.warnings, figures: result.figures)
        print(SweepReport(sweep: sweep, result: result, cost: model.cost).render(output), terminator: "")
    }
}

struct BoundsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bounds",
        abstract: "Per VM: per-vcpu-lru:K hits for every K, and the optimal hits per vCPU and shared (DESIGN §11).",
        usage: """
            nestcache bounds <files> ... [--kmax <n>] [--ratios <r,r,...>] [--json]
            nestcache bounds (--simulate <spec> | --preset <name>) [--set <key=value> ...] [--kmax <n>] [--ratios <r,r,...>] [--json]
            """,
        discussion: """
            From each VM's switch sequence: lru_hits[K], the hits of per-vcpu-lru:K for K = 0..kmax \
            (one pass); opt_vcpu_hits[K], the most hits any cache of K+1 contexts per vCPU could \
            get knowing the future (Belady with bypass); opt_vm_hits[R], the same for one cache of \
            R * M contexts shared by the VM's vCPUs (M: declared l1_vcpus, else the vCPUs seen), \
            an upper bound on per-vm-table:R. Exact integers; long traces spill to temporary \
            files ($TMPDIR), memory stays bounded by the distinct GPAs.


            """ + workloadHelp)

    @OptionGroup var trace: TraceOptions
    @OptionGroup var workload: WorkloadOptions

    @Option(help: "The deepest K of per-vcpu-lru:K (0 to \(PolicySpec.maxK)).")
    var kmax: Int = Bounds.defaultKMax

    @Option(help: ArgumentHelp(
        "Contexts per L1 vCPU R of the shared cache (default: \(Bounds.defaultRatios.map(String.init).joined(separator: ","))).",
        valueName: "r,r,..."))
    var ratios: String?

    @Flag(help: "Print one line of JSON.")
    var json = false

    func validate() throws {
        _ = try sweepInput(workload, trace)  // one workload or the files, and no option of the other
        _ = try makeBounds()
    }

    func makeBounds() throws -> Bounds {
        do throws(TraceError) {
            return try Bounds(kmax: kmax, ratios: try ratios.map { r throws(TraceError) in try Bounds.parseRatios(r) } ?? Bounds.defaultRatios)
        } catch {
            throw ValidationError(error.description)
        }
    }

    func run() throws {
        let bounds = try makeBounds()
        let source: any EventSource
        if let w = try workload.workload() {
            source = EventSourceReference(w.makeSource())
        } else {
            source = trace.source()
        }
        let result = try exitingOnTraceError { () throws(TraceError) in try bounds.run(source) }
        reportWarnings(source)
        if json {
            print(result.json.serialized())
        } else {
            print(result.text, terminator: "")
            // The reader's figures matter here: an unresolved VMCLEAR (VMX ftrace) left a
            // current in place, so a switch back to it is missing from the sequence.
            let figures = source.figures.map { "\($0.name) \($0.value)" }
            if !figures.isEmpty { print("\ninput: " + figures.joined(separator: ", ")) }
        }
    }
}
