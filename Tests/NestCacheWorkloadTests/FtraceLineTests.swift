import Foundation
import NestCacheCore
import Testing

@testable import NestCacheWorkload

/// One line at a time, each edge case of the layouts of DESIGN §5: prefixes (flags of 4, 5 or
/// none; tgid column or not; perf script's `COMM TID` and `COMM PID/TID` with comms holding
/// spaces, dashes and digits) and bodies (the KVM plugin's rewrites and errors, lower-case SVM
/// reasons, two-word VMX reasons). Bodies are the kernel's or the plugin's formats; expected
/// values are read off each line by hand.
@Suite struct FtraceLineTests {
    /// What a line parses to, as text: `record PID TGID 'COMM' TIME EVENT`, `skipped NAME`,
    /// `invalid MESSAGE`, `ignored`, `lost N`.
    static func describe(_ line: String) -> String {
        var copy = line
        return copy.withUTF8 { l in
            switch FtraceLine.parse(l) {
            case .ignored: return "ignored"
            case .lost(let n): return "lost \(n.map(String.init) ?? "?")"
            case .invalid(let m): return "invalid \(m)"
            case .skipped(let name): return "skipped " + String(decoding: UnsafeBufferPointer(rebasing: l[name]), as: UTF8.self)
            case .record(let r):
                let tgid: String
                switch r.tgid {
                case .absent: tgid = "-"
                case .unknown: tgid = "?"
                case .known(let t): tgid = "\(t)"
                }
                let event: String
                switch r.event {
                case .vcpuHint(let v, let isVMClear): event = "vcpu=\(v.map(String.init) ?? "nil")\(isVMClear ? " VMCLEAR" : "")"
                case .enter(let g, let isVMCB): event = "enter \(isVMCB ? "vmcb" : "vmcs") \(g)"
                case .evmcsEnter: event = "evmcs"
                }
                let comm = String(decoding: UnsafeBufferPointer(rebasing: l[r.comm]), as: UTF8.self)
                return "record \(r.pid) \(tgid) '\(comm)' \(r.timeNs) \(event)"
            }
        }
    }

    static let exitBody = "vcpu 0 reason VMPTRLD rip 0xffffffffc0a1b2c3 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000"

    // MARK: - ftrace prefixes

    @Test(arguments: [
        // 5 flags (migrate-disable), 4 flags (older kernels), none (irq-info off, trace-cmd)
        ("       CPU 0/KVM-4110    [002] d....   100.000010: kvm_exit: \(exitBody)", "record 4110 - 'CPU 0/KVM' 100000010000 vcpu=0"),
        ("       CPU 0/KVM-4110    [002] d...   100.000010: kvm_exit: \(exitBody)", "record 4110 - 'CPU 0/KVM' 100000010000 vcpu=0"),
        ("       CPU 0/KVM-4110    [002]   100.000010: kvm_exit: \(exitBody)", "record 4110 - 'CPU 0/KVM' 100000010000 vcpu=0"),
        // tgid column: known, unknown
        ("       CPU 0/KVM-4110    (   4100) [002] d....   100.000010: kvm_exit: \(exitBody)", "record 4110 4100 'CPU 0/KVM' 100000010000 vcpu=0"),
        ("       CPU 0/KVM-4110    (-------) [002] d..2.   100.000010: kvm_exit: \(exitBody)", "record 4110 ? 'CPU 0/KVM' 100000010000 vcpu=0"),
        // trace-cmd report: padded name, nanoseconds
        ("       CPU 0/KVM-48213 [000] d....  5123.004211: kvm_exit:            \(exitBody)", "record 48213 - 'CPU 0/KVM' 5123004211000 vcpu=0"),
        ("       CPU 0/KVM-700   [001]    77.123456789: kvm_exit:            \(exitBody)", "record 700 - 'CPU 0/KVM' 77123456789 vcpu=0"),
        // a comm ending in digits and dashes keeps them; the pid is after the last '-'
        ("     qemu-2-vcpu-9001    [002] .....   100.000002: kvm_entry: vcpu 2, rip 0x1", "record 9001 - 'qemu-2-vcpu' 100000002000 vcpu=2"),
        // flags of 3 characters fit no form
        ("       CPU 0/KVM-100     [000] ...     9.000090: kvm_exit: vcpu 0 reason VMRESUME", "invalid expected latency flags (4 or 5 characters) or 'SECONDS.MICROS:' after the CPU column, got '...     9.000090: kvm_exit: vcpu 0 reaso…'"),
    ])
    func ftracePrefix(_ line: String, _ expected: String) {
        #expect(Self.describe(line) == expected)
    }

    // MARK: - perf script prefixes

    @Test(arguments: [
        // default fields: comm with a space, tid where the pid stands, event with its system,
        // name right-aligned (bugzilla 220549)
        ("      CPU 0/KVM  699876 [020] 18136.763647:                      kvm:kvm_entry: vcpu 0, rip 0xfffff8489b64142c", "record 699876 - 'CPU 0/KVM' 18136763647000 vcpu=0"),
        // a comm of several words with digits and a dash
        ("  my qemu-2 vcpu 7   12345 [003]  1234.567890:  kvm:kvm_exit: reason VMCLEAR rip 0x1 info 0 0", "record 12345 - 'my qemu-2 vcpu 7' 1234567890000 vcpu=nil VMCLEAR"),
        // -F +pid: PID/TID, the pid as the tgid
        ("  qemu-system-x86    7000/7001    [000]   500.000010:           kvm:kvm_exit: reason VMLAUNCH rip 0x1 info 0 0", "record 7001 7000 'qemu-system-x86' 500000010000 vcpu=nil"),
        // --ns
        ("       CPU 1/KVM    4242 [001]    12.123456789: kvm:kvm_entry:  vcpu 1 rip 0xffffffff81036706", "record 4242 - 'CPU 1/KVM' 12123456789 vcpu=1"),
        // a thread id without a comm (perf prints one always) fits no form
        ("                   12345 [001]    12.123456: kvm:kvm_entry: vcpu 1", "invalid expected an ftrace event line 'COMM-PID [CPU] SECONDS.MICROS: EVENT: ...', got '                   12345 [001]    12.123…'"),
        // an eVMCS entry
        ("      CPU 0/KVM  699876 [020] 18136.763652:             kvm:kvm_nested_vmenter: rip: 0xfffff8489b641308 vmcs: 0xffffffffffffffff nested_rip: 0xfffff8031964b2b6 int_ctl: 0x00000000 event_inj: 0x80000081 nested_ept=y nested_eptp: 0x00000001019a701e", "record 699876 - 'CPU 0/KVM' 18136763652000 evmcs"),
        // no blank between the tid and the CPU column fits no form
        ("      CPU 0/KVM  699876[020] 18136.763647: kvm:kvm_entry: vcpu 0", "invalid expected an ftrace event line 'COMM-PID [CPU] SECONDS.MICROS: EVENT: ...', got '      CPU 0/KVM  699876[020] 18136.76364…'"),
    ])
    func perfPrefix(_ line: String, _ expected: String) {
        #expect(Self.describe(line) == expected)
    }

    // MARK: - Event names

    @Test(arguments: [
        ("       CPU 0/KVM-48213 [000] .....  5123.004215: kvm_msr:             msr_read 10 = 0x0", "skipped kvm_msr"),
        // an unused event with a body no used event would take is passed over, not checked
        ("      CPU 0/KVM  699876 [020] 18136.763644:       kvm:kvm_nested_vmexit_inject: reason EXTERNAL_INTERRUPT info1 0 info2 0 int_info 80000081 int_info_err 0", "skipped kvm_nested_vmexit_inject"),
        ("       CPU 3/KVM    5004 [005]   300.000075:         sched:sched_switch: prev_comm=CPU 3/KVM prev_pid=5004 ==> next_comm=swapper/5", "skipped sched:sched_switch"),
        // an event of another system with a KVM event's name is not that event
        ("       CPU 3/KVM    5004 [005]   300.000075:  probe:kvm_exit: (ffffffffc0a1b2c3)", "skipped probe:kvm_exit"),
        ("       CPU 0/KVM-8100    [000] .....   500.000040: kernel_stack: <stack trace>", "skipped kernel_stack"),
        ("       CPU 0/KVM-8100    [000] .....   500.000040: <stack trace>", "ignored"),
    ])
    func eventNames(_ line: String, _ expected: String) {
        #expect(Self.describe(line) == expected)
    }

    // MARK: - Bodies of the used events

    static let p = "           <...>-315119 [010]  3733.092646: "

    @Test(arguments: [
        // kvm_exit: the plugin's form has no vCPU; its VMCLEAR still counts
        ("kvm_exit: reason VMCLEAR rip 0xffffffff81050a00 info 0 0", "vcpu=nil VMCLEAR"),
        ("kvm_exit: reason EXIT_NPF rip 0xffffffffffbbe119 info 200000006 1ab000", "vcpu=nil"),
        ("kvm_exit: reason UNKNOWN (99) rip 0x1 info 0 0", "vcpu=nil"),
        // lower-case SVM reasons, two-word VMX reasons
        ("kvm_exit: vcpu 0 reason npf rip 0x400433 info1 0x0000000200000006 info2 0x0000000000641000 intr_info 0x00000000 error_code 0x00000000", "vcpu=0"),
        ("kvm_exit: vcpu 112 reason shutdown rip 0xffffffff81070574 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x80000b08 error_code 0x00000000", "vcpu=112"),
        ("kvm_nested_vmexit: vcpu 12 reason INVALID_STATE FAILED_VMENTRY rip 0x103c00 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000", "vcpu=12"),
        ("kvm_nested_vmexit: vcpu 0 reason VMCLEAR rip 0x1 info1 0x0 info2 0x0 intr_info 0x00000000 error_code 0x00000000", "vcpu=0"),
        // the plugin's field errors, then the kernel's body
        ("kvm_nested_vmexit:    CAN'T FIND FIELD \"rip\"<CANT FIND FIELD exit_code>vcpu 0 reason npf rip 0x400433 info1 0x0000000200000006 info2 0x0000000000641000 intr_info 0x00000000 error_code 0x00000000", "vcpu=0"),
        ("kvm_nested_vmexit: CAN'T FIND FIELD \"rip\"vcpu 2 reason EPT_VIOLATION rip 0x1", "vcpu=2"),
        ("kvm_exit: CAN'T FIND FIELD \"guest_rip\" vcpu 1 reason VMCLEAR rip 0x1 info1 0x0", "vcpu=1 VMCLEAR"),
        // kvm_nested_vmexit of older kernels, and the plugin's rewrite of it
        ("kvm_nested_vmexit: rip: 0x0000000000400010 reason: npf ext_inf1: 0x0000000000000006 ext_inf2: 0x0000000000001000 ext_int: 0x00000000 ext_int_err: 0x00000000", "vcpu=nil"),
        ("kvm_nested_vmexit:    rip 400433 reason EXIT_NPF info1 200000006 info2 641000 int_info 0 int_info_err 0", "vcpu=nil"),
        // kvm_entry: kernel (with and without ", rip") and the plugin's " vcpu N rip"
        ("kvm_entry: vcpu 0, rip 0xfffff8489b64142c", "vcpu=0"),
        ("kvm_entry:  vcpu 1 rip 0xffffffff81036706", "vcpu=1"),
        ("kvm_entry: vcpu 20", "vcpu=20"),
        // entries: vmcs with guest_cr3 (nested EPT off), vmcb of kvm_nested_vmrun
        ("kvm_nested_vmenter: rip: 0xffffffffa0213d01 vmcs: 0x0000000012340000 nested_rip: 0x0000000000401000 int_ctl: 0x00000000 event_inj: 0x00000000 nested_ept=n guest_cr3: 0x0000000001007000", "enter vmcs 0x12340000"),
        ("kvm_nested_vmrun:     rip: 0xffffffffa0688ffa vmcb: 0x0000000103594000 nrip: 0xffffffff814b3b01 int_ctl: 0x01000001 event_inj: 0x80000036 npt: on", "enter vmcb 0x103594000"),
    ])
    func usedBodies(_ body: String, _ expected: String) {
        #expect(Self.describe(Self.p + body) == "record 315119 - '<...>' 3733092646000 \(expected)")
    }

    @Test(arguments: [
        ("kvm_exit: reason", "kvm_exit: expected 'vcpu N reason ...' or 'reason ...', got 'reason'"),
        ("kvm_exit: rip 0x1 info 0 0", "kvm_exit: expected 'vcpu N reason ...' or 'reason ...', got 'rip 0x1 info 0 0'"),
        ("kvm_nested_vmexit: rip zz reason EXIT_NPF", "kvm_nested_vmexit: expected 'rip HEX reason ...', got 'rip zz reason EXIT_NPF'"),
        ("kvm_nested_vmexit: rip: 400433 reason: npf", "kvm_nested_vmexit: expected 'rip: 0x... reason: ...', got 'rip: 400433 reason: npf'"),
        ("kvm_nested_vmexit: CAN'T FIND FIELD \"rip\"<CANT FIND FIELD exit_code>", "kvm_nested_vmexit: expected 'vcpu N reason ...' or 'rip: 0x... reason: ...', got ''"),
        ("kvm_entry: CAN'T FIND FIELD \"vcpu_id\"", "kvm_entry: expected 'vcpu N', got ''"),
    ])
    func badUsedBodies(_ body: String, _ message: String) {
        #expect(Self.describe(Self.p + body) == "invalid \(message)")
    }

    // MARK: - Detection

    @Test func detectionTakesEveryLayout() {
        let perf = "      CPU 0/KVM  699876 [020] 18136.763647:                      kvm:kvm_entry: vcpu 0, rip 0xfffff8489b64142c"
        #expect(FtraceReader.looksLikeFtrace(firstLines: ["# ========", "# captured on    : Mon Sep  8 2025", perf]))
        #expect(FtraceReader.looksLikeFtrace(firstLines: ["  qemu-system-x86    7000/7001    [000]   500.000010: kvm:kvm_exit: reason VMLAUNCH"]))
        #expect(FtraceReader.looksLikeFtrace(firstLines: ["CPU:0 [LOST 7 EVENTS]"]))
        #expect(FtraceReader.looksLikeFtrace(firstLines: ["CPU 3 is empty", "           <...>-315119 [010]  3733.092646: kvm_nested_vmexit:    CAN'T FIND FIELD"]))
        // the native format, and lines that only look alike, are not ftrace
        #expect(!FtraceReader.looksLikeFtrace(firstLines: ["1000 web0 3 load 0x1000"]))
        #expect(!FtraceReader.looksLikeFtrace(firstLines: ["web0 12 [3] load 0x1000"]))
        #expect(!FtraceReader.looksLikeFtrace(firstLines: ["CPU 3 is empty"]))
    }
}
