import Foundation
import NestCacheCore
import NestCacheWorkload
import Testing

/// `FtraceReader`'s fast path (`FtraceLine.quick`, issue 10) reads what the general path
/// (`FtraceLine.parse`) reads, the same way, and leaves it every other line: both paths must give
/// the same events, figures, warnings, skipped-event counts, VMs and error (file, line, message),
/// whatever the batch size. Each input here is read both ways and compared.
@Suite struct FtraceFastPathTests {
    typealias Reading = FtraceReading

    static func read(_ path: String, vm: String = "web0", invalid: InvalidLinePolicy, limit: Int, fast: Bool) -> Reading {
        let reading = FtraceReader.reading(path, vm: vm, invalidLines: invalid, limit: limit, fastPath: fast)
        #expect(reading.batchesOverLimit == 0)
        return reading
    }

    /// Reads `path` both ways, strict and skipping, at several batch sizes (1 and 2 leave the fast
    /// path no room for an SVM switch; 3 and 5 cut batches mid-file); returns the strict reading.
    @discardableResult
    static func expectSame(_ path: String, vm: String = "web0", sourceLocation: SourceLocation = #_sourceLocation) -> Reading {
        var strict = Reading()
        for invalid in [InvalidLinePolicy.fail, .skip] {
            for limit in [1, 2, 3, 5, 4096] {
                let general = read(path, vm: vm, invalid: invalid, limit: limit, fast: false)
                let fast = read(path, vm: vm, invalid: invalid, limit: limit, fast: true)
                #expect(fast == general, "\(path) \(invalid) limit \(limit)", sourceLocation: sourceLocation)
                if invalid == .fail, limit == 4096 { strict = fast }
            }
        }
        return strict
    }

    static func temporary(_ name: String, _ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ftrace-fast-\(getpid())-\(name)").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func files(under directory: String) -> [String] {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(directory).standardized
        guard let e = FileManager.default.enumerator(atPath: root.path) else { return [] }
        return e.compactMap { $0 as? String }.map { root.appendingPathComponent($0).path }.filter {
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: $0, isDirectory: &isDirectory) && !isDirectory.boolValue
        }.sorted()
    }

    /// Every ftrace fixture (hand-made, constructed and real captures) and the fuzz corpus.
    @Test func fixturesAndCorpusReadTheSameBothWays() throws {
        let paths = Self.files(under: "../Fixtures/ftrace") + Self.files(under: "../../Fuzz/corpus/ftrace")
        #expect(paths.count >= 20, "found \(paths.count) files")
        for path in paths { Self.expectSame(path) }
    }

    /// One line of each form the fast path reads, and next to each a line it must leave to the
    /// general path (the comment says why); the readings must agree, and the strict one fail where
    /// the general path fails.
    @Test func linesTheFastPathMustLeave() throws {
        let exit = "kvm_exit: vcpu 1 reason VMRESUME rip 0xffffffffc0a1b2c3 info1 0x0"
        let enter = "kvm_nested_vmenter: rip: 0xffffffffc0a1b4d0 vmcs: 0x0000000100001000 nested_rip: 0x0"
        let cases: [(String, String)] = [
            ("plain", "CPU 1/KVM-4811  [001] d.... 100.000001: \(exit)\n CPU 1/KVM-4811 [001] ..... 100.000002: \(enter)\n"),
            // A comm that starts like a header or marker: `parse` decides what the line is.
            ("comm-cpus", "cpus=1-4811 [001] d.... 100.000001: \(exit)\ncpus=1-4811 [001] ..... 100.000002: \(enter)\n"),
            ("comm-version", "version = 6-4811 [001] d.... 100.000001: \(exit)\n"),
            ("comm-CPU-colon", "CPU:1-4811 [001] d.... 100.000001: \(exit)\n"),
            ("comm-arrow", "=>x-4811 [001] d.... 100.000001: \(exit)\n"),
            // Comms that start like those but are not: event lines.
            ("comm-like", "vhost-4811 [001] d.... 100.000001: \(exit)\nc-4811 [001] ..... 100.000002: \(enter)\n=x-4811 [001] ..... 100.000003: \(enter)\n"),
            // The tgid column, unknown tgid, perf's TID and PID/TID columns: `leftOfCPU`.
            ("tgid", "CPU 1/KVM-4811 (4800) [001] d.... 100.000001: \(exit)\nCPU 1/KVM-4811 (4800) [001] ..... 100.000002: \(enter)\n"),
            ("tgid-unknown", "CPU 1/KVM-4811 (-------) [001] d.... 100.000001: \(exit)\nCPU 1/KVM-4811 (-------) [001] ..... 100.000002: \(enter)\n"),
            ("perf-tid", "CPU 1/KVM  4811 [001] 100.000001: kvm:\(exit)\nCPU 1/KVM  4811 [001] 100.000002: kvm:\(enter)\n"),
            ("perf-pid-tid", "CPU 1/KVM 4800/4811 [001] 100.000001: kvm:\(exit)\nCPU 1/KVM 4800/4811 [001] 100.000002: kvm:\(enter)\n"),
            // A first `[` that is no CPU column (in the comm): `prefix` goes on to the next one.
            ("bracket-in-comm", "a[1] b-4811 [001] d.... 100.000001: \(exit)\na[1] b-4811 [001] ..... 100.000002: \(enter)\n"),
            // A pid of more than 10 digits (leading zeros) or above Int32.max.
            ("long-pid", "CPU 1/KVM-000000000004811 [001] d.... 100.000001: \(exit)\nCPU 1/KVM-000000000004811 [001] ..... 100.000002: \(enter)\n"),
            ("huge-pid", "CPU 1/KVM-3000000000 [001] d.... 100.000001: \(exit)\n"),
            // Flags of 0, 3, 4 and 6 characters; two words before the time; no blank after its colon.
            ("no-flags", "CPU 1/KVM-4811 [001] 100.000001: \(exit)\nCPU 1/KVM-4811 [001] 100.000002: \(enter)\n"),
            ("flags-4", "CPU 1/KVM-4811 [001] d... 100.000001: \(exit)\nCPU 1/KVM-4811 [001] .... 100.000002: \(enter)\n"),
            ("flags-3", "CPU 1/KVM-4811 [001] d.. 100.000001: \(exit)\n"),
            ("flags-6", "CPU 1/KVM-4811 [001] d..... 100.000001: \(exit)\n"),
            ("two-words", "CPU 1/KVM-4811 [001] d.... x 100.000001: \(exit)\n"),
            ("time-glued", "CPU 1/KVM-4811 [001] d.... 100.000001:\(exit)\n"),
            // Times: 9 decimals, 7 decimals, no seconds, 20-digit seconds (overflow), a letter.
            ("ns", "CPU 1/KVM-4811 [001] d.... 100.000000001: \(exit)\nCPU 1/KVM-4811 [001] ..... 100.000000002: \(enter)\n"),
            ("time-7", "CPU 1/KVM-4811 [001] d.... 100.0000001: \(exit)\n"),
            ("time-no-secs", "CPU 1/KVM-4811 [001] d.... .000001: \(exit)\n"),
            ("time-overflow", "CPU 1/KVM-4811 [001] ..... 99999999999999999999.000001: \(enter)\n"),
            ("time-19", "CPU 1/KVM-4811 [001] d.... 1000000000000000000.000001: \(exit)\nCPU 1/KVM-4811 [001] ..... 18446744073.709551: \(enter)\n"),
            ("time-letter", "CPU 1/KVM-4811 [001] d.... 1x0.000001: \(exit)\n"),
            // Event names: another system (perf), a stack trace, no name, a name without colon.
            ("other-system", "CPU 1/KVM  4811 [001] 100.000001: sched:sched_switch: prev_comm=x\n"),
            ("other-event", "CPU 1/KVM-4811 [001] d.... 100.000001: kvm_msr: msr_read 1d9 = 0x0\n"),
            ("stack", "CPU 1/KVM-4811 [001] d.... 100.000001: <stack trace>\n => foo\n"),
            ("no-name", "CPU 1/KVM-4811 [001] d.... 100.000001: : vcpu 1\n"),
            // Bodies: the plugin's errors, the layouts without `vcpu`, bad vCPUs, `vcpu N,`.
            ("plugin-errors", "CPU 1/KVM-4811 [001] d.... 100.000001: kvm_nested_vmexit: CAN'T FIND FIELD \"rip\"<CANT FIND FIELD exit_code>vcpu 1 reason EPT_VIOLATION\n"),
            ("exit-no-vcpu", "CPU 1/KVM-4811 [001] d.... 100.000001: kvm_exit: reason VMCLEAR rip 0x0 info 0 0\n"),
            ("exit-vmclear", "CPU 1/KVM-4811 [001] d.... 100.000001: kvm_exit: vcpu 1 reason VMCLEAR rip 0x0\n"),
            ("exit-vmclear-glued", "CPU 1/KVM-4811 [001] d.... 100.000001: kvm_exit: vcpu 1 reason VMCLEARX rip 0x0\n"),
            ("exit-no-reason", "CPU 1/KVM-4811 [001] d.... 100.000001: kvm_exit: vcpu 1 reason   \n"),
            ("exit-reasons", "CPU 1/KVM-4811 [001] d.... 100.000001: kvm_exit: vcpu 1 reasons VMCLEAR\n"),
            ("vcpu-big", "CPU 1/KVM-4811 [001] d.... 100.000001: kvm_exit: vcpu 4096 reason HLT\n"),
            ("vcpu-comma", "CPU 1/KVM-4811 [001] d.... 100.000001: kvm_entry: vcpu 3, rip 0x0\nCPU 1/KVM-4811 [001] ..... 100.000002: \(enter)\n"),
            ("vcpu-commas", "CPU 1/KVM-4811 [001] d.... 100.000001: kvm_entry: vcpu 3,, rip 0x0\n"),
            ("vcpu-zeros", "CPU 1/KVM-4811 [001] d.... 100.000001: kvm_entry: vcpu 0000003\nCPU 1/KVM-4811 [001] ..... 100.000002: \(enter)\n"),
            ("vcpu-glued", "CPU 1/KVM-4811 [001] d.... 100.000001: kvm_entry: vcpu3\n"),
            ("nested-exit-rip", "CPU 1/KVM-4811 [001] d.... 100.000001: kvm_nested_vmexit: rip: 0x0000000000000001 reason: EPT_VIOLATION\n"),
            // Entries: no vCPU yet (comm `CPU N/KVM`, else numbered), eVMCS, vmcb (SVM clears,
            // batches of 1 and 2), a key inside a word, a bad value, an unaligned GPA, uppercase hex.
            ("enter-comm", "CPU 7/KVM-4811 [001] ..... 100.000002: \(enter)\nCPU 7/KVM-4812 (4800) [001] ..... 100.000003: \(enter)\n"),
            ("enter-comm-big", "CPU 7/KVM-4811 [001] ..... 100.000002: \(enter)\nCPU 4096/KVM-4812 [001] ..... 100.000003: \(enter)\n"),
            ("enter-numbered", "qemu-4811 [001] ..... 100.000002: \(enter)\nqemu-4812 [001] ..... 100.000003: \(enter)\n"),
            ("evmcs", "CPU 1/KVM-4811 [001] ..... 100.000002: kvm_nested_vmenter: rip: 0x1 vmcs: 0xffffffffffffffff nested_rip: 0x0\n"),
            ("vmcb", "CPU 1/KVM-4811 [001] d.... 100.000001: \(exit)\n" + (1...6).map { "CPU 1/KVM-4811 [001] ..... 100.00000\($0 + 1): kvm_nested_vmrun: rip: 0x1 vmcb: 0x\($0 % 3 + 1)000 nrip: 0x0\n" }.joined()),
            ("key-in-word", "CPU 1/KVM-4811 [001] d.... 100.000001: \(exit)\nCPU 1/KVM-4811 [001] ..... 100.000002: kvm_nested_vmenter: xvmcs: 0x1000 vmcs: 0x2000 y\n"),
            ("key-glued", "CPU 1/KVM-4811 [001] d.... 100.000001: \(exit)\nCPU 1/KVM-4811 [001] ..... 100.000002: kvm_nested_vmenter: vmcs:0x1000 vmcs: 0x2000\n"),
            ("key-last", "CPU 1/KVM-4811 [001] d.... 100.000001: \(exit)\nCPU 1/KVM-4811 [001] ..... 100.000002: kvm_nested_vmenter: rip: 0x1 vmcs:\n"),
            ("value-0x", "CPU 1/KVM-4811 [001] d.... 100.000001: \(exit)\nCPU 1/KVM-4811 [001] ..... 100.000002: kvm_nested_vmenter: vmcs: 0x nested_rip: 0x0\n"),
            ("value-17", "CPU 1/KVM-4811 [001] d.... 100.000001: \(exit)\nCPU 1/KVM-4811 [001] ..... 100.000002: kvm_nested_vmenter: vmcs: 0x00000000000001000\n"),
            ("value-bad", "CPU 1/KVM-4811 [001] d.... 100.000001: \(exit)\nCPU 1/KVM-4811 [001] ..... 100.000002: kvm_nested_vmenter: vmcs: 0x10g0\n"),
            ("value-upper", "CPU 1/KVM-4811 [001] d.... 100.000001: \(exit)\nCPU 1/KVM-4811 [001] ..... 100.000002: kvm_nested_vmenter: vmcs: 0xABC000\n"),
            ("unaligned", "CPU 1/KVM-4811 [001] d.... 100.000001: \(exit)\nCPU 1/KVM-4811 [001] ..... 100.000002: kvm_nested_vmenter: vmcs: 0x1001\n"),
            ("no-key", "CPU 1/KVM-4811 [001] d.... 100.000001: \(exit)\nCPU 1/KVM-4811 [001] ..... 100.000002: kvm_nested_vmenter: rip: 0x1 vm: 0x1000\n"),
            // CRLF, a last line without `\n`, blank lines, markers between events.
            ("crlf", "CPU 1/KVM-4811 [001] d.... 100.000001: \(exit)\r\nCPU 1/KVM-4811 [001] ..... 100.000002: \(enter)\r\n"),
            ("no-newline", "CPU 1/KVM-4811 [001] d.... 100.000001: \(exit)\nCPU 1/KVM-4811 [001] ..... 100.000002: \(enter)"),
            ("markers", "\n# c\nCPU 1/KVM-4811 [001] d.... 100.000001: \(exit)\nCPU:1 [LOST 3 EVENTS]\n##### CPU 2 buffer started ####\nCPU 1/KVM-4811 [001] ..... 100.000002: \(enter)\n"),
        ]
        for (name, text) in cases {
            let path = try Self.temporary(name, text)
            defer { try? FileManager.default.removeItem(atPath: path) }
            Self.expectSame(path)
        }
    }

    /// A thread whose vCPU changes, many threads (the table grows past 64 slots and keeps every
    /// thread's vCPU), threads of two VMs by tgid: the events are the general path's.
    @Test func manyThreadsAndVMs() throws {
        var text = ""
        for round in 0..<3 {
            for t in 0..<200 {
                let pid = 5000 + t * 7
                let tgid = t % 2 == 0 ? "(4000)" : "(4001)"
                let time = "\(100 + round).\(String(format: "%06d", t * 10))"
                text += "CPU \(t % 5)/KVM-\(pid) \(tgid) [001] d.... \(time): kvm_exit: vcpu \((t + round) % 9) reason VMRESUME rip 0x0\n"
                text += "CPU \(t % 5)/KVM-\(pid) [001] ..... \(time): kvm_nested_vmenter: rip: 0x1 vmcs: 0x\(String(t % 13 + 1, radix: 16))000 nested_rip: 0x0\n"
            }
        }
        let path = try Self.temporary("threads", text)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let reading = Self.expectSame(path)
        #expect(reading.events.count == 600)
        #expect(reading.error == nil)
        // Round 1's vCPUs (the hint changed since round 0): thread t runs (t + 1) % 9.
        let round1: [UInt16] = reading.events[200..<400].map(\.vcpu)
        let expected: [UInt16] = (0..<200).map { (t: Int) -> UInt16 in UInt16((t + 1) % 9) }
        #expect(round1 == expected)
    }
}
