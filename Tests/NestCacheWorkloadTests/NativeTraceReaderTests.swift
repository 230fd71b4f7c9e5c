import Foundation
import NestCacheCore
import NestCacheWorkload
import Testing

/// Writes `text` to a fresh temporary file and returns its path.
func temporaryFile(_ text: String, name: String = "t.trace") throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nestcache-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let url = dir.appendingPathComponent(name)
    try Data(text.utf8).write(to: url)
    return url.path
}

/// All events of a source, with the registry at the end.
func readAll(_ source: some EventSource, limit: Int = 3) throws(TraceError) -> [Event] {
    var source = source
    var out: [Event] = []
    var batch: [Event] = []
    while try source.next(into: &batch, limit: limit) { out += batch }
    return out
}

@Suite struct NativeTraceReaderTests {
    static let good = """
        # nestcache-trace v1
        # vm web0 l1_vcpus=8 memory_mib=16384 pages_per_context=5
        # a comment

        1000 web0 3 load 0x1a2b3000
        1150\tweb0  3 enter 0x1A2B3000\r
          2000 db-1.a:b 0 clear 0x0
        2000 web0 7 enter 0xffffffffff000
        """

    @Test func readsEventsDeclarationsAndComments() throws {
        let path = try temporaryFile(Self.good)
        let reader = try NativeTraceReader(path: path)
        let events = try readAll(reader)
        #expect(events == [
            Event(timeNs: 1000, vm: 0, vcpu: 3, op: .load, gpa: GPA(0x1a2b_3000)),
            Event(timeNs: 1150, vm: 0, vcpu: 3, op: .enter, gpa: GPA(0x1a2b_3000)),
            Event(timeNs: 2000, vm: 1, vcpu: 0, op: .clear, gpa: GPA(0)),
            Event(timeNs: 2000, vm: 0, vcpu: 7, op: .enter, gpa: GPA(0xf_ffff_ffff_f000)),
        ])
        #expect(reader.registry.infos == [
            VMInfo(id: "web0", l1VCPUs: 8, memoryMiB: 16384, pagesPerContext: 5), VMInfo(id: "db-1.a:b"),
        ])
        #expect(reader.invalidLines == 0)
    }

    /// Every kind of malformed line, each with its own message and line number.
    @Test(arguments: [
        ("1 web0 0 load 0x1000", 1, "expected the magic line '# nestcache-trace v1', got '1 web0 0 load 0x1000'"),
        ("", 1, "expected the magic line '# nestcache-trace v1', got an empty file"),
        ("# nestcache-trace v1\n1 web0 0 load", 2, "expected 5 fields 'TIME_NS VM VCPU OP GPA', got 4"),
        ("# nestcache-trace v1\n1 web0 0 load 0x1000 x", 2, "expected 5 fields 'TIME_NS VM VCPU OP GPA', got 6"),
        ("# nestcache-trace v1\n-1 web0 0 load 0x1000", 2, "time_ns: expected an unsigned decimal integer below 2^64, got '-1'"),
        ("# nestcache-trace v1\n18446744073709551616 web0 0 load 0x1000", 2, "time_ns: expected an unsigned decimal integer below 2^64, got '18446744073709551616'"),
        ("# nestcache-trace v1\n5 a 0 load 0x1000\n4 a 0 load 0x1000", 3, "time_ns 4 is before the previous event's 5 (times never decrease)"),
        ("# nestcache-trace v1\n1 web/0 0 load 0x1000", 2, "vm: expected an id of 1 to 64 characters from [A-Za-z0-9_.:-], got 'web/0'"),
        ("# nestcache-trace v1\n1 \(String(repeating: "v", count: 65)) 0 load 0x1000", 2, "vm: expected an id of 1 to 64 characters from [A-Za-z0-9_.:-], got '\(String(repeating: "v", count: 40))…'"),
        ("# nestcache-trace v1\n1 web0 4096 load 0x1000", 2, "vcpu: expected a decimal index below 4096, got '4096'"),
        ("# nestcache-trace v1\n1 web0 x load 0x1000", 2, "vcpu: expected a decimal index below 4096, got 'x'"),
        ("# nestcache-trace v1\n# vm web0 l1_vcpus=2\n1 web0 2 load 0x1000", 3, "vcpu 2 is out of range: vm web0 declares l1_vcpus=2"),
        ("# nestcache-trace v1\n1 web0 0 vmptrld 0x1000", 2, "op: expected load, enter or clear, got 'vmptrld'"),
        ("# nestcache-trace v1\n1 web0 0 load 1000", 2, "gpa: expected 0x and 1 to 16 hex digits, got '1000'"),
        ("# nestcache-trace v1\n1 web0 0 load 0xfg00", 2, "gpa: expected 0x and 1 to 16 hex digits, got '0xfg00'"),
        ("# nestcache-trace v1\n1 web0 0 load 0x10000000000000000", 2, "gpa: expected 0x and 1 to 16 hex digits, got '0x10000000000000000'"),
        ("# nestcache-trace v1\n1 web0 0 load 0x1001", 2, "gpa 0x1001 is not 4 KiB aligned"),
        ("# nestcache-trace v1\n1 web0 0 load 0x10000000000000", 2, "gpa 0x10000000000000 is not below 2^52"),
        ("# nestcache-trace v1\n# vm", 2, "# vm: expected '# vm ID [l1_vcpus=N] [memory_mib=N] [pages_per_context=N]'"),
        ("# nestcache-trace v1\n# vm w l1_vcpus", 2, "# vm w: expected key=value, got 'l1_vcpus'"),
        ("# nestcache-trace v1\n# vm w cpus=2", 2, "# vm w: unknown key 'cpus' (expected l1_vcpus, memory_mib or pages_per_context)"),
        ("# nestcache-trace v1\n# vm w l1_vcpus=0", 2, "# vm w: l1_vcpus must be an integer from 1 to 4096, got '0'"),
        ("# nestcache-trace v1\n# vm w pages_per_context=65", 2, "# vm w: pages_per_context must be an integer from 1 to 64, got '65'"),
        ("# nestcache-trace v1\n# vm w l1_vcpus=2 l1_vcpus=2", 2, "# vm w: l1_vcpus given twice"),
        ("# nestcache-trace v1\n1 w 0 load 0x1000\n# vm w l1_vcpus=2", 3, "# vm w: conflicts with its earlier declaration or events (declare a VM once, before its first event)"),
        ("# nestcache-trace v1\n\u{1}\u{2}\u{ff}", 2, "expected 5 fields 'TIME_NS VM VCPU OP GPA', got 1"),
    ])
    func malformedLinesAreReportedWithFileAndLine(_ text: String, _ line: Int, _ message: String) throws {
        let path = try temporaryFile(text)
        #expect(throws: TraceError(.badData, file: path, line: line, message)) {
            _ = try readAll(try NativeTraceReader(path: path))
        }
    }

    @Test func skipInvalidCountsAndKeepsTheFirstTenMessages() throws {
        var text = "# nestcache-trace v1\n"
        for i in 0..<15 { text += "\(i) w 0 bogus 0x1000\n\(i) w 0 load 0x1000\n" }
        let path = try temporaryFile(text)
        let reader = try NativeTraceReader(path: path, invalidLines: .skip)
        let events = try readAll(reader)
        #expect(events.count == 15)
        #expect(reader.invalidLines == 15)
        #expect(reader.warnings.count == 10)
        #expect(reader.warnings.first == "\(path):2: op: expected load, enter or clear, got 'bogus'")
        #expect(reader.figures.map(\.name) == ["invalid_lines"])
    }

    @Test func aMissingFileIsInputMissing() {
        #expect(throws: TraceError(.inputMissing, file: "/nonexistent/x.trace", "No such file or directory")) {
            _ = try NativeTraceReader(path: "/nonexistent/x.trace")
        }
    }

    /// The same bytes whole from a file and one byte at a time through a pipe give the same events.
    @Test func pipeFedByteByByteEqualsWholeFile() throws {
        var text = Self.good + "\n"
        for i in 0..<300 { text += "\(3000 + i) web0 \(i % 8) \(["load", "enter", "clear"][i % 3]) 0x\(String(0x1000 * (i % 17), radix: 16))\n" }
        let whole = try readAll(try NativeTraceReader(path: try temporaryFile(text)))
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let writer = Thread { [bytes = Array(text.utf8), fd = fds[1]] in
            for b in bytes { _ = withUnsafeBytes(of: b) { write(fd, $0.baseAddress, 1) } }
            close(fd)
        }
        writer.start()
        let piped = try readAll(try NativeTraceReader(path: "/dev/fd/\(fds[0])"), limit: 1)
        close(fds[0])
        #expect(piped == whole)
        #expect(whole.count == 304)
    }

    /// A round trip through the writer gives back the same events and declarations.
    @Test func writerRoundTrip() throws {
        let path = try temporaryFile(Self.good)
        let reader = try NativeTraceReader(path: path)
        let events = try readAll(reader)
        let out = path + ".out"
        try NativeTraceWriter.write(to: out) { (w: inout NativeTraceWriter) throws(TraceError) in
            try w.write(events, registry: reader.registry)
            try w.finish(registry: reader.registry)
        }
        let again = try NativeTraceReader(path: out)
        #expect(try readAll(again) == events)
        #expect(again.registry.infos == reader.registry.infos)
    }
}
