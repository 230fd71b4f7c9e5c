import NestCacheCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The fast path of `FtraceLine` (issue 10): an event line of the common layouts read in one pass,
/// the way bench/baseline.c does it — `memchr` for the `[` of the CPU column, a short scan for the
/// time and the event name, `memchr` for the `v` of the `vmcs:` / `vmcb:` key of an entry (the
/// baseline's `memmem`) — into a small value with no `String` in it.
///
/// It decides no line on its own: whenever a line is not of a form it knows to be read the same
/// way by `parse` — a comment, header, marker, stack trace, an invalid line, a `(tgid)` or `pid/tid`
/// column it does not read itself, plugin errors before a body, a body to be reported — it
/// answers `.fallback`, and the caller hands that line to `parse`, which gives the messages. So
/// for every line `quick` reads, `parse` gives the same record or name (FtraceFastPathTests checks
/// both readers against each other on every fixture and on lines made to fall back).
extension FtraceLine {
    /// What `quick` read from one line.
    enum Quick {
        /// Not read here: `parse` reads the line.
        case fallback
        /// `kvm_exit`, `kvm_entry` or `kvm_nested_vmexit` (see `KVMEvent.vcpuHint`) of thread `pid`.
        case hint(pid: Int32, vcpu: UInt16?, isVMClear: Bool)
        /// `kvm_nested_vmenter` / `kvm_nested_vmrun`: the `vmcs:`/`vmcb:` value as printed (the
        /// eVMCS sentinel or a valid GPA; any other value is `.fallback`).
        case enter(Entry)
        /// Another event: its name as `Parsed.skipped` counts it.
        case skipped(Range<Int>)
    }

    struct Entry {
        var pid: Int32
        var tgid: TGID
        var comm: Range<Int>
        var timeNs: UInt64
        var raw: UInt64
        var isVMCB: Bool
    }

    /// Reads `l` (one line without its `\n`) if it is an event line of a form `parse` reads to a
    /// `.record` or `.skipped`; `.fallback` for anything else.
    /// - Complexity: O(line length), one pass over the prefix and one `memchr` scan over an entry's
    ///   body; no allocation.
    @inline(__always)
    static func quick(_ raw: UnsafeBufferPointer<UInt8>) -> Quick {
        guard let base = raw.baseAddress else { return .fallback }
        var n = raw.count
        if n > 0, raw[n - 1] == 0x0D { n -= 1 }
        let l = UnsafeBufferPointer(start: base, count: n)

        // The line forms `parse` tells apart by their start: comments and markers, `=>`, `cpus=`,
        // `version = `, `CPU:N [LOST ...]` (a comm such as `vhost-812` or `cc1-9` is an event line).
        // Not `CPU 3 is empty`: it has no `[` (below), and ruling it out on every `CPU 1/KVM` comm
        // costs.
        var i = 0
        while i < n, Bytes.isSpace(l[i]) { i += 1 }
        guard i < n else { return .fallback }
        switch l[i] {
        case UInt8(ascii: "#"):
            return .fallback
        case UInt8(ascii: "="):
            if matches(l, at: i, "=>") { return .fallback }
        case UInt8(ascii: "c"):
            if matches(l, at: i, "cpus=") { return .fallback }
        case UInt8(ascii: "v"):
            if matches(l, at: i, "version = ") { return .fallback }
        case UInt8(ascii: "C"):
            if matches(l, at: i, "CPU:") { return .fallback }
        default:
            break
        }

        // The CPU column: the first `[`, digits, `]`. `prefix` takes the first `[digits]` with a
        // valid prefix before it, so when the first one qualifies both agree; else fall back.
        guard let o = memchr(base + i, Int32(UInt8(ascii: "[")), n - i) else { return .fallback }
        let open = base.distance(to: o.assumingMemoryBound(to: UInt8.self))
        var k = open + 1
        while k < n, isDigit(l[k]) { k += 1 }
        guard k > open + 1, k < n, l[k] == UInt8(ascii: "]") else { return .fallback }
        let afterCPU = k + 1

        // `COMM-PID` right before the column (raw tracefs without the tgid column); the other
        // forms (`(tgid)`, perf's `TID` and `PID/TID`) through `leftOfCPU` itself.
        var pid: Int32
        var tgid = TGID.absent
        var comm: Range<Int>
        var j = open - 1
        guard j >= 0, Bytes.isSpace(l[j]) else { return .fallback }
        while j >= 0, Bytes.isSpace(l[j]) { j -= 1 }
        let pidEnd = j + 1
        // The pid's value read right to left in the same scan (10 digits at most: no overflow).
        var v: UInt64 = 0
        var scale: UInt64 = 1
        while j >= 0, isDigit(l[j]), pidEnd - j <= 10 {
            v &+= UInt64(l[j] &- 0x30) &* scale
            scale &*= 10
            j -= 1
        }
        if j >= 0, j + 1 < pidEnd, l[j] == UInt8(ascii: "-") {
            guard v <= UInt64(Int32.max) else { return .fallback }
            pid = Int32(v)
            // `leftOfCPU`'s comm start: the first non-blank, here `i` (or `j` for an empty comm).
            comm = min(i, j)..<j
        } else {
            guard let p = leftOfCPU(l, open) else { return .fallback }
            pid = p.pid
            tgid = p.tgid
            comm = p.comm
        }

        // Latency flags (4 or 5 characters) or straight the timestamp, as `header` reads them
        // with `token`: the timestamp token is `SECONDS.FRACTION:` then a blank or the end,
        // read and checked in one pass (`timeToken`).
        var a = afterCPU
        while a < n, Bytes.isSpace(l[a]) { a += 1 }
        var colon: Int
        var timeNs: UInt64
        if let t = timeToken(l, at: a) {
            (timeNs, colon) = t
        } else {
            var e = a
            while e < n, !Bytes.isSpace(l[e]) { e += 1 }
            // A first word ending in ':' that is no timestamp: `header` fails.
            guard e - a == 4 || e - a == 5, l[e - 1] != UInt8(ascii: ":") else { return .fallback }
            while e < n, Bytes.isSpace(l[e]) { e += 1 }
            guard let t = timeToken(l, at: e) else { return .fallback }
            (timeNs, colon) = t
        }

        // The event name up to its colon; perf's `system:name:` up to the second one.
        i = colon + 1
        while i < n, Bytes.isSpace(l[i]) { i += 1 }
        let nameStart = i
        // The two events of every nested entry by their whole name, colon and blank (what the
        // scan below finds for them, without the scan); any other name the general way.
        if isWord(l, at: i, "kvm_exit:") {
            i += 8
        } else if isWord(l, at: i, "kvm_nested_vmenter:") {
            i += 18
        } else {
            while i < n, l[i] != UInt8(ascii: ":"), !Bytes.isSpace(l[i]) { i += 1 }
        }
        // Also `<stack trace>` (a name starting with `<` never ends in `:` before a blank here,
        // but `parse` ignores the line: fall back on `<` first).
        guard i < n, i > nameStart, l[i] == UInt8(ascii: ":"), l[nameStart] != UInt8(ascii: "<") else {
            return .fallback
        }
        var name = nameStart..<i
        let isKVM = systemQualified(l, name: &name, colon: &i)
        if !isKVM { return .skipped(nameStart..<name.upperBound) }
        i += 1
        while i < n, Bytes.isSpace(l[i]) { i += 1 }
        let body = i..<n
        // The plugin's `CAN'T FIND FIELD` errors before a body: `pluginErrorsSkipped` in `parse`.
        let hasPluginErrors = i < n && (l[i] == UInt8(ascii: "C") || l[i] == UInt8(ascii: "<"))

        switch name.count {
        case 8 where matches(l, at: name.lowerBound, "kvm_exit"):
            return hasPluginErrors ? .fallback : quickExit(l, body, pid: pid)
        case 9 where matches(l, at: name.lowerBound, "kvm_entry"),
            17 where matches(l, at: name.lowerBound, "kvm_nested_vmexit"):
            // `vcpu N` (the layouts without it: `parse`).
            let t = token(l, from: body.lowerBound)
            guard !hasPluginErrors, equals(l, t, "vcpu"), let v = quickVCPU(l, token(l, from: t.upperBound)) else { return .fallback }
            return .hint(pid: pid, vcpu: v, isVMClear: false)
        case 18 where matches(l, at: name.lowerBound, "kvm_nested_vmenter"),
            16 where matches(l, at: name.lowerBound, "kvm_nested_vmrun"):
            guard !hasPluginErrors, let v = quickEntryValue(l, body) else { return .fallback }
            return .enter(Entry(pid: pid, tgid: tgid, comm: comm, timeNs: timeNs, raw: v.raw, isVMCB: v.isVMCB))
        default:
            return .skipped(name)
        }
    }

    /// `exitBody`'s two layouts, `vcpu N reason R ...` and `reason R ...`; `.fallback` where it
    /// reports the line.
    @inline(__always)
    static func quickExit(_ l: UnsafeBufferPointer<UInt8>, _ body: Range<Int>, pid: Int32) -> Quick {
        var i = body.lowerBound
        var vcpu: UInt16?
        if isWord(l, at: i, "vcpu") {
            let number = token(l, from: i + 4)
            guard let v = quickVCPU(l, number) else { return .fallback }
            vcpu = v
            i = number.upperBound
            while i < l.count, Bytes.isSpace(l[i]) { i += 1 }
        }
        guard isWord(l, at: i, "reason") else { return .fallback }
        i += 6
        while i < l.count, Bytes.isSpace(l[i]) { i += 1 }
        guard i < l.count else { return .fallback }  // no reason
        return .hint(pid: pid, vcpu: vcpu, isVMClear: isWord(l, at: i, "VMCLEAR"))
    }

    /// The token at `i` (a non-blank there) is `word`: `word` then a blank or the end.
    @inline(__always)
    static func isWord(_ l: UnsafeBufferPointer<UInt8>, at i: Int, _ word: StaticString) -> Bool {
        let e = i + word.utf8CodeUnitCount
        return matches(l, at: i, word) && (e == l.count || Bytes.isSpace(l[e]))
    }

    /// `vcpuNumber` where it succeeds: decimal digits, a trailing `,` allowed, below
    /// `VCPULimit.count`; nil where it reports the line.
    @inline(__always)
    static func quickVCPU(_ l: UnsafeBufferPointer<UInt8>, _ t: Range<Int>) -> UInt16? {
        var e = t.upperBound
        if e > t.lowerBound, l[e - 1] == UInt8(ascii: ",") { e -= 1 }
        guard e > t.lowerBound, e - t.lowerBound <= 5 else { return nil }
        var v = 0
        for k in t.lowerBound..<e {
            let d = l[k] &- 0x30
            guard d < 10 else { return nil }
            v = v * 10 + Int(d)
        }
        return v < VCPULimit.count ? UInt16(v) : nil
    }

    /// The value of the first token `vmcs:` or `vmcb:` of `body` (what `enterBody` reads), found
    /// with `memchr`, when it is `0x` and 1 to 16 hex digits and either the eVMCS sentinel after
    /// `vmcs:` or a valid GPA; nil where `enterBody` reports the line.
    @inline(__always)
    static func quickEntryValue(_ l: UnsafeBufferPointer<UInt8>, _ body: Range<Int>) -> (raw: UInt64, isVMCB: Bool)? {
        guard let base = l.baseAddress else { return nil }
        let end = body.upperBound
        var from = body.lowerBound
        // A token `vmcs:`/`vmcb:` starts at the body's start or after a blank and ends at a blank
        // or the end; any earlier `v` does not start one, so the search goes on after it. (Glibc's
        // `memmem` is not visible from Swift; `memchr` for the first byte does the same here.)
        while end - from >= 5, let hit = memchr(base + from, Int32(UInt8(ascii: "v")), end - from) {
            let k = base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
            from = k + 1
            guard k + 5 <= end, k == body.lowerBound || Bytes.isSpace(l[k - 1]),
                l[k + 1] == UInt8(ascii: "m"), l[k + 2] == UInt8(ascii: "c"),
                l[k + 3] == UInt8(ascii: "s") || l[k + 3] == UInt8(ascii: "b"), l[k + 4] == UInt8(ascii: ":"),
                k + 5 == end || Bytes.isSpace(l[k + 5])
            else { continue }
            let isVMCB = l[k + 3] == UInt8(ascii: "b")
            // `Bytes.hex0x` of the next token in the same pass: `0x`, 1 to 16 hex digits, a blank
            // or the end.
            var v = k + 5
            while v < end, Bytes.isSpace(l[v]) { v += 1 }
            guard v + 2 < end, l[v] == UInt8(ascii: "0"), l[v + 1] == UInt8(ascii: "x") else { return nil }
            v += 2
            let first = v
            var raw: UInt64 = 0
            while v < end {
                let c = l[v]
                let digit = c &- 0x30
                let letter = (c | 0x20) &- 0x61
                if digit < 10 {
                    raw = raw << 4 | UInt64(digit)
                } else if letter < 6 {
                    raw = raw << 4 | UInt64(letter &+ 10)
                } else {
                    break
                }
                v += 1
            }
            // The token ends here, or it has a byte that is no hex digit.
            guard v == end || Bytes.isSpace(l[v]), v > first, v - first <= 16 else { return nil }
            if !isVMCB, raw == evmcsSentinel { return (raw, false) }
            guard GPA(raw).isValid else { return nil }
            return (raw, isVMCB)
        }
        return nil
    }

    /// The token at `a` when it is a timestamp and its colon (`SECONDS.FRACTION:`, 6 or 9
    /// decimals, then a blank or the end of the line): the time in ns and the colon's index.
    /// nil for any other token, or seconds of more than 19 digits (`header` then decides).
    @inline(__always)
    static func timeToken(_ l: UnsafeBufferPointer<UInt8>, at a: Int) -> (UInt64, Int)? {
        let n = l.count
        var k = a
        var secs: UInt64 = 0
        while k < n, isDigit(l[k]) {
            secs = secs &* 10 &+ UInt64(l[k] &- 0x30)
            k += 1
        }
        guard k > a, k - a <= 19, k < n, l[k] == UInt8(ascii: ".") else { return nil }
        k += 1
        let f = k
        var frac: UInt64 = 0
        while k < n, isDigit(l[k]) {
            frac = frac &* 10 &+ UInt64(l[k] &- 0x30)
            k += 1
        }
        let digits = k - f
        guard digits == 6 || digits == 9, k < n, l[k] == UInt8(ascii: ":"), k + 1 == n || Bytes.isSpace(l[k + 1]) else {
            return nil
        }
        let (ns, o1) = secs.multipliedReportingOverflow(by: 1_000_000_000)
        let (t, o2) = ns.addingReportingOverflow(digits == 6 ? frac &* 1000 : frac)
        return o1 || o2 ? nil : (t, k)
    }
}
