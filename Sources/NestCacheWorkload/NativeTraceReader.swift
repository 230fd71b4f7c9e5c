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
/// - Complexity: O(1) memory in the file's size; no allocation per line once every VM has been seen.
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
    /// Intern cache: VM names as bytes, indexed like the registry.
    var names: [[UInt8]] = []
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
        self.names = registry.infos.map { Array($0.id.utf8) }
    }

    public func next(into batch: inout [Event], limit: Int) throws(TraceError) -> Bool {
        batch.removeAll(keepingCapacity: true)
        guard !isDone else { return false }
        while batch.count < limit {
            guard let line = try lines.nextLine() else {
                if lines.isFollowing { break }
                if !sawMagic { try invalid(Self.emptyFileMessage, line: max(lines.lineNumber, 1)) }
                isDone = true
                break
            }
            do throws(LineError) {
                if let e = try parse(line) { batch.append(e) }
            } catch {
                try invalid(error.message, line: lines.lineNumber)
            }
        }
        return !batch.isEmpty
    }

    static let emptyFileMessage = "expected the magic line '\(magic)', got an empty file"

    func invalid(_ message: String, line: Int) throws(TraceError) {
        let error = TraceError(.badData, file: lines.path, line: line, message)
        guard invalidPolicy == .skip, sawMagic || line > 1 else { throw error }
        invalidLines += 1
        if warnings.count < warningLimit { warnings.append(error.description) }
    }

    struct LineError: Error { var message: String }

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
    func intern(_ s: UnsafeBufferPointer<UInt8>) throws(LineError) -> Int32 {
        if lastVM >= 0, matches(names[Int(lastVM)], s) { return lastVM }
        for (i, name) in names.enumerated() where matches(name, s) {
            lastVM = Int32(i)
            return lastVM
        }
        guard VMInfo.isValidID(s) else {
            throw LineError(message: "vm: expected an id of 1 to 64 characters from [A-Za-z0-9_.:-], got \(Bytes.quote(s))")
        }
        let i = registry.intern(String(decoding: s, as: UTF8.self))
        names.append(Array(s))
        lastVM = i
        return i
    }

    @inline(__always)
    func matches(_ name: [UInt8], _ s: UnsafeBufferPointer<UInt8>) -> Bool {
        guard name.count == s.count else { return false }
        return name.withUnsafeBufferPointer { a in
            guard let x = a.baseAddress, let y = s.baseAddress else { return true }  // both empty
            return memcmp(x, y, s.count) == 0
        }
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
        names.append(Array(id.utf8))
    }
}
