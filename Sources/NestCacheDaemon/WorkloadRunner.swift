import Dispatch
import Logging
import NestCacheCore
import NestCacheWorkload
import Synchronization

/// Feeds one workload's events to its VMs' vCPU queues.
///
/// Event-driven, so a thousand workloads need no thousand threads: `pump()` runs on the
/// runner's own serial `feeder` queue and takes the events that are due (all of a batch at speed
/// `max`). Concurrent ordering splits them by VM and by vCPU once, with each event's migration
/// flag worked out in stream order (`VCPUBatch`; a simulator at speed max splits as it
/// generates), hands each vCPU one closure that applies its own events on its queue, in parallel
/// with the others, and pumps again when all are done; at speed max it reads and splits the
/// next batch meanwhile. Strict ordering applies runs of consecutive same-vCPU events one after
/// another, in trace order, so the counters equal `nestcache replay`'s. Every mutable field
/// below is touched only on `feeder`.
public final class WorkloadRunner: @unchecked Sendable {
    public let kind: WorkloadKind
    let directory: VMDirectory
    let defaultPagesPerContext: Int
    /// `[daemon] bounds_window` when the workload started.
    let boundsWindow: Int
    let logger: Logger
    let feeder: DispatchQueue

    private var source: (any EventSource)?
    /// Instead of `source`, a simulated VM's stream at speed max in concurrent ordering: it splits
    /// its batches by vCPU itself (`nextSplits`).
    private var simulator: Simulator?
    /// VMs of this workload by id, and the source's registry index -> VM.
    private var vmsByID: [String: VMRuntime] = [:]
    private var byIndex: [VMRuntime?] = []
    private var pending: [Event] = []
    private var next = 0
    private var isPaused = false
    private var isStopped = false
    private var isFinished = false
    /// Pacing: the wall-clock start and the trace time it corresponds to; loops add an offset.
    private var wallStart: UInt64 = 0
    private var traceStart: UInt64?
    private var loopOffset: UInt64 = 0
    private var lastTime: UInt64 = 0
    /// A concurrent batch is being applied (its group has not notified yet). One at a time, so
    /// each snapshot is published when no lane is applying events (docs/DESIGN-NOTES.md).
    private var isInFlight = false
    /// The next concurrent batch, read and split while the current one is applied.
    private var prepared: [(vm: VMRuntime, batch: VCPUBatch)]?
    /// The source ended (nil) or failed while a batch was in flight: `finish` or `fail` once it
    /// is done, so the last snapshot published is exact.
    private var endOfSource: TraceError?? = nil
    /// A timer is set to pump when the next paced event is due (one at a time).
    private var isWakeSet = false
    /// Split batches kept for reuse (at most `spareLimit`).
    private var spareBatches: [VCPUBatch] = []
    static let spareLimit = 4
    /// Per VM: its `SwitchTracker`, which says in stream order which events are migrations, so
    /// every policy, the per-VM table included, counts the trace's migrations in concurrent
    /// ordering too (the vCPU lanes see one vCPU each). Not used for `simulator`'s VM, whose
    /// flags come with its split. By VM id (kept across loops); `trackerOf`
    /// maps a source VM index to it (-1: a VM this runner does not feed).
    private var trackerByID: [String: Int] = [:]
    private var trackers: [SwitchTracker] = []
    private var trackerOf: [Int] = []

    /// A `[[live]]` source (nil for the other kinds): its input, when a line last arrived, and
    /// whether its VMs show `waiting`.
    private var live: LiveTrace?
    private var lastArrivalNs: UInt64 = 0
    private var isWaiting = false
    private var linesSeen = 0
    /// How often an idle live source looks for new lines (and checks that its file is still
    /// there): no descriptor is ever waited on, so stopping never waits for a writer.
    static let livePollInterval = DispatchTimeInterval.milliseconds(50)

    /// What `show info` reports of a live source. Written on `feeder`; read by anyone.
    public struct LiveStatus: Sendable {
        public var state: VMRunState = .running
        public var error: String?
        public var lines = 0
        public var bytes: UInt64 = 0
        /// Times its FIFO was opened: 1 + the re-opens after all writers closed.
        public var opens = 0
        public var vms: [String] = []
    }
    public let liveStatus = Locked(LiveStatus())

    /// Events read at a time: at speed max `maxBatch` for a simulated VM and 4096 for a trace
    /// (a reader's error, or a VM's first event, is acted on per batch: a trace keeps the
    /// granularity it had); 256 when paced, so a thousand slow VMs do not each hold a full batch
    /// of future events in memory.
    let batchSize: Int
    /// A simulated VM's batch at speed max: 16,384 events (384 KiB, and as much again in the
    /// batch prepared ahead). Each batch costs a closure per vCPU, a thread wake-up or more and
    /// a publish; at 4,096 those were about a tenth of a 16-vCPU VM's CPU time (BENCHMARKS.md).
    static let maxBatch = 16_384
    let queueLayout: QueueLayout

    /// How a VM's events reach queues: one serial queue per L1 vCPU (the daemon), or a single
    /// queue for the whole VM (the benchmark's comparison).
    public enum QueueLayout: Sendable {
        case perVCPU, single
    }

    public init(kind: WorkloadKind, directory: VMDirectory, defaultPagesPerContext: Int, logger: Logger,
                queueLayout: QueueLayout = .perVCPU, boundsWindow: Int = 8192) {
        self.batchSize = switch (kind, kind.speed) {
        case (.simulated, .max): Self.maxBatch
        case (_, .max): 4096
        default: 256
        }
        self.queueLayout = queueLayout
        self.kind = kind
        self.directory = directory
        self.defaultPagesPerContext = defaultPagesPerContext
        self.boundsWindow = boundsWindow
        self.logger = logger
        self.feeder = DispatchQueue(label: "nestcache.feed.\(kind.name)", target: .global())
    }

    /// The VMs this runner has created so far.
    public var vmIDs: [String] { feeder.sync { vmsByID.keys.sorted() } }

    /// Opens the source and reads its first batch before returning, so the VMs it names exist
    /// (and a client, or systemd's STATUS=, sees them) from the start; feeding then goes on
    /// from the feeder queue.
    public func start() {
        feeder.sync {
            do throws(TraceError) {
                var s = try kind.makeSource()
                live = s as? LiveTrace
                // Its VM is in its registry from the start: nothing to read here.
                let sim = kind.ordering == .concurrent && kind.speed.scale == nil ? s as? Simulator : nil
                let more = try s.next(into: &pending, limit: sim == nil ? batchSize : 0)
                if sim != nil { simulator = sim } else { source = s }
                next = 0
                try adoptNewVMs()
                wallStart = DispatchTime.now().uptimeNanoseconds
                lastArrivalNs = wallStart
                if live != nil {
                    updateLiveStatus()
                } else if !more {
                    finish()
                }
            } catch {
                fail(error)
            }
        }
        feeder.async { [self] in pump() }
    }

    /// Stops feeding; the VMs stay until the caller removes them. Waits for the feeder.
    public func stop() {
        feeder.sync {
            isStopped = true
            // Closes a live source's descriptor now, not when the last reference goes.
            if live != nil {
                live = nil
                source = nil
            }
        }
    }

    /// True once a live source failed: a reload starts it again even if its definition did not
    /// change (the operator fixed the capture, then reloaded).
    var hasFailedLive: Bool {
        guard case .live = kind else { return false }
        return liveStatus.withLock { $0.state == .failed }
    }

    func setPaused(_ paused: Bool) {
        feeder.async { [self] in
            guard !isStopped, !isFinished, paused != isPaused else { return }
            isPaused = paused
            for vm in vmsByID.values { vm.setState(paused ? .paused : .running) }
            if live != nil {
                isWaiting = false
                lastArrivalNs = DispatchTime.now().uptimeNanoseconds
                updateLiveStatus()
            }
            if !paused {
                // Resume the clock where it stopped: the pause is not made up at full speed.
                traceStart = nil
                pump()
            }
        }
    }

    // MARK: - Feeding

    private func pump() {
        guard !isStopped, !isPaused, !isFinished else { return }
        do throws(TraceError) {
            while true {
                if isInFlight {
                    // At speed max in concurrent ordering, the next batch is read and split
                    // while the vCPU queues apply this one: the feeder's work overlaps theirs.
                    guard prepared == nil, endOfSource == nil, kind.ordering == .concurrent, kind.speed.scale == nil,
                          let splits = try nextSplits() else { return }
                    prepared = splits
                    return
                }
                if let p = prepared {
                    prepared = nil
                    submit(p)
                    continue
                }
                if let end = endOfSource {
                    if let error = end { fail(error) } else { finish() }
                    return
                }
                if kind.ordering == .strict {
                    guard let range = try nextRange() else {
                        if endOfSource != nil { continue }
                        return
                    }
                    dispatchStrict(range)
                    feeder.async { [self] in pump() }
                    return
                }
                guard let splits = try nextSplits() else {
                    if endOfSource != nil { continue }
                    return
                }
                submit(splits)
            }
        } catch {
            // After the batch in flight, if any, so the last snapshot published is exact.
            endOfSource = .some(error)
            if !isInFlight { fail(error) }
        }
    }

    /// The next events to apply, from `pending` (read from the source when used up): those that
    /// are due, nil when none is (a timer or the source's own polling pumps later) or the source
    /// ended (`endOfSource` is then set, unless a replay loops).
    private func nextRange() throws(TraceError) -> Range<Int>? {
        if next >= pending.count {
            guard var s = source else { return nil }
            // `s` must be the only holder: while `source` also held it, `next` copied the
            // source's box and then, on write, every array of a simulator, at every batch.
            source = nil
            let more = try s.next(into: &pending, limit: batchSize)
            source = s
            next = 0
            try adoptNewVMs()
            if let live {
                // Any line counts as arrival (a capture's kvm_exit lines make no event).
                if live.lineNumber != linesSeen {
                    linesSeen = live.lineNumber
                    arrived()
                }
                guard more else {
                    try idle(live)
                    return nil
                }
            }
            if !more {
                if case .replay(let r) = kind, r.loop {
                    loopOffset = lastTime &+ 1
                    source = try kind.makeSource()
                    // The new reader numbers VMs from 0 in its own order: map them again by
                    // id (the file may have changed since the last pass).
                    byIndex = []
                    trackerOf = []
                    feeder.async { [self] in pump() }
                } else {
                    endOfSource = .some(nil)
                }
                return nil
            }
        }
        let end = dueEnd()
        if end == next {
            // Nothing due yet: come back when the next event is (at most 100 ms, to stay
            // responsive). One timer at a time: a batch's end pumps too.
            if !isWakeSet {
                isWakeSet = true
                let wait = min(waitNs(for: pending[next], now: DispatchTime.now().uptimeNanoseconds), 100_000_000)
                feeder.asyncAfter(deadline: .now() + .nanoseconds(Int(wait))) { [self] in
                    isWakeSet = false
                    pump()
                }
            }
            return nil
        }
        let range = next..<end
        next = end
        lastTime = pending[range.upperBound - 1].timeNs &+ loopOffset
        return range
    }

    /// Wall-clock nanoseconds from `now` until `e` is due; 0 at speed max. The first event paced
    /// (after a start, a loop or a resume) anchors the trace's clock to the wall's.
    private func waitNs(for e: Event, now: UInt64) -> UInt64 {
        guard let scale = kind.speed.scale else { return 0 }
        let t = e.timeNs &+ loopOffset
        if traceStart == nil {
            traceStart = t
            wallStart = now
        }
        let due = wallStart &+ UInt64(Double(t &- (traceStart ?? t)) * scale)
        return due > now ? due - now : 0
    }

    /// The end of the run of pending events that are due now (one clock read for the run).
    private func dueEnd() -> Int {
        if kind.speed.scale == nil { return pending.count }
        let now = DispatchTime.now().uptimeNanoseconds
        var i = next
        while i < pending.count, waitNs(for: pending[i], now: now) == 0 { i += 1 }
        return i
    }

    /// Per source VM index: its events of the batch being recorded (emptied after each batch).
    private var windowBuckets: [[Event]] = []

    /// Strict ordering: hands each VM its events of the batch, in trace order, for its switch
    /// window (`show bounds`), which follows them itself (`SwitchWindow.record(_:)`): one copy
    /// and one lock per VM per batch, on the feeder. (Concurrent ordering records the switches
    /// its split found instead, `VMRuntime.recordSwitches(of:)`.)
    private func recordSwitches(_ range: Range<Int>) {
        let byIndex = self.byIndex
        // The common case, one VM in the batch: its events are the batch.
        let first = pending[range.lowerBound].vm
        let oneVM = pending.withUnsafeBufferPointer { p in range.allSatisfy { p[$0].vm == first } }
        if oneVM {
            let v = Int(first)
            if v >= 0, v < byIndex.count, let vm = byIndex[v] { vm.recordSwitches(Array(pending[range])) }
            return
        }
        var touched: [Int] = []
        var windowBuckets = self.windowBuckets
        self.windowBuckets = []
        for i in range {
            let v = Int(pending[i].vm)
            guard v >= 0, v < byIndex.count, byIndex[v] != nil else { continue }
            if v >= windowBuckets.count { windowBuckets.append(contentsOf: repeatElement([], count: v + 1 - windowBuckets.count)) }
            if windowBuckets[v].isEmpty { touched.append(v) }
            windowBuckets[v].append(pending[i])
        }
        for v in touched {
            if let vm = byIndex[v] { vm.recordSwitches(windowBuckets[v]) }
            windowBuckets[v] = []
        }
        self.windowBuckets = windowBuckets
    }

    /// Whether event `e`, of a VM this runner feeds, is a migration, by its VM's tracker. Must be
    /// asked for every event of the VM, in stream order.
    @inline(__always)
    private func isMigration(_ e: Event, _ trackers: UnsafeMutableBufferPointer<SwitchTracker>) -> Bool {
        trackers[trackerOf[Int(e.vm)]].isMigration(vcpu: Int(e.vcpu), op: e.op, gpa: e.gpa)
    }

    /// Strict ordering: runs of consecutive events of one vCPU, one after another, in trace
    /// order, each on its vCPU's queue while the feeder waits; then each VM touched publishes.
    private func dispatchStrict(_ range: Range<Int>) {
        recordSwitches(range)
        var touched: [ObjectIdentifier: VMRuntime] = [:]
        var i = range.lowerBound
        while i < range.upperBound {
            let first = pending[i]
            var j = i + 1
            while j < range.upperBound, pending[j].vm == first.vm, pending[j].vcpu == first.vcpu { j += 1 }
            guard let vm = byIndex[Int(first.vm)] else { i = j; continue }
            var run = Array(pending[i..<j])
            let flags = trackers.withUnsafeMutableBufferPointer { tr in run.map { isMigration($0, tr) } }
            for k in run.indices { run[k].vm = 0 }
            let lane = vm.lane(Int(first.vcpu))
            vm.submitted.add(1, ordering: .relaxed)
            vm.queue(queueLayout == .single ? 0 : Int(first.vcpu)).sync {
                run.withUnsafeBufferPointer { events in
                    flags.withUnsafeBufferPointer { vm.apply(events, migrations: $0, lane: lane) }
                }
            }
            vm.completed.add(1, ordering: .relaxed)
            touched[ObjectIdentifier(vm)] = vm
            i = j
        }
        for vm in touched.values { vm.publish() }
    }

    /// Concurrent ordering: the next batch split by VM and by vCPU; nil when `nextRange` gives
    /// none. The simulator splits its own; another source's events are split here (`prepare`).
    private func nextSplits() throws(TraceError) -> [(vm: VMRuntime, batch: VCPUBatch)]? {
        guard var sim = simulator else { return try nextRange().map(prepare) }
        // The only holder while it writes (see `nextRange`).
        simulator = nil
        let batch = spareBatches.popLast() ?? VCPUBatch()
        let more = sim.next(split: &batch.split, limit: batchSize)
        simulator = sim
        guard more else {
            endOfSource = .some(nil)
            recycle(batch)
            return nil
        }
        guard let vm = byIndex.first ?? nil else {
            recycle(batch)
            return []
        }
        return [(vm, batch)]
    }

    /// Works out each VM's part of `range` once (`VCPUSplit.fill`: each vCPU's events, the
    /// migration flags and switches in stream order), on this feeder. `submit` then hands it to
    /// the vCPU queues.
    private func prepare(_ range: Range<Int>) -> [(vm: VMRuntime, batch: VCPUBatch)] {
        var splits: [(vm: VMRuntime, batch: VCPUBatch)] = []
        let first = pending[range.lowerBound].vm
        if pending.withUnsafeBufferPointer({ p in range.allSatisfy { p[$0].vm == first } }) {
            // The common case, one VM: split straight from the source's batch.
            pending.withUnsafeBufferPointer { split(UnsafeBufferPointer(rebasing: $0[range]), vm: Int(first), into: &splits) }
        } else {
            // Several VMs (a replayed trace): their events in stream order, one batch each.
            var order: [Int] = []
            var byVM: [Int: [Event]] = [:]
            for e in pending[range] {
                let v = Int(e.vm)
                if byVM[v] == nil { order.append(v) }
                byVM[v, default: []].append(e)
            }
            for v in order {
                (byVM[v] ?? []).withUnsafeBufferPointer { split($0, vm: v, into: &splits) }
            }
        }
        return splits
    }

    /// Records each VM's switches in its window and queues one closure per vCPU in the batch's
    /// group, without waiting; each closure applies its vCPU's events where they are
    /// (`VCPUSplit.withRun`). When the group is done, each VM touched publishes, the batches go
    /// back for reuse, and the feeder pumps again.
    private func submit(_ splits: [(vm: VMRuntime, batch: VCPUBatch)]) {
        guard !splits.isEmpty else { return }
        let group = DispatchGroup()
        for (vm, batch) in splits {
            vm.recordSwitches(of: batch)
            for v in batch.split.vcpus {
                let lane = vm.lane(v)
                vm.submitted.add(1, ordering: .relaxed)
                vm.queue(queueLayout == .single ? 0 : v).async(group: group) {
                    batch.split.withRun(v) { vm.apply($0, migrations: $1, lane: lane) }
                    vm.completed.add(1, ordering: .relaxed)
                }
            }
        }
        isInFlight = true
        group.notify(queue: feeder) { [self] in
            isInFlight = false
            for (vm, batch) in splits {
                vm.publish()
                if kind.speed.scale != nil { batch.split.shrinkIfOversized() }
                recycle(batch)
            }
            pump()
        }
    }

    /// Splits `events`, of source VM index `v` in stream order (its tracker advanced), into a
    /// batch appended to `splits`; nothing for a VM this runner does not feed.
    private func split(_ events: UnsafeBufferPointer<Event>, vm v: Int, into splits: inout [(vm: VMRuntime, batch: VCPUBatch)]) {
        guard v >= 0, v < byIndex.count, let vm = byIndex[v] else { return }
        let batch = spareBatches.popLast() ?? VCPUBatch()
        batch.split.fill(events, tracker: &trackers[trackerOf[v]])
        splits.append((vm, batch))
    }

    /// Keeps `batch` for reuse, up to `spareLimit`.
    private func recycle(_ batch: VCPUBatch) {
        if spareBatches.count < Self.spareLimit { spareBatches.append(batch) }
    }

    /// The tracker index for `vm` (created on first use).
    private func trackerIndex(for vm: VMRuntime) -> Int {
        if let t = trackerByID[vm.id] { return t }
        trackers.append(SwitchTracker())
        trackerByID[vm.id] = trackers.count - 1
        return trackers.count - 1
    }

    /// Creates the VMs the source has named since the last look.
    private func adoptNewVMs() throws(TraceError) {
        guard let registry = source?.registry ?? simulator?.registry else { return }
        while byIndex.count < registry.count {
            let info = registry.infos[byIndex.count]
            if let vm = vmsByID[info.id] {
                // A loop of the same trace. If the file was replaced meanwhile and declares the VM
                // otherwise, its tables were sized for the old declaration: stop, do not guess.
                guard vm.info == info else {
                    throw TraceError(.badData, file: kind.name, "VM \(info.id) is declared differently than when it started (the trace changed while looping)")
                }
                byIndex.append(vm)
                trackerOf.append(trackerIndex(for: vm))
                continue
            }
            let vm = VMRuntime(info: info, policies: kind.policies, defaultPagesPerContext: defaultPagesPerContext,
                               boundsWindow: boundsWindow)
            guard directory.add(vm, fedBy: self) else {
                byIndex.append(nil)
                trackerOf.append(-1)
                logger.error("VM id already served by another workload; its events are ignored",
                             metadata: ["nestcache.event": "trace-error", "nestcache.vm": "\(info.id)"])
                continue
            }
            vmsByID[info.id] = vm
            byIndex.append(vm)
            trackerOf.append(trackerIndex(for: vm))
            if isPaused { vm.setState(.paused) }
            logger.info("VM started: \(kind.name), policy \(kind.policies[0]), shadows \(kind.policies.dropFirst().map(\.description).joined(separator: ","))",
                        metadata: ["nestcache.event": "vm-start", "nestcache.vm": "\(info.id)",
                                   "nestcache.policy": "\(kind.policies[0])"])
        }
    }

    // MARK: - Live sources

    /// Nothing to read now: checks the input is still there, shows `waiting` once no line came
    /// for `waiting_after_s`, and looks again after `livePollInterval`.
    private func idle(_ live: LiveTrace) throws(TraceError) {
        try live.checkStillThere()
        if case .live(let l) = kind, !isWaiting,
           DispatchTime.now().uptimeNanoseconds &- lastArrivalNs >= UInt64(l.waitingAfterS * 1e9) {
            isWaiting = true
            for vm in vmsByID.values {
                vm.setState(.waiting)
                vm.publish()
            }
            logger.notice("\(kind.name): no new line for \(format(l.waitingAfterS)) s, waiting (\(live.lineNumber) lines read)",
                          metadata: liveMetadata())
        }
        updateLiveStatus()
        feeder.asyncAfter(deadline: .now() + Self.livePollInterval) { [self] in pump() }
    }

    /// Lines arrived: back to `running` if the source was waiting.
    private func arrived() {
        lastArrivalNs = DispatchTime.now().uptimeNanoseconds
        guard isWaiting else { return }
        isWaiting = false
        for vm in vmsByID.values { vm.setState(.running) }
        logger.notice("\(kind.name): lines arrive again", metadata: liveMetadata())
        updateLiveStatus()
    }

    /// DESIGN §7's journal events have no "idle" one: waiting and resuming are `trace-error`
    /// records at notice (PRIORITY=5), a failure one at error (3).
    private func liveMetadata() -> Logger.Metadata {
        var m: Logger.Metadata = ["nestcache.event": "trace-error"]
        if vmsByID.count == 1, let id = vmsByID.keys.first { m["nestcache.vm"] = "\(id)" }
        return m
    }

    private func updateLiveStatus(error: TraceError? = nil) {
        guard case .live = kind else { return }
        let state: VMRunState = error != nil ? .failed : isPaused ? .paused : isWaiting ? .waiting : .running
        let (lines, bytes, opens) = live.map { ($0.lineNumber, $0.bytesRead, $0.opens) } ?? (0, 0, 0)
        let vms = vmsByID.keys.sorted()
        liveStatus.withLock { s in
            s.state = state
            if let error { s.error = error.description }
            if live != nil { (s.lines, s.bytes, s.opens) = (lines, bytes, opens) }
            s.vms = vms
        }
    }

    private func finish() {
        isFinished = true
        for vm in vmsByID.values {
            vm.setState(.done)
            vm.publish()
            logger.info("\(kind.name) reached its end: VM \(vm.id) done", metadata: ["nestcache.event": "vm-stop", "nestcache.vm": "\(vm.id)"])
        }
    }

    private func fail(_ error: TraceError) {
        isFinished = true
        updateLiveStatus(error: error)
        for vm in vmsByID.values {
            vm.setState(.failed)
            vm.setError(error.description)
            vm.publish()
        }
        var metadata: Logger.Metadata = ["nestcache.event": "trace-error"]
        if vmsByID.count == 1, let id = vmsByID.keys.first { metadata["nestcache.vm"] = "\(id)" }
        logger.error("\(kind.name): \(error)", metadata: metadata)
        if live != nil {
            live = nil
            source = nil
        }
    }
}
