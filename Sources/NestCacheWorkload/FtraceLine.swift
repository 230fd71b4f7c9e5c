import NestCacheCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One line of Linux ftrace text, parsed in place: the pure half of `FtraceReader` (DESIGN §5).
///
/// It knows the line forms and the KVM event bodies, nothing of threads, vCPUs or VMs. Ranges it
/// returns index the line it was given.
///
/// An event line, as `trace_print_context` (kernel/trace/trace_output.c) prints its prefix:
///
///     %16s-%-7d  [(%7d) ]  [%03d]  [flags ]  %5lu.%06lu:  event:  body
///     comm -pid   (tgid)    [cpu]   d....    seconds.us   name    ...
///
/// or as `perf script` prints it (tools/perf/builtin-script.c, `perf_sample__fprintf_start`, then
/// the event name right-aligned in the width of the longest one):
///
///     %16s  %7d[/%-7d]  [%03d]  %5lu.%06lu:  %*s:          body
///     comm  tid          [cpu]  seconds.us   system:name
///     comm  pid/tid      [cpu]  seconds.us   system:name   (perf script -F +pid)
///
/// - comm is right-aligned in 16 columns and may hold spaces and '-' (`CPU 1/KVM`,
///   `qemu-system-x86`), so the prefix is read from the `[cpu]` column leftwards: the `(tgid)`
///   column if there is one (`(-------)` when the tgid is unknown), then `-pid`; what is left is
///   the comm. A run of digits after a space instead of a '-' is perf's thread id (or `pid/tid`:
///   the pid is then the tgid); what is left of it, trailing blanks removed, is the comm.
/// - The latency flags (irqs-off, need-resched, hardirq/softirq, preempt-depth and, in newer
///   kernels, migrate-disable) are 4 or 5 characters, or absent (irq-info off, older trace-cmd,
///   perf).
/// - The fraction has 6 digits (µs) or 9 (ns, `trace-cmd report -t`, `perf script --ns`).
/// - `trace-cmd report` pads the event name after its colon; perf pads it before, and prefixes it
///   with its system (`kvm:kvm_exit:`). Events of system `kvm` (or of none) are read by name;
///   events of other systems keep `system:name` as their name.
///
/// Other line forms: `#` comments (the `# tracer:` header), blank lines, trace-cmd headers
/// (`version = 6`, `cpus=4`, `CPU 3 is empty`), stack-trace lines (`=> func`, and events whose
/// body is `<stack trace>`), and lost-event markers: `CPU:2 [LOST 12 EVENTS]`,
/// `CPU:2 [LOST EVENTS]` (count unknown) and `##### CPU 2 buffer started ####` (raw `trace`: the
/// buffer of that CPU wrapped or started late, so earlier events of it are missing).
///
/// Only the events the reader uses (`kvm_exit`, `kvm_entry`, `kvm_nested_vmexit`,
/// `kvm_nested_vmenter`, `kvm_nested_vmrun`) have their bodies checked; any other event line is
/// `.skipped` with its name, whatever its body.
enum FtraceLine {
    /// What one line is.
    enum Parsed {
        /// A comment, blank line, header or stack-trace line.
        case ignored
        /// A line of an event the reader does not use: its name (`system:name` for a system other
        /// than `kvm`).
        case skipped(Range<Int>)
        /// A lost-event marker: the count, or nil where the marker gives none.
        case lost(UInt64?)
        /// A KVM event line this reader uses.
        case record(Record)
        /// A line that fits no form: what was expected.
        case invalid(String)
    }

    /// The `(tgid)` column of a line.
    enum TGID: Equatable {
        /// No such column (record-tgid off, trace-cmd, perf script without the pid).
        case absent
        /// `(-------)`: the column is there, the tgid was not recorded.
        case unknown
        /// The tgid, or the pid of perf's `pid/tid` column.
        case known(Int32)
    }

    /// What a KVM event line says.
    enum KVMEvent: Equatable {
        /// `kvm_exit`, `kvm_entry`, `kvm_nested_vmexit`: the thread runs L1 vCPU `vcpu` (nil in the
        /// older layouts that do not print it). `isVMClear`: a `kvm_exit` with reason VMCLEAR.
        case vcpuHint(vcpu: UInt16?, isVMClear: Bool)
        /// `kvm_nested_vmenter` / `kvm_nested_vmrun` with a valid GPA; `isVMCB`: an SVM line.
        case enter(GPA, isVMCB: Bool)
        /// `kvm_nested_vmenter` with `vmcs: 0xffffffffffffffff`: an eVMCS entry, no GPA traced.
        case evmcsEnter
    }

    struct Record {
        /// The thread: ftrace's pid, perf's tid.
        var pid: Int32
        var tgid: TGID
        /// The comm, padding removed (may be empty).
        var comm: Range<Int>
        var timeNs: UInt64
        var event: KVMEvent
    }

    /// The `vmcs:` value traced for an enlightened VMCS (Hyper-V eVMCS: no VMCS12 GPA).
    static let evmcsSentinel = UInt64.max

    // MARK: - Whole lines

    /// Parses one line (without its `\n`; a trailing `\r` is ignored).
    /// - Complexity: O(line length); no allocation unless the line is invalid.
    static func parse(_ raw: UnsafeBufferPointer<UInt8>) -> Parsed {
        var n = raw.count
        if n > 0, raw[n - 1] == 0x0D { n -= 1 }
        let l = UnsafeBufferPointer(rebasing: raw[0..<n])

        var i = 0
        while i < n, Bytes.isSpace(l[i]) { i += 1 }
        if i == n { return .ignored }

        switch l[i] {
        case UInt8(ascii: "#"):
            return matches(l, at: i, "##### CPU ") && contains(l, from: i, "buffer started") ? .lost(nil) : .ignored
        case UInt8(ascii: "="):
            if matches(l, at: i, "=>") { return .ignored }
        case UInt8(ascii: "C"):
            if matches(l, at: i, "CPU:") { return lostMarker(l, at: i) }
            if isCPUIsEmpty(l, at: i) { return .ignored }
        case UInt8(ascii: "c"):
            if matches(l, at: i, "cpus=") { return .ignored }
        case UInt8(ascii: "v"):
            if matches(l, at: i, "version = ") { return .ignored }
        default:
            break
        }
        return event(l)
    }

    /// `CPU:N [LOST N EVENTS]` or `CPU:N [LOST EVENTS]`.
    static func lostMarker(_ l: UnsafeBufferPointer<UInt8>, at start: Int) -> Parsed {
        var i = start + 4
        let cpu = digits(l, from: i)
        i = cpu.upperBound
        guard !cpu.isEmpty, matches(l, at: i, " [LOST ") else {
            return .invalid("expected 'CPU:N [LOST N EVENTS]', got \(Bytes.quote(l))")
        }
        i += 7
        if matches(l, at: i, "EVENTS]"), trimmedEnd(l) == i + 7 { return .lost(nil) }
        let count = digits(l, from: i)
        guard !count.isEmpty, matches(l, at: count.upperBound, " EVENTS]"), trimmedEnd(l) == count.upperBound + 8,
            let value = Bytes.decimal(UnsafeBufferPointer(rebasing: l[count]))
        else {
            return .invalid("expected 'CPU:N [LOST N EVENTS]', got \(Bytes.quote(l))")
        }
        return .lost(value)
    }

    /// trace-cmd's `CPU 3 is empty` (distinct from a comm such as `CPU 3/KVM`).
    static func isCPUIsEmpty(_ l: UnsafeBufferPointer<UInt8>, at start: Int) -> Bool {
        guard matches(l, at: start, "CPU ") else { return false }
        let d = digits(l, from: start + 4)
        return !d.isEmpty && matches(l, at: d.upperBound, " is empty") && trimmedEnd(l) == d.upperBound + 9
    }

    // MARK: - Event lines

    /// The prefix, then the body of the events this reader uses.
    static func event(_ l: UnsafeBufferPointer<UInt8>) -> Parsed {
        let h: Header
        switch header(l) {
        case .header(let v): h = v
        case .failure(let f): return .invalid(f.message(l))
        }
        if h.name.isEmpty { return .ignored }  // <stack trace>, <user stack trace>
        if !h.isKVM { return .skipped(h.qualifiedName) }

        let name = h.name
        let nameStart = name.lowerBound
        let kind: Parsed
        switch name.count {
        case 8 where matches(l, at: nameStart, "kvm_exit"):
            kind = exitBody(l, pluginErrorsSkipped(l, h.body))
        case 9 where matches(l, at: nameStart, "kvm_entry"):
            kind = entryBody(l, pluginErrorsSkipped(l, h.body))
        case 17 where matches(l, at: nameStart, "kvm_nested_vmexit"):
            kind = nestedExitBody(l, pluginErrorsSkipped(l, h.body))
        case 18 where matches(l, at: nameStart, "kvm_nested_vmenter"):
            kind = enterBody(l, pluginErrorsSkipped(l, h.body), event: "kvm_nested_vmenter")
        case 16 where matches(l, at: nameStart, "kvm_nested_vmrun"):
            kind = enterBody(l, pluginErrorsSkipped(l, h.body), event: "kvm_nested_vmrun")
        default:
            return .skipped(h.qualifiedName)
        }
        guard case .record(var r) = kind else { return kind }
        r.pid = h.prefix.pid
        r.tgid = h.prefix.tgid
        r.comm = h.prefix.comm
        r.timeNs = h.timeNs
        return .record(r)
    }

    /// An event line up to its body: prefix, time, event name.
    struct Header {
        var prefix: Prefix
        var timeNs: UInt64
        /// The event's name without its system; empty for a `<stack trace>` line.
        var name: Range<Int>
        /// The name a skipped line is counted under: `system:name` for a system other than
        /// `kvm` (perf's `sched:sched_switch`), else `name`.
        var qualifiedName: Range<Int>
        /// The system is `kvm`, or none was printed (ftrace, trace-cmd).
        var isKVM: Bool
        /// After the name's colon and the blanks that follow it.
        var body: Range<Int>
    }

    /// What `header` read; every payload is plain data, so reading a line copies no reference.
    enum HeaderParse {
        case header(Header)
        case failure(HeaderFailure)
    }

    /// Why a line is no event line, and where the reading stopped.
    enum HeaderFailure {
        case noPrefix
        case badFlags(at: Int)
        case badTimestamp(at: Int)
        case noEventName(at: Int)

        func message(_ l: UnsafeBufferPointer<UInt8>) -> String {
            switch self {
            case .noPrefix:
                return "expected an ftrace event line 'COMM-PID [CPU] SECONDS.MICROS: EVENT: ...', got \(Bytes.quote(l))"
            case .badFlags(let i):
                return "expected latency flags (4 or 5 characters) or 'SECONDS.MICROS:' after the CPU column, got \(Bytes.quote(rest(l, i)))"
            case .badTimestamp(let i):
                return "expected a timestamp 'SECONDS.MICROS:' (6 or 9 decimals) after the CPU column, got \(Bytes.quote(rest(l, i)))"
            case .noEventName(let i):
                return "expected 'EVENT: ' after the timestamp, got \(Bytes.quote(rest(l, i)))"
            }
        }
    }

    /// Reads an event line up to its body.
    /// - Complexity: O(line length); no allocation.
    @inline(__always)
    static func header(_ l: UnsafeBufferPointer<UInt8>) -> HeaderParse {
        guard let p = prefix(l) else { return .failure(.noPrefix) }
        var i = p.afterCPU
        // Latency flags (4 or 5 characters) or straight the timestamp.
        var t = token(l, from: i)
        if t.isEmpty || l[t.upperBound - 1] != UInt8(ascii: ":") {
            guard t.count == 4 || t.count == 5 else { return .failure(.badFlags(at: t.lowerBound)) }
            i = t.upperBound
            t = token(l, from: i)
        }
        guard !t.isEmpty, let timeNs = timestamp(l, t.lowerBound..<(t.upperBound - 1)),
            l[t.upperBound - 1] == UInt8(ascii: ":")
        else {
            return .failure(.badTimestamp(at: t.lowerBound))
        }
        i = t.upperBound

        // The event name, up to its colon; perf's `system:name:` up to the second one.
        let n = l.count
        while i < n, Bytes.isSpace(l[i]) { i += 1 }
        if i < n, l[i] == UInt8(ascii: "<") {  // <stack trace>, <user stack trace>
            return .header(Header(prefix: p, timeNs: timeNs, name: i..<i, qualifiedName: i..<i, isKVM: false, body: i..<n))
        }
        let nameStart = i
        while i < n, l[i] != UInt8(ascii: ":"), !Bytes.isSpace(l[i]) { i += 1 }
        guard i < n, i > nameStart, l[i] == UInt8(ascii: ":") else { return .failure(.noEventName(at: nameStart)) }
        var name = nameStart..<i
        let isKVM = systemQualified(l, name: &name, colon: &i)
        let qualified = isKVM ? name : nameStart..<name.upperBound
        i += 1
        while i < n, Bytes.isSpace(l[i]) { i += 1 }
        return .header(Header(prefix: p, timeNs: timeNs, name: name, qualifiedName: qualified, isKVM: isKVM, body: i..<n))
    }

    /// perf's `system:name:`: when another `word:` follows the event name's colon at `colon`,
    /// the event is that word and `name` was its system. Moves `name` and `colon` to it; returns
    /// whether the event is KVM's (the system is `kvm`, or there is none: ftrace's own layout).
    @inline(__always)
    static func systemQualified(_ l: UnsafeBufferPointer<UInt8>, name: inout Range<Int>, colon i: inout Int) -> Bool {
        let n = l.count
        guard i + 1 < n, !Bytes.isSpace(l[i + 1]) else { return true }
        var k = i + 1
        while k < n, l[k] != UInt8(ascii: ":"), !Bytes.isSpace(l[k]) { k += 1 }
        guard k < n, k > i + 1, l[k] == UInt8(ascii: ":") else { return true }
        let isKVM = equals(l, name, "kvm")
        name = (i + 1)..<k
        i = k
        return isKVM
    }

    /// The body after libtraceevent's field errors: a KVM plugin handler that looks for a field
    /// the kernel renamed prints `CAN'T FIND FIELD "rip"` (and `<CANT FIND FIELD exit_code>`), then
    /// gives up and the kernel's own format follows (`kvm_nested_vmexit` since Linux 5.9).
    @inline(__always)
    static func pluginErrorsSkipped(_ l: UnsafeBufferPointer<UInt8>, _ body: Range<Int>) -> Range<Int> {
        var i = body.lowerBound
        while i < body.upperBound, l[i] == UInt8(ascii: "C") || l[i] == UInt8(ascii: "<") {
            let close: UInt8
            if matches(l, at: i, "CAN'T FIND FIELD \"") {
                i += 18
                close = UInt8(ascii: "\"")
            } else if matches(l, at: i, "<CANT FIND FIELD ") {
                i += 17
                close = UInt8(ascii: ">")
            } else {
                break
            }
            while i < body.upperBound, l[i] != close { i += 1 }
            i = min(i + 1, body.upperBound)
            while i < body.upperBound, Bytes.isSpace(l[i]) { i += 1 }
        }
        return i..<body.upperBound
    }

    struct Prefix {
        var comm: Range<Int>
        var pid: Int32
        var tgid: TGID
        /// The index after `]` of the CPU column.
        var afterCPU: Int
    }

    /// Finds `[cpu]` and reads leftwards from it (`leftOfCPU`). The first `[digits]` that has a
    /// valid `COMM-PID [(TGID)]` or `COMM TID` before it is the CPU column.
    static func prefix(_ l: UnsafeBufferPointer<UInt8>) -> Prefix? {
        let n = l.count
        var b = 0
        while b < n {
            guard let open = find(l, UInt8(ascii: "["), from: b) else { return nil }
            b = open + 1
            let cpu = digits(l, from: open + 1)
            guard !cpu.isEmpty, cpu.upperBound < n, l[cpu.upperBound] == UInt8(ascii: "]") else { continue }
            if var p = leftOfCPU(l, open) {
                p.afterCPU = cpu.upperBound + 1
                return p
            }
        }
        return nil
    }

    /// Reads `COMM-PID [(TGID)] `, perf's `COMM TID ` or `COMM PID/TID ` backwards from the `[`
    /// at `open`.
    static func leftOfCPU(_ l: UnsafeBufferPointer<UInt8>, _ open: Int) -> Prefix? {
        var j = open - 1
        guard j >= 0, Bytes.isSpace(l[j]) else { return nil }
        while j >= 0, Bytes.isSpace(l[j]) { j -= 1 }
        guard j >= 0 else { return nil }
        var tgid = TGID.absent
        if l[j] == UInt8(ascii: ")") {
            let close = j
            j -= 1
            while j >= 0, l[j] != UInt8(ascii: "("), close - j <= 12 { j -= 1 }
            guard j >= 0, l[j] == UInt8(ascii: "(") else { return nil }
            var a = j + 1
            while a < close, l[a] == 0x20 { a += 1 }
            let inner = UnsafeBufferPointer(rebasing: l[a..<close])
            if !inner.isEmpty, inner.allSatisfy({ $0 == UInt8(ascii: "-") }) {
                tgid = .unknown
            } else if let v = Bytes.decimal(inner), v <= UInt64(Int32.max) {
                tgid = .known(Int32(v))
            } else {
                return nil
            }
            j -= 1
            guard j >= 0, Bytes.isSpace(l[j]) else { return nil }
            while j >= 0, Bytes.isSpace(l[j]) { j -= 1 }
        }
        let pidEnd = j + 1
        while j >= 0, isDigit(l[j]) { j -= 1 }
        guard j >= 0, j + 1 < pidEnd, let pid = int32(l, (j + 1)..<pidEnd) else { return nil }
        var c = 0
        while c < j, Bytes.isSpace(l[c]) { c += 1 }
        switch l[j] {
        case UInt8(ascii: "-"):
            return Prefix(comm: c..<j, pid: pid, tgid: tgid, afterCPU: 0)
        case UInt8(ascii: "/") where tgid == .absent:
            // perf's `PID/TID`: the thread is the tid, the process (the VM) the pid.
            let tidStart = j + 1
            j -= 1
            while j >= 0, isDigit(l[j]) { j -= 1 }
            guard j >= 0, j + 1 < tidStart - 1, Bytes.isSpace(l[j]), let process = int32(l, (j + 1)..<(tidStart - 1)) else {
                return nil
            }
            return perfPrefix(l, commFrom: c, spaceAt: j, tid: pid, tgid: .known(process))
        case _ where tgid == .absent && Bytes.isSpace(l[j]):
            return perfPrefix(l, commFrom: c, spaceAt: j, tid: pid, tgid: .absent)
        default:
            return nil
        }
    }

    /// perf's comm: from `c` to the blank at `j` before its thread id, trailing blanks removed;
    /// nil when empty (perf prints `:-1` for a sample without a thread, never nothing).
    @inline(__always)
    static func perfPrefix(_ l: UnsafeBufferPointer<UInt8>, commFrom c: Int, spaceAt j: Int, tid: Int32, tgid: TGID) -> Prefix? {
        var e = j
        while e > c, Bytes.isSpace(l[e - 1]) { e -= 1 }
        guard e > c else { return nil }
        return Prefix(comm: c..<e, pid: tid, tgid: tgid, afterCPU: 0)
    }

    /// A decimal in `r` that fits an `Int32` (pids and tids), else nil.
    @inline(__always)
    static func int32(_ l: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> Int32? {
        guard let v = Bytes.decimal(UnsafeBufferPointer(rebasing: l[r])), v <= UInt64(Int32.max) else { return nil }
        return Int32(v)
    }

    /// `SECONDS.FRACTION` with 6 or 9 fraction digits, in ns; nil on any other form or overflow.
    static func timestamp(_ l: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> UInt64? {
        guard let dot = find(l, UInt8(ascii: "."), from: r.lowerBound), dot < r.upperBound,
            let secs = Bytes.decimal(UnsafeBufferPointer(rebasing: l[r.lowerBound..<dot])),
            let frac = Bytes.decimal(UnsafeBufferPointer(rebasing: l[(dot + 1)..<r.upperBound]))
        else { return nil }
        let scale: UInt64
        switch r.upperBound - dot - 1 {
        case 6: scale = 1000
        case 9: scale = 1
        default: return nil
        }
        let (ns, o1) = secs.multipliedReportingOverflow(by: 1_000_000_000)
        let (t, o2) = ns.addingReportingOverflow(frac * scale)
        return o1 || o2 ? nil : t
    }

    // MARK: - Byte helpers

    @inline(__always)
    static func isDigit(_ c: UInt8) -> Bool { c &- 0x30 < 10 }

    /// The run of decimal digits starting at `i` (empty if none).
    @inline(__always)
    static func digits(_ l: UnsafeBufferPointer<UInt8>, from i: Int) -> Range<Int> {
        var j = i
        while j < l.count, isDigit(l[j]) { j += 1 }
        return i..<max(i, j)
    }

    /// The next space-separated token at or after `i` (empty at the end).
    @inline(__always)
    static func token(_ l: UnsafeBufferPointer<UInt8>, from i: Int) -> Range<Int> {
        var a = i
        while a < l.count, Bytes.isSpace(l[a]) { a += 1 }
        var b = a
        while b < l.count, !Bytes.isSpace(l[b]) { b += 1 }
        return a..<b
    }

    @inline(__always)
    static func find(_ l: UnsafeBufferPointer<UInt8>, _ c: UInt8, from i: Int) -> Int? {
        guard i < l.count, let base = l.baseAddress, let p = memchr(base + i, Int32(c), l.count - i) else { return nil }
        return base.distance(to: p.assumingMemoryBound(to: UInt8.self))
    }

    @inline(__always)
    static func matches(_ l: UnsafeBufferPointer<UInt8>, at i: Int, _ lit: StaticString) -> Bool {
        let n = lit.utf8CodeUnitCount
        guard i >= 0, i + n <= l.count, let base = l.baseAddress else { return false }
        return memcmp(base + i, lit.utf8Start, n) == 0
    }

    @inline(__always)
    static func equals(_ l: UnsafeBufferPointer<UInt8>, _ r: Range<Int>, _ lit: StaticString) -> Bool {
        r.count == lit.utf8CodeUnitCount && matches(l, at: r.lowerBound, lit)
    }

    static func contains(_ l: UnsafeBufferPointer<UInt8>, from i: Int, _ lit: StaticString) -> Bool {
        var j = i
        while j + lit.utf8CodeUnitCount <= l.count {
            if matches(l, at: j, lit) { return true }
            j += 1
        }
        return false
    }

    /// The end of the line without trailing blanks.
    static func trimmedEnd(_ l: UnsafeBufferPointer<UInt8>) -> Int {
        var e = l.count
        while e > 0, Bytes.isSpace(l[e - 1]) { e -= 1 }
        return e
    }

    static func rest(_ l: UnsafeBufferPointer<UInt8>, _ i: Int) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(rebasing: l[min(i, l.count)...])
    }
}
