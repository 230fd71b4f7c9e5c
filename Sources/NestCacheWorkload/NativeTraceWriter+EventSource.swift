import NestCacheCore

/// What `NativeTraceWriter.write(_:to:)` wrote, and what the source said about its input.
public struct NativeTraceSummary: Sendable {
    /// Events written.
    public var events: UInt64 = 0
    /// Events whose time was raised to the previous event's, because the native format's times
    /// never decrease (DESIGN §5) while a raw ftrace file may step back between CPUs.
    public var raisedTimes: UInt64 = 0
    /// The source's figures at its end (`invalid_lines`, `evmcs_skipped`, ...).
    public var figures: [(name: String, value: UInt64)] = []
    /// The source's lines of unused events per name (ftrace input), or nil.
    public var skippedEvents: EventCounts?
    /// The source's messages about skipped input (at most the first 10).
    public var warnings: [String] = []
}

extension NativeTraceWriter {
    /// Writes every event of `source`, in order, to `path` in the native format (`-`: standard
    /// output), then declares the VMs that had no event (`finish(registry:)`).
    ///
    /// The file appears only once everything was written (`write(to:_:)`): a source that fails
    /// half way (bad data, missing input) leaves nothing behind.
    ///
    /// Times: an event earlier than the one before it is written with the earlier event's time
    /// and counted in `raisedTimes`. Order is what replay uses, so replaying the output gives the
    /// counters of replaying the source; only the order check of the native reader needs this.
    ///
    /// - Complexity: O(events), constant memory (one batch of `Replay.batchSize` events).
    public static func write(_ source: some EventSource, to path: String) throws(TraceError) -> NativeTraceSummary {
        var source = source
        var summary = NativeTraceSummary()
        try write(to: path) { (w: inout NativeTraceWriter) throws(TraceError) in
            var batch: [Event] = []
            batch.reserveCapacity(Replay.batchSize)
            var last: UInt64 = 0
            while try source.next(into: &batch, limit: Replay.batchSize) {
                summary.raisedTimes += raiseTimes(&batch, last: &last)
                summary.events += UInt64(batch.count)
                try w.write(batch, registry: source.registry)
            }
            try w.finish(registry: source.registry)
        }
        summary.figures = source.figures
        summary.skippedEvents = source.skippedEvents
        summary.warnings = source.warnings
        return summary
    }

    /// Raises each time of `batch` below `last` (the latest time written) to it, and moves `last`
    /// on: the native format's times never decrease, while raw ftrace may step back between CPUs.
    /// Returns how many were raised. The order, and so every counter of a replay, is unchanged.
    static func raiseTimes(_ batch: inout [Event], last: inout UInt64) -> UInt64 {
        var raised: UInt64 = 0
        for i in batch.indices {
            if batch[i].timeNs < last {
                batch[i].timeNs = last
                raised += 1
            } else {
                last = batch[i].timeNs
            }
        }
        return raised
    }
}
