import NestCacheCore

/// The switch sequences of DESIGN §11, read off a stream of events: the switches of §2, in event
/// order, as (vCPU, GPA) pairs, the same under every policy.
///
/// Only what decides a switch is kept: each vCPU's current control block. A `load` or `enter` of
/// `g` on `v` is a switch unless `g` is `v`'s current; a `clear` of `v`'s current leaves `v` with
/// none (KVM's `handle_vmclear`), so the next `load`/`enter` of that GPA is a switch again:
///
///     v0 load a, v0 enter a, v0 load b, v0 clear b, v0 load b
///        switch     -           switch     -           switch
///
/// Each VM's GPAs are interned as they first appear: a *key* numbers them across all VMs (what
/// the spilled sequence stores, 4 bytes; `vmOfKey` gives the VM back), and `localOfKey` numbers
/// them within their VM (what the per-VM structures index their arrays with, so that each VM's
/// memory is bounded by its own GPAs).
///
/// - Complexity: O(1) expected per event (one `GPAMap` lookup per switch). Memory O(vCPUs) per VM
///   and 8 bytes of arrays plus one `GPAMap` slot per distinct GPA.
struct SwitchSequence {
    struct VM {
        /// Per vCPU index: its current control block, `GPA.none` for none.
        var current: [GPA] = []
        var isSeen: [Bool] = []
        /// Distinct vCPU indices in any event of the VM (`M` when none is declared).
        var seenVCPUs = 0
        var switches: UInt64 = 0
        /// GPA -> its key.
        var keys = GPAMap()
    }

    private(set) var vms: [VM] = []
    /// Per key: the VM and its index among that VM's GPAs.
    private(set) var vmOfKey: [UInt32] = []
    private(set) var localOfKey: [UInt32] = []

    /// Switches so far, over all VMs.
    private(set) var count: UInt64 = 0

    var keyCount: Int { vmOfKey.count }

    /// Applies one event. A switch returns its key; anything else returns nil.
    /// Throws only when the keys would not fit in 32 bits (more distinct GPAs than memory holds).
    @inline(__always)
    mutating func apply(_ e: Event) throws(TraceError) -> UInt32? {
        let vm = Int(e.vm)
        if vm >= vms.count { vms.append(contentsOf: repeatElement(VM(), count: vm + 1 - vms.count)) }
        let v = Int(e.vcpu)
        if v >= vms[vm].current.count {
            let n = v + 1 - vms[vm].current.count
            vms[vm].current.append(contentsOf: repeatElement(.none, count: n))
            vms[vm].isSeen.append(contentsOf: repeatElement(false, count: n))
        }
        if !vms[vm].isSeen[v] {
            vms[vm].isSeen[v] = true
            vms[vm].seenVCPUs += 1
        }
        switch e.op {
        case .clear:
            if vms[vm].current[v] == e.gpa { vms[vm].current[v] = .none }
            return nil
        case .load, .enter:
            if vms[vm].current[v] == e.gpa { return nil }
            vms[vm].current[v] = e.gpa
            vms[vm].switches &+= 1
            count &+= 1
            return try key(of: e.gpa, in: vm)
        }
    }

    /// The key of `gpa` in VM `vm`, interned on first sight.
    @inline(__always)
    mutating func key(of gpa: GPA, in vm: Int) throws(TraceError) -> UInt32 {
        if let key = vms[vm].keys.value(for: gpa) { return UInt32(truncatingIfNeeded: key) }
        guard vmOfKey.count < Int(Int32.max) else {
            throw TraceError(.io, file: "", "more than 2^31 distinct control-block GPAs: cannot number them")
        }
        let key = Int32(vmOfKey.count)
        vmOfKey.append(UInt32(vm))
        localOfKey.append(UInt32(vms[vm].keys.count))
        vms[vm].keys.updateValue(key, for: gpa)
        return UInt32(key)
    }

    /// Distinct GPAs switched to in VM `vm`.
    func distinctGPAs(_ vm: Int) -> Int { vm < vms.count ? vms[vm].keys.count : 0 }
}

/// One switch as `nestcache bounds` spills it: the GPA's key and the vCPU (8 bytes).
struct SwitchRecord: BitwiseCopyable {
    var key: UInt32
    var vcpu: UInt16
}

/// One switch with its next uses (DESIGN §11's optimum needs them), spilled by the backward pass
/// (24 bytes). A next use is the index of the next switch to the same GPA in the whole stream's
/// switch sequence (every VM's switches interleaved: the order within each VM is what matters),
/// or `UInt64.max` for never.
struct FutureRecord: BitwiseCopyable {
    /// The next switch of the same vCPU to the same GPA.
    var nextOnVCPU: UInt64
    /// The next switch of any vCPU of the VM to the same GPA.
    var nextInVM: UInt64
    var key: UInt32
    var vcpu: UInt16

    static let never = UInt64.max
}
