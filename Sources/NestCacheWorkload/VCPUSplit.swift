import NestCacheCore

/// One VM's events of one batch split by L1 vCPU, for the daemon's vCPU queues: each vCPU's
/// events contiguous, in stream order, as VM index 0, with their migration flags (DESIGN §2),
/// so a queue applies its own events where they are; the vCPUs in order of first appearance;
/// the batch's switches in stream order, for the VM's `SwitchWindow`.
///
/// Filled either from a stream with the VM's `SwitchTracker` (`fill`, any source) or by the
/// simulator as it generates (`Simulator.next(split:limit:)`: it knows each event's vCPU and
/// which switches migrate, so the feeder makes no second pass).
///
/// Each vCPU's events are a segment of one buffer, so the split holds about a batch, as one
/// stream of the batch would: `fill` counts first and lays the segments out exactly; the
/// simulator's split reuses the last batch's layout with some room per vCPU, and a vCPU that
/// outgrows its segment moves to the free end of the buffer. The buffer stays from batch to
/// batch: no allocation per batch once grown.
///
///     buffer:  [ vCPU 0's events | room ][ vCPU 1's | room ] ... [ moved vCPU ] free
///
/// Noncopyable: it owns its buffer.
public struct VCPUSplit: ~Copyable {
    /// One vCPU's segment of the buffer.
    struct Lane {
        var start = 0
        var count = 0
        var capacity = 0
    }

    /// By vCPU index; `count` 0 for a vCPU not in the batch.
    private var lanes = UnsafeMutableBufferPointer<Lane>(start: nil, count: 0)
    private var events = UnsafeMutableBufferPointer<Event>(start: nil, count: 0)
    private var flags = UnsafeMutableBufferPointer<Bool>(start: nil, count: 0)
    /// The buffer's first position past every segment.
    private var used = 0
    /// The vCPUs of the batch, in order of first appearance.
    public private(set) var vcpus: [Int] = []
    /// The batch's switches, in stream order.
    public private(set) var switches: [SwitchWindow.Switch] = []
    /// Events in the batch.
    public private(set) var count = 0
    /// `fill`'s scratch, kept from batch to batch: the stream's migration flags and the
    /// positions of its switches.
    private var streamFlags = UnsafeMutableBufferPointer<Bool>(start: nil, count: 0)
    private var switchIndices: [Int32] = []
    /// Events the buffer has room for (tests).
    var bufferCapacity: Int { events.count }

    public init() {}

    deinit {
        lanes.deallocate()
        events.deallocate()
        flags.deallocate()
        streamFlags.deallocate()
    }

    /// Empties the split for events of vCPUs below `vcpuCount`, each vCPU's segment laid out
    /// with room for `capacity(its count in the last batch)` events.
    mutating func removeAll(vcpuCount: Int, capacity: (_ lastCount: Int) -> Int) {
        vcpus.removeAll(keepingCapacity: true)
        switches.removeAll(keepingCapacity: true)
        count = 0
        if vcpuCount > lanes.count {
            let grown = UnsafeMutableBufferPointer<Lane>.allocate(capacity: vcpuCount)
            _ = grown.moveInitialize(fromContentsOf: lanes)
            grown[lanes.count...].initialize(repeating: Lane())
            lanes.deallocate()
            lanes = grown
        }
        var total = 0
        for v in lanes.indices {
            let c = capacity(lanes[v].count)
            lanes[v] = Lane(start: total, count: 0, capacity: c)
            total += c
        }
        used = 0
        reserve(total)
        used = total
    }

    /// When this batch used under a quarter of the event buffer: empties the split and gives the
    /// buffer back; the next batch allocates what it needs. For a paced VM: its batches are the
    /// few events due at a pump, but its first read (or one that fell due at once) is a whole
    /// batch, and a buffer kept at that size was 6 KiB per simulated VM, 6 MiB for 1,000
    /// (BENCHMARKS.md, "Memory").
    public mutating func shrinkIfOversized() {
        guard count * 4 < events.count else { return }
        vcpus.removeAll(keepingCapacity: true)
        switches.removeAll(keepingCapacity: true)
        for v in lanes.indices { lanes[v] = Lane() }
        count = 0
        used = 0
        events.deallocate()
        flags.deallocate()
        events = UnsafeMutableBufferPointer(start: nil, count: 0)
        flags = UnsafeMutableBufferPointer(start: nil, count: 0)
    }

    /// Empties the split for a simulated batch of about `batch` events of vCPUs below
    /// `vcpuCount`: each vCPU's segment has room for an eighth more than its events of the last
    /// batch, and at least for its share of `batch`.
    mutating func removeAll(vcpuCount: Int, batch: Int) {
        let share = batch / max(vcpuCount, 1)
        removeAll(vcpuCount: vcpuCount) { last in max(last + last / 8, share) + 4 }
    }

    /// Room for `n` events in the buffer, keeping those before `used`.
    private mutating func reserve(_ n: Int) {
        guard n > events.count else { return }
        let capacity = max(n, events.count + events.count / 4)
        let e = UnsafeMutableBufferPointer<Event>.allocate(capacity: capacity)
        let f = UnsafeMutableBufferPointer<Bool>.allocate(capacity: capacity)
        if let old = events.baseAddress, let oldFlags = flags.baseAddress, used > 0 {
            e.baseAddress.unsafelyUnwrapped.moveInitialize(from: old, count: used)
            f.baseAddress.unsafelyUnwrapped.moveInitialize(from: oldFlags, count: used)
        }
        events.deallocate()
        flags.deallocate()
        events = e
        flags = f
    }

    /// Appends `e` to its vCPU's events (below `removeAll`'s `vcpuCount`), as VM index 0, with
    /// its migration flag.
    @inline(__always)
    mutating func append(_ e: Event, migration: Bool) {
        let v = Int(e.vcpu)
        var lane = lanes[v]
        if lane.count == 0 { vcpus.append(v) }
        if lane.count == lane.capacity {
            move(v)
            lane = lanes[v]
        }
        var copy = e
        copy.vm = 0
        events[lane.start + lane.count] = copy
        flags[lane.start + lane.count] = migration
        lanes[v].count = lane.count + 1
        count += 1
    }

    /// Records `e`, appended last, as a switch.
    @inline(__always)
    mutating func appendSwitch(_ e: Event) {
        switches.append(SwitchWindow.Switch(gpa: e.gpa, vcpu: e.vcpu))
    }

    /// Moves vCPU `v`'s full segment to the free end of the buffer, with twice the room.
    private mutating func move(_ v: Int) {
        let old = lanes[v]
        let capacity = max(16, 2 * old.capacity)
        reserve(used + capacity)
        let base = events.baseAddress.unsafelyUnwrapped
        let flagBase = flags.baseAddress.unsafelyUnwrapped
        (base + used).moveInitialize(from: base + old.start, count: old.count)
        (flagBase + used).moveInitialize(from: flagBase + old.start, count: old.count)
        lanes[v] = Lane(start: used, count: old.count, capacity: capacity)
        used += capacity
    }

    /// Replaces the contents with `events`, one VM's in stream order (their `vm` is ignored),
    /// advancing `tracker`, that VM's, over each: the general path, for any source.
    /// - Complexity: O(events + highest vCPU index); one `GPAMap` update per switch. Allocates
    ///   only when a batch needs more room than its buffers have.
    public mutating func fill(_ events: UnsafeBufferPointer<Event>, tracker: inout SwitchTracker) {
        var top = -1
        for e in events where Int(e.vcpu) > top { top = Int(e.vcpu) }
        // Each vCPU's count, for an exact layout (the lanes' `count` as scratch).
        removeAll(vcpuCount: top + 1) { _ in 0 }
        for e in events { lanes[Int(e.vcpu)].count += 1 }
        removeAll(vcpuCount: top + 1) { $0 }
        if streamFlags.count < events.count {
            streamFlags.deallocate()
            streamFlags = .allocate(capacity: events.count)
        }
        let flags = streamFlags
        var switchIndices = self.switchIndices
        self.switchIndices = []
        switchIndices.removeAll(keepingCapacity: true)
        tracker.advance(over: events, migrations: flags, switches: &switchIndices)
        for i in events.indices { append(events[i], migration: flags[i]) }
        for i in switchIndices { appendSwitch(events[Int(i)]) }
        self.switchIndices = switchIndices
    }

    /// Calls `body` with vCPU `v`'s events of the batch, in order, as VM index 0, and their
    /// migration flags.
    public func withRun<R>(_ v: Int, _ body: (UnsafeBufferPointer<Event>, UnsafeBufferPointer<Bool>) -> R) -> R {
        let lane = v < lanes.count ? lanes[v] : Lane()
        return body(UnsafeBufferPointer(rebasing: events[lane.start..<lane.start + lane.count]),
                    UnsafeBufferPointer(rebasing: flags[lane.start..<lane.start + lane.count]))
    }
}
