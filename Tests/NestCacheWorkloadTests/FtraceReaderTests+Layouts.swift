import Foundation
import NestCacheCore
import NestCacheWorkload
import Testing

/// The layouts real tools print (DESIGN §5): captures from mailing lists and bug reports kept
/// verbatim in Fixtures/ftrace/real (each file names its source), and fixtures built from the
/// documented formats where no capture was found, in Fixtures/ftrace/constructed (each says so).
/// Every expected value is worked out by hand from DESIGN §2-5, line by line, in the comments.
extension FtraceReaderTests {
    static func skipped(_ r: FtraceReader) -> [String] { (r.skippedEvents ?? []).map { "\($0.name)=\($0.count)" } }

    /// A file in the temporary directory with `text`, removed by the caller.
    static func temporary(_ name: String, _ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ftrace-\(getpid())-\(name)").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    // MARK: - Real captures

    /// perf script of bugzilla 220549 (58 event lines, two runs: threads 699876 and 655470, both
    /// `CPU 0/KVM`). Its one kvm_nested_vmenter has `vmcs: 0xffffffffffffffff` (eVMCS, skipped
    /// and counted); no entry is left, so no VM is registered. Every kvm_exit is the plugin's
    /// `reason ... info 0 0` without a vCPU, every kvm_nested_vmexit starts with the plugin's
    /// CAN'T FIND FIELD errors: all are read, none is invalid. Lines of other events, counted by
    /// hand in the file (first run + second run, by timestamp):
    ///   kvm_set_irq 6 (.763622 .763629 .763633 .763699 .763701 .763703) + 1 = 7,
    ///   kvm_apic_accept_irq 1 + 1 = 2, kvm_apicv_accept_irq 1 + 1 = 2,
    ///   kvm_ioapic_set_irq 6 (.763626 .763632 .763634 .763700 .763702 .763703) + 0 = 6,
    ///   kvm_pic_set_irq 4 (.763631 .763634 .763701 .763703), kvm_fpu 5 + 2 = 7,
    ///   kvm_nested_vmexit_inject 2 + 1 = 3, kvm_mmio 3, kvm_userspace_exit 2 + 1 = 3,
    ///   kvm_emulate_insn 1, vcpu_match_mmio 1, kvm_apic 1 + 1 = 2, kvm_eoi 1 + 1 = 2,
    ///   kvm_msi_set_irq 0 + 1 = 1, kvm_msr 0 + 1 = 1: 45 lines; with 5 kvm_entry, 5 kvm_exit,
    ///   2 kvm_nested_vmexit and 1 kvm_nested_vmenter, 58.
    @Test func realPerfScriptBugzilla220549() throws {
        let path = Self.fixture("real/perf_script_bugzilla_220549.txt")
        #expect(try TraceFormat.detect(path: path) == .ftrace)
        let r = try FtraceReader(path: path, vm: "win")
        #expect(try Self.readAll(r).isEmpty)
        #expect(r.registry.infos.isEmpty)
        #expect(Self.figures(r) == Self.figureList(evmcs: 1))
        #expect(
            Self.skipped(r) == [
                "kvm_apic=2", "kvm_apic_accept_irq=2", "kvm_apicv_accept_irq=2", "kvm_emulate_insn=1", "kvm_eoi=2",
                "kvm_fpu=7", "kvm_ioapic_set_irq=6", "kvm_mmio=3", "kvm_msi_set_irq=1", "kvm_msr=1",
                "kvm_nested_vmexit_inject=3", "kvm_pic_set_irq=4", "kvm_set_irq=7", "kvm_userspace_exit=3",
                "vcpu_match_mmio=1",
            ])
        #expect((r.skippedEvents ?? []).reduce(0) { $0 + $1.count } == 45)
    }

    /// trace-cmd report with the KVM plugin: two kvm_nested_vmexit lines of thread 315119 that
    /// start with `CAN'T FIND FIELD "rip"<CANT FIND FIELD exit_code>` then the kernel's
    /// `vcpu 0 reason npf ...`, and two of thread 9928 in the plugin's older form `rip 400433
    /// reason EXIT_NPF ...` (hex without 0x, no vCPU). Nothing invalid, nothing entered.
    /// Appending one entry per thread (the same VMCB, so no SVM clear) shows what was read: 315119
    /// is vCPU 0 from its own lines (not numbered; its comm `<...>` says nothing), 9928 has no vCPU
    /// source and is numbered: the first number of the VM, 0. So 1 thread numbered.
    @Test func realTraceCmdPluginCantFindField() throws {
        let path = Self.fixture("real/tracecmd_plugin_cant_find_field.txt")
        #expect(try TraceFormat.detect(path: path) == .ftrace)
        let r = try FtraceReader(path: path, vm: "svm")
        #expect(try Self.readAll(r).isEmpty)
        #expect(Self.figures(r) == Self.figureList())
        #expect(Self.skipped(r) == [])

        let probe = try Self.temporary(
            "cant-find-probe.txt",
            String(contentsOfFile: path, encoding: .utf8)
                + "           <...>-315119 [010]  3733.092700: kvm_nested_vmrun:     rip: 0x0000000000400433 vmcb: 0x0000000000641000 nrip: 0x0000000000400436 int_ctl: 0x00000000 event_inj: 0x00000000 npt: on\n"
                + " qemu-system-x86-9928  [022]   379.260700: kvm_nested_vmrun:     rip: 0x0000000000400433 vmcb: 0x0000000000641000 nrip: 0x0000000000400436 int_ctl: 0x00000000 event_inj: 0x00000000 npt: on\n")
        defer { try? FileManager.default.removeItem(atPath: probe) }
        let p = try FtraceReader(path: probe, vm: "svm")
        #expect(
            try Self.readAll(p) == [
                Self.ev(3_733_092_700_000, 0, 0, .enter, 0x64_1000),
                Self.ev(379_260_700_000, 0, 0, .enter, 0x64_1000),
            ])
        #expect(Self.figures(p) == Self.figureList(numbered: 1))
    }

    /// Raw trace, 4 flag characters, SVM: `reason hypercall` (lower case) on vCPU 0.
    @Test func realRawFourFlagsLowerCaseSVMReason() throws {
        let path = Self.fixture("real/raw4_vkuznets_svm_hypercall.txt")
        #expect(try TraceFormat.detect(path: path) == .ftrace)
        let r = try FtraceReader(path: path, vm: "svm")
        #expect(try Self.readAll(r).isEmpty)
        #expect(Self.figures(r) == Self.figureList())
        #expect(Self.skipped(r) == [])
    }

    /// Raw trace, 4 flag characters, VMX: `reason EPT_VIOLATION` and the two-word
    /// `reason INVALID_STATE FAILED_VMENTRY`, comms without leading padding.
    @Test func realRawTwoWordReason() throws {
        let path = Self.fixture("real/raw4_sohail_failed_vmentry.txt")
        #expect(try TraceFormat.detect(path: path) == .ftrace)
        let r = try FtraceReader(path: path, vm: "vmx")
        #expect(try Self.readAll(r).isEmpty)
        #expect(Self.figures(r) == Self.figureList())
        #expect(Self.skipped(r) == [])
    }

    /// Raw trace, 5 flag characters, L0 of a looping L2: 4 kvm_exit, 3 kvm_nested_vmexit,
    /// 2 kvm_entry (all vCPU 0) read; passed over: kvm_inj_exception 3 (#DB, #DB [reinjected],
    /// #UD), kvm_page_fault 2, kvm_emulate_insn 4 (2 tries, each "(prot32)" then "failed").
    @Test func realRawFiveFlagsNestedExits() throws {
        let path = Self.fixture("real/raw5_seanjc_l2_hlt_loop.txt")
        #expect(try TraceFormat.detect(path: path) == .ftrace)
        let r = try FtraceReader(path: path, vm: "l0")
        #expect(try Self.readAll(r).isEmpty)
        #expect(Self.figures(r) == Self.figureList())
        #expect(Self.skipped(r) == ["kvm_emulate_insn=4", "kvm_inj_exception=3", "kvm_page_fault=2"])
    }

    /// Raw trace, 5 flag characters, an L1 host with kvm and kvmmmu events (78 lines): 13
    /// kvm_exit and 12 kvm_entry read; passed over, counted in the file: kvm_tdp_mmu_spte_changed
    /// 8 + 6 = 14, kvm_mmu_prepare_zap_page 3 + 1 = 4, kvm_cr 3 (cr_write 0, 4, 4), kvm_cpuid 1,
    /// kvm_msr 3 (read c0000080, write c0000080, write c0000103), kvm_mmu_pagetable_walk 5,
    /// kvm_mmu_paging_element 3 + 4 * 4 = 19, kvm_emulate_insn 1, kvm_mmu_walker_error 2,
    /// kvm_inj_exception 1: 53.
    @Test func realRawKVMMMUEvents() throws {
        let path = Self.fixture("real/raw5_krause_cr0wp.txt")
        #expect(try TraceFormat.detect(path: path) == .ftrace)
        let r = try FtraceReader(path: path, vm: "l1")
        #expect(try Self.readAll(r).isEmpty)
        #expect(Self.figures(r) == Self.figureList())
        #expect(
            Self.skipped(r) == [
                "kvm_cpuid=1", "kvm_cr=3", "kvm_emulate_insn=1", "kvm_inj_exception=1", "kvm_mmu_pagetable_walk=5",
                "kvm_mmu_paging_element=19", "kvm_mmu_prepare_zap_page=4", "kvm_mmu_walker_error=2", "kvm_msr=3",
                "kvm_tdp_mmu_spte_changed=14",
            ])
    }

    // MARK: - Constructed from the documented formats

    /// Raw trace with record-tgid and 5 flags. Thread 4110 is vCPU 0 and 4111 vCPU 1 of VM 4100
    /// (their kvm_exit lines); they enter A = 0x12340000 (`nested_ept=n guest_cr3:`), B =
    /// 0x12341000, then 4110 enters B twice. The VMCLEAR exit is unresolved; the two-word reason
    /// on kvm_nested_vmexit is read. Thread 4205 `(-------)` goes to the `vm` name, vCPU 5 from
    /// its comm. Passed over: kvm_fpu, sched_switch.
    @Test func constructedRawTGIDNestedVMEnter() throws {
        let path = Self.fixture("constructed/raw_tgid_nested_vmenter.txt")
        #expect(try TraceFormat.detect(path: path) == .ftrace)
        let r = try FtraceReader(path: path, vm: "fallback")
        #expect(
            try Self.readAll(r) == [
                Self.ev(100_000_020_000, 0, 0, .enter, 0x1234_0000),
                Self.ev(100_000_040_000, 0, 1, .enter, 0x1234_1000),
                Self.ev(100_000_070_000, 0, 0, .enter, 0x1234_1000),
                Self.ev(100_000_080_000, 0, 0, .enter, 0x1234_1000),
                Self.ev(100_000_090_000, 1, 5, .enter, 0x5678_0000),
            ])
        #expect(r.registry.infos.map(\.id) == ["4100", "fallback"])
        #expect(Self.figures(r) == Self.figureList(unresolved: 1))
        #expect(Self.skipped(r) == ["kvm_fpu=1", "sched_switch=1"])
    }

    /// perf script (default fields), plugin loaded. Thread 5001 `CPU 0/KVM`: its kvm_exit has no
    /// vCPU, its kvm_entry (` vcpu 0 rip ...`, the plugin's) makes it vCPU 0. Thread 5004
    /// `CPU 3/KVM`: no vCPU before its first entry, so its comm gives 3; its CAN'T FIND FIELD
    /// kvm_nested_vmexit then says `vcpu 3` too. Entries: 5001 A, 5004 B, 5001 B, 5004 A
    /// (A = 0x23450000, B = 0x23451000). The plugin's `reason VMCLEAR` is unresolved. Passed over:
    /// kvm_nested_vmexit_inject, kvm_fpu, and `sched:sched_switch` (another system keeps it).
    @Test func constructedPerfScriptDefaultFields() throws {
        let path = Self.fixture("constructed/perf_script_default.txt")
        #expect(try TraceFormat.detect(path: path) == .ftrace)
        let r = try FtraceReader(path: path, vm: "perf0")
        #expect(
            try Self.readAll(r) == [
                Self.ev(300_000_020_000, 0, 0, .enter, 0x2345_0000),
                Self.ev(300_000_040_000, 0, 3, .enter, 0x2345_1000),
                Self.ev(300_000_070_000, 0, 0, .enter, 0x2345_1000),
                Self.ev(300_000_080_000, 0, 3, .enter, 0x2345_0000),
            ])
        #expect(r.registry.infos.map(\.id) == ["perf0"])
        #expect(Self.figures(r) == Self.figureList(unresolved: 1))
        #expect(Self.skipped(r) == ["kvm_fpu=1", "kvm_nested_vmexit_inject=1", "sched:sched_switch=1"])
    }

    /// perf script -F +pid: `PID/TID`, the pid names the VM. VM 7000: threads 7001 and 7002
    /// (`qemu-system-x86`, no vCPU source) are numbered 0 and 1 in order of first entry; VM 8000:
    /// thread 8001 `CPU 0/KVM` is vCPU 0 by its comm. 2 threads numbered.
    @Test func constructedPerfScriptPIDTID() throws {
        let path = Self.fixture("constructed/perf_script_pid_tid.txt")
        #expect(try TraceFormat.detect(path: path) == .ftrace)
        let r = try FtraceReader(path: path, vm: "unused")
        #expect(
            try Self.readAll(r) == [
                Self.ev(500_000_020_000, 0, 0, .enter, 0x3456_0000),
                Self.ev(500_000_030_000, 0, 1, .enter, 0x3456_1000),
                Self.ev(500_000_040_000, 0, 0, .enter, 0x3456_1000),
                Self.ev(500_000_050_000, 1, 0, .enter, 0x3456_0000),
            ])
        #expect(r.registry.infos.map(\.id) == ["7000", "8000"])
        #expect(Self.figures(r) == Self.figureList(numbered: 2))
        #expect(Self.skipped(r) == [])
    }

    /// trace-cmd report of an older SVM kernel with the plugin: kvm_entry ` vcpu 0 rip ...`
    /// makes thread 6200 vCPU 0 (its kvm_exit `reason EXIT_VMRUN ... info 0 0` has no vCPU);
    /// thread 6201 is vCPU 1 by its comm. kvm_nested_vmrun `vmcb:` entries: 6200 A, B, 6201 A,
    /// 6200 A (A = 0xa000000, B = 0xa001000); a change of VMCB on vCPU 0 clears the old one first
    /// (A before B, B before A); 6201's first VMCB needs none.
    @Test func constructedTraceCmdSVMPlugin() throws {
        let path = Self.fixture("constructed/tracecmd_svm_plugin.txt")
        #expect(try TraceFormat.detect(path: path) == .ftrace)
        let r = try FtraceReader(path: path, vm: "svm")
        #expect(
            try Self.readAll(r) == [
                Self.ev(600_000_030_000, 0, 0, .enter, 0xa00_0000),
                Self.ev(600_000_060_000, 0, 0, .clear, 0xa00_0000),
                Self.ev(600_000_060_000, 0, 0, .enter, 0xa00_1000),
                Self.ev(600_000_070_000, 0, 1, .enter, 0xa00_0000),
                Self.ev(600_000_080_000, 0, 0, .clear, 0xa00_1000),
                Self.ev(600_000_080_000, 0, 0, .enter, 0xa00_0000),
            ])
        #expect(Self.figures(r) == Self.figureList())
        #expect(Self.skipped(r) == ["kvm_nested_vmexit_inject=1"])
    }

    // MARK: - Figures across files

    /// Two files of one run: skipped events add up by name, and the sequence reports them; a
    /// native file alone reports none (nil: the member is left out of reports).
    @Test func skippedEventsAddUpAcrossFiles() throws {
        let a = Self.fixture("constructed/raw_tgid_nested_vmenter.txt")  // kvm_fpu 1, sched_switch 1
        let b = Self.fixture("constructed/perf_script_default.txt")  // kvm_fpu 1, kvm_nested_vmexit_inject 1, sched:sched_switch 1
        let s = TraceFileSequence(paths: [a, b], format: .auto, vm: "run", invalidLines: .fail)
        var batch: [Event] = []
        while try s.next(into: &batch, limit: 3) {}
        #expect(
            (s.skippedEvents ?? []).map { "\($0.name)=\($0.count)" } == [
                "kvm_fpu=2", "kvm_nested_vmexit_inject=1", "sched:sched_switch=1", "sched_switch=1",
            ])

        let native = try Self.temporary("native.trace", "# nestcache-trace v1\n1000 web0 3 load 0x1a2b3000\n")
        defer { try? FileManager.default.removeItem(atPath: native) }
        let n = TraceFileSequence(paths: [native], format: .auto, vm: nil, invalidLines: .fail)
        while try n.next(into: &batch, limit: 3) {}
        #expect(n.skippedEvents == nil)
    }
}
