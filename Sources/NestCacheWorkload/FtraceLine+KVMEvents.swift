import NestCacheCore

/// The bodies of the KVM events `FtraceReader` uses, in the layouts of arch/x86/kvm/trace.h
/// across kernel versions and as libtraceevent's KVM plugin (plugins/plugin_kvm.c, loaded by
/// `trace-cmd report` and `perf script`) rewrites them (DESIGN §5). Bodies reach these functions
/// with the plugin's `CAN'T FIND FIELD` errors already skipped (`pluginErrorsSkipped`).
///
/// Only what the reader needs is checked: the `vcpu N` where there is one, `reason R` of
/// `kvm_exit` (R = VMCLEAR is counted), the `vmcs:`/`vmcb:` GPA of an entry. The rest of a body
/// (rip, info, an exit reason of two words such as `INVALID_STATE FAILED_VMENTRY`, lower-case SVM
/// reasons) is not read.
extension FtraceLine {
    /// `kvm_exit`:
    /// - `vcpu %u reason %s%s%s rip 0x%lx info1 ...` (TRACE_EVENT_KVM_EXIT, Linux 5.9+);
    /// - `reason %s rip 0x%lx info %llx %llx` (older kernels, and the plugin's rewrite of every
    ///   version: `reason VMCLEAR rip 0x... info 0 0`, SVM reasons as `EXIT_NPF`), no vCPU.
    static func exitBody(_ l: UnsafeBufferPointer<UInt8>, _ body: Range<Int>) -> Parsed {
        var t = token(l, from: body.lowerBound)
        var vcpu: UInt16?
        if equals(l, t, "vcpu") {
            switch vcpuNumber(l, token(l, from: t.upperBound), event: "kvm_exit") {
            case .success(let v): vcpu = v
            case .failure(let e): return .invalid(e.message)
            }
            t = token(l, from: token(l, from: t.upperBound).upperBound)
        }
        let reason = token(l, from: t.upperBound)
        guard equals(l, t, "reason"), !reason.isEmpty else {
            return .invalid("kvm_exit: expected 'vcpu N reason ...' or 'reason ...', got \(Bytes.quote(rest(l, body.lowerBound)))")
        }
        return record(.vcpuHint(vcpu: vcpu, isVMClear: equals(l, reason, "VMCLEAR")))
    }

    /// `kvm_entry`: `vcpu %u, rip 0x%lx` (newer kernels), ` vcpu %u rip 0x%llx` (the plugin) or
    /// `vcpu %u` (older kernels).
    static func entryBody(_ l: UnsafeBufferPointer<UInt8>, _ body: Range<Int>) -> Parsed {
        let t = token(l, from: body.lowerBound)
        guard equals(l, t, "vcpu") else {
            return .invalid("kvm_entry: expected 'vcpu N', got \(Bytes.quote(rest(l, body.lowerBound)))")
        }
        switch vcpuNumber(l, token(l, from: t.upperBound), event: "kvm_entry") {
        case .success(let v): return record(.vcpuHint(vcpu: v, isVMClear: false))
        case .failure(let e): return .invalid(e.message)
        }
    }

    /// `kvm_nested_vmexit`:
    /// - `vcpu %u reason %s...` (TRACE_EVENT_KVM_EXIT, Linux 5.9+; also what follows the plugin's
    ///   `CAN'T FIND FIELD "rip"<CANT FIND FIELD exit_code>` on those kernels);
    /// - `rip: 0x%016llx reason: %s ...` (older kernels), no vCPU;
    /// - `rip %llx reason %s ...` (the plugin on older kernels: hex without `0x`), no vCPU.
    static func nestedExitBody(_ l: UnsafeBufferPointer<UInt8>, _ body: Range<Int>) -> Parsed {
        let t = token(l, from: body.lowerBound)
        if equals(l, t, "rip:") || equals(l, t, "rip") {
            let colon = t.count == 4
            let value = token(l, from: t.upperBound)
            let field = UnsafeBufferPointer(rebasing: l[value])
            let reason = token(l, from: value.upperBound)
            guard colon ? Bytes.hex0x(field) != nil : isHex(field),
                colon ? equals(l, reason, "reason:") : equals(l, reason, "reason")
            else {
                return .invalid("kvm_nested_vmexit: expected '\(colon ? "rip: 0x... reason: ..." : "rip HEX reason ...")', got \(Bytes.quote(rest(l, body.lowerBound)))")
            }
            return record(.vcpuHint(vcpu: nil, isVMClear: false))
        }
        guard equals(l, t, "vcpu") else {
            return .invalid("kvm_nested_vmexit: expected 'vcpu N reason ...' or 'rip: 0x... reason: ...', got \(Bytes.quote(rest(l, body.lowerBound)))")
        }
        switch vcpuNumber(l, token(l, from: t.upperBound), event: "kvm_nested_vmexit") {
        case .success(let v): return record(.vcpuHint(vcpu: v, isVMClear: false))
        case .failure(let e): return .invalid(e.message)
        }
    }

    /// 1 to 16 hex digits without `0x` (the plugin's `%llx`).
    static func isHex(_ s: UnsafeBufferPointer<UInt8>) -> Bool {
        guard !s.isEmpty, s.count <= 16 else { return false }
        return s.allSatisfy { isDigit($0) || ($0 | 0x20) &- UInt8(ascii: "a") < 6 }
    }

    /// `rip: 0x%016llx vmcs|vmcb: 0x%016llx nested_rip: ...` (kvm_nested_vmenter, newer kernels) or
    /// `rip: 0x%016llx vmcb: 0x%016llx nrip: ...` (kvm_nested_vmrun, SVM only, older kernels).
    static func enterBody(_ l: UnsafeBufferPointer<UInt8>, _ body: Range<Int>, event: String) -> Parsed {
        var t = token(l, from: body.lowerBound)
        while !t.isEmpty {
            let isVMCS = equals(l, t, "vmcs:")
            if isVMCS || equals(l, t, "vmcb:") {
                let v = token(l, from: t.upperBound)
                guard let raw = Bytes.hex0x(UnsafeBufferPointer(rebasing: l[v])) else {
                    return .invalid("\(event): expected '\(isVMCS ? "vmcs" : "vmcb"): 0x...' with 1 to 16 hex digits, got \(Bytes.quote(UnsafeBufferPointer(rebasing: l[v])))")
                }
                if isVMCS, raw == evmcsSentinel { return record(.evmcsEnter) }
                let gpa = GPA(raw)
                guard gpa.isValid else {
                    return .invalid("\(event): GPA \(gpa) is not a 4 KiB-aligned address below 2^52")
                }
                return record(.enter(gpa, isVMCB: !isVMCS))
            }
            t = token(l, from: t.upperBound)
        }
        return .invalid("\(event): expected 'vmcs: 0x...' or 'vmcb: 0x...', got \(Bytes.quote(rest(l, body.lowerBound)))")
    }

    struct FieldError: Error { var message: String }

    /// The `N` of `vcpu N` (a trailing ',' allowed), below `VCPULimit.count`.
    static func vcpuNumber(_ l: UnsafeBufferPointer<UInt8>, _ t: Range<Int>, event: String) -> Result<UInt16, FieldError> {
        var r = t
        if !r.isEmpty, l[r.upperBound - 1] == UInt8(ascii: ",") { r = r.lowerBound..<(r.upperBound - 1) }
        let field = UnsafeBufferPointer(rebasing: l[r])
        guard let v = Bytes.decimal(field) else {
            return .failure(FieldError(message: "\(event): expected 'vcpu N' with a decimal N, got \(Bytes.quote(field))"))
        }
        guard v < UInt64(VCPULimit.count) else {
            return .failure(FieldError(message: "\(event): vcpu \(v) is out of range (must be below \(VCPULimit.count))"))
        }
        return .success(UInt16(v))
    }

    @inline(__always)
    static func record(_ e: KVMEvent) -> Parsed {
        .record(Record(pid: 0, tgid: .absent, comm: 0..<0, timeNs: 0, event: e))
    }

    /// The `N` of a comm `CPU N/KVM` (QEMU's vCPU thread name), any size; nil for other comms.
    static func commVCPU(_ l: UnsafeBufferPointer<UInt8>, _ comm: Range<Int>) -> UInt64? {
        guard matches(l, at: comm.lowerBound, "CPU ") else { return nil }
        let d = digits(l, from: comm.lowerBound + 4)
        guard !d.isEmpty, d.upperBound + 4 == comm.upperBound, matches(l, at: d.upperBound, "/KVM") else { return nil }
        return Bytes.decimal(UnsafeBufferPointer(rebasing: l[d]))
    }
}
