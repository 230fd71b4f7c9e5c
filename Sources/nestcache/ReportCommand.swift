import ArgumentParser
import NestCacheCore
import NestCacheWorkload

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "The review's questions answered on one workload, with readings from the numbers (DESIGN §11).",
        usage: """
            nestcache report <files> ... [--html <file>] [--svg-dir <dir>] [--json]
            nestcache report (--simulate <spec> | --preset <name>) [--set <key=value> ...] [--html <file>] [--svg-dir <dir>] [--json]
            nestcache report [--preset selftest-migrate|selftest-sched] [--set <key=value> ...] --selftest
            """,
        discussion: """
            Four sections: 1. the gain isolated from the switch to persistent mappings \
            (map-per-entry, single, per-vcpu-lru:3, per-vcpu-lru:7, per-vm-table:8); 2. the \
            per-VM table against the per-vCPU LRU with both optimal bounds (hit ratio vs K and vs \
            R); 3. direct-map exposure as the L2:L1 ratio grows (a sweep over ratios 1 to 32 for \
            a simulated workload); 4. the break-even map+unmap cost. Each ends with a reading \
            computed from its numbers by fixed rules (thresholds in the JSON). Text is at most 72 \
            columns wide.

            --selftest prints, instead, the lines the patch's vmx_l2_switch_test prints, from \
            per-vm-table:8's hits (reuse) and recycles: for a selftest preset its one run; \
            without input the selftest's own default matrix (vmx migrate, then vmx sched, 2 to \
            16 L2 vCPUs, 4 switches each).


            """ + workloadHelp)

    @OptionGroup var trace: TraceOptions
    @OptionGroup var workload: WorkloadOptions
    @OptionGroup var model: ModelOptions

    @Option(help: ArgumentHelp("Also write the report as one self-contained HTML page.", valueName: "file"))
    var html: String?

    @Option(help: ArgumentHelp("Also write the four charts as standalone SVG files into this directory.", valueName: "dir"))
    var svgDir: String?

    @Flag(help: "Print one line of JSON instead of text.")
    var json = false

    @Flag(help: "Print vmx_l2_switch_test's result lines for the selftest presets instead.")
    var selftest = false

    @Option(help: "Configurations of the exposure sweep run at once (default: the number of online processors).")
    var jobs: Int?

    func validate() throws {
        if let jobs, !(1...Sweep.maxJobs).contains(jobs) {
            throw ValidationError("--jobs must be an integer from 1 to \(Sweep.maxJobs), got \(jobs)")
        }
        if selftest {
            guard html == nil, svgDir == nil, !json else {
                throw ValidationError("--selftest prints the selftest's lines: no --html, --svg-dir or --json")
            }
            guard trace.files.isEmpty else { throw ValidationError("--selftest takes a selftest preset or no input, not trace files") }
            if let w = try workload.workload(), case .simulate = w {
                throw ValidationError("--selftest applies to the selftest presets (selftest-migrate, selftest-sched), not to --simulate")
            }
            return
        }
        _ = try makeReport()
        if let html, html.isEmpty { throw ValidationError("--html needs a file name") }
        if let svgDir, svgDir.isEmpty { throw ValidationError("--svg-dir needs a directory") }
    }

    func makeReport() throws -> NestCacheWorkload.Report {
        let input = try sweepInput(workload, trace)
        var report = NestCacheWorkload.Report(input: input)
        report.cost = model.cost
        report.pagesPerContext = model.pages
        report.jobs = jobs ?? Sweep.defaultJobs
        return report
    }

    func run() throws {
        if selftest {
            let runs: [SelftestSpec]
            if case .selftest(let s)? = try workload.workload() { runs = [s] } else { runs = SelftestLines.defaultRuns }
            for line in try exitingOnTraceError({ () throws(TraceError) in try SelftestLines.lines(runs) }) { print(line) }
            return
        }
        let report = try makeReport()
        let data = try exitingOnTraceError { () throws(TraceError) in try report.run() }
        reportWarnings(data.warnings, figures: data.figures)
        if let html {
            try exitingOnTraceError { () throws(TraceError) in try ReportFiles.write(data.html, to: html) }
        }
        if let svgDir {
            try exitingOnTraceError { () throws(TraceError) in try ReportFiles.writeCharts(data, into: svgDir) }
        }
        if json {
            print(data.json.serialized())
        } else {
            print(data.text, terminator: "")
        }
    }
}
