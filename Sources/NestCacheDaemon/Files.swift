#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NestCacheSystem

/// The whole file, or nil when it cannot be read or is over `limit` bytes. Configuration files only.
func readFile(_ path: String, limit: Int = 1 << 20) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while bytes.count <= limit {
        let n = chunk.withUnsafeMutableBytes { Syscall.read(fd, into: $0) }
        guard n >= 0 else { return nil }
        if n == 0 { return bytes }
        bytes += chunk[..<n]
    }
    return nil
}

func isReadableFile(_ path: String) -> Bool {
    var st = stat()
    return access(path, R_OK) == 0 && stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
}

/// Why `path` cannot be followed by a `[[live]]` source, or nil: it must exist, be readable, and
/// be a FIFO or a regular file (tracefs `trace_pipe` is one). Nothing is opened (a FIFO's open
/// could wait for a writer).
func liveInputProblem(_ path: String) -> String? {
    var st = stat()
    guard stat(path, &st) == 0 else { return "cannot read '\(path)': \(Syscall.describe(errno))" }
    let type = st.st_mode & S_IFMT
    guard type == S_IFIFO || type == S_IFREG else { return "'\(path)' is not a FIFO or a regular file" }
    guard access(path, R_OK) == 0 else { return "cannot read '\(path)': \(Syscall.describe(errno))" }
    return nil
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, then rename.
func writeFileAtomically(_ path: String, _ bytes: UnsafeRawBufferPointer) -> Int32 {
    let tmp = "\(path).tmp-\(getpid())"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { return errno }
    // World-readable whatever the umask (the unit's is 0077): node_exporter reads it as another user.
    fchmod(fd, 0o644)
    let err = Syscall.writeAll(fd, bytes)
    close(fd)
    guard err == 0 else { unlink(tmp); return err }
    guard rename(tmp, path) == 0 else { let e = errno; unlink(tmp); return e }
    return 0
}
