#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a file (or standard input, named `-`) line by line in constant memory, as bytes.
///
/// One buffer, refilled with `read(2)`; `nextLine` returns a view into it, valid until the next
/// call. No String is made per line. A line longer than the buffer's limit is an error rather
/// than a reason to grow without bound.
public final class LineReader {
    public let path: String
    /// The number of the line last returned (1-based).
    public private(set) var lineNumber = 0

    private let fd: Int32
    private let ownsFD: Bool
    private var buffer: UnsafeMutableRawBufferPointer
    private var start = 0
    private var end = 0
    private var isEOF = false

    /// The longest line accepted, in bytes.
    public static let maxLineLength = 1 << 20
    static let chunk = 1 << 20

    /// Opens `path`, or standard input for `-`. Throws `.inputMissing` when it cannot be opened.
    public init(path: String) throws(TraceError) {
        self.path = path
        if path == "-" {
            fd = 0
            ownsFD = false
        } else {
            let f = open(path, O_RDONLY | O_CLOEXEC)
            guard f >= 0 else {
                throw TraceError(.inputMissing, file: path, String(cString: strerror(errno)))
            }
            var st = stat()
            if fstat(f, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
                close(f)
                throw TraceError(.inputMissing, file: path, "is a directory")
            }
            fd = f
            ownsFD = true
        }
        buffer = .allocate(byteCount: Self.chunk + Self.maxLineLength, alignment: 16)
    }

    deinit {
        buffer.deallocate()
        if ownsFD { close(fd) }
    }

    /// The next line without its `\n` (a trailing `\r` is kept), or nil at the end of input.
    /// The view is valid until the next call.
    public func nextLine() throws(TraceError) -> UnsafeBufferPointer<UInt8>? {
        while true {
            if start < end, let base = buffer.baseAddress {
                let p = base.advanced(by: start)
                if let nl = memchr(p, 0x0A, end - start) {
                    let len = p.distance(to: UnsafeMutableRawPointer(nl))
                    let line = UnsafeBufferPointer(start: p.assumingMemoryBound(to: UInt8.self), count: len)
                    start += len + 1
                    lineNumber += 1
                    return line
                }
            }
            if isEOF {
                guard start < end, let base = buffer.baseAddress else { return nil }
                let line = UnsafeBufferPointer(
                    start: base.advanced(by: start).assumingMemoryBound(to: UInt8.self), count: end - start)
                start = end
                lineNumber += 1
                return line
            }
            try refill()
        }
    }

    /// Moves the partial line to the front and reads more after it.
    private func refill() throws(TraceError) {
        guard let base = buffer.baseAddress else { return }
        if start > 0 {
            if end > start { memmove(base, base.advanced(by: start), end - start) }
            end -= start
            start = 0
        }
        if end >= Self.maxLineLength {
            throw TraceError(.badData, file: path, line: lineNumber + 1, "line longer than \(Self.maxLineLength) bytes")
        }
        while true {
            let n = read(fd, base.advanced(by: end), buffer.count - end)
            if n > 0 {
                end += n
                return
            }
            if n == 0 {
                isEOF = true
                return
            }
            if errno == EINTR { continue }
            throw TraceError(.io, file: path, "read failed: \(String(cString: strerror(errno)))")
        }
    }
}

/// Small parsers over byte views, shared by the readers.
public enum Bytes {
    @inline(__always)
    public static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0D }

    /// Parses unsigned decimal; nil on an empty field, a non-digit or overflow.
    @inline(__always)
    public static func decimal(_ s: UnsafeBufferPointer<UInt8>) -> UInt64? {
        guard !s.isEmpty else { return nil }
        var v: UInt64 = 0
        for c in s {
            let d = c &- 0x30
            guard d < 10 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(d))
            guard !o1, !o2 else { return nil }
            v = a
        }
        return v
    }

    /// Parses `0x` followed by 1 to 16 hex digits; nil otherwise.
    @inline(__always)
    public static func hex0x(_ s: UnsafeBufferPointer<UInt8>) -> UInt64? {
        guard s.count > 2, s.count <= 18, s[0] == 0x30, s[1] == 0x78 else { return nil }
        var v: UInt64 = 0
        for c in s[2...] {
            let d: UInt8
            switch c {
            case 0x30...0x39: d = c &- 0x30
            case 0x61...0x66: d = c &- 0x61 &+ 10
            case 0x41...0x46: d = c &- 0x41 &+ 10
            default: return nil
            }
            v = v << 4 | UInt64(d)
        }
        return v
    }

    /// The text of a field for messages, cut to 40 characters and made printable.
    public static func quote(_ s: UnsafeBufferPointer<UInt8>) -> String {
        let cut = s.prefix(40)
        let printable = cut.map { (0x20..<0x7f).contains($0) ? $0 : UInt8(ascii: "?") }
        return "'" + String(decoding: printable, as: UTF8.self) + (s.count > 40 ? "…'" : "'")
    }
}
