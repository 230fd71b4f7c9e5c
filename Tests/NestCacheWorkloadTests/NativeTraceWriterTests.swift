import Foundation
import NestCacheCore
import NestCacheWorkload
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct NativeTraceWriterTests {
    /// An existing output that is not a regular file is written in place: renaming a temporary
    /// file over it would replace the FIFO (or, as root, /dev/null) with a regular file.
    @Test func aFIFOOutputIsWrittenInPlaceAndStaysAFIFO() throws {
        let path = try temporaryFile("") + ".fifo"
        #expect(mkfifo(path, 0o600) == 0)
        let r = open(path, O_RDONLY | O_NONBLOCK)
        #expect(r >= 0)
        defer { close(r) }
        let source = NativeTraceReader(lines: try LineReader(path: temporaryFile("# nestcache-trace v1\n5 web0 1 enter 0x3000\n")))
        let summary = try NativeTraceWriter.write(source, to: path)
        #expect(summary.events == 1)
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = read(r, &buffer, buffer.count)
        #expect(String(decoding: buffer[..<max(n, 0)], as: UTF8.self) == "# nestcache-trace v1\n# vm web0\n5 web0 1 enter 0x3000\n")
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFIFO)
        let dir = (path as NSString).deletingLastPathComponent
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") } == [])
    }
}
