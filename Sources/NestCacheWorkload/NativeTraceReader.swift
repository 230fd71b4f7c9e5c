import NestCacheCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads the native text format of DESIGN §5, streaming, as bytes.
///
///     # nestcache-trace v1
///     # vm web0 l1_vcpus=8 memory_mib=16384 pages_per_context=5
///     1000 web0 3 load 0x1a2b3000
///
/// Every line that is not the magic, a `# vm` declaration, a comment, a blank line or a valid
/// event is an error naming the file, the line and what was expected; with `.skip` it is counted
/// and the first `warningLimit` messages are kept. A `# vm` line must come before the VM's first
/// event (its `l1_vcpus` sets the table's capacity from the start) and may be repeated only
/// unchanged.
///
/// Two paths read the same grammar. The **plain-line path** (`parsePlainLines`) takes, straight
/// out of the line reader's buffer, every line of the form `TIME VM VCPU OP 0xGPA\n` with single
/// spaces, a VM already seen and values in range: one pass over the bytes, the VM compared with
/// the previous line's id 8 bytes at a time (else a hash lookup, `VMNameTable`), events written
/// straight into the batch. It stops before any other line
/// (the magic, comments, declarations, tabs, a new VM, anything out of range or malformed), which
/// the **general path** (`parse`) reads and, for errors, words: so messages and counts are the
/// same whichever path a line would have taken.
///
/// - Complexity: O(1) memory in the file's size; O(line length) per line, O(1) expected for the
///   VM lookup; no allocation per line once every VM has been seen.
public final class NativeTraceReader: EventSource {
    public static let magic = "# nestcache-trace v1"

    public private(set) var registry: VMRegistry
    public private(set) var warnings: [String] = []
    public private(set) var invalidLines: UInt64 = 0
    public var figures: [(name: String, value: UInt64)] { [("invalid_lines", invalidLines)] }

    let lines: LineReader
    let invalidPolicy: InvalidLinePolicy
    var lastTime: UInt64 = 0
    var sawMagic = false
    var isDone = false
    /// VM ids as bytes, indexed like the registry, with each VM's vCPU bound.
    let names = VMNameTable()
    var lastVM: Int32 = -1

    /// Opens `path` (`-` for standard input). `registry` carries VMs over from earlier files of
    /// the same run, so one VM id names one VM across files.
    public convenience init(path: String, invalidLines: InvalidLinePolicy = .fail, registry: VMRegistry = VMRegistry()) throws(TraceError) {
        try self.init(lines: LineReader(path: path), invalidLines: invalidLines, registry: registry)
    }

    /// Reads from `lines`; in follow mode (`LineReader`) the end of the input is not the end of
    /// the stream: `next` returns false while no complete line is there, and may be called again.
    public init(lines: LineReader, invalidLines: InvalidLinePolicy = .fail, registry: VMRegistry = VMRegistry()) {
        self.lines = lines
        self.invalidPolicy = invalidLines
        self.registry = registry
        for (i, info) in registry.infos.enumerated() {
            names.insert(info.id)
            if let m = info.l1VCPUs { names.setVCPULimit(Int32(i), m) }
        }
    }

    /// The batch is kept at `limit` elements between calls and written in place (no append per
    /// event, no copy); only a last, shorter batch is cut down.
    public func next(into batch: inout [Event], limit: Int) throws(TraceError) -> Bool {
        guard !isDone, limit > 0 else {
            batch.removeAll(keepingCapacity: true)
            return false
        }
        if batch.count != limit {
            batch.removeAll(keepingCapacity: true)
            batch.append(contentsOf: repeatElement(Self.placeholder, count: limit))
        }
        let n = try batch.withUnsafeMutableBufferPointer { (out) throws(TraceError) -> Int in try fill(out) }
        if n < limit { batch.removeLast(limit - n) }
        return n > 0
    }

    static let placeholder = Event(timeNs: 0, vm: 0, vcpu: 0, op: .load, gpa: .none)

    /// Writes up to `out.count` events into `out`; returns how many.
    func fill(_ out: UnsafeMutableBufferPointer<Event>) throws(TraceError) -> Int {
        guard let base = out.baseAddress else { return 0 }
        let limit = out.count
        var n = 0
        while n < limit {
            if sawMagic {
                let taken = try lines.withBufferedLines { (view) throws(TraceError) in
                    let r = parsePlainLines(view, into: base + n, room: limit - n)
                    return (r.bytes, r.events, r.events)
                }
                n += taken
                if taken > 0 { continue }
            }
            // One line the general way: the first one, one the plain path does not take, or one
            // that needs a read first.
            guard let line = try lines.nextLine() else {
                if lines.isFollowing { break }
                if !sawMagic { try invalid(Self.emptyFileMessage, line: max(lines.lineNumber, 1)) }
                isDone = true
                break
            }
            do throws(LineError) {
                if let e = try parse(line) {
                    (base + n).pointee = e
                    n += 1
                }
            } catch {
                try invalid(error.message, line: lines.lineNumber)
            }
        }
        return n
    }

    static let emptyFileMessage = "expected the magic line '\(magic)', got an empty file"

    func invalid(_ message: String, line: Int) throws(TraceError) {
        let error = TraceError(.badData, file: lines.path, line: line, message)
        guard invalidPolicy == .skip, sawMagic || line > 1 else { throw error }
        invalidLines += 1
        if warnings.count < warningLimit { warnings.append(error.description) }
    }

    struct LineError: Error { var message: String }

    // MARK: - The plain-line path

    /// Parses plainly formed event lines from the front of `s` into `out`, at most `room`:
    /// returns the bytes and lines taken (one event a line). Stops before the first line it does
    /// not take, and before a last line without its newline; never throws, never allocates.
    /// - Complexity: O(bytes taken): one pass over each line's bytes (no separate search for the
    ///   newline: the line must end right after the GPA), the VM id compared with the previous
    ///   line's 8 bytes at a time (a `VMNameTable` lookup when it differs).
    @inline(__always)
    func parsePlainLines(_ s: UnsafeBufferPointer<UInt8>, into out: UnsafeMutablePointer<Event>, room: Int) -> (bytes: Int, events: Int) {
        guard let base = s.baseAddress else { return (0, 0) }
        let n = s.count
        let names = self.names
        var time = lastTime
        var vm = lastVM
        var pos = 0
        var written = 0
        let space: UInt8 = 0x20
        let newline: UInt8 = 0x0A
        // Every scan below is bounded by `e`, the end of the buffered bytes, and stops at a
        // newline, so a partial or odd line is left whole for the general path.
        let e = n
        while written < room, pos < n {
            var i = pos
            // TIME: 1 to 19 digits (20 may overflow: the general path checks those).
            var t: UInt64 = 0
            while i < e {
                let d = base[i] &- 0x30
                if d >= 10 { break }
                t = t &* 10 &+ UInt64(d)
                i &+= 1
            }
            guard i &- pos >= 1, i &- pos <= 19, i < e, base[i] == space, t >= time else { break }
            i &+= 1
            // VM: the previous line's, else any VM seen (a new one takes the general path).
            let v0 = i
            while i < e, base[i] != space, base[i] != newline { i &+= 1 }
            guard i < e, base[i] == space else { break }
            let idLength = i &- v0
            if vm < 0 || !names.equals(vm, UnsafeRawPointer(base + v0), idLength) {
                vm = names.find(UnsafeRawPointer(base + v0), idLength)
                guard vm >= 0 else { break }
            }
            i &+= 1
            // VCPU: 1 to 4 digits, below the VM's bound.
            let c0 = i
            var v = 0
            while i < e {
                let d = base[i] &- 0x30
                if d >= 10 { break }
                v = v &* 10 &+ Int(d)
                i &+= 1
            }
            guard i &- c0 >= 1, i &- c0 <= 4, i < e, base[i] == space, v < names.vcpuLimit(vm) else { break }
            i &+= 1
            // OP and its space.
            let op: TraceOp
            if e &- i >= 6, base[i] == UInt8(ascii: "e"), base[i &+ 1] == UInt8(ascii: "n"), base[i &+ 2] == UInt8(ascii: "t"),
               base[i &+ 3] == UInt8(ascii: "e"), base[i &+ 4] == UInt8(ascii: "r"), base[i &+ 5] == space {
                op = .enter
                i &+= 6
            } else if e &- i >= 5, base[i] == UInt8(ascii: "l"), base[i &+ 1] == UInt8(ascii: "o"), base[i &+ 2] == UInt8(ascii: "a"),
                      base[i &+ 3] == UInt8(ascii: "d"), base[i &+ 4] == space {
                op = .load
                i &+= 5
            } else if e &- i >= 6, base[i] == UInt8(ascii: "c"), base[i &+ 1] == UInt8(ascii: "l"), base[i &+ 2] == UInt8(ascii: "e"),
                      base[i &+ 3] == UInt8(ascii: "a"), base[i &+ 4] == UInt8(ascii: "r"), base[i &+ 5] == space {
                op = .clear
                i &+= 6
            } else {
                break
            }
            // GPA: 0x and 1 to 16 hex digits up to the newline, 4 KiB aligned, below 2^52.
            guard e &- i >= 3, base[i] == UInt8(ascii: "0"), base[i &+ 1] == UInt8(ascii: "x") else { break }
            i &+= 2
            let h0 = i
            var g: UInt64 = 0
            while i < e {
                let c = base[i]
                let d: UInt8
                if c &- 0x30 < 10 {
                    d = c &- 0x30
                } else if (c | 0x20) &- 0x61 < 6 {
                    d = (c | 0x20) &- 0x57
                } else {
                    break
                }
                g = g << 4 | UInt64(d)
                i &+= 1
            }
            guard i < e, base[i] == newline, i &- h0 >= 1, i &- h0 <= 16, g & 0xfff == 0, g < GPA.limit else { break }
            (out + written).initialize(to: Event(timeNs: t, vm: vm, vcpu: UInt16(truncatingIfNeeded: v), op: op, gpa: GPA(g)))
            written &+= 1
            time = t
            pos = i &+ 1
        }
        if written > 0 {
            lastTime = time
            lastVM = vm
        }
        return (pos, written)
    }

    // MARK: - Parsing one line

    /// Up to 6 fields of one line (a 6th means too many).
    struct Fields {
        var starts: (Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0)
        var ends: (Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0)
        var count = 0
    }

    @inline(__always)
    func split(_ s: UnsafeBufferPointer<UInt8>) -> Fields {
        var f = Fields()
        var i = 0
        let n = s.count
        while i < n {
            while i < n, Bytes.isSpace(s[i]) { i &+= 1 }
            if i == n { break }
            let a = i
            while i < n, !Bytes.isSpace(s[i]) { i &+= 1 }
            switch f.count {
            case 0: f.starts.0 = a; f.ends.0 = i
            case 1: f.starts.1 = a; f.ends.1 = i
            case 2: f.starts.2 = a; f.ends.2 = i
            case 3: f.starts.3 = a; f.ends.3 = i
            case 4: f.starts.4 = a; f.ends.4 = i
            default: f.starts.5 = a; f.ends.5 = i
            }
            f.count &+= 1
            if f.count > 5 {
                // Count the rest for the message, without storing them.
                while i < n {
                    while i < n, Bytes.isSpace(s[i]) { i &+= 1 }
                    if i == n { break }
                    while i < n, !Bytes.isSpace(s[i]) { i &+= 1 }
                    f.count &+= 1
                }
                break
            }
        }
        return f
    }

    @inline(__always)
    func parse(_ s: UnsafeBufferPointer<UInt8>) throws(LineError) -> Event? {
        if !sawMagic {
            guard trimmed(s).elementsEqual(Self.magic.utf8) else {
                throw LineError(message: "expected the magic line '\(Self.magic)', got \(Bytes.quote(s))")
            }
            sawMagic = true
            return nil
        }
        let f = split(s)
        if f.count == 0 { return nil }
        if s[f.starts.0] == UInt8(ascii: "#") {
            try comment(s, f)
            return nil
        }
        guard f.count == 5 else {
            throw LineError(message: "expected 5 fields 'TIME_NS VM VCPU OP GPA', got \(f.count)")
        }
        let time = field(s, f.starts.0, f.ends.0)
        guard let t = Bytes.decimal(time) else {
            throw LineError(message: "time_ns: expected an unsigned decimal integer below 2^64, got \(Bytes.quote(time))")
        }
        guard t >= lastTime else {
            throw LineError(message: "time_ns \(t) is before the previous event's \(lastTime) (times never decrease)")
        }
        let vm = try intern(field(s, f.starts.1, f.ends.1))
        let vcpuField = field(s, f.starts.2, f.ends.2)
        guard let v = Bytes.decimal(vcpuField), v < UInt64(VCPULimit.count) else {
            throw LineError(message: "vcpu: expected a decimal index below \(VCPULimit.count), got \(Bytes.quote(vcpuField))")
        }
        if let m = registry[vm].l1VCPUs, v >= UInt64(m) {
            throw LineError(message: "vcpu \(v) is out of range: vm \(registry[vm].id) declares l1_vcpus=\(m)")
        }
        let op = try parseOp(field(s, f.starts.3, f.ends.3))
        let gpa = try parseGPA(field(s, f.starts.4, f.ends.4))
        lastTime = t
        return Event(timeNs: t, vm: vm, vcpu: UInt16(truncatingIfNeeded: v), op: op, gpa: gpa)
    }

    @inline(__always)
    func field(_ s: UnsafeBufferPointer<UInt8>, _ a: Int, _ b: Int) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(rebasing: s[a..<b])
    }

    func trimmed(_ s: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        var a = 0
        var b = s.count
        while a < b, Bytes.isSpace(s[a]) { a += 1 }
        while b > a, Bytes.isSpace(s[b - 1]) { b -= 1 }
        return field(s, a, b)
    }

    @inline(__always)
    func parseOp(_ s: UnsafeBufferPointer<UInt8>) throws(LineError) -> TraceOp {
        if s.count == 4, s[0] == UInt8(ascii: "l"), s[1] == UInt8(ascii: "o"), s[2] == UInt8(ascii: "a"), s[3] == UInt8(ascii: "d") { return .load }
        if s.count == 5 {
            if s[0] == UInt8(ascii: "e"), s[1] == UInt8(ascii: "n"), s[2] == UInt8(ascii: "t"), s[3] == UInt8(ascii: "e"), s[4] == UInt8(ascii: "r") { return .enter }
            if s[0] == UInt8(ascii: "c"), s[1] == UInt8(ascii: "l"), s[2] == UInt8(ascii: "e"), s[3] == UInt8(ascii: "a"), s[4] == UInt8(ascii: "r") { return .clear }
        }
        throw LineError(message: "op: expected load, enter or clear, got \(Bytes.quote(s))")
    }

    @inline(__always)
    func parseGPA(_ s: UnsafeBufferPointer<UInt8>) throws(LineError) -> GPA {
        guard let raw = Bytes.hex0x(s) else {
            throw LineError(message: "gpa: expected 0x and 1 to 16 hex digits, got \(Bytes.quote(s))")
        }
        let g = GPA(raw)
        guard raw & 0xfff == 0 else { throw LineError(message: "gpa \(g) is not 4 KiB aligned") }
        guard raw < GPA.limit else { throw LineError(message: "gpa \(g) is not below 2^52") }
        return g
    }

    /// The registry index of a VM named by bytes, checked against DESIGN §1's id form.
    @inline(__always)
    /// - Complexity: O(id length) expected (`VMNameTable`), whatever the number of VMs.
    func intern(_ s: UnsafeBufferPointer<UInt8>) throws(LineError) -> Int32 {
        if let p = s.baseAddress {
            let raw = UnsafeRawPointer(p)
            if lastVM >= 0, names.equals(lastVM, raw, s.count) { return lastVM }
            let found = names.find(raw, s.count)
            if found >= 0 {
                lastVM = found
                return found
            }
        }
        guard VMInfo.isValidID(s), let p = s.baseAddress else {
            throw LineError(message: "vm: expected an id of 1 to 64 characters from [A-Za-z0-9_.:-], got \(Bytes.quote(s))")
        }
        let i = registry.intern(String(decoding: s, as: UTF8.self))
        names.insert(UnsafeRawPointer(p), s.count)
        lastVM = i
        return i
    }

    // MARK: - Comments and declarations

    /// `# vm ID key=value...` declares a VM; any other `#` line is a comment.
    func comment(_ s: UnsafeBufferPointer<UInt8>, _ f: Fields) throws(LineError) {
        let first = field(s, f.starts.0, f.ends.0)
        let isDecl: Bool
        if first.count == 1, f.count >= 2 {
            isDecl = field(s, f.starts.1, f.ends.1).elementsEqual("vm".utf8)
        } else {
            isDecl = false
        }
        guard isDecl else { return }
        // Declarations are rare: parse them with Strings.
        let words = String(decoding: s, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
        try declare(words.dropFirst(2).map(String.init))
    }

    func declare(_ words: [String]) throws(LineError) {
        guard let id = words.first else {
            throw LineError(message: "# vm: expected '# vm ID [l1_vcpus=N] [memory_mib=N] [pages_per_context=N]'")
        }
        guard VMInfo.isValidID(Array(id.utf8)) else {
            throw LineError(message: "# vm: expected an id of 1 to 64 characters from [A-Za-z0-9_.:-], got '\(id.prefix(40))'")
        }
        var info = VMInfo(id: id)
        var seen = Set<String>()
        for word in words.dropFirst() {
            let kv = word.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard kv.count == 2 else {
                throw LineError(message: "# vm \(id): expected key=value, got '\(word.prefix(40))'")
            }
            let key = String(kv[0])
            guard seen.insert(key).inserted else { throw LineError(message: "# vm \(id): \(key) given twice") }
            func number(_ range: ClosedRange<Int>) throws(LineError) -> Int {
                guard let n = Int(kv[1]), range.contains(n) else {
                    throw LineError(message: "# vm \(id): \(key) must be an integer from \(range.lowerBound) to \(range.upperBound), got '\(kv[1].prefix(40))'")
                }
                return n
            }
            switch key {
            case "l1_vcpus": info.l1VCPUs = try number(1...VCPULimit.count)
            case "memory_mib": info.memoryMiB = try number(1...(1 << 32))
            case "pages_per_context": info.pagesPerContext = try number(1...64)
            default:
                throw LineError(message: "# vm \(id): unknown key '\(key.prefix(40))' (expected l1_vcpus, memory_mib or pages_per_context)")
            }
        }
        if let i = registry.index(of: id) {
            guard registry[i] == info else {
                throw LineError(message: "# vm \(id): conflicts with its earlier declaration or events (declare a VM once, before its first event)")
            }
            return
        }
        let i = registry.intern(id)
        registry.update(i, info)
        names.insert(id)
        if let m = info.l1VCPUs { names.setVCPULimit(i, m) }
    }
}
