import NestCacheCore
import NestCacheWorkload

/// One VM's events of one batch, with what the feeder works out once, in stream order, so that
/// each vCPU queue touches only its own events: their migration flags, a chain through each
/// vCPU's events, and the batch's switches. (Each of 16 queues scanning the whole batch for its
/// own events cost more than the engines' work; BENCHMARKS.md, "nestcache-bench daemon".)
///
///     stream:      a0 b0 a1 c0 b1 a2        (letters: vCPUs; the source's batch, not copied)
///     next:         2  4  5  -  -  -        the next event of the same vCPU (- : none)
///     runs:        (a, first 0, 3) (b, first 1, 2) (c, first 3, 1)   in order of first appearance
///     migrations:  one flag per event of `stream`, from the VM's `SwitchTracker`
///     switches:    the batch's switches in stream order, for the VM's `SwitchWindow`
///
/// The feeder makes two passes (`fill`): one links each vCPU's events and counts them, one
/// advances the tracker (`SwitchTracker.advance(over:)`). Each vCPU queue then follows its chain
/// and copies its events and flags into a contiguous buffer of its own (`withRun`): that copy,
/// the split proper, runs on the vCPU queues, in parallel, and reads only the run's events. The
/// storage stays from batch to batch (the runner keeps a few for reuse, and swaps `stream` with
/// its reading buffer): no allocation per batch once grown.
///
/// Written only by the feeder, and only while none of its closures is queued; the vCPU queues'
/// closures read it after `async` handed it to them (Dispatch orders the writes before), and
/// the feeder writes it again only after the batch's group has notified.
final class VCPUBatch: @unchecked Sendable {
    /// The VM's events of the batch, in stream order, as the source made them (`vm` is the
    /// source's index; `withRun` gives them as index 0, the runtime's).
    var stream: [Event] = []
    private var migrations = UnsafeMutableBufferPointer<Bool>(start: nil, count: 0)
    /// Per event, the index of the next event of the same vCPU, -1 after its last.
    private var next = UnsafeMutableBufferPointer<Int32>(start: nil, count: 0)
    /// Scratch by vCPU index: its latest event linked (-1: none yet) and its count; all (-1, 0)
    /// between fills.
    private var last: [(index: Int32, count: Int32)] = []
    /// The vCPUs of the batch in order of first appearance: each one's first event and count.
    private(set) var runs: [(vcpu: Int, first: Int32, count: Int)] = []
    /// The batch's switches, in stream order.
    private(set) var switches: [SwitchWindow.Switch] = []
    /// Scratch: positions of the switches in the stream.
    private var switchIndices: [Int32] = []

    deinit {
        migrations.deallocate()
        next.deallocate()
    }

    /// Events in the batch.
    var count: Int { stream.count }

    /// Room for `n` events' flags and links.
    private func reserve(_ n: Int) {
        guard next.count < n else { return }
        migrations.deallocate()
        next.deallocate()
        migrations = .allocate(capacity: n)
        next = .allocate(capacity: n)
    }

    /// Works out, for the events of `stream` (one VM's, in stream order, at most `Int32.max`),
    /// each vCPU's chain and count, each event's migration flag and the switches, advancing
    /// `tracker`, that VM's, over each event.
    /// - Complexity: O(events + highest vCPU index); one `GPAMap` update per switch.
    func fill(tracker: inout SwitchTracker) {
        let n = stream.count
        precondition(n <= Int(Int32.max), "a batch of \(n) events")
        reserve(n)
        var last = self.last
        var runs = self.runs
        var switches = self.switches
        var switchIndices = self.switchIndices
        self.last = []
        self.runs = []
        self.switches = []
        self.switchIndices = []
        runs.removeAll(keepingCapacity: true)
        switches.removeAll(keepingCapacity: true)
        switchIndices.removeAll(keepingCapacity: true)
        stream.withUnsafeBufferPointer { source in
            // 1. Each vCPU's chain and count.
            var top = -1
            for e in source where Int(e.vcpu) > top { top = Int(e.vcpu) }
            if top >= last.count { last.append(contentsOf: repeatElement((index: Int32(-1), count: Int32(0)), count: top + 1 - last.count)) }
            let next = self.next
            last.withUnsafeMutableBufferPointer { last in
                for i in source.indices {
                    let v = Int(source[i].vcpu)
                    let l = last[v].index
                    if l < 0 {
                        runs.append((v, Int32(truncatingIfNeeded: i), 0))
                    } else {
                        next[Int(l)] = Int32(truncatingIfNeeded: i)
                    }
                    last[v].index = Int32(truncatingIfNeeded: i)
                    last[v].count &+= 1
                }
                // Every link is written: each chain ends with -1.
                for k in runs.indices {
                    let v = runs[k].vcpu
                    runs[k].count = Int(last[v].count)
                    next[Int(last[v].index)] = -1
                    last[v] = (index: -1, count: 0)
                }
            }
            // 2. Migrations and switches, in stream order.
            tracker.advance(over: source, migrations: migrations, switches: &switchIndices)
            for i in switchIndices {
                let e = source[Int(i)]
                switches.append(SwitchWindow.Switch(gpa: e.gpa, vcpu: e.vcpu))
            }
        }
        self.last = last
        self.runs = runs
        self.switches = switches
        self.switchIndices = switchIndices
    }

    /// Calls `body` with the events of run `run` (one of `runs`), in order, as VM index 0, and
    /// their migration flags, both contiguous (copied into a buffer of the caller's own).
    func withRun<R>(_ run: (vcpu: Int, first: Int32, count: Int), _ body: (UnsafeBufferPointer<Event>, UnsafeBufferPointer<Bool>) -> R) -> R {
        let next = self.next
        let migrations = self.migrations
        return stream.withUnsafeBufferPointer { source in
            withUnsafeTemporaryAllocation(of: Event.self, capacity: run.count) { events in
                withUnsafeTemporaryAllocation(of: Bool.self, capacity: run.count) { flags in
                    var i = Int(run.first)
                    for k in 0..<run.count {
                        var e = source[i]
                        e.vm = 0
                        events.initializeElement(at: k, to: e)
                        flags.initializeElement(at: k, to: migrations[i])
                        i = Int(next[i])
                    }
                    precondition(i == -1, "run of vCPU \(run.vcpu) longer than its count \(run.count)")
                    return body(UnsafeBufferPointer(events), UnsafeBufferPointer(flags))
                }
            }
        }
    }
}
