import NestCacheCore

/// `nestcache bounds` (DESIGN §11): per VM, from its switch sequence, the hits of
/// `per-vcpu-lru:K` for every K = 0..kmax, and the most hits any cache could get knowing the
/// future, per vCPU with K + 1 contexts (`opt_vcpu_hits`) and shared by the VM's vCPUs with
/// R · M contexts (`opt_vm_hits`).
///
/// Three passes, exact integers, memory bounded per distinct GPA (and per vCPU index) whatever
/// the trace's length:
///
///  1. **Forward, reading the stream** (`SwitchSequence`): the switches of every VM, each
///     counted in its VM's `LRUStackDistance` (all of `lru_hits` at once), and appended as a
///     (GPA key, vCPU) record to a `SpillFile` (8 bytes each; on disk past 256 Ki switches).
///  2. **Backward over those records**: each switch's next use, on its vCPU and in its VM, from
///     the last index seen per (GPA, vCPU) and per GPA: a map entry per distinct pair, nothing
///     per switch. Written, last switch first, to a second spill file (24 bytes each).
///  3. **Backward over that** (so forward in time): per VM one `BeladyStack` (all of
///     `opt_vcpu_hits` at once) and one `BeladyCache` per ratio R.
///
/// Knowing the next use is what the optimum needs; computing it takes the whole sequence, hence
/// the spill files rather than memory proportional to the trace. A stream of up to 256 Ki
/// switches never touches the disk.
///
/// - Complexity: time O(events + switches · (kmax + |ratios| · log(R · M))) plus the passes'
///   I/O; memory O(distinct (GPA, vCPU) pairs + vCPU indices · kmax + Σ min(R · M, GPAs)) plus
///   two chunks of records.
public struct Bounds: Sendable {
    public static let defaultKMax = 16
    public static let defaultRatios = [1, 2, 4, 8, 16]

    /// The deepest K: `lru_hits` and `opt_vcpu_hits` have kmax + 1 entries.
    public let kmax: Int
    /// Contexts per L1 vCPU of the shared cache, ascending, without repeats.
    public let ratios: [Int]

    /// Records kept in memory before spilling, and per chunk once spilled (tests force spills).
    var memoryRecords = 1 << 18
    var chunkRecords = 1 << 16
    /// Tests: check every structure's invariants after every switch.
    var checksInvariants = false

    /// `kmax` from 0 to `PolicySpec.maxK`; ratios from 1 to `PolicySpec.maxContextsPerVCPU`
    /// (the bounds of `per-vcpu-lru:K` and `per-vm-table:R`), at least one; they are sorted and
    /// repeats dropped. Out of range: a `.usage` error.
    public init(kmax: Int = Bounds.defaultKMax, ratios: [Int] = Bounds.defaultRatios) throws(TraceError) {
        guard (0...PolicySpec.maxK).contains(kmax) else {
            throw SimulationSpec.usage("--kmax must be an integer from 0 to \(PolicySpec.maxK), got \(kmax)")
        }
        guard !ratios.isEmpty else { throw SimulationSpec.usage("--ratios: give at least one ratio") }
        for r in ratios where !(1...PolicySpec.maxContextsPerVCPU).contains(r) {
            throw SimulationSpec.usage("--ratios: a ratio R must be an integer from 1 to \(PolicySpec.maxContextsPerVCPU), got \(r)")
        }
        self.kmax = kmax
        self.ratios = Array(Set(ratios)).sorted()
    }

    /// Parses `1,2,4` (spaces around items allowed) for `init`.
    public static func parseRatios(_ text: some StringProtocol) throws(TraceError) -> [Int] {
        var out: [Int] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let t = item.trimmingSpaces
            guard let r = Int(t), (1...PolicySpec.maxContextsPerVCPU).contains(r) else {
                throw SimulationSpec.usage("--ratios: expected integers from 1 to \(PolicySpec.maxContextsPerVCPU) separated by commas, got '\(t)' in '\(text)'")
            }
            out.append(r)
        }
        return out
    }

    /// Reads `source` to its end and computes the bounds of every VM it names (VMs declared
    /// without events included). `source` is read once; errors are the source's, or `.io` for
    /// the spill files.
    public func run(_ source: some EventSource) throws(TraceError) -> BoundsResult {
        var source = source
        var sequence = SwitchSequence()
        var lru: [LRUStackDistance] = []
        let futures: SpillFile<FutureRecord>
        let spilled: Bool
        do {
            let switches = try readSwitches(&source, &sequence, &lru)
            spilled = switches.isSpilled
            futures = try nextUses(switches, sequence)
            // The forward records (and their file) go with this scope.
        }
        let registry = source.registry
        let m = (0..<registry.count).map { vm in
            registry.infos[vm].l1VCPUs ?? (vm < sequence.vms.count ? sequence.vms[vm].seenVCPUs : 0)
        }
        let (stacks, caches) = try optima(futures, sequence, m: m)

        var vms: [BoundsResult.VM] = []
        for vm in StatsReport.sortedVMIndices(registry, count: registry.count).map(Int.init) {
            let switchCount = vm < sequence.vms.count ? sequence.vms[vm].switches : 0
            let lruHits = vm < lru.count ? lru[vm].hits : Array(repeating: 0, count: kmax + 1)
            vms.append(BoundsResult.VM(
                id: registry.infos[vm].id, switches: switchCount, l1VCPUs: m[vm],
                lruHits: lruHits, optVCPUHits: stacks[vm].hits, optVMHits: caches[vm].map(\.hits)))
        }
        return BoundsResult(kmax: kmax, ratios: ratios, vms: vms, spilled: spilled)
    }

    private var label: String { "nestcache bounds" }

    /// Pass 1: the switch sequences, counted in each VM's LRU stack on the way, as records.
    func readSwitches<Source: EventSource>(
        _ source: inout Source, _ sequence: inout SwitchSequence, _ lru: inout [LRUStackDistance]
    ) throws(TraceError) -> SpillFile<SwitchRecord> {
        let switches = SpillFile<SwitchRecord>(label: label, memoryRecords: memoryRecords, chunkRecords: chunkRecords)
        var batch: [Event] = []
        batch.reserveCapacity(Replay.batchSize)
        while try source.next(into: &batch, limit: Replay.batchSize) {
            for e in batch {
                guard let key = try sequence.apply(e) else { continue }
                let vm = Int(e.vm)
                if vm >= lru.count {
                    lru.append(contentsOf: repeatElement(LRUStackDistance(kmax: kmax), count: vm + 1 - lru.count))
                }
                lru[vm].access(key, on: Int(e.vcpu))
                if checksInvariants { lru[vm].checkInvariants() }
                try switches.append(SwitchRecord(key: key, vcpu: e.vcpu))
            }
        }
        return switches
    }

    /// Pass 2: each switch's next uses, from the last switch back; the result reads back first
    /// switch first. `lastOnVCPU` is keyed by key << 16 | vCPU: one entry per distinct pair.
    func nextUses(_ switches: SpillFile<SwitchRecord>, _ sequence: SwitchSequence) throws(TraceError) -> SpillFile<FutureRecord> {
        let futures = SpillFile<FutureRecord>(label: label, memoryRecords: memoryRecords, chunkRecords: chunkRecords)
        var lastInVM = [UInt64](repeating: FutureRecord.never, count: sequence.keyCount)
        var lastOnVCPU: [UInt64: UInt64] = [:]
        var index = sequence.count
        try switches.forEachReversed { (r: SwitchRecord) throws(TraceError) in
            index -= 1
            let inVM = lastInVM[Int(r.key)]
            lastInVM[Int(r.key)] = index
            let onVCPU = lastOnVCPU.updateValue(index, forKey: UInt64(r.key) << 16 | UInt64(r.vcpu)) ?? FutureRecord.never
            try futures.append(FutureRecord(nextOnVCPU: onVCPU, nextInVM: inVM, key: r.key, vcpu: r.vcpu))
        }
        precondition(index == 0, "bounds: \(index) switches not read back")
        return futures
    }

    /// Pass 3: the optimum, forwards in time: per VM one OPT stack (every K) and one heap per R.
    func optima(
        _ futures: SpillFile<FutureRecord>, _ sequence: SwitchSequence, m: [Int]
    ) throws(TraceError) -> (stacks: [BeladyStack], caches: [[BeladyCache]]) {
        var stacks = Array(repeating: BeladyStack(kmax: kmax), count: m.count)
        var caches = m.indices.map { vm in
            ratios.map { r in BeladyCache(capacity: r * m[vm], keys: sequence.distinctGPAs(vm)) }
        }
        var index: UInt64 = 0
        try futures.forEachReversed { (r: FutureRecord) throws(TraceError) in
            let vm = Int(sequence.vmOfKey[Int(r.key)])
            let local = sequence.localOfKey[Int(r.key)]
            stacks[vm].access(local, nextUse: r.nextOnVCPU, at: index, on: Int(r.vcpu))
            for c in caches[vm].indices { caches[vm][c].access(local, nextUse: r.nextInVM) }
            if checksInvariants {
                stacks[vm].checkInvariants()
                for c in caches[vm] { c.checkInvariants() }
            }
            index += 1
        }
        return (stacks, caches)
    }
}

/// What `Bounds.run` found, VMs sorted by id.
public struct BoundsResult: Sendable, Equatable {
    public struct VM: Sendable, Equatable {
        public var id: String
        public var switches: UInt64
        /// `M`: declared, else the distinct vCPU indices of the VM's whole stream.
        public var l1VCPUs: Int
        /// K = 0..kmax.
        public var lruHits: [UInt64]
        /// K = 0..kmax.
        public var optVCPUHits: [UInt64]
        /// In the order of `ratios`.
        public var optVMHits: [UInt64]
    }

    public var kmax: Int
    public var ratios: [Int]
    public var vms: [VM]
    /// Whether the switch sequence went to temporary files (more than fit in memory).
    public var spilled: Bool
}
