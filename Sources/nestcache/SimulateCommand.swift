import ArgumentParser
import NestCacheCore
import NestCacheSystem
import NestCacheWorkload

#if canImport(Glibc)
import Glibc
#endif

struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
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
