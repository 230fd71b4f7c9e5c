import NestCacheCore

/// A capture followed as it is written: the daemon's `[[live]]` source (DESIGN §7).
///
/// The input is a FIFO, a regular file that grows, or tracefs `trace_pipe`, read by a
/// `LineReader` in follow mode, so no call ever blocks: `next` returns false when no complete
/// line is there *now*, and the caller asks again later. Lines are parsed by the same readers
/// as `nestcache replay`'s, in arrival order, so the same text gives the same events.
public final class LiveTrace: EventSource {
    /// `[[live]] format`: no `auto` (there is nothing to peek at before the writer writes).
    public enum Format: String, Sendable, CaseIterable { case ftrace, native }

    let lines: LineReader
    var reader: any EventSource

    /// Opens `path` (without waiting for a FIFO's writer). `vm` names the VM of ftrace lines
    /// without a tgid. Bad lines throw (`.badData`, `FILE:LINE: message`).
    public init(path: String, format: Format, vm: String) throws(TraceError) {
        let lines = try LineReader(path: path, follow: true)
        self.lines = lines
        switch format {
        case .ftrace: reader = try FtraceReader(lines: lines, vm: vm)
        case .native: reader = NativeTraceReader(lines: lines)
        }
    }

    public var registry: VMRegistry { reader.registry }
    public var figures: [(name: String, value: UInt64)] { reader.figures }
    public var skippedEvents: EventCounts? { reader.skippedEvents }

    /// Up to `limit` events that arrived; false when none is there now (not the end).
    public func next(into batch: inout [Event], limit: Int) throws(TraceError) -> Bool {
        try reader.next(into: &batch, limit: limit)
    }

    /// Throws when the input is gone for good (removed, replaced, truncated): `LineReader`.
    public func checkStillThere() throws(TraceError) { try lines.checkStillThere() }

    /// Lines and bytes read so far, and how many times a FIFO was opened (writer sessions).
    public var lineNumber: Int { lines.lineNumber }
    public var bytesRead: UInt64 { lines.bytesRead }
    public var opens: Int { lines.opens }
    public var isFIFO: Bool { lines.isFIFO }
}
