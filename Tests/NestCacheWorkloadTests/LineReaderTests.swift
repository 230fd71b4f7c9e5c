import Foundation
import NestCacheWorkload
import Testing

@Suite struct LineReaderTests {
    static func lines(_ path: String, readSize: Int?) throws -> [String] {
        let reader = try readSize.map { (n) throws(TraceError) in try LineReader(path: path, readSize: n) } ?? LineReader(path: path)
        var lines: [String] = []
        while let line = try reader.nextLine() { lines.append(String(decoding: line, as: UTF8.self)) }
        #expect(reader.lineNumber == lines.count)
        return lines
    }

    /// `readSize` (issue 10: `TraceFormat.detect` reads 64 KiB at a time) changes how much one
    /// read(2) asks for, not the lines: lines longer than a read, a CR kept, an empty line and a
    /// last line without its newline come out the same as with the default reads.
    @Test func linesAreTheSameWhateverTheReadSize() throws {
        let long = String(repeating: "x", count: 70_000)
        let text = "a\n\nbc\r\n\(long)\n" + (0..<1000).map { "line \($0)" }.joined(separator: "\n") + "\nlast"
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("linereader-\(getpid())").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let expected = try Self.lines(path, readSize: nil)
        #expect(expected.count == 1005)
        #expect(expected[2] == "bc\r" && expected[3] == long && expected.last == "last")
        for size in [1, 7, 4096, 1 << 16] {
            #expect(try Self.lines(path, readSize: size) == expected, "readSize \(size)")
        }
    }
}
