import NestCacheCore

/// DESIGN §2-3 written the straightforward way: classes, `Dictionary`, `Array`, one function per
/// rule, no attention to speed.
///
/// Two uses: the tests' second opinion (a differential oracle for every counter of the fast
/// engine) and the benchmarks' baseline ("a straightforward Dictionary/Array implementation").
/// It shares only the value types of `NestCacheCore` (`Counters`, `PolicySpec`, `Event`).
public final class ReferenceModel {
    final class Context {
        var mappedFor: UInt64?
        /// per-vm-table: the GPA it is filed under; per-vcpu-lru: the GPA of its slot.
        var key: UInt64?
        /// per-vm-table: attached vCPU, nil when detached.
        var owner: Int?
        init() {}
    }

    final class VM {
        let declaredVCPUs: Int?
        let pages: UInt64
        var seen = Set<Int>()
        var current: [Int: UInt64] = [:]
        var active: [Int: Context] = [:]
        var lastSwitcher: [UInt64: Int] = [:]
        var counters: [Int: Counters] = [:]
        var contexts: [Context] = []
        var table: [UInt64: Context] = [:]
        var freeList: [Context] = []
        var lru: [Int: [Context]] = [:]
        var entryMapped = Set<Int>()
        var peak: UInt64 = 0
        var mappedContexts: UInt64 = 0

        init(declaredVCPUs: Int?, pages: UInt64) {
            self.declaredVCPUs = declaredVCPUs
            self.pages = pages
        }
    }

    public let spec: PolicySpec
    let defaultPages: Int
    var vms: [Int32: VM] = [:]

    public init(spec: PolicySpec, defaultPagesPerContext: Int = 4) {
        precondition(Self.covers(spec.kind), "ReferenceModel has no rules for \(spec.kind)")
        self.spec = spec
        self.defaultPages = defaultPagesPerContext
    }

    public func apply(_ e: Event, registry: VMRegistry) {
        let info = registry[e.vm]
        let vm = vms[e.vm] ?? {
            let vm = VM(declaredVCPUs: info.l1VCPUs, pages: UInt64(info.pagesPerContext ?? defaultPages))
            vms[e.vm] = vm
            return vm
        }()
        apply(vm, vcpu: Int(e.vcpu), op: e.op, gpa: e.gpa.raw)
    }

    func apply(_ vm: VM, vcpu v: Int, op: TraceOp, gpa g: UInt64) {
        vm.seen.insert(v)
        var c = vm.counters[v] ?? Counters()
        c.events += 1
        if spec == .mapPerEntry, vm.entryMapped.contains(v) {
            vm.entryMapped.remove(v)
            c.unmapPages += vm.pages
        }
        switch op {
        case .load, .enter:
            if op == .load { c.loads += 1 } else { c.entries += 1 }
            if vm.current[v] != g {
                c.switches += 1
                let migration = vm.lastSwitcher[g].map { $0 != v } ?? false
                vm.lastSwitcher[g] = v
                if migration { c.migrations += 1 }
                switch policySwitch(vm, v, g) {
                case .hit(let stole):
                    c.hits += 1
                    if stole { c.steals += 1 }
                    if migration { c.migrationHits += 1 }
                case .alloc: c.misses += 1; c.allocs += 1
                case .recycle: c.misses += 1; c.recycles += 1
                case .uncached: c.misses += 1; c.uncached += 1
                }
                vm.current[v] = g
            }
            if op == .enter { entry(vm, v, g, &c) }
        case .clear:
            c.clears += 1
            if vm.current[v] == g { vm.current[v] = nil }
            if spec.kind == .perVMTable, let ctx = vm.table[g], ctx.owner != nil {
                ctx.owner = nil
                vm.freeList.append(ctx)
            }
        }
        vm.counters[v] = c
        vm.peak = max(vm.peak, mappedPages(vm))
    }

    func entry(_ vm: VM, _ v: Int, _ g: UInt64, _ c: inout Counters) {
        if spec.kind == .mapPerEntry {
            vm.entryMapped.insert(v)
            c.mapPages += vm.pages
            return
        }
        let ctx = vm.active[v] ?? {
            let ctx = Context()
            vm.contexts.append(ctx)
            vm.active[v] = ctx
            return ctx
        }()
        if ctx.mappedFor == g { return }
        if ctx.mappedFor != nil { c.unmapPages += vm.pages } else { vm.mappedContexts += 1 }
        c.mapPages += vm.pages
        ctx.mappedFor = g
    }

    func policySwitch(_ vm: VM, _ v: Int, _ g: UInt64) -> SwitchOutcome {
        switch spec.kind {
        case .mapPerEntry:
            return .uncached
        case .single:
            return lruSwitch(vm, v, g, ways: 1)
        case .perVCPULRU:
            return lruSwitch(vm, v, g, ways: spec.parameter + 1)
        case .perVMTable:
            let r = spec.parameter
            if let ctx = vm.table[g] {
                let stole = ctx.owner != nil && ctx.owner != v
                if ctx.owner == nil { vm.freeList.removeAll { $0 === ctx } }
                ctx.owner = v
                vm.active[v] = ctx
                return .hit(stole: stole)
            }
            let capacity = r * (vm.declaredVCPUs ?? vm.seen.count)
            if vm.table.count < capacity {
                let ctx = Context()
                vm.contexts.append(ctx)
                ctx.key = g
                ctx.owner = v
                vm.table[g] = ctx
                vm.active[v] = ctx
                return .alloc
            }
            if !vm.freeList.isEmpty {
                let ctx = vm.freeList.removeFirst()
                if let old = ctx.key { vm.table[old] = nil }
                ctx.key = g
                ctx.owner = v
                vm.table[g] = ctx
                vm.active[v] = ctx
                return .recycle
            }
            return .uncached
        default:
            preconditionFailure("ReferenceModel has no rules for \(spec.kind): write them (PolicyKind's checklist)")
        }
    }

    /// Whether this model has rules for `kind` (a policy added to the registry needs them).
    public static func covers(_ kind: PolicyKind) -> Bool {
        [PolicyKind.mapPerEntry, .single, .perVCPULRU, .perVMTable].contains(kind)
    }

    func lruSwitch(_ vm: VM, _ v: Int, _ g: UInt64, ways: Int) -> SwitchOutcome {
        var list = vm.lru[v] ?? []
        defer {
            vm.lru[v] = list
            vm.active[v] = list.first
        }
        if let i = list.firstIndex(where: { $0.key == g }) {
            list.insert(list.remove(at: i), at: 0)
            return .hit(stole: false)
        }
        if list.count < ways {
            let ctx = Context()
            ctx.key = g
            vm.contexts.append(ctx)
            list.insert(ctx, at: 0)
            return .alloc
        }
        let ctx = list.removeLast()
        ctx.key = g
        list.insert(ctx, at: 0)
        return .recycle
    }

    func mappedPages(_ vm: VM) -> UInt64 {
        if spec.kind == .mapPerEntry { return UInt64(vm.entryMapped.count) * vm.pages }
        return vm.mappedContexts * vm.pages
    }

    // MARK: - Reading

    /// Counters summed over the VM's vCPUs and its gauges, as the fast engine reports them.
    public func snapshot(vm index: Int32) -> StatsSnapshot {
        var s = StatsSnapshot()
        guard let vm = vms[index] else { return s }
        for c in vm.counters.values { s.counters += c }
        s.gauges.contexts = UInt64(vm.contexts.count)
        s.gauges.free = UInt64(vm.freeList.count)
        s.gauges.mappedPages = mappedPages(vm)
        s.gauges.peakMappedPages = vm.peak
        return s
    }

    public func vcpuCounters(vm index: Int32, vcpu: Int) -> Counters {
        vms[index]?.counters[vcpu] ?? Counters()
    }
}
