import Foundation
import NestCacheCore
import NestCacheWorkload
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `LiveTrace` and `LineReader`'s follow mode: the end of the input is not the end of the stream,
/// a partial line waits for its newline, a FIFO whose writers closed is opened again.
@Suite struct LiveTraceTests {
    static let text = """
        # nestcache-trace v1
        # vm web0 l1_vcpus=2
        1000 web0 0 load 0x1a2b3000
        1150 web0 0 enter 0x1a2b3000
        1200 web0 1 enter 0x5000
        2000 web0 0 clear 0x1a2b3000
        2100 web0 1 enter 0x6000

        """

    /// Whatever is there now.
    func drain(_ source: LiveTrace) throws(TraceError) -> [Event] {
        var out: [Event] = []
        var batch: [Event] = []
        while try source.next(into: &batch, limit: 2) { out += batch }
        return out
    }

    func append(_ path: String, _ bytes: some Collection<UInt8>) {
        let fd = open(path, O_WRONLY | O_APPEND)
        #expect(fd >= 0)
        let data = Array(bytes)
        _ = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    @Test func growingFileFedByteByByteGivesTheEventsOfTheWholeFile() throws {
        let whole = try readAll(NativeTraceReader(path: temporaryFile(Self.text)))
        let path = try temporaryFile("")
        let live = try LiveTrace(path: path, format: .native, vm: "x")
        var got = try drain(live)
        #expect(got.isEmpty)  // an empty file is not an error yet: nothing was written
        for byte in Self.text.utf8 {
            append(path, [byte])
            // A partial line is never parsed: "0x1a2b3" would be a different (unaligned) GPA.
            got += try drain(live)
            #expect(got.count <= whole.count)
        }
        #expect(got == whole)
        #expect(live.registry.infos.map(\.id) == ["web0"])
        #expect(live.lineNumber == 7 && live.bytesRead == UInt64(Self.text.utf8.count))
    }

    /// `endsAtEOF` (`nestcache record`): a FIFO without a writer yet is not the end; once its
    /// writer closed, the partial last line comes out, then the end, for good.
    @Test func endsAtEOFEndsWhenTheFIFOsWriterCloses() throws {
        let path = try temporaryFile("") + ".fifo"
        #expect(mkfifo(path, 0o600) == 0)
        let lines = try LineReader(path: path, follow: true, endsAtEOF: true)
        #expect(try lines.nextLine() == nil && !lines.isAtEnd)
        let w = open(path, O_WRONLY | O_NONBLOCK)
        #expect(w >= 0)
        _ = "a\nb".withCString { write(w, $0, 3) }
        #expect(try lines.nextLine().map { Array($0) } == Array("a".utf8))
        #expect(try lines.nextLine() == nil && !lines.isAtEnd)  // "b" waits for its newline
        close(w)
        #expect(try lines.nextLine().map { Array($0) } == Array("b".utf8))
        #expect(try lines.nextLine() == nil && lines.isAtEnd && lines.opens == 1)
    }

    @Test func fifoIsOpenedAgainAfterItsWritersCloseAndKeepsThePartialLine() throws {
        let whole = try readAll(NativeTraceReader(path: temporaryFile(Self.text)))
        let path = try temporaryFile("") + ".fifo"
        #expect(mkfifo(path, 0o600) == 0)
        defer { unlink(path) }
        // Opening never waits for a writer.
        let live = try LiveTrace(path: path, format: .native, vm: "x")
        #expect(live.isFIFO && live.opens == 1)
        #expect(try drain(live).isEmpty)
        #expect(live.opens == 1)  // no writer came: no re-open, however often it is asked
        let bytes = Array(Self.text.utf8)
        let cut = bytes.firstIndex(of: UInt8(ascii: "x")).map { $0 + 3 } ?? 0  // inside "0x1a2b3000"
        var got: [Event] = []
        for part in [bytes[..<cut], bytes[cut...]] {
            let w = open(path, O_WRONLY | O_NONBLOCK)
            #expect(w >= 0)
            _ = Array(part).withUnsafeBytes { write(w, $0.baseAddress, $0.count) }
            close(w)
            got += try drain(live)
            got += try drain(live)  // the writer's end seen: opened again
        }
        #expect(got == whole)
        #expect(live.opens == 3)
    }

    @Test func removedReplacedOrTruncatedFileIsGoneForGood() throws {
        let path = try temporaryFile(Self.text)
        let live = try LiveTrace(path: path, format: .native, vm: "x")
        _ = try drain(live)
        try live.checkStillThere()
        #expect(truncate(path, 10) == 0)
        #expect(throws: TraceError.self) { try live.checkStillThere() }

        let other = try temporaryFile(Self.text)
        let live2 = try LiveTrace(path: other, format: .native, vm: "x")
        #expect(unlink(other) == 0)
        do {
            try live2.checkStillThere()
            Issue.record("a removed file passed the check")
        } catch {
            #expect(error.description.contains("removed"))
        }
    }

    @Test func badLineNamesFileAndLine() throws {
        let path = try temporaryFile("")
        let live = try LiveTrace(path: path, format: .ftrace, vm: "x")
        append(path, Array("# tracer: nop\nnot a trace line\n".utf8))
        do {
            _ = try drain(live)
            Issue.record("a bad line was accepted")
        } catch {
            #expect(error.kind == .badData && error.line == 2 && error.file == path)
        }
    }
}
