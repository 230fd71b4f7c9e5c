import NestCacheCore
import NestCacheSystem

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why a recording ended.
public enum RecordStop: Sendable, Equatable, CustomStringConvertible {
    /// `--duration` elapsed.
    case duration
    /// A byte arrived on the stop descriptor: the signal number it carried (SIGINT, SIGTERM, ...).
    case signal(Int32)
    /// `trace_pipe` ended (a FIFO whose writers closed; tracefs's never does).
    case endOfInput

    public var description: String {
        switch self {
        case .duration: "--duration"
        case .signal(SIGINT): "SIGINT"
        case .signal(SIGTERM): "SIGTERM"
        case .signal(SIGHUP): "SIGHUP"
        case .signal(let n): "signal \(n)"
        case .endOfInput: "the end of trace_pipe"
        }
    }
}

/// What a recording wrote and read.
public struct RecordSummary: Sendable {
    public var stop: RecordStop
    /// Lines read from `trace_pipe`.
    public var lines: Int = 0
    /// Events written.
    public var events: UInt64 = 0
    /// Events whose time was raised to the previous one's (`NativeTraceWriter.raiseTimes`).
    public var raisedTimes: UInt64 = 0
    /// The ftrace reader's figures (`invalid_lines`, `evmcs_skipped`, `lost_events`, ...).
    public var figures: [(name: String, value: UInt64)] = []
    /// Lines of events not used, per name.
    public var skippedEvents: EventCounts?
    /// The first invalid lines, skipped.
    public var warnings: [String] = []
    /// The VMs seen, in order of first entry.
    public var vms: [String] = []
}

/// `nestcache record` (DESIGN §11): turns the KVM events on in a tracefs buffer
/// (`TracefsSession`), streams its `trace_pipe` through `FtraceReader` into a
/// `NativeTraceWriter`, and puts every setting back when it stops: at the deadline, when a byte
/// arrives on `stopFD` (the CLI's signal handlers write one), at the end of the input, or on an
/// error (writing the output failed: disk full, `EPIPE`).
///
/// VM ids: the tgid column (`record-tgid` is turned on), named by `QEMUName` where the process
/// has a `-name`; lines without a tgid go to `vm`.
///
/// The loop never blocks in a read: `trace_pipe` is opened non-blocking and `poll`ed together
/// with `stopFD`, at most `pollInterval` at a time (tracefs's poll on `trace_pipe` may wait for
/// `buffer_percent` of the buffer to fill, so reads are tried at least that often). Written
/// events are flushed whenever no more are waiting, so a reader of `-` sees them as they come.
public struct TraceRecorder {
    public var target: TracefsTarget
    /// The VM of lines whose tgid was not recorded (`(-------)`).
    public var vm: String
    public var names: QEMUName
    /// How long to record; nil: until stopped.
    public var duration: Duration?
    /// Readable means stop; one byte is read from it: the signal number.
    public var stopFD: Int32

    /// The longest wait in `poll`, in milliseconds.
    static let pollInterval: Int32 = 100
    /// After a stop, batches read from what is already in `trace_pipe` before closing it.
    static let drainBatches = 256

    public init(target: TracefsTarget, vm: String, names: QEMUName, duration: Duration?, stopFD: Int32) {
        self.target = target
        self.vm = vm
        self.names = names
        self.duration = duration
        self.stopFD = stopFD
    }

    /// What `record` did: its summary or the error that ended it, and the settings that could not
    /// be put back (empty when everything was restored).
    public struct Outcome {
        public var result: Result<RecordSummary, TraceError>
        public var restoreFailures: [String]
        /// The buffer directory used (the instance's, or the mount's).
        public var directory: String
    }

    /// Records into `output` (`-`: standard output). The file appears only when the recording
    /// ends without error (`NativeTraceWriter.write(to:_:)`); the tracefs settings are restored
    /// before that, on every path.
    public func record(to output: String) -> Outcome {
        var failures: [String] = []
        var summary: RecordSummary?
        do throws(TraceError) {
            try NativeTraceWriter.write(to: output) { (w: inout NativeTraceWriter) throws(TraceError) in
                let session = try TracefsSession(target)
                let streamed: Result<RecordSummary, TraceError>
                do throws(TraceError) {
                    streamed = .success(try stream("\(session.directory)/trace_pipe", into: &w))
                } catch {
                    streamed = .failure(error)
                }
                // trace_pipe is closed by now (`stream`'s reader is gone): an instance with an
                // open trace_pipe could not be removed.
                failures = session.restore()
                summary = try streamed.get()
            }
        } catch {
            return Outcome(result: .failure(error), restoreFailures: failures, directory: target.directory)
        }
        guard let summary else {
            return Outcome(result: .failure(TraceError(.io, file: output, "no summary")), restoreFailures: failures, directory: target.directory)
        }
        return Outcome(result: .success(summary), restoreFailures: failures, directory: target.directory)
    }

    /// Reads `pipe` until a stop, writing its events; see the type's comment.
    func stream(_ pipe: String, into w: inout NativeTraceWriter) throws(TraceError) -> RecordSummary {
        let lines = try LineReader(path: pipe, follow: true, endsAtEOF: true)
        let names = self.names
        let reader = try FtraceReader(lines: lines, vm: vm, invalidLines: .skip, vmIDOfTGID: { names.vmID(tgid: $0) })
        let clock = ContinuousClock()
        let deadline = duration.map { clock.now + $0 }
        var summary = RecordSummary(stop: .endOfInput)
        var batch: [Event] = []
        batch.reserveCapacity(Replay.batchSize)
        var last: UInt64 = 0

        func writeNext() throws(TraceError) -> Bool {
            guard try reader.next(into: &batch, limit: Replay.batchSize) else { return false }
            summary.raisedTimes += NativeTraceWriter.raiseTimes(&batch, last: &last)
            summary.events += UInt64(batch.count)
            try w.write(batch, registry: reader.registry)
            return true
        }

        var isBusy = true
        loop: while true {
            var timeout: Int32 = isBusy ? 0 : Self.pollInterval
            if let deadline {
                let left = clock.now.duration(to: deadline)
                if left <= .zero {
                    summary.stop = .duration
                    break loop
                }
                timeout = min(timeout, Self.milliseconds(left))
            }
            var fds = [
                pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0),
                pollfd(fd: lines.descriptor, events: Int16(POLLIN), revents: 0),
            ]
            if poll(&fds, 2, timeout) < 0, errno != EINTR {
                throw TraceError(.io, file: pipe, "poll: \(Syscall.describe(errno))")
            }
            if fds[0].revents != 0 {
                var byte: UInt8 = 0
                let n = withUnsafeMutableBytes(of: &byte) { Syscall.read(stopFD, into: $0) }
                summary.stop = .signal(n == 1 ? Int32(byte) : 0)
                break loop
            }
            if try writeNext() {
                isBusy = true
                continue
            }
            if lines.isAtEnd {
                summary.stop = .endOfInput
                break loop
            }
            // Nothing waiting: hand what was written to the output now, not at 64 KiB.
            try w.flush()
            isBusy = false
        }
        if summary.stop != .endOfInput {
            // What the kernel had already traced when the stop came belongs to the recording.
            var n = 0
            while n < Self.drainBatches, try writeNext() { n += 1 }
        }
        try w.finish(registry: reader.registry)
        summary.lines = lines.lineNumber
        summary.figures = reader.figures
        summary.skippedEvents = reader.skippedEvents
        summary.warnings = reader.warnings
        summary.vms = reader.registry.infos.map(\.id)
        return summary
    }

    /// `d` in whole milliseconds, rounded up (so a poll never returns just before a deadline
    /// and spins), at most `pollInterval`.
    static func milliseconds(_ d: Duration) -> Int32 {
        let (s, atto) = d.components
        let ms = s * 1000 + (atto + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: min(max(ms, 0), Int64(pollInterval)))
    }
}
