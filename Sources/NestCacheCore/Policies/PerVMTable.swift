/// `per-vm-table:R`, the seed's nested context table (DESIGN §3).
///
/// Per VM, a hash table GPA -> context with capacity `C = R * M`, and a free list of the
/// contexts whose control block was VMCLEARed, oldest first. A context is *attached* to the vCPU
/// that last switched to it, or *detached* on the free list; switching away does not detach (a
/// VMCS stays active on its CPU until VMCLEAR).
///
///     switch to g, g filed:        hit; detached -> leaves the free list; attached to another
///                                  vCPU -> taken over (a steal, the kernel WARNs)
///     switch to g, not filed:
///       table < C                  alloc a new, unmapped context
///       free list non-empty        recycle its head: the old GPA leaves the table, the context
///                                  keeps its old mapping until its next entry
///       else                       uncached: nothing changes; the vCPU's next entry remaps its
///                                  active context, still filed under its old GPA
///     clear g, g filed + attached  detach to the tail of the free list (any owner: the kernel
///                                  does not check it); mappings stay
///
/// A stolen context stays the active context of the vCPU it was taken from until that vCPU
/// switches again: DESIGN §2 changes a vCPU's active context only through its own switches.
public struct PerVMTable: ContextPolicy {
    /// Contexts per L1 vCPU: the patch hard-codes 8.
    public let contextsPerVCPU: Int

    var table = GPAMap()
    /// Per context id: the GPA it is filed under (`.none`: not in the table, e.g. a fallback).
    var key: [GPA] = []
    /// Per context id: the vCPU it is attached to, or -1 when detached or not in the table.
    var owner: [Int32] = []
    /// The free list, doubly linked through context ids so a hit can unlink from its middle.
    var prev: [Int32] = []
    var next: [Int32] = []
    var freeHead: Int32 = -1
    var freeTail: Int32 = -1
    public private(set) var freeCount = 0

    public init(contextsPerVCPU: Int = 8) {
        precondition(contextsPerVCPU >= 1)
        self.contextsPerVCPU = contextsPerVCPU
    }

    /// `C = R * M`, M as the VM knows it now (KVM reads `online_vcpus` at every load).
    @inline(__always)
    public func capacity(_ vm: VMState) -> Int { contextsPerVCPU &* vm.l1VCPUs }

    public mutating func switchTo(_ gpa: GPA, on vcpu: VCPU, active: inout Int32, in vm: inout VMState) -> SwitchOutcome {
        let v = Int32(truncatingIfNeeded: vcpu)
        if let c = table.value(for: gpa) {
            let o = owner[Int(c)]
            if o < 0 { unlinkFree(c) }
            owner[Int(c)] = v
            active = c
            return .hit(stole: o >= 0 && o != v)
        }
        if table.count < capacity(vm) {
            let c = vm.newContext()
            grow(to: c)
            file(c, under: gpa, attachedTo: v)
            active = c
            return .alloc
        }
        let c = freeHead
        guard c >= 0 else { return .uncached }
        unlinkFree(c)
        table.removeValue(for: key[Int(c)])
        file(c, under: gpa, attachedTo: v)
        active = c
        return .recycle
    }

    public mutating func clear(_ gpa: GPA, on vcpu: VCPU, in vm: inout VMState) {
        guard let c = table.value(for: gpa), owner[Int(c)] >= 0 else { return }
        owner[Int(c)] = -1
        appendFree(c)
    }

    // MARK: - Context records and the free list

    @inline(__always)
    mutating func file(_ c: Int32, under gpa: GPA, attachedTo v: Int32) {
        key[Int(c)] = gpa
        owner[Int(c)] = v
        table.updateValue(c, for: gpa)
    }

    /// Extends the per-context arrays to cover id `c` (ids of fallbacks get inert records).
    @inline(__always)
    mutating func grow(to c: Int32) {
        let n = Int(c) + 1 - key.count
        guard n > 0 else { return }
        key.append(contentsOf: repeatElement(.none, count: n))
        owner.append(contentsOf: repeatElement(-1, count: n))
        prev.append(contentsOf: repeatElement(-1, count: n))
        next.append(contentsOf: repeatElement(-1, count: n))
    }

    @inline(__always)
    mutating func appendFree(_ c: Int32) {
        prev[Int(c)] = freeTail
        next[Int(c)] = -1
        if freeTail >= 0 { next[Int(freeTail)] = c } else { freeHead = c }
        freeTail = c
        freeCount &+= 1
    }

    @inline(__always)
    mutating func unlinkFree(_ c: Int32) {
        let p = prev[Int(c)]
        let n = next[Int(c)]
        if p >= 0 { next[Int(p)] = n } else { freeHead = n }
        if n >= 0 { prev[Int(n)] = p } else { freeTail = p }
        prev[Int(c)] = -1
        next[Int(c)] = -1
        freeCount &-= 1
    }

    /// The free list, head (next to recycle) first.
    public var freeList: [Int32] {
        var out: [Int32] = []
        var c = freeHead
        while c >= 0, out.count <= key.count {
            out.append(c)
            c = next[Int(c)]
        }
        return out
    }

    // MARK: - Invariants

    public func checkInvariants(_ vm: VMState) {
        table.checkInvariants()
        precondition(table.count <= capacity(vm), "per-vm-table: \(table.count) filed > capacity \(capacity(vm))\n\(self)")
        precondition(key.count <= vm.mappedFor.count, "per-vm-table: records for contexts that do not exist\n\(self)")
        for (gpa, c) in table.pairs {
            precondition(key[Int(c)] == gpa, "per-vm-table: \(gpa) maps to context \(c) filed under \(key[Int(c)])\n\(self)")
        }
        let free = freeList
        precondition(free.count == freeCount, "per-vm-table: free list has \(free.count), counted \(freeCount)\n\(self)")
        var onFreeList = Set<Int32>()
        var last: Int32 = -1
        for c in free {
            precondition(onFreeList.insert(c).inserted, "per-vm-table: context \(c) twice on the free list\n\(self)")
            precondition(owner[Int(c)] < 0, "per-vm-table: free context \(c) attached to \(owner[Int(c)])\n\(self)")
            precondition(key[Int(c)] != .none, "per-vm-table: free context \(c) not in the table\n\(self)")
            precondition(prev[Int(c)] == last, "per-vm-table: broken back link at \(c)\n\(self)")
            last = c
        }
        precondition(last == freeTail, "per-vm-table: free tail \(freeTail), list ends at \(last)\n\(self)")
        var filedCount = 0
        for c in key.indices where key[c] != .none {
            filedCount += 1
            precondition(table.value(for: key[c]) == Int32(c), "per-vm-table: context \(c) filed under \(key[c]) not found there\n\(self)")
            let o = owner[c]
            precondition(o >= 0 || onFreeList.contains(Int32(c)), "per-vm-table: context \(c) neither attached nor free\n\(self)")
            precondition(o < Int32(vm.vcpus.count), "per-vm-table: context \(c) attached to unknown vCPU \(o)\n\(self)")
        }
        precondition(filedCount == table.count, "per-vm-table: \(filedCount) records filed, table holds \(table.count)\n\(self)")
    }
}

extension PerVMTable: CustomStringConvertible {
    /// The table and free list, for invariant failures.
    public var description: String {
        let rows = key.indices.filter { key[$0] != .none }.map { c in
            "  ctx \(c) <- \(key[c]) " + (owner[c] >= 0 ? "attached to vCPU \(owner[c])" : "detached")
        }
        return "per-vm-table:\(contextsPerVCPU) filed=\(table.count) free=\(freeList)\n" + rows.joined(separator: "\n")
    }
}

// MARK: - Registry

extension PolicyKind {
    public static let perVMTable = PolicyKind(
        name: "per-vm-table",
        parameter: .init(letter: "R", meaning: "contexts per L1 vCPU", range: 1...PolicySpec.maxContextsPerVCPU, defaultValue: 8),
        shortName: "table", policy: PerVMTable.self,
        // R per vCPU in the table, plus a fallback per vCPU for uncached switches.
        maxMappedContextsPerVCPU: { r in r + 1 },
        makeEngine: { spec, pages in
            PerVMTableEngine(engine: Engine(spec: spec, prototype: PerVMTable(contextsPerVCPU: spec.parameter), defaultPagesPerContext: pages))
        },
        // The table, its free list and steals are the VM's: one lock for all its vCPUs.
        makeShard: nil)
}

extension PolicySpec {
    /// `per-vm-table:R`, R from 1 to `maxContextsPerVCPU`.
    public static func perVMTable(contextsPerVCPU r: Int) -> PolicySpec {
        precondition((1...maxContextsPerVCPU).contains(r), "per-vm-table:\(r)")
        return PolicySpec(kind: .perVMTable, parameter: r)
    }
}

/// `per-vm-table:R`'s engine (`ConcreteEngine`).
struct PerVMTableEngine: ConcreteEngine { var engine: Engine<PerVMTable> }
