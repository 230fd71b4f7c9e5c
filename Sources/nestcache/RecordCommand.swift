import ArgumentParser
import Dispatch
import NestCacheCore
import NestCacheSystem
import NestCacheWorkload

#if canImport(Glibc)
import Glibc
#endif

struct Record: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Capture the KVM nested-entry events of this host as a native trace (DESIGN §11).",
        usage: "nestcache record [--tracefs <dir>] [--instance <name> | --no-instance] [--duration <s>] <output>",
        discussion: """
            Turns on kvm_nested_vmenter (kvm_nested_vmrun on older kernels), kvm_exit, kvm_entry \
            and kvm_nested_vmexit with options/record-tgid in a tracefs instance of its own \
            (instances/nestcache-PID, removed at the end), streams its trace_pipe to OUTPUT as a \
            native trace, and restores every setting it changed when it stops: after --duration, \
            on SIGINT, SIGTERM or SIGHUP, or on an error (OUTPUT unwritable, disk full, a closed \
            pipe). VM ids are QEMU's -name guest=NAME, else the process id (tgid). Needs root. \
            Exit 0 when stopped by the duration or a signal, 69 without tracefs or KVM events \
            (nothing is changed then), 1 on an error. A one-line summary goes to standard error.
            """)

    @Option(help: ArgumentHelp(
        "The tracefs mount (default: \(TracefsTarget.defaultRoots.joined(separator: ", then "))).", valueName: "dir"))
    var tracefs: String?

    @Option(help: ArgumentHelp(
        "Record in instances/NAME: used if it exists (settings restored, kept), else created and removed.",
        valueName: "name"))
    var instance: String?

    @Flag(help: "Record in the top-level buffer (its trace_pipe reads are consuming: another reader loses those events).")
    var noInstance = false

    @Option(help: ArgumentHelp("Stop after this many seconds (default: until SIGINT or SIGTERM).", valueName: "s"))
    var duration: Double?

    @Option(help: ArgumentHelp("The VM id of events whose tgid was not recorded.", valueName: "name"))
    var vm = "unknown"

    /// Where QEMU command lines are read (tests point it at a directory laid out like /proc).
    @Option(help: .hidden)
    var proc = "/proc"

    @Argument(help: ArgumentHelp("The output trace ('-' for standard output).", valueName: "output"))
    var output: String

    func validate() throws {
        guard !output.isEmpty else { throw ValidationError("give an output file ('-' for standard output)") }
        if instance != nil, noInstance { throw ValidationError("give --instance NAME or --no-instance, not both") }
        if let duration, !(duration > 0 && duration <= 1e9) {
            throw ValidationError("--duration must be a number of seconds above 0")
        }
        guard VMInfo.isValidID(Array(vm.utf8)) else {
            throw ValidationError("invalid --vm '\(vm)': expected [A-Za-z0-9_.:-]{1,64}")
        }
    }

    var buffer: TracefsTarget.Buffer {
        if noInstance { return .topLevel }
        return .instance(instance ?? "nestcache-\(getpid())")
    }

    func run() throws {
        // A closed reader of '-' must be an EPIPE error (settings restored), not a silent death.
        signal(SIGPIPE, SIG_IGN)
        let stop = try StopSignals([SIGINT, SIGTERM, SIGHUP])
        let target = try exitingOnTraceError { () throws(TraceError) in
            try TracefsTarget.find(tracefs: tracefs, buffer: buffer)
        }
        let recorder = TraceRecorder(
            target: target, vm: vm, names: QEMUName(proc: proc),
            duration: duration.map { .milliseconds(Int64(($0 * 1000).rounded(.up))) }, stopFD: stop.readFD)
        let start = ContinuousClock.now
        let outcome = recorder.record(to: output)
        let elapsed = ContinuousClock.now - start
        for failure in outcome.restoreFailures { printError("nestcache: \(failure)") }
        switch outcome.result {
        case .failure(let error):
            printError("nestcache: \(error)")
            throw ExitCode(outcome.restoreFailures.isEmpty ? error.exitCode : 1)
        case .success(let summary):
            reportWarnings(summary.warnings, figures: [])
            printError(Self.summaryLine(summary, output: output, directory: outcome.directory, elapsed: elapsed))
            if !outcome.restoreFailures.isEmpty { throw ExitCode(1) }
        }
    }

    /// `nestcache: recorded N events of M VMs to OUT from DIR in T s (stopped by X); lines
    /// skipped: ...; lost events: ...`.
    static func summaryLine(_ s: RecordSummary, output: String, directory: String, elapsed: Duration) -> String {
        let figure = { (name: String) in s.figures.first { $0.name == name }?.value ?? 0 }
        let otherEvents = s.skippedEvents?.reduce(0) { $0 + $1.count } ?? 0
        let invalid = figure("invalid_lines"), evmcs = figure("evmcs_skipped")
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        var line = "nestcache: recorded \(s.events) event\(s.events == 1 ? "" : "s") of \(s.vms.count) VM\(s.vms.count == 1 ? "" : "s")"
        line += " to \(output == "-" ? "standard output" : output) from \(directory)"
        line += " in \((seconds * 10).rounded() / 10) s (stopped by \(s.stop)); lines read: \(s.lines);"
        line += " lines skipped: \(invalid + evmcs + otherEvents) (invalid \(invalid), eVMCS entries \(evmcs), other events \(otherEvents));"
        line += " lost events: \(figure("lost_events")) (markers \(figure("lost_event_markers")));"
        line += " unresolved_clears \(figure("unresolved_clears"))"
        if s.raisedTimes > 0 { line += "; times raised \(s.raisedTimes)" }
        return line
    }
}

/// Signals turned into a byte on a pipe, for a `poll` loop: the byte is the signal number.
/// The signals are ignored while the sources exist (Dispatch handles them on its own queue), so
/// the process does not die with the tracefs settings changed.
final class StopSignals {
    let readFD: Int32
    let writeFD: Int32
    private var sources: [any DispatchSourceSignal] = []
    private let queue = DispatchQueue(label: "nestcache.record.signals")

    init(_ signals: [Int32]) throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            printError("nestcache: pipe: \(Syscall.describe(errno))")
            throw ExitCode(1)
        }
        readFD = fds[0]
        writeFD = fds[1]
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        for sig in signals {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            let fd = writeFD
            source.setEventHandler {
                var byte = UInt8(truncatingIfNeeded: sig)
                _ = withUnsafeBytes(of: &byte) { Syscall.writeAll(fd, $0) }
            }
            source.resume()
            sources.append(source)
        }
    }

    deinit {
        for s in sources { s.cancel() }
        close(readFD)
        close(writeFD)
    }
}
