import Foundation
import NestCacheWorkload
import Testing

@Suite struct LineReaderTests {
    static func lines(_ reader: LineReader) throws -> [String] {
        var out: [String] = []
        while let line = try reader.nextLine() { out.append(String(decoding: line, as: UTF8.self)) }
        return out
    }

    /// `\n` ends a line; a last line without one still counts; `\r` and empty lines are kept.
    @Test func splitsOnNewlineOnly() throws {
        let reader = try LineReader(path: try temporaryFile("a\nb\r\n\n  c d\nlast"))
        #expect(try Self.lines(reader) == ["a", "b\r", "", "  c d", "last"])
        #expect(reader.lineNumber == 5)
        #expect(reader.isAtEnd)
        #expect(try reader.nextLine() == nil)
        #expect(reader.bytesRead == 16)
    }

    /// `readSize` (issue 10: `TraceFormat.detect` reads 64 KiB at a time) changes how much one
    /// read(2) asks for, not the lines: lines longer than a read, a CR kept, an empty line and a
    /// last line without its newline come out the same as with the default reads.
    @Test func linesAreTheSameWhateverTheReadSize() throws {
        let long = String(repeating: "x", count: 70_000)
        let text = "a\n\nbc\r\n\(long)\n" + (0..<1000).map { "line \($0)" }.joined(separator: "\n") + "\nlast"
        let path = try temporaryFile(text)
        let expected = try Self.lines(LineReader(path: path))
        #expect(expected.count == 1005)
        #expect(expected[2] == "bc\r" && expected[3] == long && expected.last == "last")
        for size in [1, 7, 4096, 1 << 16] {
            let reader = try LineReader(path: path, readSize: size)
            #expect(try Self.lines(reader) == expected, "readSize \(size)")
            #expect(reader.lineNumber == expected.count)
        }
    }

    @Test func emptyFileHasNoLines() throws {
        let reader = try LineReader(path: try temporaryFile(""))
        #expect(try Self.lines(reader).isEmpty)
        #expect(reader.lineNumber == 0)
    }

    /// Lines that straddle refills of the buffer come out whole and in order.
    @Test func linesAcrossRefillsAreWhole() throws {
        var text = ""
        var want: [String] = []
        var rng = SplitMix64(seed: 3)
        for i in 0..<40_000 {
            let line = "\(i) " + String(repeating: "x", count: Int(rng.next() % 200))
            want.append(line)
            text += line + "\n"
        }
        let reader = try LineReader(path: try temporaryFile(text))
        #expect(try Self.lines(reader) == want)
        #expect(reader.bytesRead == UInt64(text.utf8.count))
    }

    /// Exactly the limit passes; one byte more is an error, wherever the line sits in the buffer
    /// and whether or not it ends the file.
    @Test(arguments: [("\n", 0), ("\n", 1), ("", 1), ("\n", 3_000_000)])
    func aLineOverTheLimitIsAnErrorWithItsNumber(_ ending: String, _ over: Int) throws {
        let limit = LineReader.maxLineLength
        let atLimit = try LineReader(path: try temporaryFile(String(repeating: "z", count: limit) + ending))
        #expect(try atLimit.nextLine()?.count == limit)
        let long = String(repeating: "y", count: limit + over)
        let path = try temporaryFile("ok\n" + long + ending)
        let reader = try LineReader(path: path)
        #expect(try reader.nextLine().map { String(decoding: $0, as: UTF8.self) } == "ok")
        if over == 0 {
            #expect(try reader.nextLine()?.count == limit)
            return
        }
        #expect(throws: TraceError(.badData, file: path, line: 2, "line longer than \(LineReader.maxLineLength) bytes")) {
            try reader.nextLine()
        }
    }

    @Test func aMissingFileSaysSo() {
        #expect(throws: TraceError(.inputMissing, file: "/nonexistent/x.trace", "No such file or directory")) {
            try LineReader(path: "/nonexistent/x.trace")
        }
    }

    /// The fast path sees whole buffered lines and `nextLine` goes on after what it took.
    @Test func bufferedLinesHandOverToNextLine() throws {
        let reader = try LineReader(path: try temporaryFile("one\ntwo\nthree\n"))
        #expect(try reader.withBufferedLines { view in (0, 0, view.count) } == 0, "nothing is buffered before the first read")
        #expect(try reader.nextLine().map { String(decoding: $0, as: UTF8.self) } == "one")
        let taken = try reader.withBufferedLines { view -> (bytes: Int, lines: Int, result: String) in
            let text = String(decoding: view, as: UTF8.self)
            #expect(text == "two\nthree\n")
            return (4, 1, text)
        }
        #expect(taken == "two\nthree\n")
        #expect(reader.lineNumber == 2)
        #expect(try Self.lines(reader) == ["three"])
        #expect(reader.lineNumber == 3)
    }

    /// Follow mode on a regular file: nil at the current end, then the lines appended later.
    @Test func followingAFileSeesAppendedLines() throws {
        let path = try temporaryFile("a\n")
        let reader = try LineReader(path: path, follow: true)
        #expect(try Self.lines(reader) == ["a"])
        let h = try #require(FileHandle(forWritingAtPath: path))
        h.seekToEndOfFile()
        h.write(Data("b\npartial".utf8))
        #expect(try Self.lines(reader) == ["b"], "a partial line waits for its newline")
        h.write(Data(" done\n".utf8))
        try h.close()
        #expect(try Self.lines(reader) == ["partial done"])
    }

    /// A followed file that shrinks under the reader is an error, not a silent restart.
    @Test func truncationUnderTheReaderIsAnError() throws {
        let path = try temporaryFile("aaaa\nbbbb\n")
        let reader = try LineReader(path: path, follow: true)
        #expect(try Self.lines(reader).count == 2)
        try reader.checkStillThere()
        #expect(truncate(path, 2) == 0)
        #expect(throws: TraceError(.io, file: path, "truncated to 2 bytes after 10 were read")) { try reader.checkStillThere() }
    }
}
