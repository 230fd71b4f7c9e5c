import NestCacheCore

/// A stream of events in batches: the trace readers and the simulator.
public protocol EventSource {
    /// The VMs named so far. It grows while reading; a VM is in it before the first event that
    /// names it is returned, with whatever its declaration said.
    var registry: VMRegistry { get }

    /// Replaces the contents of `batch` with up to `limit` next events, in stream order.
    /// Returns false, with `batch` empty, at the end of the stream.
    mutating func next(into batch: inout [Event], limit: Int) throws(TraceError) -> Bool

    /// The source's own figures for reports, in output order: `invalid_lines`, and for ftrace
    /// `unresolved_clears`, `evmcs_skipped`, `lost_events`, ...
    var figures: [(name: String, value: UInt64)] { get }

    /// Messages about input that was skipped (`--skip-invalid`), at most the first 10.
    var warnings: [String] { get }
}

extension EventSource {
    public var warnings: [String] { [] }
}

/// How readers treat a line that fits no form.
public enum InvalidLinePolicy: Sendable {
    /// Throw `TraceError` (exit 65).
    case fail
    /// Count it and go on; keep the first `warningLimit` messages.
    case skip
}

/// The number of skipped-line messages a reader keeps (DESIGN §5: the first 10 are reported).
public let warningLimit = 10
