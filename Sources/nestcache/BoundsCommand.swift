import ArgumentParser
import NestCacheCore
import NestCacheSystem
import NestCacheWorkload

#if canImport(Glibc)
import Glibc
#endif

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
