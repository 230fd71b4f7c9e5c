import NestCacheSystem
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
///
/// **Follow mode** (`follow: true`, the daemon's `[[live]]` sources): the end of the input is not
/// the end of the stream. The descriptor is non-blocking, so no call ever waits:
/// - `nextLine` returns only complete lines; nil means "no complete line now" (a partial last
///   line waits in the buffer for its newline, it is never returned early).
/// - A regular file that grows is read on from where it stopped.
/// - A FIFO whose writers all closed is opened again (the new descriptor first, then the old one
///   closed, so bytes written in between stay in the pipe); a partial line is kept across, so the
///   stream is the concatenation of what every writer wrote. Before each read the FIFO is
///   `poll`ed with a zero timeout: Linux reports `POLLHUP` on a freshly opened FIFO only once a
///   writer has come and gone since the open, so an idle FIFO without writers is not re-opened
///   over and over.
/// - tracefs `trace_pipe` answers `EAGAIN` when empty, like a FIFO with a writer.
/// - With `endsAtEOF` (`nestcache record`) a read of 0 bytes is the end instead: a FIFO whose
///   writers all closed is not opened again, a regular file is not waited on. `nextLine` then
///   returns the partial last line, if any, then nil for good, and `isAtEnd` is true.
public final class LineReader {
    public let path: String
    /// The number of the line last returned (1-based).
    public private(set) var lineNumber = 0
    /// Follow mode: see the type's comment.
    public let isFollowing: Bool
    /// Follow mode: a read of 0 bytes ends the stream (see the type's comment).
    public let endsAtEOF: Bool
    /// Follow mode: times a FIFO was opened (1 + the re-opens after its writers closed).
    public private(set) var opens = 1
    /// Bytes read so far.
    public private(set) var bytesRead: UInt64 = 0

    private var fd: Int32
    private let ownsFD: Bool
    private var buffer: UnsafeMutableRawBufferPointer
    private var start = 0
    private var end = 0
    private var isEOF = false
    /// The most bytes one `read(2)` asks for.
    private let readSize: Int
    /// What the descriptor is, from `fstat` at open.
    private let fileType: mode_t
    private let fileID: (dev: UInt64, ino: UInt64)

    /// The longest line accepted, in bytes.
    public static let maxLineLength = 1 << 20
    static let chunk = 1 << 20

    /// Opens `path`, or standard input for `-`. Throws `.inputMissing` when it cannot be opened.
    /// `follow`, `endsAtEOF`: see the type's comment (standard input cannot be followed).
    public convenience init(path: String, follow: Bool = false, endsAtEOF: Bool = false) throws(TraceError) {
        try self.init(path: path, follow: follow, endsAtEOF: endsAtEOF, readSize: Self.chunk + Self.maxLineLength)
    }

    /// As `init(path:follow:endsAtEOF:)`, reading at most `readSize` bytes per `read(2)`: a
    /// reader that wants a few lines (`TraceFormat.detect`) then reads, and the kernel maps,
    /// only the pages they are on. Lines are the same whatever the size.
    package init(path: String, follow: Bool = false, endsAtEOF: Bool = false, readSize: Int) throws(TraceError) {
        precondition(readSize > 0, "readSize \(readSize)")
        self.readSize = readSize
        self.path = path
        self.isFollowing = follow && path != "-"
        self.endsAtEOF = endsAtEOF
        if path == "-" {
            fd = 0
            ownsFD = false
        } else {
            fd = try Self.openDescriptor(path, follow: isFollowing)
            ownsFD = true
        }
        var st = stat()
        if fstat(fd, &st) == 0 {
            fileType = st.st_mode & S_IFMT
            fileID = (UInt64(st.st_dev), UInt64(st.st_ino))
        } else {
            fileType = 0
            fileID = (0, 0)
        }
        if fileType == S_IFDIR {
            if ownsFD { close(fd) }
            throw TraceError(.inputMissing, file: path, "is a directory")
        }
        buffer = .allocate(byteCount: Self.chunk + Self.maxLineLength, alignment: 16)
    }

    private static func openDescriptor(_ path: String, follow: Bool) throws(TraceError) -> Int32 {
        // O_NONBLOCK also keeps open(2) of a FIFO from waiting for a writer.
        let f = open(path, O_RDONLY | O_CLOEXEC | (follow ? O_NONBLOCK : 0))
        guard f >= 0 else {
            throw TraceError(.inputMissing, file: path, Syscall.describe(errno))
        }
        return f
    }

    deinit {
        buffer.deallocate()
        if ownsFD { close(fd) }
    }

    public var isFIFO: Bool { fileType == S_IFIFO }

    /// True once the end of the input was read and every line returned. In follow mode only with
    /// `endsAtEOF`: otherwise the end of the input is never the end.
    public var isAtEnd: Bool { isEOF && start >= end }

    /// The descriptor read, for `poll(2)` (it may change when a FIFO is opened again).
    public var descriptor: Int32 { fd }

    /// Follow mode: throws when the input is gone for good: the path removed or naming another
    /// file now, or a regular file cut shorter than what was read (truncated or rewritten). The
    /// daemon asks when a live source has nothing to read.
    public func checkStillThere() throws(TraceError) {
        var st = stat()
        if stat(path, &st) != 0 {
            throw TraceError(.io, file: path, "removed (\(Syscall.describe(errno)))")
        }
        if UInt64(st.st_dev) != fileID.dev || UInt64(st.st_ino) != fileID.ino {
            throw TraceError(.io, file: path, "replaced by another file")
        }
        if fileType == S_IFREG, lseek(fd, 0, SEEK_CUR) >= 0, UInt64(st.st_size) < bytesRead {
            throw TraceError(.io, file: path, "truncated to \(st.st_size) bytes after \(bytesRead) were read")
        }
    }

    /// The next line without its `\n` (a trailing `\r` is kept), or nil at the end of input
    /// (follow mode: when no complete line is there now). The view is valid until the next call.
    public func nextLine() throws(TraceError) -> UnsafeBufferPointer<UInt8>? {
        while true {
            if start < end, let base = buffer.baseAddress {
                let p = base.advanced(by: start)
                if let nl = memchr(p, 0x0A, end - start) {
                    let len = p.distance(to: UnsafeMutableRawPointer(nl))
                    if len > Self.maxLineLength { throw tooLong() }
                    let line = UnsafeBufferPointer(start: p.assumingMemoryBound(to: UInt8.self), count: len)
                    start += len + 1
                    lineNumber += 1
                    return line
                }
            }
            if isEOF {
                guard start < end, let base = buffer.baseAddress else { return nil }
                if end - start > Self.maxLineLength { throw tooLong() }
                let line = UnsafeBufferPointer(
                    start: base.advanced(by: start).assumingMemoryBound(to: UInt8.self), count: end - start)
                start = end
                lineNumber += 1
                return line
            }
            guard try refill() else { return nil }
        }
    }

    /// The fast path of a reader: calls `body` with the bytes buffered after the last line
    /// returned (whole lines, maybe a partial last one: `body` must not take a line without its
    /// `\n`). `body` returns how many bytes of whole lines it took and how many lines they were;
    /// `nextLine` goes on after them. Reads nothing: an empty view means "call `nextLine`".
    /// - Complexity: O(1) besides `body`.
    @inline(__always)
    public func withBufferedLines<R>(_ body: (UnsafeBufferPointer<UInt8>) throws(TraceError) -> (bytes: Int, lines: Int, result: R)) throws(TraceError) -> R {
        let view = UnsafeBufferPointer(
            start: buffer.baseAddress.map { $0.advanced(by: start).assumingMemoryBound(to: UInt8.self) }, count: end - start)
        let taken = try body(view)
        start += taken.bytes
        lineNumber += taken.lines
        return taken.result
    }

    /// Moves the partial line to the front and reads more after it. Returns false in follow mode
    /// when nothing could be read now.
    private func refill() throws(TraceError) -> Bool {
        guard let base = buffer.baseAddress else { return false }
        if start > 0 {
            if end > start { memmove(base, base.advanced(by: start), end - start) }
            end -= start
            start = 0
        }
        if end > Self.maxLineLength { throw tooLong() }
        if isFollowing, isFIFO {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&p, 1, 0)
            if r < 0, errno != EINTR {
                throw TraceError(.io, file: path, "poll failed: \(Syscall.describe(errno))")
            }
            if r <= 0 || p.revents == 0 { return false }
        }
        let n = Syscall.read(fd, into: UnsafeMutableRawBufferPointer(start: base.advanced(by: end), count: min(buffer.count - end, readSize)))
        if n > 0 {
            end += n
            bytesRead &+= UInt64(n)
            return true
        }
        if n == 0 {
            guard isFollowing, !endsAtEOF else {
                isEOF = true
                return true
            }
            if isFIFO { try reopen() }
            return false
        }
        if isFollowing, -n == Int(EAGAIN) || -n == Int(EWOULDBLOCK) { return false }
        throw TraceError(.io, file: path, "read failed: \(Syscall.describe(Int32(-n)))")
    }

    private func tooLong() -> TraceError {
        TraceError(.badData, file: path, line: lineNumber + 1, "line longer than \(Self.maxLineLength) bytes")
    }

    /// Follow mode, a FIFO whose writers all closed: opens it again, then closes the old
    /// descriptor (in that order, so the pipe and anything a writer put in it since stay).
    private func reopen() throws(TraceError) {
        let f = try Self.openDescriptor(path, follow: true)
        var st = stat()
        guard fstat(f, &st) == 0, (st.st_mode & S_IFMT) == S_IFIFO,
              UInt64(st.st_dev) == fileID.dev, UInt64(st.st_ino) == fileID.ino else {
            close(f)
            throw TraceError(.io, file: path, "replaced by another file")
        }
        close(fd)
        fd = f
        opens += 1
    }
}
