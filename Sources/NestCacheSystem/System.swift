#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The few system calls the project makes outside SwiftNIO, each written once: `EINTR` retried,
/// short writes completed, `errno` returned rather than lost. Every module that writes to a file
/// descriptor, prints to stderr or names a Unix socket uses these.
public enum Syscall {
    /// Runs `step(done)` (a read or write of the bytes from `done` on) until `count` bytes are
    /// done: `errno` on failure, `EIO` if a step does nothing (the file ended), else 0.
    private static func whole(_ count: Int, _ step: (_ done: Int) -> Int) -> Int32 {
        var done = 0
        while done < count {
            let n = step(done)
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if n == 0 { return EIO }
            done += n
        }
        return 0
    }

    /// Writes all of `bytes` to `fd`; returns `errno` on failure, 0 on success.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32 {
        whole(bytes.count) { write(fd, bytes.baseAddress?.advanced(by: $0), bytes.count - $0) }
    }

    /// Writes all of `text`'s UTF-8 to `fd`; returns `errno` on failure, 0 on success.
    public static func writeAll(_ fd: Int32, _ text: String) -> Int32 {
        var text = text
        return text.withUTF8 { writeAll(fd, UnsafeRawBufferPointer($0)) }
    }

    /// `read(2)` into `buffer`, retrying `EINTR`: the byte count (0 at the end), or -errno.
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n < 0, errno == EINTR { continue }
            return n < 0 ? -Int(errno) : n
        }
    }

    /// Writes all of `bytes` at `offset` with `pwrite(2)`; returns `errno` on failure, 0 on success.
    public static func pwriteAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, offset: Int) -> Int32 {
        whole(bytes.count) { pwrite(fd, bytes.baseAddress?.advanced(by: $0), bytes.count - $0, off_t(offset + $0)) }
    }

    /// Fills `bytes` from `offset` with `pread(2)`; returns `errno` on failure, `EIO` when the file
    /// ends first, 0 on success.
    public static func preadAll(_ fd: Int32, _ bytes: UnsafeMutableRawBufferPointer, offset: Int) -> Int32 {
        whole(bytes.count) { pread(fd, bytes.baseAddress?.advanced(by: $0), bytes.count - $0, off_t(offset + $0)) }
    }

    /// A whole file's bytes, or nil with `errno` set.
    public static func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, into: $0) }
            guard n >= 0 else {
                errno = Int32(-n)
                return nil
            }
            if n == 0 { return out }
            out += chunk[..<n]
        }
    }

    /// `strerror(3)` as a String.
    public static func describe(_ err: Int32) -> String { String(cString: strerror(err)) }
}

/// Standard error, unbuffered: executables' one-line messages and the journal's fallback.
public enum Stderr {
    /// Writes `line` (a newline is added if missing); errors are dropped: there is nowhere left to
    /// report them.
    public static func write(_ line: String) {
        _ = Syscall.writeAll(2, line.hasSuffix("\n") ? line : line + "\n")
    }
}

/// A Unix socket's address (`sockaddr_un`), built in one place with its length check.
public enum UnixSocketAddress {
    /// The longest path `sun_path` holds, terminating NUL excluded (107 on Linux).
    public static let maxPathLength = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// Calls `body` with the address of `path`, or returns nil if the path is empty or too long.
    public static func with<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R? {
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count <= maxPathLength else { return nil }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }

    /// Connects a new socket of `type` (SOCK_STREAM, SOCK_DGRAM) to `path`: the descriptor, or
    /// -errno (ENAMETOOLONG for a path `sun_path` cannot hold).
    public static func connect(_ path: String, type: Int32) -> Int32 {
        let fd = socket(AF_UNIX, type | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return -errno }
        let r = with(path) { Glibc.connect(fd, $0, $1) } ?? { errno = ENAMETOOLONG; return -1 }()
        guard r == 0 else {
            let e = errno
            close(fd)
            return -e
        }
        return fd
    }
}

/// The process's environment as a dictionary.
public func processEnvironment() -> [String: String] {
    var env: [String: String] = [:]
    var p = environ
    while let entry = p.pointee {
        let s = String(cString: entry)
        if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
        p += 1
    }
    return env
}
