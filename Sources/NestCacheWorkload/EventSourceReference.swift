import NestCacheCore

/// A source shared by reference, so its figures can be read after `Replay.drive`, which takes
/// its source by value (a struct source such as `Simulator` would count on a copy).
public final class EventSourceReference: EventSource {
    public private(set) var base: any EventSource

    public init(_ base: any EventSource) { self.base = base }

    public var registry: VMRegistry { base.registry }
    public var figures: [(name: String, value: UInt64)] { base.figures }
    public var warnings: [String] { base.warnings }
    public var skippedEvents: EventCounts? { base.skippedEvents }

    public func next(into batch: inout [Event], limit: Int) throws(TraceError) -> Bool {
        try base.next(into: &batch, limit: limit)
    }
}
