import Foundation
import NestCacheCore
import NestCacheWorkload
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `TraceRecorder` over a fake tracefs whose `trace_pipe` is a FIFO fed by another thread; the
/// stop descriptor is a pipe the test writes a "signal" byte into, as the CLI's handlers do.
@Suite struct TraceRecorderTests {
    static let fixture = FtraceReaderTests.fixture("raw_tgid.txt")

    /// Events of the fixture read as a file, with the names `record` gives them.
    func expected() throws -> [Event] { try readAll(FtraceReader(path: Self.fixture, vm: "unknown")) }

    /// Writes the fixture into the FIFO once a reader opened it, then `after` (on that thread),
    /// then closes it.
    func feed(_ fifo: String, after: @escaping @Sendable () -> Void = {}) {
        let text = fileText(Self.fixture)
        Thread.detachNewThread {
            let fd = open(fifo, O_WRONLY)  // waits for the recorder's reader
            _ = text.withCString { write(fd, $0, strlen($0)) }
            after()
            close(fd)
        }
    }

    func record(_ root: String, duration: Duration? = nil, stopFD: Int32) throws -> (TraceRecorder.Outcome, String) {
        let out = (root as NSString).deletingLastPathComponent + "/out.trace"
        let recorder = TraceRecorder(
            target: try TracefsTarget.find(tracefs: root, buffer: .topLevel), vm: "unknown",
            names: QEMUName(proc: root + "/no-proc"), duration: duration, stopFD: stopFD)
        return (recorder.record(to: out), out)
    }

    func settingsAreOff(_ root: String) -> Bool {
        ["options/record-tgid", "tracing_on"].allSatisfy { fileText("\(root)/\($0)") == "0\n" }
            && ["kvm_nested_vmenter", "kvm_exit", "kvm_entry", "kvm_nested_vmexit"].allSatisfy {
                fileText("\(root)/events/kvm/\($0)/enable") == "0\n"
            }
    }

    /// The events come out with their order kept, times raised where the fixture steps back.
    func check(_ out: String) throws {
        let got = try readAll(NativeTraceReader(path: out))
        let want = try expected()
        #expect(got.map(\.gpa) == want.map(\.gpa) && got.map(\.vcpu) == want.map(\.vcpu) && got.map(\.op) == want.map(\.op))
        #expect(got.map(\.timeNs) == [812_000_120_000, 812_000_120_000, 812_000_120_000, 812_000_140_000, 812_000_150_000])
    }

    @Test func endOfInputEndsTheRecording() throws {
        let root = try fakeTracefs()
        feed(root + "/trace_pipe")
        let (outcome, out) = try record(root, stopFD: -1)
        let summary = try outcome.result.get()
        #expect(summary.stop == .endOfInput && summary.events == 5 && summary.raisedTimes == 2)
        #expect(summary.vms == ["48200", "51000", "unknown"])
        #expect(summary.lines == 20)
        #expect(outcome.restoreFailures == [] && settingsAreOff(root))
        try check(out)
    }

    @Test func aStopByteEndsItAfterWhatWasAlreadyTraced() throws {
        let root = try fakeTracefs()
        var p: [Int32] = [-1, -1]
        #expect(pipe(&p) == 0)
        defer { close(p[0]); close(p[1]) }
        let w = p[1]
        feed(root + "/trace_pipe") {
            var sig = UInt8(SIGINT)
            _ = write(w, &sig, 1)
        }
        let (outcome, out) = try record(root, stopFD: p[0])
        let summary = try outcome.result.get()
        #expect(summary.stop == .signal(SIGINT) && summary.events == 5)
        #expect(settingsAreOff(root))
        try check(out)
    }

    @Test func theDurationEndsItWithoutAnyWriter() throws {
        let root = try fakeTracefs()
        let clock = ContinuousClock()
        let start = clock.now
        let (outcome, out) = try record(root, duration: .milliseconds(200), stopFD: -1)
        #expect(clock.now - start >= .milliseconds(200))
        #expect(try outcome.result.get().stop == .duration && settingsAreOff(root))
        #expect(fileText(out) == NativeTraceReader.magic + "\n")
    }

    @Test func anOutputErrorRestoresTheSettingsAndPublishesNothing() throws {
        let root = try fakeTracefs()
        let recorder = TraceRecorder(
            target: try TracefsTarget.find(tracefs: root, buffer: .topLevel), vm: "unknown",
            names: QEMUName(), duration: .seconds(30), stopFD: -1)
        let outcome = recorder.record(to: "/dev/full")
        guard case .failure(let error) = outcome.result else {
            Issue.record("writing to /dev/full succeeded")
            return
        }
        #expect(error.kind == .io && error.description.contains("No space left"))
        #expect(settingsAreOff(root))
    }
}
