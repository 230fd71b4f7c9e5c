import NestCacheCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads Linux ftrace text — `trace-cmd report` output, `/sys/kernel/tracing/trace` or
/// `trace_pipe`, `perf script` output of `perf record -e 'kvm:*'` — as a stream of `enter` (and,
/// for SVM, `clear`) events (DESIGN §5).
///
///     CPU 1/KVM-48213   [012] d....  5123.004211: kvm_exit: vcpu 1 reason VMPTRLD rip 0x...
///     CPU 1/KVM-48213   [012] .....  5123.004230: kvm_nested_vmenter: rip: 0x... vmcs: 0x000000010a3f2000 ...
///
/// Line forms are `FtraceLine`'s; this type keeps the state that spans lines:
/// - **VM**: the tgid in decimal where the `(tgid)` column exists (or perf's `pid/tid` column
///   gives the pid); else — no column, or `(-------)` for a thread whose tgid was not recorded —
///   the VM named `vm`.
/// - **L1 vCPU** of an entry: the `vcpu N` of the latest `kvm_exit` / `kvm_entry` /
///   `kvm_nested_vmexit` line of the same thread (pid); else the `N` of a `CPU N/KVM` comm; else
///   the thread's number in its VM, 0, 1, ... in the order its threads first needed one. (A VM
///   whose threads mix these sources could see two threads share an index; real captures
///   include `kvm_exit`, so the first source covers them.)
/// - **SVM** has no VMCLEAR: when the `vmcb:` GPA entered on a vCPU differs from the previous
///   one entered there, a `clear` of the previous one comes first, with the same time. `vmcs:`
///   lines never produce clears: VMX VMCLEAR targets are not traced, and `kvm_exit ... reason
///   VMCLEAR` lines are only counted (`unresolved_clears`).
/// - Times are not checked for order: the raw `trace` file merges per-CPU buffers and may step
///   back slightly between CPUs. Events are applied in file order.
///
/// Figures, in this order: `invalid_lines`, `evmcs_skipped` (entries with
/// `vmcs: 0xffffffffffffffff`), `unresolved_clears`, `lost_events` (the sum of N over
/// `CPU:N [LOST N EVENTS]` markers), `lost_event_markers` (every lost-event marker, including
/// `CPU:N [LOST EVENTS]` without a count and raw `##### CPU N buffer started ####` lines),
/// `pid_numbered_vcpus` (threads whose vCPU index came from the order of appearance); and
/// `skippedEvents`, the lines of every other event per event name.
///
/// Most lines take the fast path (`FtraceLine.quick`, `quickLines`), straight out of the
/// `LineReader`'s buffer; any line it does not read goes through `FtraceLine.parse` and `general`,
/// one at a time, with the same result (DESIGN §5 is implemented once, by the general path; the
/// fast path only reads the layouts whose meaning it shares with it).
///
/// - Complexity: O(1) memory in the file's size (state per thread, VM and vCPU); O(1) expected
///   per KVM line: the thread's vCPU from `ThreadVCPUTable` (the last thread's slot first), the
///   VM from the last tgid (else one Dictionary lookup); no allocation per line once every
///   thread is known.
public final class FtraceReader: EventSource {
    public private(set) var registry: VMRegistry
    public private(set) var warnings: [String] = []

    public private(set) var invalidLines: UInt64 = 0
    public private(set) var evmcsSkipped: UInt64 = 0
    public private(set) var unresolvedClears: UInt64 = 0
    public private(set) var lostEvents: UInt64 = 0
    public private(set) var lostEventMarkers: UInt64 = 0
    public private(set) var pidNumberedVCPUs: UInt64 = 0

    public var skippedEvents: EventCounts? { skipped.sorted }

    public var figures: [(name: String, value: UInt64)] {
        [
            ("invalid_lines", invalidLines),
            ("evmcs_skipped", evmcsSkipped),
            ("unresolved_clears", unresolvedClears),
            ("lost_events", lostEvents),
            ("lost_event_markers", lostEventMarkers),
            ("pid_numbered_vcpus", pidNumberedVCPUs),
        ]
    }

    let lines: LineReader
    let invalidPolicy: InvalidLinePolicy
    /// The VM of lines without a tgid.
    let vmName: String
    var defaultVM: Int32?
    var vmByTGID: [Int32: Int32] = [:]
    /// The last tgid `vmIndex` answered for, and its VM (-1: none yet).
    var lastTGID: Int32 = -1
    var lastTGIDVM: Int32 = 0
    /// The `vcpu N` of each thread's latest kvm_exit / kvm_entry / kvm_nested_vmexit.
    var vcpuOfThread = ThreadVCPUTable()
    /// Threads numbered by order of appearance (no other source of a vCPU index).
    var numberOfThread: [Int32: UInt16] = [:]
    /// Per VM index: the next number to give.
    var nextNumber: [Int32: Int] = [:]
    /// Per (VM, vCPU): the last `vmcb:` GPA entered.
    var lastVMCB: [UInt64: GPA] = [:]
    /// The second event of an SVM switch that did not fit the caller's batch.
    var pending: Event?
    /// Lines of events not used, per event name.
    var skipped = EventNameCounts()
    /// The VM id of a tgid when it is not its decimal (`nestcache record`: QEMU's `-name`).
    let vmIDOfTGID: ((Int32) -> String?)?
    /// False: every line through `FtraceLine.parse` (the tests compare both paths).
    package var usesFastPath = true
    /// `quickLines`' events before they are copied to the caller's batch (`Event` is trivial:
    /// nothing to deinitialize).
    var scratch = UnsafeMutableBufferPointer<Event>(start: nil, count: 0)

    deinit { scratch.deallocate() }

    /// Opens `path` (`-` for standard input). `vm` names the VM of lines without a tgid (the CLI
    /// passes the file's base name by default); it must be a valid VM id (`.usage` otherwise).
    /// `registry` carries VMs over from earlier files of the same run.
    public convenience init(
        path: String, vm: String, invalidLines: InvalidLinePolicy = .fail, registry: VMRegistry = VMRegistry()
    ) throws(TraceError) {
        guard VMInfo.isValidID(Array(vm.utf8)) else {
            throw TraceError(.usage, file: "", "invalid VM name '\(vm)' for \(path): expected [A-Za-z0-9_.:-]{1,64}")
        }
        try self.init(lines: LineReader(path: path), vm: vm, invalidLines: invalidLines, registry: registry)
    }

    /// Reads from `lines`; in follow mode (`LineReader`) `next` returns false while no complete
    /// line is there, and may be called again.
    ///
    /// `vmIDOfTGID` names the VM of a tgid, asked once per tgid at its first entry; nil, or an
    /// id that is not valid or already names another VM, means the tgid in decimal (so two
    /// processes of the same name stay two VMs).
    public init(
        lines: LineReader, vm: String, invalidLines: InvalidLinePolicy = .fail, registry: VMRegistry = VMRegistry(),
        vmIDOfTGID: ((Int32) -> String?)? = nil
    ) throws(TraceError) {
        guard VMInfo.isValidID(Array(vm.utf8)) else {
            throw TraceError(.usage, file: "", "invalid VM name '\(vm)' for \(lines.path): expected [A-Za-z0-9_.:-]{1,64}")
        }
        self.vmName = vm
        self.invalidPolicy = invalidLines
        self.registry = registry
        self.lines = lines
        self.vmIDOfTGID = vmIDOfTGID
    }

    public func next(into batch: inout [Event], limit: Int) throws(TraceError) -> Bool {
        batch.removeAll(keepingCapacity: true)
        let limit = max(limit, 1)
        if let p = pending {
            batch.append(p)
            pending = nil
        }
        while batch.count < limit {
            // Whole buffered lines the fast way, while there is room for an SVM switch's two
            // events; it stops before the first line it does not read.
            if usesFastPath, limit - batch.count >= 2 {
                let taken = try lines.withBufferedLines { (view) throws(TraceError) in
                    let t = quickLines(view, into: &batch, limit: limit)
                    return (t.bytes, t.lines, t.lines)
                }
                if taken > 0 { continue }
            }
            // One line the general way (the first one the fast path leaves, or one that needs a read).
            guard let line = try lines.nextLine() else { break }
            try general(line, into: &batch, limit: limit)
        }
        return !batch.isEmpty
    }

    /// One line through `FtraceLine.parse`: every line form, every message.
    func general(_ line: UnsafeBufferPointer<UInt8>, into batch: inout [Event], limit: Int) throws(TraceError) {
        switch FtraceLine.parse(line) {
        case .ignored:
            return
        case .skipped(let name):
            skipped.add(UnsafeBufferPointer(rebasing: line[name]))
        case .lost(let count):
            lostEventMarkers &+= 1
            if let count { lostEvents &+= count }
        case .invalid(let message):
            try invalid(message)
        case .record(let r):
            switch r.event {
            case .vcpuHint(let vcpu, let isVMClear):
                if isVMClear { unresolvedClears &+= 1 }
                if let vcpu { vcpuOfThread.set(r.pid, vcpu) }
            case .evmcsEnter:
                evmcsSkipped &+= 1
            case .enter(let gpa, let isVMCB):
                try enter(gpa, isVMCB: isVMCB, r, line, into: &batch, limit: limit)
            }
        }
    }

    /// The fast path over `view`'s whole lines (see `FtraceLine.quick`) while `batch` has room
    /// for two events: what the general path would do with them, without its checks of what
    /// `quick` already checked. Stops before a line `quick` does not read, or an entry whose
    /// thread has neither a `vcpu N` yet nor a `CPU N/KVM` comm (the general path numbers it).
    /// Returns the bytes and lines taken.
    func quickLines(_ view: UnsafeBufferPointer<UInt8>, into batch: inout [Event], limit: Int) -> (bytes: Int, lines: Int) {
        guard let base = view.baseAddress else { return (0, 0) }
        let n = view.count
        var p = 0
        var taken = 0
        // Counters and the thread table as locals for the loop (no class access per line).
        var threads = ThreadVCPUTable.empty
        swap(&threads, &vcpuOfThread)
        var clears: UInt64 = 0
        var evmcs: UInt64 = 0
        // The events go to `scratch` (plain stores), then to `batch` in one copy.
        let room = limit - batch.count
        if scratch.count < room {
            scratch.deallocate()
            scratch = UnsafeMutableBufferPointer.allocate(capacity: room)
        }
        let events = scratch
        var k = 0
        defer {
            swap(&threads, &vcpuOfThread)
            unresolvedClears &+= clears
            evmcsSkipped &+= evmcs
            batch.append(contentsOf: UnsafeBufferPointer(rebasing: events[0..<k]))
        }
        while room - k >= 2, p < n, let nl = memchr(base + p, 0x0A, n - p) {
            let len = (base + p).distance(to: nl.assumingMemoryBound(to: UInt8.self))
            let line = UnsafeBufferPointer(start: base + p, count: len)
            switch FtraceLine.quick(line) {
            case .fallback:
                return (p, taken)
            case .skipped(let name):
                skipped.add(UnsafeBufferPointer(rebasing: line[name]))
            case .hint(let pid, let vcpu, let isVMClear):
                if isVMClear { clears &+= 1 }
                if let vcpu { threads.set(pid, vcpu) }
            case .enter(let e):
                if !e.isVMCB, e.raw == FtraceLine.evmcsSentinel {
                    evmcs &+= 1
                    break
                }
                let vm = vmIndex(e.tgid)
                // `vcpu(of:)`'s first two sources; a thread to number (or a bad comm number) is
                // the general path's.
                let vcpu: UInt16
                if let v = threads.vcpu(of: e.pid) {
                    vcpu = v
                } else if let n = FtraceLine.commVCPU(line, e.comm), n < UInt64(VCPULimit.count) {
                    vcpu = UInt16(n)
                } else {
                    return (p, taken)
                }
                let gpa = GPA(e.raw)
                if e.isVMCB, let old = replacedVMCB(gpa, vm: vm, vcpu: vcpu) {
                    events.initializeElement(at: k, to: Event(timeNs: e.timeNs, vm: vm, vcpu: vcpu, op: .clear, gpa: old))
                    k += 1
                }
                events.initializeElement(at: k, to: Event(timeNs: e.timeNs, vm: vm, vcpu: vcpu, op: .enter, gpa: gpa))
                k += 1
            }
            p += len + 1
            taken += 1
        }
        return (p, taken)
    }

    /// Appends the events of one entry line: a `clear` of the previous VMCB first if it changed.
    @inline(__always)
    func enter(
        _ gpa: GPA, isVMCB: Bool, _ r: FtraceLine.Record, _ line: UnsafeBufferPointer<UInt8>,
        into batch: inout [Event], limit: Int
    ) throws(TraceError) {
        let vm = vmIndex(r.tgid)
        guard let vcpu = try vcpu(of: r, line, vm: vm) else { return }
        let e = Event(timeNs: r.timeNs, vm: vm, vcpu: vcpu, op: .enter, gpa: gpa)
        if isVMCB, let old = replacedVMCB(gpa, vm: vm, vcpu: vcpu) {
            batch.append(Event(timeNs: r.timeNs, vm: vm, vcpu: vcpu, op: .clear, gpa: old))
            if batch.count >= limit {
                pending = e
                return
            }
        }
        batch.append(e)
    }

    /// Records `gpa` as the VMCB `vcpu` of `vm` runs; returns the one it ran before when that was
    /// another: SVM has no VMCLEAR, so entering another VMCB is a clear of the old (DESIGN §5).
    @inline(__always)
    func replacedVMCB(_ gpa: GPA, vm: Int32, vcpu: UInt16) -> GPA? {
        let key = UInt64(UInt32(bitPattern: vm)) << 16 | UInt64(vcpu)
        guard let old = lastVMCB.updateValue(gpa, forKey: key), old != gpa else { return nil }
        return old
    }

    /// The VM of a line, registered on first sight.
    @inline(__always)
    func vmIndex(_ tgid: FtraceLine.TGID) -> Int32 {
        if case .known(let t) = tgid {
            if t == lastTGID { return lastTGIDVM }
            if let i = vmByTGID[t] {
                lastTGID = t
                lastTGIDVM = i
                return i
            }
            var id = String(t)
            if let name = vmIDOfTGID?(t), VMInfo.isValidID(Array(name.utf8)), registry.index(of: name) == nil {
                id = name
            }
            let i = registry.intern(id)
            vmByTGID[t] = i
            return i
        }
        if let i = defaultVM { return i }
        let i = registry.intern(vmName)
        defaultVM = i
        return i
    }

    /// The L1 vCPU of an entry line (see the type's comment); nil after reporting an invalid line.
    @inline(__always)
    func vcpu(of r: FtraceLine.Record, _ line: UnsafeBufferPointer<UInt8>, vm: Int32) throws(TraceError) -> UInt16? {
        if let v = vcpuOfThread.vcpu(of: r.pid) { return v }
        if let n = FtraceLine.commVCPU(line, r.comm) {
            guard n < UInt64(VCPULimit.count) else {
                try invalid("vCPU \(n) of thread name 'CPU \(n)/KVM' is out of range (must be below \(VCPULimit.count))")
                return nil
            }
            return UInt16(n)
        }
        if let v = numberOfThread[r.pid] { return v }
        let n = nextNumber[vm, default: 0]
        guard n < VCPULimit.count else {
            try invalid("thread \(r.pid) would be vCPU \(n) of its VM by order of appearance, out of range (must be below \(VCPULimit.count))")
            return nil
        }
        nextNumber[vm] = n + 1
        numberOfThread[r.pid] = UInt16(n)
        pidNumberedVCPUs &+= 1
        return UInt16(n)
    }

    func invalid(_ message: String) throws(TraceError) {
        let error = TraceError(.badData, file: lines.path, line: lines.lineNumber, message)
        guard invalidPolicy == .skip else { throw error }
        invalidLines &+= 1
        if warnings.count < warningLimit { warnings.append(error.description) }
    }

    // MARK: - Format detection

    /// True when the first lines of a file look like ftrace text: a `# tracer:` header, a
    /// trace-cmd header (`version = N`, `cpus=N`), a lost-event marker, or an event line of
    /// either prefix form (`COMM-PID [CPU] ... SECONDS.MICROS: EVENT:` or perf script's
    /// `COMM TID [CPU] SECONDS.MICROS: SYSTEM:EVENT:`). False for the native magic
    /// `# nestcache-trace v1`, or when no line decides.
    public static func looksLikeFtrace(firstLines: [String]) -> Bool {
        for line in firstLines {
            let s = line.drop { $0 == " " || $0 == "\t" }
            if s.isEmpty { continue }
            if s.hasPrefix("# nestcache-trace") { return false }
            if s.hasPrefix("# tracer:") || s.hasPrefix("cpus=") || s.hasPrefix("version = ") { return true }
            if s.hasPrefix("#") { continue }
            var copy = line
            let verdict: Bool? = copy.withUTF8 { l in
                if FtraceLine.isCPUIsEmpty(l, at: line.utf8.count - s.utf8.count) { return nil }
                if case .lost = FtraceLine.parse(l) { return true }
                if case .header = FtraceLine.header(l) { return true }
                return false
            }
            if let verdict { return verdict }
        }
        return false
    }
}
