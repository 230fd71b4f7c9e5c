import NestCacheCore

/// One VM's events of one batch split by L1 vCPU, for the daemon's vCPU queues: each vCPU's
/// events contiguous, in stream order, as VM index 0, with their migration flags (DESIGN §2),
/// so a queue applies its own events where they are; the vCPUs in order of first appearance;
/// the batch's switches in stream order, for the VM's `SwitchWindow`.
///
/// Filled either from a stream with the VM's `SwitchTracker` (`fill`, any source) or by the
/// simulator as it generates (`Simulator.next(split:limit:)`: it knows each event's vCPU and
/// which switches migrate, so the feeder makes no second pass). The storage stays from batch to
/// batch: no allocation per batch once each vCPU's part has grown.
///
/// Noncopyable: it owns its buffers.
public struct VCPUSplit: ~Copyable {
    /// One vCPU's events and flags of the batch.
    struct Lane {
        var events: UnsafeMutablePointer<Event>?
        var flags: UnsafeMutablePointer<Bool>?
        var count = 0
        var capacity = 0
    }

    /// By vCPU index; `count` 0 for a vCPU not in the batch.
    private var lanes = UnsafeMutableBufferPointer<Lane>(start: nil, count: 0)
    /// The vCPUs of the batch, in order of first appearance.
    public private(set) var vcpus: [Int] = []
    /// The batch's switches, in stream order.
    public private(set) var switches: [SwitchWindow.Switch] = []
    /// Events in the batch.
    public private(set) var count = 0

    public init() {}

    deinit {
        for lane in lanes {
            lane.events?.deallocate()
            lane.flags?.deallocate()
        }
        lanes.deallocate()
    }

    /// Empties the split, ready for events of vCPUs below `vcpuCount`.
    public mutating func removeAll(vcpuCount: Int) {
        for v in vcpus { lanes[v].count = 0 }
        vcpus.removeAll(keepingCapacity: true)
        switches.removeAll(keepingCapacity: true)
        count = 0
        guard vcpuCount > lanes.count else { return }
        let grown = UnsafeMutableBufferPointer<Lane>.allocate(capacity: vcpuCount)
        _ = grown.moveInitialize(fromContentsOf: lanes)
        grown[lanes.count...].initialize(repeating: Lane())
        lanes.deallocate()
        lanes = grown
    }

    /// Appends `e` to its vCPU's events (below `removeAll`'s `vcpuCount`), as VM index 0, with
    /// its migration flag.
    @inline(__always)
    mutating func append(_ e: Event, migration: Bool) {
        let v = Int(e.vcpu)
        var lane = lanes[v]
        if lane.count == lane.capacity {
            if lane.count == 0 { vcpus.append(v) }
            grow(v)
            lane = lanes[v]
        } else if lane.count == 0 {
            vcpus.append(v)
        }
        var copy = e
        copy.vm = 0
        lane.events.unsafelyUnwrapped[lane.count] = copy
        lane.flags.unsafelyUnwrapped[lane.count] = migration
        lanes[v].count = lane.count + 1
        count += 1
    }

    /// Records `e`, appended last, as a switch.
    @inline(__always)
    mutating func appendSwitch(_ e: Event) {
        switches.append(SwitchWindow.Switch(gpa: e.gpa, vcpu: e.vcpu))
    }

    /// Doubles vCPU `v`'s room (at least 16 events: a paced VM's batches are small), keeping
    /// its events.
    private mutating func grow(_ v: Int) {
        let old = lanes[v]
        let capacity = max(16, 2 * old.capacity)
        let events = UnsafeMutablePointer<Event>.allocate(capacity: capacity)
        let flags = UnsafeMutablePointer<Bool>.allocate(capacity: capacity)
        if let e = old.events, let f = old.flags {
            events.moveInitialize(from: e, count: old.count)
            flags.moveInitialize(from: f, count: old.count)
            e.deallocate()
            f.deallocate()
        }
        lanes[v] = Lane(events: events, flags: flags, count: old.count, capacity: capacity)
    }

    /// Replaces the contents with `events`, one VM's in stream order (their `vm` is ignored),
    /// advancing `tracker`, that VM's, over each: the general path, for any source.
    /// - Complexity: O(events + highest vCPU index); one `GPAMap` update per switch.
    public mutating func fill(_ events: UnsafeBufferPointer<Event>, tracker: inout SwitchTracker) {
        var top = -1
        for e in events where Int(e.vcpu) > top { top = Int(e.vcpu) }
        removeAll(vcpuCount: top + 1)
        var switchIndices: [Int32] = []
        withUnsafeTemporaryAllocation(of: Bool.self, capacity: events.count) { flags in
            tracker.advance(over: events, migrations: flags, switches: &switchIndices)
            for i in events.indices { append(events[i], migration: flags[i]) }
        }
        for i in switchIndices { appendSwitch(events[Int(i)]) }
    }

    /// Calls `body` with vCPU `v`'s events of the batch, in order, as VM index 0, and their
    /// migration flags.
    public func withRun<R>(_ v: Int, _ body: (UnsafeBufferPointer<Event>, UnsafeBufferPointer<Bool>) -> R) -> R {
        let lane = v < lanes.count ? lanes[v] : Lane()
        return body(UnsafeBufferPointer(start: lane.events, count: lane.count),
                    UnsafeBufferPointer(start: lane.flags, count: lane.count))
    }
}
