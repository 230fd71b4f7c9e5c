import Foundation
import NestCacheCore
import NestCacheWorkload
import Testing

/// Fixtures are written with the kernel's format strings (`trace_print_context`, arch/x86/kvm/trace.h)
/// and trace-cmd's layout; expected events are worked out by hand from DESIGN §5, line by line.
@Suite struct FtraceReaderTests {
    static func fixture(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Fixtures/ftrace/\(name)").standardized.path
    }

    static func ev(_ t: UInt64, _ vm: Int32, _ vcpu: UInt16, _ op: TraceOp, _ gpa: UInt64) -> Event {
        Event(timeNs: t, vm: vm, vcpu: vcpu, op: op, gpa: GPA(gpa))
    }

    static func readAll(_ r: FtraceReader, limit: Int = 1024) throws(TraceError) -> [Event] {
        var all: [Event] = []
        var batch: [Event] = []
        while try r.next(into: &batch, limit: limit) {
            #expect(batch.count <= limit)
            all += batch
        }
        return all
    }

    static func figures(_ r: FtraceReader) -> [String] { r.figures.map { "\($0.name)=\($0.value)" } }

    static func figureList(
        invalid: UInt64 = 0, evmcs: UInt64 = 0, unresolved: UInt64 = 0, lost: UInt64 = 0, markers: UInt64 = 0,
        numbered: UInt64 = 0
    ) -> [String] {
        [
            "invalid_lines=\(invalid)", "evmcs_skipped=\(evmcs)", "unresolved_clears=\(unresolved)",
            "lost_events=\(lost)", "lost_event_markers=\(markers)", "pid_numbered_vcpus=\(numbered)",
        ]
    }

    // MARK: - One fixture per line form

    /// trace-cmd report: headers passed over, padded event names, vCPUs from kvm_exit / kvm_entry,
    /// one VMCLEAR exit (unresolved), one LOST marker of 12, a kvm_msr line passed over.
    @Test func traceCmdReport() throws {
        let r = try FtraceReader(path: Self.fixture("tracecmd_report.txt"), vm: "web0")
        let events = try Self.readAll(r)
        #expect(
            events == [
                Self.ev(5_123_004_230_000, 0, 0, .enter, 0x1_0a3f_2000),
                Self.ev(5_123_004_250_000, 0, 1, .enter, 0x1_0a3f_3000),
                Self.ev(5_123_004_310_000, 0, 0, .enter, 0x1_0a3f_3000),
                Self.ev(5_123_004_400_000, 0, 1, .enter, 0x1_0a3f_2000),
            ])
        #expect(r.registry.infos.map(\.id) == ["web0"])
        #expect(Self.figures(r) == Self.figureList(unresolved: 1, lost: 12, markers: 1))
        #expect(r.warnings.isEmpty)
    }

    /// trace-cmd report -t: nanosecond timestamps (9 decimals), no latency flags column.
    @Test func traceCmdReportNanoseconds() throws {
        let r = try FtraceReader(path: Self.fixture("tracecmd_report_ns.txt"), vm: "ns")
        #expect(try Self.readAll(r) == [Self.ev(77_123_457_000, 0, 0, .enter, 0x7000)])
        #expect(Self.figures(r) == Self.figureList())
    }

    /// Raw trace with record-tgid: VMs are tgids in order of first event; `(-------)` goes to the
    /// `vm` name; kvm_exit's `vcpu 2` beats the comm `CPU 0/KVM`; the comm gives vCPU 1 to a thread
    /// with no exit line; times step back across CPUs and are kept in file order.
    @Test func rawTraceWithTGID() throws {
        let r = try FtraceReader(path: Self.fixture("raw_tgid.txt"), vm: "fallback")
        #expect(
            try Self.readAll(r) == [
                Self.ev(812_000_120_000, 0, 0, .enter, 0x200_0000),
                Self.ev(812_000_095_000, 1, 2, .enter, 0x400_0000),
                Self.ev(812_000_110_000, 0, 1, .enter, 0x200_1000),
                Self.ev(812_000_140_000, 2, 5, .enter, 0x500_0000),
                Self.ev(812_000_150_000, 0, 0, .enter, 0x200_1000),
            ])
        #expect(r.registry.infos.map(\.id) == ["48200", "51000", "fallback"])
        #expect(Self.figures(r) == Self.figureList())
    }

    /// `vmIDOfTGID` (`nestcache record`'s QEMU names), asked once per tgid: a name already taken
    /// by another VM, or not a valid id, leaves the tgid in decimal; lines without a tgid keep `vm`.
    @Test func vmIDOfTGIDNamesVMsWithoutMergingThem() throws {
        final class Asked: @unchecked Sendable { var tgids: [Int32] = [] }
        let asked = Asked()
        let lines = try LineReader(path: Self.fixture("raw_tgid.txt"))
        let r = try FtraceReader(lines: lines, vm: "fallback", vmIDOfTGID: { tgid in
            asked.tgids.append(tgid)
            return "web0"  // both processes claim the same name
        })
        #expect(try Self.readAll(r).count == 5)
        #expect(r.registry.infos.map(\.id) == ["web0", "51000", "fallback"])
        #expect(asked.tgids == [48200, 51000])
        let bad = try FtraceReader(lines: LineReader(path: Self.fixture("raw_tgid.txt")), vm: "fallback", vmIDOfTGID: { _ in "not valid" })
        _ = try Self.readAll(bad)
        #expect(bad.registry.infos.map(\.id) == ["48200", "51000", "fallback"])
    }

    /// Raw trace with irq-info off (no flags column) and seconds narrower than 5 digits.
    @Test func rawTraceWithoutFlags() throws {
        let r = try FtraceReader(path: Self.fixture("raw_noflags.txt"), vm: "noflags")
        #expect(
            try Self.readAll(r) == [
                Self.ev(42_000_030_000, 0, 3, .enter, 0x1_0a3f_2000),
                Self.ev(42_000_040_000, 0, 4, .enter, 0x1_0a3f_2000),
            ])
    }

    /// Comms with spaces, '-' and digits, `<...>`, and a `[1]` inside: `CPU 12/KVM` -> 12; the
    /// others have no vCPU source and are numbered 0, 1, 2 in order of first appearance.
    @Test func commWithSpacesAndDashes() throws {
        let r = try FtraceReader(path: Self.fixture("comm_spaces.txt"), vm: "spaces")
        #expect(
            try Self.readAll(r) == [
                Self.ev(100_000_001_000, 0, 12, .enter, 0xa0_0000),
                Self.ev(100_000_002_000, 0, 0, .enter, 0xb0_0000),
                Self.ev(100_000_003_000, 0, 1, .enter, 0xc0_0000),
                Self.ev(100_000_004_000, 0, 0, .enter, 0xc0_0000),
                Self.ev(100_000_005_000, 0, 2, .enter, 0xd0_0000),
            ])
        #expect(Self.figures(r) == Self.figureList(numbered: 3))
    }

    /// `vmcs: 0xffffffffffffffff` (eVMCS) entries are skipped and counted.
    @Test func evmcsSentinel() throws {
        let r = try FtraceReader(path: Self.fixture("evmcs.txt"), vm: "hyperv")
        #expect(try Self.readAll(r) == [Self.ev(300_000_030_000, 0, 0, .enter, 0x3000)])
        #expect(Self.figures(r) == Self.figureList(evmcs: 2))
    }

    /// SVM: vCPU 0 enters A, A, B, A; vCPU 1 enters B. A change of VMCB on a vCPU is preceded by a
    /// clear of the old one at the same time; B on vCPU 1 is that vCPU's first, so no clear.
    @Test func svmVMCBChanges() throws {
        let expected = [
            Self.ev(400_000_011_000, 0, 0, .enter, 0xa000),
            Self.ev(400_000_012_000, 0, 0, .enter, 0xa000),
            Self.ev(400_000_013_000, 0, 0, .clear, 0xa000),
            Self.ev(400_000_013_000, 0, 0, .enter, 0xb000),
            Self.ev(400_000_014_000, 0, 1, .enter, 0xb000),
            Self.ev(400_000_015_000, 0, 0, .clear, 0xb000),
            Self.ev(400_000_015_000, 0, 0, .enter, 0xa000),
        ]
        // Every batch size gives the same stream (the clear+enter pair may straddle batches).
        for limit in [1, 2, 3, 4, 1024] {
            let r = try FtraceReader(path: Self.fixture("svm_vmcb.txt"), vm: "svm")
            #expect(try Self.readAll(r, limit: limit) == expected, "limit \(limit)")
        }
    }

    /// Older kernels: kvm_nested_vmrun with `vmcb:`, kvm_exit without `vcpu N`, kvm_entry `vcpu N`
    /// alone, kvm_nested_vmexit `rip: ... reason: ...`. Thread 3100 is vCPU 1 (kvm_entry); thread
    /// 3101 has no source and is numbered 0. Its VMCLEAR exit is unresolved.
    @Test func olderVMRunLayout() throws {
        let r = try FtraceReader(path: Self.fixture("old_vmrun.txt"), vm: "old")
        #expect(
            try Self.readAll(r) == [
                Self.ev(2_001_000_030_000, 0, 1, .enter, 0x1234_0000),
                Self.ev(2_001_000_050_000, 0, 1, .clear, 0x1234_0000),
                Self.ev(2_001_000_050_000, 0, 1, .enter, 0x1234_1000),
                Self.ev(2_001_000_060_000, 0, 0, .enter, 0x1234_1000),
            ])
        #expect(Self.figures(r) == Self.figureList(unresolved: 1, numbered: 1))
    }

    /// Lost-event markers: 7 + 5 counted events; 4 markers (with `[LOST EVENTS]` and the raw
    /// buffer-started line); stack-trace lines passed over.
    @Test func lostEvents() throws {
        let r = try FtraceReader(path: Self.fixture("lost_events.txt"), vm: "lossy")
        #expect(
            try Self.readAll(r) == [
                Self.ev(500_000_010_000, 0, 0, .enter, 0x8000),
                Self.ev(500_000_030_000, 0, 0, .enter, 0x9000),
            ])
        #expect(Self.figures(r) == Self.figureList(lost: 12, markers: 4))
    }

    /// CRLF line endings (a capture copied through Windows) read the same as LF.
    @Test func crlfLineEndings() throws {
        let lf = Self.fixture("tracecmd_report.txt")
        let crlf = FileManager.default.temporaryDirectory.appendingPathComponent("ftrace-crlf-\(getpid()).txt").path
        defer { try? FileManager.default.removeItem(atPath: crlf) }
        try String(contentsOfFile: lf, encoding: .utf8).replacingOccurrences(of: "\n", with: "\r\n")
            .write(toFile: crlf, atomically: true, encoding: .utf8)
        let a = try FtraceReader(path: lf, vm: "web0")
        let b = try FtraceReader(path: crlf, vm: "web0")
        #expect(try Self.readAll(b) == Self.readAll(a))
        #expect(Self.figures(b) == Self.figures(a))
    }

    // MARK: - Bad lines

    static let badLineMessages: [(Int, String)] = [
        (4, "expected an ftrace event line 'COMM-PID [CPU] SECONDS.MICROS: EVENT: ...', got '       CPU 1/KVM-48213   [01'"),
        (5, "expected an ftrace event line 'COMM-PID [CPU] SECONDS.MICROS: EVENT: ...', got 'hello world'"),
        (6, "kvm_nested_vmenter: expected 'vmcs: 0x...' or 'vmcb: 0x...', got 'rip: 0xffffffffc0a1b4d0 nested_rip: 0x0'"),
        (7, "kvm_nested_vmenter: GPA 0x10a3f2010 is not a 4 KiB-aligned address below 2^52"),
        (8, "kvm_nested_vmenter: GPA 0x10000000000000 is not a 4 KiB-aligned address below 2^52"),
        (9, "kvm_exit: vcpu 5000 is out of range (must be below 4096)"),
        (10, "expected a timestamp 'SECONDS.MICROS:' (6 or 9 decimals) after the CPU column, got '9.070: kvm_exit: vcpu 0 reason VMRESUME'"),
        (11, "vCPU 4096 of thread name 'CPU 4096/KVM' is out of range (must be below 4096)"),
        (12, "expected latency flags (4 or 5 characters) or 'SECONDS.MICROS:' after the CPU column, got '...     9.000090: kvm_exit: vcpu 0 reaso…'"),
        (13, "expected 'CPU:N [LOST N EVENTS]', got 'CPU:1 [LOST many EVENTS]'"),
        (14, "kvm_entry: expected 'vcpu N' with a decimal N, got 'x'"),
    ]

    @Test func badLineFailsWithFileAndLine() throws {
        let path = Self.fixture("bad_lines.txt")
        let r = try FtraceReader(path: path, vm: "bad")
        #expect(throws: TraceError(.badData, file: path, line: 4, Self.badLineMessages[0].1)) {
            _ = try Self.readAll(r)
        }
        let e = TraceError(.badData, file: path, line: 4, "x")
        #expect(e.exitCode == 65)
    }

    /// Each bad line alone is an error with its own message.
    @Test func eachBadLineMessage() throws {
        let path = Self.fixture("bad_lines.txt")
        let all = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ftrace-bad-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for (line, message) in Self.badLineMessages {
            // The good lines 1-3 first, so that thread 100 is vCPU 0, then the bad line as line 4.
            let file = dir.appendingPathComponent("l\(line).txt").path
            try (all[0..<3].joined(separator: "\n") + "\n" + all[line - 1] + "\n").write(
                toFile: file, atomically: true, encoding: .utf8)
            let r = try FtraceReader(path: file, vm: "bad")
            #expect(throws: TraceError(.badData, file: file, line: 4, message), "line \(line)") {
                _ = try Self.readAll(r)
            }
        }
    }

    /// With .skip: 11 invalid lines counted, the first 10 kept; the good lines still count, and
    /// the invalid ones changed no state (thread 100 is still vCPU 0 after `vcpu 5000`, `vcpu x`).
    @Test func badLinesSkipped() throws {
        let path = Self.fixture("bad_lines.txt")
        let r = try FtraceReader(path: path, vm: "bad", invalidLines: .skip)
        #expect(
            try Self.readAll(r) == [
                Self.ev(9_000_020_000, 0, 0, .enter, 0x1000),
                Self.ev(9_000_110_000, 0, 0, .enter, 0x3000),
            ])
        #expect(Self.figures(r) == Self.figureList(invalid: 11))
        #expect(r.warnings == Self.badLineMessages.prefix(10).map { "\(path):\($0.0): \($0.1)" })
    }

    // MARK: - Parameters, detection, size

    @Test func invalidVMNameIsUsageError() {
        #expect(throws: TraceError(.usage, file: "", "invalid VM name 'my vm' for x.txt: expected [A-Za-z0-9_.:-]{1,64}")) {
            _ = try FtraceReader(path: "x.txt", vm: "my vm")
        }
        #expect(throws: TraceError.self) { _ = try FtraceReader(path: Self.fixture("evmcs.txt"), vm: "") }
    }

    @Test func missingFile() {
        do {
            _ = try FtraceReader(path: "/nonexistent/trace.txt", vm: "x")
            Issue.record("expected an error")
        } catch {
            #expect(error.kind == .inputMissing)
            #expect(error.exitCode == 66)
        }
    }

    @Test func detection() throws {
        for name in [
            "tracecmd_report.txt", "tracecmd_report_ns.txt", "raw_tgid.txt", "raw_noflags.txt", "comm_spaces.txt",
            "evmcs.txt", "svm_vmcb.txt", "old_vmrun.txt", "lost_events.txt", "bad_lines.txt",
        ] {
            #expect(try TraceFormat.detect(path: Self.fixture(name)) == .ftrace, "\(name)")
        }
        #expect(try TraceFormat.detect(path: "-") == .native)
        #expect(FtraceReader.looksLikeFtrace(firstLines: ["# nestcache-trace v1", "1000 web0 3 load 0x1000"]) == false)
        #expect(FtraceReader.looksLikeFtrace(firstLines: ["1000 web0 3 load 0x1000"]) == false)
        #expect(FtraceReader.looksLikeFtrace(firstLines: ["", "version = 6"]) == true)
        #expect(FtraceReader.looksLikeFtrace(firstLines: ["cpus=8"]) == true)
        #expect(
            FtraceReader.looksLikeFtrace(firstLines: [
                "      CPU 1/KVM-4821  [012] d.... 5123.004211: kvm_exit: vcpu 1 reason VMPTRLD"
            ]) == true)
        #expect(FtraceReader.looksLikeFtrace(firstLines: ["#", "#"]) == false)

        let native = FileManager.default.temporaryDirectory.appendingPathComponent("native-\(getpid()).trace").path
        try "# nestcache-trace v1\n1000 web0 3 load 0x1a2b3000\n".write(toFile: native, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: native) }
        #expect(try TraceFormat.detect(path: native) == .native)
        #expect(TraceFormat(rawValue: "ftrace") == .ftrace)
    }

    /// 200,000 lines: thread 1000+k is vCPU k (k = i % 8) by its kvm_exit; entry i enters
    /// 0x1000 * (i % 64 + 1). Counted independently of the reader.
    @Test func largeGeneratedInput() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ftrace-large-\(getpid()).txt").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var text = "# tracer: nop\n"
        text.reserveCapacity(200_000 * 200)
        var expectedSum: UInt64 = 0
        var expectedPerVCPU = [Int](repeating: 0, count: 8)
        for i in 0..<100_000 {
            let k = i % 8
            let us = 2 * i
            let ts = "\(1000 + us / 1_000_000).\(String(us % 1_000_000 + 1_000_000).dropFirst())"
            text += "       CPU \(k)/KVM-\(1000 + k)    [00\(k)] d....  \(ts): kvm_exit: vcpu \(k) reason VMRESUME rip 0xffffffffc0a1b2c3 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000\n"
            let gpa = UInt64(0x1000 * (i % 64 + 1))
            text += "       CPU \(k)/KVM-\(1000 + k)    [00\(k)] .....  \(ts): kvm_nested_vmenter: rip: 0xffffffffc0a1b4d0 vmcs: 0x\(String(gpa, radix: 16)) nested_rip: 0x00007f3a1c2e1000 int_ctl: 0x00000000 event_inj: 0x00000000 nested_ept=y nested_eptp: 0x000000010b00005e\n"
            expectedSum &+= gpa
            expectedPerVCPU[k] += 1
        }
        try text.write(toFile: path, atomically: false, encoding: .utf8)

        let r = try FtraceReader(path: path, vm: "big")
        var batch: [Event] = []
        var count = 0
        var sum: UInt64 = 0
        var perVCPU = [Int](repeating: 0, count: 8)
        var lastTime: UInt64 = 0
        while try r.next(into: &batch, limit: 4096) {
            for e in batch {
                count += 1
                sum &+= e.gpa.raw
                perVCPU[Int(e.vcpu)] += 1
                lastTime = e.timeNs
            }
        }
        #expect(count == 100_000)
        #expect(sum == expectedSum)
        #expect(perVCPU == expectedPerVCPU)
        #expect(lastTime == 1_000_000_000_000 + 2 * 99_999 * 1000)
        #expect(Self.figures(r) == Self.figureList())
    }
}
