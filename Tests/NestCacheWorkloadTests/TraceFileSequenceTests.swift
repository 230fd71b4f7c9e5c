import Foundation
import NestCacheCore
import NestCacheWorkload
import Testing

@Suite struct TraceFileSequenceTests {
    static let a = "# nestcache-trace v1\n# vm web0 l1_vcpus=2\n10 web0 0 load 0x1000\n20 db 1 enter 0x2000\n"
    static let b = "# nestcache-trace v1\n30 db 0 enter 0x3000\nnot an event\n40 web0 1 enter 0x1000\n"

    /// Files are one stream: a VM id names the same VM in every file, declarations carry over,
    /// figures are summed over files.
    @Test func filesAreOneStreamWithOneRegistry() throws {
        let seq = TraceFileSequence(paths: [try temporaryFile(Self.a), try temporaryFile(Self.b)], format: .auto, vm: nil, invalidLines: .skip)
        let events = try readAll(seq)
        #expect(events.map(\.vm) == [0, 1, 1, 0])
        #expect(events.map(\.timeNs) == [10, 20, 30, 40])
        #expect(seq.registry.infos == [VMInfo(id: "web0", l1VCPUs: 2), VMInfo(id: "db")])
        #expect(seq.figures.first { $0.name == "invalid_lines" }?.value == 1)
        #expect(seq.skippedEvents == nil, "no ftrace file was read")
    }

    /// A bad second file fails with its own name and line, after the first file's events.
    @Test func anErrorNamesTheFileItIsIn() throws {
        let good = try temporaryFile(Self.a)
        let bad = try temporaryFile("# nestcache-trace v1\n50 web0 0 jump 0x1000\n", name: "bad.trace")
        let seq = TraceFileSequence(paths: [good, bad], format: .native, vm: nil, invalidLines: .fail)
        var batch: [Event] = []
        #expect(try seq.next(into: &batch, limit: 100))
        #expect(batch.count == 2)
        do {
            _ = try seq.next(into: &batch, limit: 100)
            Issue.record("expected an error")
        } catch {
            #expect(error.file == bad)
            #expect(error.line == 2)
        }
        let missing = TraceFileSequence(paths: [good, "/nonexistent/x.trace"], format: .auto, vm: nil, invalidLines: .fail)
        #expect(throws: TraceError.self) { try readAll(missing) }
    }

    /// `auto` detects each file's format: a native file and an ftrace capture in one run, the
    /// capture's VM named after its file.
    @Test func autoDetectsEachFile() throws {
        let ftrace = FtraceReaderTests.fixture("raw_noflags.txt")
        let seq = TraceFileSequence(paths: [try temporaryFile(Self.a), ftrace], format: .auto, vm: nil, invalidLines: .fail)
        let events = try readAll(seq)
        #expect(seq.registry.infos.map(\.id) == ["web0", "db", "raw_noflags"])
        #expect(events.filter { $0.vm == 2 }.count > 0)
        #expect(seq.skippedEvents != nil)
    }

    @Test(arguments: [
        ("/tmp/web0.trace.txt", "web0"), ("web0", "web0"), ("-", "stdin"), ("/a/b/.hidden", "hidden"),
        ("/x/vm with space.txt", "vm_with_space"), ("/x/é.txt", "__"), ("/x/.txt", "txt"),
    ])
    func defaultVMNameIsTheStemInTheIDAlphabet(_ path: String, _ name: String) {
        #expect(TraceFileSequence.defaultVMName(path) == name)
    }
}
