/// `per-vcpu-lru:K`, like KVM's pgd cache (`prev_roots`, K = 3 upstream); `single` is K = 0.
///
/// Each vCPU caches for itself: at most K+1 contexts, most recently switched first; slot 0 is
/// the active one. With K = 3:
///
///     hit on g in slot 2:   [a b g c] -> [g a b c]
///     miss, list full:      [a b c d] -> [d' a b c]   d' = d refiled under g; it maps d's GPA
///                                                     until the next entry remaps it
///     miss, room left:      [a b]     -> [n a b]      n = new, unmapped
///
/// VMCLEAR does nothing here: the list is a pure LRU of switch targets (DESIGN §3).
public struct PerVCPULRU: ContextPolicy {
    /// Previous contexts kept besides the active one.
    public let k: Int
    let ways: Int

    /// Row `v` is `gpas[v*ways ..< v*ways + count[v]]`, most recent first; `ids` alike.
    var gpas: [GPA] = []
    var ids: [Int32] = []
    var count: [Int32] = []

    public init(k: Int = 3) {
        precondition(k >= 0)
        self.k = k
        self.ways = k + 1
    }

    /// - Complexity: O(K): a linear scan and shift of one vCPU's row, as KVM's `prev_roots` loop.
    public mutating func switchTo(_ gpa: GPA, on vcpu: VCPU, active: inout Int32, in vm: inout VMState) -> SwitchOutcome {
        if vcpu >= count.count { growRows(to: vcpu) }
        let base = vcpu &* ways
        let n = Int(count[vcpu])
        var i = 0
        while i < n, gpas[base &+ i] != gpa { i &+= 1 }

        let outcome: SwitchOutcome
        let c: Int32
        if i < n {
            c = ids[base &+ i]
            outcome = .hit(stole: false)
        } else if n < ways {
            c = vm.newContext()
            count[vcpu] = Int32(n &+ 1)
            outcome = .alloc
        } else {
            i = n &- 1
            c = ids[base &+ i]
            outcome = .recycle
        }
        // Shift slots 0 ..< i down by one and put (gpa, c) in front.
        var j = i
        while j > 0 {
            gpas[base &+ j] = gpas[base &+ j &- 1]
            ids[base &+ j] = ids[base &+ j &- 1]
            j &-= 1
        }
        gpas[base] = gpa
        ids[base] = c
        active = c
        return outcome
    }

    public mutating func clear(_ gpa: GPA, on vcpu: VCPU, in vm: inout VMState) {}

    mutating func growRows(to vcpu: VCPU) {
        let rows = vcpu + 1 - count.count
        count.append(contentsOf: repeatElement(0, count: rows))
        gpas.append(contentsOf: repeatElement(.none, count: rows * ways))
        ids.append(contentsOf: repeatElement(-1, count: rows * ways))
    }

    /// vCPU `v`'s row, most recent first.
    public func row(_ v: VCPU) -> [(gpa: GPA, context: Int32)] {
        guard v < count.count else { return [] }
        return (0..<Int(count[v])).map { (gpas[v * ways + $0], ids[v * ways + $0]) }
    }

    public func checkInvariants(_ vm: VMState) {
        var all = Set<Int32>()
        for v in count.indices {
            let row = row(v)
            precondition(row.count <= ways, "per-vcpu-lru:\(k): vCPU \(v) holds \(row.count) > \(ways)\n\(self)")
            precondition(Set(row.map(\.gpa)).count == row.count, "per-vcpu-lru:\(k): vCPU \(v) files a GPA twice\n\(self)")
            for (_, c) in row {
                precondition(c >= 0 && Int(c) < vm.mappedFor.count, "per-vcpu-lru:\(k): vCPU \(v) holds unknown context \(c)")
                precondition(all.insert(c).inserted, "per-vcpu-lru:\(k): context \(c) in two rows\n\(self)")
            }
            if let front = row.first {
                precondition(vm.vcpus[v].active == front.context, "per-vcpu-lru:\(k): vCPU \(v) active \(vm.vcpus[v].active), front \(front.context)\n\(self)")
            }
        }
        precondition(all.count == vm.mappedFor.count, "per-vcpu-lru:\(k): \(vm.mappedFor.count) contexts, \(all.count) in rows")
    }
}

extension PerVCPULRU: CustomStringConvertible {
    public var description: String {
        count.indices.map { v in
            "  vCPU \(v): [" + row(v).map { "\($0.gpa)=ctx\($0.context)" }.joined(separator: " ") + "]"
        }.joined(separator: "\n")
    }
}

// MARK: - Registry

extension PolicyKind {
    public static let perVCPULRU = PolicyKind(
        name: "per-vcpu-lru",
        parameter: .init(letter: "K", meaning: "previous contexts per vCPU", range: 0...PolicySpec.maxK, defaultValue: 3),
        shortName: "lru", policy: PerVCPULRU.self,
        maxMappedContextsPerVCPU: { k in k + 1 },
        makeEngine: { spec, pages in
            PerVCPULRUEngine(engine: Engine(spec: spec, prototype: PerVCPULRU(k: spec.parameter), defaultPagesPerContext: pages))
        },
        makeShard: { spec, info, pages in LRUShard(k: spec.parameter, pagesPerContext: UInt64(info.pagesPerContext ?? pages)) })

    /// `single`: `per-vcpu-lru:0` under its own name, the simplest cache there is.
    public static let single = PolicyKind(
        name: "single", parameter: nil, shortName: "single", policy: PerVCPULRU.self,
        maxMappedContextsPerVCPU: { _ in 1 },
        makeEngine: { spec, pages in
            PerVCPULRUEngine(engine: Engine(spec: spec, prototype: PerVCPULRU(k: 0), defaultPagesPerContext: pages))
        },
        makeShard: { _, info, pages in LRUShard(k: 0, pagesPerContext: UInt64(info.pagesPerContext ?? pages)) })
}

extension PolicySpec {
    /// `per-vcpu-lru:K`, K from 0 to `maxK`.
    public static func perVCPULRU(k: Int) -> PolicySpec {
        precondition((0...maxK).contains(k), "per-vcpu-lru:\(k)")
        return PolicySpec(kind: .perVCPULRU, parameter: k)
    }

    public static let single = PolicySpec(kind: .single, parameter: 0)
}

/// `per-vcpu-lru:K`'s and `single`'s engine (`ConcreteEngine`).
struct PerVCPULRUEngine: ConcreteEngine { var engine: Engine<PerVCPULRU> }
