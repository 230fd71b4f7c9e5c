import Dispatch
import Logging
import NestCacheCore
import NestCacheWorkload
import Synchronization

/// What feeds one workload: a simulated VM, a replayed trace or a followed capture (DESIGN §7).
public enum WorkloadKind: Sendable, Equatable {
    case simulated(DaemonConfig.SimulatedVM)
    case replay(DaemonConfig.ReplaySource)
    case live(DaemonConfig.LiveSource)

    var speed: Speed {
        switch self {
        case .simulated(let v): v.speed
        case .replay(let r): r.speed
        case .live: .max
        }
    }

    var ordering: Ordering {
        switch self {
        case .simulated: .concurrent
        case .replay(let r): r.ordering
        case .live: .strict
        }
    }

    var policies: [PolicySpec] {
        switch self {
        case .simulated(let v): [v.policy] + v.shadowPolicies
        case .replay(let r): [r.policy] + r.shadowPolicies
        case .live(let l): [l.policy] + l.shadowPolicies
        }
    }

    var name: String {
        switch self {
        case .simulated(let v): "vm \(v.id)"
        case .replay(let r): "replay \(r.trace)"
        case .live(let l): "live \(l.trace)"
        }
    }

    func makeSource() throws(TraceError) -> any EventSource {
        switch self {
        case .simulated(let v): v.workload.makeSource()
        case .replay(let r):
            TraceFileSequence(paths: [r.trace], format: r.format, vm: r.vm, invalidLines: .fail)
        case .live(let l):
            try LiveTrace(path: l.trace, format: l.format, vm: l.vm ?? TraceFileSequence.defaultVMName(l.trace))
        }
    }
}

/// The VMs the daemon serves, by id, in order of arrival: shared by the runners (which add VMs
/// as their sources name them) and the control socket (which reads them).
public final class VMDirectory: Sendable {
    /// Each VM with the runner that feeds it (what `pause VM` acts on).
    let entries = Locked<[(vm: VMRuntime, runner: WorkloadRunner)]>([])

    public init() {}

    /// Adds `vm`, fed by `runner`, unless its id is taken; returns whether it was added.
    func add(_ vm: VMRuntime, fedBy runner: WorkloadRunner) -> Bool {
        entries.withLock { list in
            guard !list.contains(where: { $0.vm.id == vm.id }) else { return false }
            list.append((vm, runner))
            return true
        }
    }

    func remove(_ ids: Set<String>) {
        entries.withLock { $0.removeAll { ids.contains($0.vm.id) } }
    }

    /// Every VM, sorted by id.
    public var all: [VMRuntime] { entries.withLock { $0.map(\.vm) }.sorted { $0.id < $1.id } }

    public func vm(_ id: String) -> VMRuntime? { entries.withLock { $0.first { $0.vm.id == id }?.vm } }

    /// The runner feeding VM `id`.
    func runner(of id: String) -> WorkloadRunner? { entries.withLock { $0.first { $0.vm.id == id }?.runner } }
}

/// Feeds one workload's events to its VMs' vCPU queues.
///
/// Event-driven, so a thousand workloads need no thousand threads: `pump()` runs on the
/// runner's own serial `feeder` queue, takes the events that are due (all of a batch at speed
/// `max`), splits them by VM and vCPU, and hands each vCPU its slice as one closure. Concurrent
/// ordering lets a VM's vCPU queues run in parallel and pumps again when all slices are done;
/// strict ordering applies runs of consecutive same-vCPU events one after another, in trace
/// order, so the counters equal `nestcache replay`'s. Every mutable field below is touched only on
/// `feeder`.
public final class WorkloadRunner: @unchecked Sendable {
    public let kind: WorkloadKind
    let directory: VMDirectory
    let defaultPagesPerContext: Int
    /// `[daemon] bounds_window` when the workload started.
    let boundsWindow: Int
    let logger: Logger
    let feeder: DispatchQueue

    private var source: (any EventSource)?
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
    /// The next batch's outcome (more events or the end), when it was read ahead (`pending`
    /// then holds it).
    private var readAhead: Result<Bool, TraceError>?
    /// A concurrent batch is being applied (its group has not notified yet).
    private var isInFlight = false
    /// Scratch for `dispatch`: which vCPU indices a VM's batch names (all false between uses).
    private var vcpuPresent: [Bool] = []
    /// Per VM that has per-vCPU policies: its `SwitchTracker`, which says in stream order which
    /// events are migrations (the vCPU lanes see one vCPU each). By VM id (kept across loops);
    /// `trackerOf` maps a source VM index to it (-1: none needed).
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

    /// Events read at a time: a full batch at speed max; fewer when paced, so a thousand slow
    /// VMs do not each hold 4096 future events (about 100 KB) in memory.
    let batchSize: Int
    let queueLayout: QueueLayout

    /// How a VM's events reach queues: one serial queue per L1 vCPU (the daemon), or a single
    /// queue for the whole VM (the benchmark's comparison).
    public enum QueueLayout: Sendable {
        case perVCPU, single
    }

    public init(kind: WorkloadKind, directory: VMDirectory, defaultPagesPerContext: Int, logger: Logger,
                queueLayout: QueueLayout = .perVCPU, boundsWindow: Int = 8192) {
        self.batchSize = kind.speed == .max ? 4096 : 256
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
                let more = try s.next(into: &pending, limit: batchSize)
                source = s
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
        // In flight: the batch's end pumps (a resume must not start a second batch meanwhile).
        guard !isStopped, !isPaused, !isFinished, !isInFlight else { return }
        do throws(TraceError) {
            if readAhead != nil || next >= pending.count {
                let more: Bool
                if let r = readAhead {
                    readAhead = nil
                    more = try r.get()
                } else {
                    guard var s = source else { return }
                    source = nil  // `s` alone holds the source: `next` mutates it in place (below)
                    more = try s.next(into: &pending, limit: batchSize)
                    source = s
                    next = 0
                    try adoptNewVMs()
                }
                if let live {
                    // Any line counts as arrival (a capture's kvm_exit lines make no event).
                    if live.lineNumber != linesSeen {
                        linesSeen = live.lineNumber
                        arrived()
                    }
                    guard more else {
                        try idle(live)
                        return
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
                        finish()
                    }
                    return
                }
            }
            let end = dueEnd()
            if end == next {
                // Nothing due yet: come back when the next event is (at most 100 ms, to stay responsive).
                let wait = min(waitNs(for: pending[next], now: DispatchTime.now().uptimeNanoseconds), 100_000_000)
                feeder.asyncAfter(deadline: .now() + .nanoseconds(Int(wait))) { [self] in pump() }
                return
            }
            dispatch(next..<end)
            next = end
            readAheadIfWorthIt()
        } catch {
            fail(error)
        }
    }

    /// At speed max in concurrent ordering, reads the next batch (and adopts its new VMs) while
    /// the vCPU queues apply the one just dispatched: the feeder's reading (a simulator, a trace
    /// reader) overlaps their work instead of waiting for it. `pump`, called when they are done,
    /// dispatches it. Strict ordering applies synchronously; live sources and paced speeds read
    /// as they go.
    private func readAheadIfWorthIt() {
        guard kind.ordering == .concurrent, live == nil, kind.speed.scale == nil, next >= pending.count, var s = source else { return }
        // While `source` also held it, `next` copied the source's box and then, on write, every
        // array of a simulator (its whole state, every batch): `s` must be the only holder.
        source = nil
        do throws(TraceError) {
            let more = try s.next(into: &pending, limit: batchSize)
            source = s
            next = 0
            try adoptNewVMs()
            readAhead = .success(more)
        } catch {
            readAhead = .failure(error)
        }
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

    /// Hands each VM its events of the batch, in trace order, for its switch window (`show
    /// bounds`): one copy and one lock per VM per batch; the vCPU queues and the engines' locks
    /// are not involved. With `group` (concurrent ordering) the recording runs on the global queue
    /// beside the vCPU queues, in the batch's group: the batch ends when it is recorded too, so
    /// the window is exact at every batch boundary as before, and batches never overlap.
    private func recordSwitches(_ range: Range<Int>, group: DispatchGroup?) {
        let byIndex = self.byIndex
        func record(_ vm: VMRuntime, _ events: [Event]) {
            if let group {
                DispatchQueue.global().async(group: group) { vm.recordSwitches(events) }
            } else {
                vm.recordSwitches(events)
            }
        }
        // The common case, one VM in the batch: its events are the batch.
        let first = pending[range.lowerBound].vm
        let oneVM = pending.withUnsafeBufferPointer { p in range.allSatisfy { p[$0].vm == first } }
        if oneVM {
            let v = Int(first)
            if v >= 0, v < byIndex.count, let vm = byIndex[v] { record(vm, Array(pending[range])) }
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
            if let vm = byIndex[v] { record(vm, windowBuckets[v]) }
            windowBuckets[v] = []
        }
        self.windowBuckets = windowBuckets
    }

    /// Whether event `i` of `pending` is a migration, by its VM's tracker (false without one).
    /// Must be asked for every event of a tracked VM, in stream order.
    @inline(__always)
    private func isMigration(_ e: Event, _ trackers: UnsafeMutableBufferPointer<SwitchTracker>) -> Bool {
        let t = trackerOf[Int(e.vm)]
        return t >= 0 && trackers[t].isMigration(vcpu: Int(e.vcpu), op: e.op, gpa: e.gpa)
    }

    private func dispatch(_ range: Range<Int>) {
        lastTime = pending[range.upperBound - 1].timeNs &+ loopOffset
        if kind.ordering == .strict {
            recordSwitches(range, group: nil)
            // Runs of consecutive events of one vCPU, one after another, in trace order.
            var touched: [ObjectIdentifier: VMRuntime] = [:]
            var i = range.lowerBound
            while i < range.upperBound {
                let first = pending[i]
                var j = i + 1
                while j < range.upperBound, pending[j].vm == first.vm, pending[j].vcpu == first.vcpu { j += 1 }
                guard let vm = byIndex[Int(first.vm)] else { i = j; continue }
                var run = Array(pending[i..<j])
                var flags: [Bool] = []
                if vm.needsMigrations {
                    flags = trackers.withUnsafeMutableBufferPointer { tr in run.map { isMigration($0, tr) } }
                }
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
            feeder.async { [self] in pump() }
            return
        }
        // Concurrent: per VM, its events of the batch (one copy; the batch itself when it names
        // one VM) with `vm = 0` and their migration flags, made here in one pass in stream order.
        // Each vCPU's closure then picks its own events out of that shared copy on its queue: the
        // split by vCPU runs on the vCPU queues, in parallel, not on this serial feeder.
        let byIndex = self.byIndex
        var perVM: [(vm: VMRuntime, index: Int, events: [Event])] = []
        let first = pending[range.lowerBound].vm
        if pending.withUnsafeBufferPointer({ p in range.allSatisfy { p[$0].vm == first } }) {
            if let vm = byIndex[Int(first)] { perVM.append((vm, Int(first), Array(pending[range]))) }
        } else {
            var at: [Int: Int] = [:]
            for i in range {
                let vi = Int(pending[i].vm)
                guard let vm = byIndex[vi] else { continue }
                if let k = at[vi] {
                    perVM[k].events.append(pending[i])
                } else {
                    at[vi] = perVM.count
                    perVM.append((vm, vi, [pending[i]]))
                }
            }
        }
        let group = DispatchGroup()
        recordSwitches(range, group: group)
        isInFlight = true
        var trackers = self.trackers
        self.trackers = []
        var present = self.vcpuPresent
        for k in perVM.indices {
            var batch = perVM[k]
            perVM[k].events = []  // `batch` holds the only reference: no copy on write below
            let t = trackerOf[batch.index]
            var flags = [Bool](repeating: false, count: t >= 0 ? batch.events.count : 0)
            var vcpus: [Int] = []
            let top = batch.events.withUnsafeBufferPointer { ev in ev.reduce(0) { max($0, Int($1.vcpu)) } }
            if present.count <= top { present.append(contentsOf: repeatElement(false, count: top + 1 - present.count)) }
            batch.events.withUnsafeMutableBufferPointer { ev in
                flags.withUnsafeMutableBufferPointer { fl in
                    trackers.withUnsafeMutableBufferPointer { tr in
                        present.withUnsafeMutableBufferPointer { seen in
                            for i in ev.indices {
                                let v = Int(ev[i].vcpu)
                                if t >= 0 { fl[i] = tr[t].isMigration(vcpu: v, op: ev[i].op, gpa: ev[i].gpa) }
                                ev[i].vm = 0
                                if !seen[v] {
                                    seen[v] = true
                                    vcpus.append(v)
                                }
                            }
                            for v in vcpus { seen[v] = false }
                        }
                    }
                }
            }
            let events = batch.events
            let vm = batch.vm
            for v in vcpus {
                let lane = vm.lane(v)
                vm.submitted.add(1, ordering: .relaxed)
                vm.queue(queueLayout == .single ? 0 : v).async(group: group) { [flags] in
                    // This vCPU's events (and flags) in order, gathered here on its queue: a
                    // counting pass, then one fill of exactly sized arrays.
                    let vcpu = UInt16(truncatingIfNeeded: v)
                    let n = events.withUnsafeBufferPointer { ev in
                        var n = 0
                        for i in ev.indices where ev[i].vcpu == vcpu { n &+= 1 }
                        return n
                    }
                    let mine = Self.gather(events, at: events, vcpu: vcpu, count: n)
                    let mineFlags = flags.isEmpty ? [] : Self.gather(flags, at: events, vcpu: vcpu, count: n)
                    mine.withUnsafeBufferPointer { ev in
                        mineFlags.withUnsafeBufferPointer { vm.apply(ev, migrations: $0, lane: lane) }
                    }
                    vm.completed.add(1, ordering: .relaxed)
                }
            }
        }
        self.trackers = trackers
        self.vcpuPresent = present
        let touched = perVM.map(\.vm)
        group.notify(queue: feeder) { [self] in
            isInFlight = false
            for vm in touched { vm.publish() }
            pump()
        }
    }

    /// The `count` elements of `values` at the positions where `events` belong to `vcpu`, in
    /// order, in one exactly sized array.
    static func gather<T>(_ values: [T], at events: [Event], vcpu: UInt16, count: Int) -> [T] {
        events.withUnsafeBufferPointer { ev in
            values.withUnsafeBufferPointer { vals in
                [T](unsafeUninitializedCapacity: count) { out, initialized in
                    var k = 0
                    for i in ev.indices where ev[i].vcpu == vcpu {
                        out.initializeElement(at: k, to: vals[i])
                        k &+= 1
                    }
                    initialized = k
                }
            }
        }
    }

    /// The tracker index for `vm` (created on first use), or -1 when it needs none.
    private func trackerIndex(for vm: VMRuntime?) -> Int {
        guard let vm, vm.needsMigrations else { return -1 }
        if let t = trackerByID[vm.id] { return t }
        trackers.append(SwitchTracker())
        trackerByID[vm.id] = trackers.count - 1
        return trackers.count - 1
    }

    /// Creates the VMs the source has named since the last look.
    private func adoptNewVMs() throws(TraceError) {
        guard let registry = source?.registry else { return }
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
