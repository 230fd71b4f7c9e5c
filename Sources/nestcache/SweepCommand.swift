import ArgumentParser
import NestCacheCore
import NestCacheSystem
import NestCacheWorkload

#if canImport(Glibc)
import Glibc
#endif

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
