import Dispatch
import Glibc
import NestCacheSystem
import Testing

@Suite struct SyscallTests {
    static func temporaryFD() throws -> (fd: Int32, path: String) {
        var template = Array("/tmp/nestcache-syscall-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        try #require(fd >= 0)
        return (fd, String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    @Test func pwriteThenPreadAtOffsets() throws {
        let (fd, path) = try Self.temporaryFD()
        defer { close(fd); unlink(path) }
        let data = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        #expect(data.withUnsafeBytes { Syscall.pwriteAll(fd, $0, offset: 100) } == 0)
        var back = [UInt8](repeating: 0, count: data.count)
        #expect(back.withUnsafeMutableBytes { Syscall.preadAll(fd, $0, offset: 100) } == 0)
        #expect(back == data)
        // Past the end: EIO, not a short success.
        #expect(back.withUnsafeMutableBytes { Syscall.preadAll(fd, $0, offset: 200) } == EIO)
        #expect(Syscall.readFile(path)?.count == 300_100)
        #expect(Syscall.readFile(path)?.suffix(10) == data.suffix(10)[...])
    }

    @Test func errorsAreErrnoNotTraps() {
        #expect(Syscall.readFile("/nonexistent/file") == nil)
        #expect(errno == ENOENT)
        var byte: UInt8 = 0
        #expect(withUnsafeMutableBytes(of: &byte) { Syscall.read(-1, into: $0) } == -Int(EBADF))
        #expect(Syscall.writeAll(-1, "x") == EBADF)
        #expect(withUnsafeBytes(of: byte) { Syscall.pwriteAll(-1, $0, offset: 0) } == EBADF)
        #expect(Syscall.describe(ENOENT) == "No such file or directory")
    }

    /// More than a pipe holds, written whole while a reader drains it (short writes resumed).
    @Test func writeAllCompletesShortWrites() throws {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        let total = 1 << 20
        let readEnd = fds[0]
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var got = 0
        DispatchQueue.global().async {
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = chunk.withUnsafeMutableBytes { Syscall.read(readEnd, into: $0) }
                if n <= 0 { break }
                got += n
            }
            close(readEnd)
            done.signal()
        }
        let text = String(repeating: "abcdefgh", count: total / 8)
        #expect(Syscall.writeAll(fds[1], text) == 0)
        close(fds[1])
        done.wait()
        #expect(got == total)
    }

    @Test func socketAddressesCheckTheirLength() {
        #expect(UnixSocketAddress.maxPathLength == 107)
        #expect(UnixSocketAddress.with(String(repeating: "a", count: 107)) { _, len in len } != nil)
        #expect(UnixSocketAddress.with(String(repeating: "a", count: 108)) { _, _ in 0 } == nil)
        #expect(UnixSocketAddress.with("") { _, _ in 0 } == nil)
        #expect(UnixSocketAddress.connect(String(repeating: "a", count: 200), type: Int32(SOCK_STREAM.rawValue)) == -ENAMETOOLONG)
        #expect(UnixSocketAddress.connect("/nonexistent/sock", type: Int32(SOCK_STREAM.rawValue)) == -ENOENT)
    }
}
