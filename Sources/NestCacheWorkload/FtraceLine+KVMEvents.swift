import NestCacheCore

/// The bodies of the KVM events `FtraceReader` uses, in the layouts of arch/x86/kvm/trace.h
/// across kernel versions (DESIGN §5).
extension FtraceLine {
    /// `vcpu %u reason %s...` (newer kernels), or `reason %s rip 0x%lx info %llx %llx` (older kernels).
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
        guard equals(l, t, "reason") else {
            return .invalid("kvm_exit: expected 'vcpu N reason ...' or 'reason ...', got \(Bytes.quote(rest(l, body.lowerBound)))")
        }
        let reason = token(l, from: t.upperBound)
        return record(.vcpuHint(vcpu: vcpu, isVMClear: equals(l, reason, "VMCLEAR")))
    }

    /// `vcpu %u, rip 0x%lx` (newer kernels) or `vcpu %u` (older).
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

    /// `vcpu %u reason %s...` (TRACE_EVENT_KVM_EXIT, newer kernels) or `rip: 0x%016llx reason: %s ...`.
    static func nestedExitBody(_ l: UnsafeBufferPointer<UInt8>, _ body: Range<Int>) -> Parsed {
        let t = token(l, from: body.lowerBound)
        if equals(l, t, "rip:") { return record(.vcpuHint(vcpu: nil, isVMClear: false)) }
        guard equals(l, t, "vcpu") else {
            return .invalid("kvm_nested_vmexit: expected 'vcpu N reason ...' or 'rip: 0x... reason: ...', got \(Bytes.quote(rest(l, body.lowerBound)))")
        }
        switch vcpuNumber(l, token(l, from: t.upperBound), event: "kvm_nested_vmexit") {
        case .success(let v): return record(.vcpuHint(vcpu: v, isVMClear: false))
        case .failure(let e): return .invalid(e.message)
        }
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
