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

    /// The lines of events the source read and passed over, per event name, sorted by name
    /// (`skipped_events`); nil for a source that reads no event names (native traces, the
    /// simulator), so reports leave the member out.
    var skippedEvents: EventCounts? { get }
}

/// Counts per event name, sorted by name.
public typealias EventCounts = [(name: String, count: UInt64)]

extension EventSource {
    public var warnings: [String] { [] }
    public var skippedEvents: EventCounts? { nil }
}

/// The reports' form of a source's skipped events: `"skipped_events": {NAME: COUNT, ...}`, or
/// nothing when the source reads no event names.
public func skippedEventsMembers(_ counts: EventCounts?) -> [(String, JSON)] {
    guard let counts else { return [] }
    return [("skipped_events", .object(counts.map { ($0.name, JSON.uint($0.count)) }))]
}

/// Adds `more` into `totals`, keeping names sorted (several files of one run).
func merge(_ more: EventCounts?, into totals: inout EventCounts?) {
    guard let more else { return }
    var byName = Dictionary((totals ?? []).map { ($0.name, $0.count) }, uniquingKeysWith: +)
    for e in more { byName[e.name, default: 0] += e.count }
    totals = byName.map { (name: $0.key, count: $0.value) }.sorted { $0.name < $1.name }
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
