import NestCacheCore

/// `nestcache report` (DESIGN §11): the review's questions (seed-review.txt) answered on one
/// workload, each with its numbers and a reading computed from them (`ReportReading`).
///
/// What it runs:
/// - **One pass over the stream** feeds `Bounds` (LRU hits for every K, both optima) and, through
///   `EngineTee`, an engine per policy: `map-per-entry`, `single`, `per-vcpu-lru:K`,
///   `per-vcpu-lru:R-1` (the table's capacity per vCPU) and `per-vm-table:R'` for every R' of
///   `ratios` (R among them). Standard input can be a trace: it is read once.
/// - **A sweep over L2:L1 ratios** (simulated or selftest workloads only; `Sweep`): peak mapped
///   pages and exposure of the caching policies as the number of L2 vCPUs grows.
/// Every figure is totalled over the stream's VMs (DESIGN §4 totals; bounds summed per VM).
public struct Report: Sendable {
    /// The per-vCPU LRU the review names (KVM's `prev_roots`: K = 3).
    public var k = 3
    /// The seed's contexts per L1 vCPU.
    public var r = 8
    /// K = 0..kmax of the LRU and per-vCPU optimum curves.
    public var kmax = 16
    /// R of the table and shared-optimum curve (R is added if missing).
    public var ratios = Bounds.defaultRatios
    /// L2:L1 ratios of the exposure sweep (workloads only).
    public var l2Ratios = Sweep.defaultRatios
    public var cost = CostModel.default
    public var pagesPerContext = 4
    /// Workers of the exposure sweep.
    public var jobs = 1

    public let input: Sweep.Input

    public init(input: Sweep.Input) { self.input = input }

    /// Section 1's line-up, without repeats: baseline, persistent mappings, the LRU the review
    /// names, the LRU of the table's capacity, the table.
    public var policies: [PolicySpec] {
        var out: [PolicySpec] = []
        for p in [PolicySpec.mapPerEntry, .single, .perVCPULRU(k: k), .perVCPULRU(k: r - 1), .perVMTable(contextsPerVCPU: r)]
        where !out.contains(p) { out.append(p) }
        return out
    }

    /// The caching policies of the exposure sweep.
    public var exposurePolicies: [PolicySpec] { policies.filter { $0 != .mapPerEntry } }

    /// The table's R values, R included, ascending.
    public var tableRatios: [Int] { Array(Set(ratios + [r])).sorted() }

    /// Checks the settings: K and R - 1 within kmax, everything in the policies' bounds.
    public func validate() throws(TraceError) {
        guard (1...PolicySpec.maxContextsPerVCPU).contains(r) else {
            throw SimulationSpec.usage("R must be from 1 to \(PolicySpec.maxContextsPerVCPU), got \(r)")
        }
        guard k >= 0, max(k, r - 1) <= kmax else {
            throw SimulationSpec.usage("K (\(k)) and R - 1 (\(r - 1)) must be from 0 to kmax (\(kmax))")
        }
        _ = try Bounds(kmax: kmax, ratios: tableRatios)
    }

    /// Runs everything and derives the readings.
    public func run() throws(TraceError) -> ReportData {
        try validate()
        let bounds = try Bounds(kmax: kmax, ratios: tableRatios)
        let tableSpecs = tableRatios.map { PolicySpec.perVMTable(contextsPerVCPU: $0) }
        var specs = policies
        for t in tableSpecs where !specs.contains(t) { specs.append(t) }

        let base: any EventSource
        var inputName: String
        switch input {
        case .files(let paths, let format, let vm, let invalidLines):
            base = TraceFileSequence(paths: paths, format: format, vm: vm, invalidLines: invalidLines)
            inputName = paths.joined(separator: " ")
        case .workload(let w):
            base = w.makeSource()
            inputName = w.description
        }
        let tee = EngineTee(base, engines: specs.map { $0.makeEngine(defaultPagesPerContext: pagesPerContext) })
        let b = try bounds.run(tee)
        tee.syncEngines()
        let stats = Dictionary(uniqueKeysWithValues: tee.engines.map { ($0.spec, $0.totals) })
        func totals(_ p: PolicySpec) -> StatsSnapshot { stats[p] ?? StatsSnapshot() }

        var data = ReportData(input: inputName, isWorkload: false, cost: cost, pagesPerContext: pagesPerContext, k: k, r: r)
        if case .workload = input { data.isWorkload = true }
        data.vms = b.vms.count
        data.switches = b.vms.reduce(0) { $0 + $1.switches }
        data.entries = totals(.mapPerEntry).counters.entries
        data.l1VCPUs = b.vms.reduce(0) { $0 + $1.l1VCPUs }
        data.policies = policies.map { ReportData.PolicyRow(policy: $0, stats: totals($0), cost: cost) }
        data.lruHits = (0...kmax).map { k in b.vms.reduce(0) { $0 + $1.lruHits[k] } }
        data.optVCPUHits = (0...kmax).map { k in b.vms.reduce(0) { $0 + $1.optVCPUHits[k] } }
        data.ratios = b.ratios
        data.tableHits = tableSpecs.map { totals($0).counters.hits }
        data.optVMHits = b.ratios.indices.map { i in b.vms.reduce(0) { $0 + $1.optVMHits[i] } }
        data.figures = tee.figures
        data.warnings = tee.warnings
        data.skippedEvents = tee.skippedEvents

        // Break-even of every policy but the baselines against each baseline.
        data.breakEven = data.policies.compactMap { row in
            ReportData.BreakEvenRow(row, single: data.policies.first { $0.policy == .single },
                                    mapPerEntry: data.policies.first { $0.policy == .mapPerEntry }, cost: cost)
        }

        data.exposure = try exposureRows(tracePolicies: data.policies)
        data.readings = ReportReading.readings(data)
        return data
    }

    /// Section 3's rows: a sweep over L2:L1 ratios for a workload; the trace's own figures
    /// (one row per policy, no ratio) for trace files.
    func exposureRows(tracePolicies: [ReportData.PolicyRow]) throws(TraceError) -> [ReportData.ExposureRow] {
        guard case .workload(let w) = input else {
            return tracePolicies.filter { $0.policy != .mapPerEntry }.map {
                ReportData.ExposureRow(ratio: nil, l1VCPUs: nil, l2VCPUs: nil, policy: $0.policy,
                                       peakMappedPages: $0.peakMappedPages, exposure: $0.exposure, boundPages: nil)
            }
        }
        let sweep = try Sweep(input: .workload(w), ratios: l2Ratios, policies: exposurePolicies, pagesPerContext: pagesPerContext)
        let result = try sweep.run(jobs: jobs)
        let p = UInt64(w.pagesPerContext ?? pagesPerContext)
        return result.rows.map { row in
            // What a policy can ever keep mapped, whatever the ratio: its contexts (plus, for the
            // table, one fallback per vCPU for uncached switches), P pages each.
            let bound = row.l1VCPUs.map { UInt64(row.policy.maxMappedContextsPerVCPU) * UInt64($0) * p }
            return ReportData.ExposureRow(
                ratio: row.ratio, l1VCPUs: row.l1VCPUs, l2VCPUs: row.l2VCPUs, policy: row.policy,
                peakMappedPages: row.stats.gauges.peakMappedPages, exposure: row.stats.exposure, boundPages: bound)
        }
    }
}

extension WorkloadSpec {
    /// P declared by the workload, if any.
    public var pagesPerContext: Int? {
        switch self {
        case .simulate(let s): s.pagesPerContext
        case .selftest(let s): s.pagesPerContext
        }
    }
}

/// A source that applies every batch it hands out to its engines too, so one read of a stream
/// (standard input included) feeds `Bounds` and the engines. A class: `Bounds.run` copies its
/// source, and the engines must outlive the copy.
final class EngineTee: EventSource {
    private var base: any EventSource
    private(set) var engines: [any PolicyEngine]

    init(_ base: any EventSource, engines: [any PolicyEngine]) {
        self.base = base
        self.engines = engines
    }

    var registry: VMRegistry { base.registry }
    var figures: [(name: String, value: UInt64)] { base.figures }
    var warnings: [String] { base.warnings }
    var skippedEvents: EventCounts? { base.skippedEvents }

    func next(into batch: inout [Event], limit: Int) throws(TraceError) -> Bool {
        let more = try base.next(into: &batch, limit: limit)
        if more {
            let registry = base.registry
            batch.withUnsafeBufferPointer { events in
                for i in engines.indices { engines[i].apply(events, registry: registry) }
            }
        }
        return more
    }

    /// Creates the engines' state of VMs declared without events (as `Replay.drive` does).
    func syncEngines() {
        let registry = base.registry
        for i in engines.indices { engines[i].sync(with: registry) }
    }
}

/// Everything `nestcache report` shows, in every output form.
public struct ReportData: Sendable {
    /// One policy of section 1.
    public struct PolicyRow: Sendable, Equatable {
        public var policy: PolicySpec
        public var switches: UInt64
        public var hits: UInt64
        public var entries: UInt64
        public var mapPages: UInt64
        public var unmapPages: UInt64
        public var peakMappedPages: UInt64
        public var exposure: Double?
        public var hitRatio: Double?
        /// `(map_pages + unmap_pages) * 1000 / entries` (nil without entries).
        public var pagesPer1kEntries: Double?
        public var overheadNsPerEntry: Double?
        /// Overhead per entry as a line in the map+unmap cost (nil without entries).
        public var line: BreakEven.Line?

        init(policy: PolicySpec, stats s: StatsSnapshot, cost: CostModel) {
            self.policy = policy
            let c = s.counters
            switches = c.switches
            hits = c.hits
            entries = c.entries
            mapPages = c.mapPages
            unmapPages = c.unmapPages
            peakMappedPages = s.gauges.peakMappedPages
            exposure = s.exposure
            hitRatio = s.hitRatio
            pagesPer1kEntries = CompareReport.perEntry((Double(c.mapPages) + Double(c.unmapPages)) * 1000, c.entries)
            overheadNsPerEntry = CompareReport.perEntry(s.overheadNs(cost), c.entries)
            line = BreakEven.line(s, cost: cost)
        }
    }

    /// One policy of section 4 against both baselines.
    public struct BreakEvenRow: Sendable, Equatable {
        public var policy: PolicySpec
        /// Saving per entry at the model's cost, ns; nil where the baseline is the policy itself
        /// or has no entries.
        public var savingOverSingle: Double?
        public var savingOverMapPerEntry: Double?
        public var overSingle: BreakEven.Outcome?
        public var overMapPerEntry: BreakEven.Outcome?

        /// Nil for the baselines' own rows that have nothing to compare (map-per-entry).
        init?(_ row: PolicyRow, single: PolicyRow?, mapPerEntry: PolicyRow?, cost: CostModel) {
            guard row.policy != .mapPerEntry, let line = row.line else { return nil }
            policy = row.policy
            let c = BreakEven.modelCost(cost)
            if row.policy != .single, let b = single?.line {
                savingOverSingle = BreakEven.saving(of: line, over: b, atCost: c)
                overSingle = BreakEven.cost(of: line, over: b)
            }
            if let b = mapPerEntry?.line {
                savingOverMapPerEntry = BreakEven.saving(of: line, over: b, atCost: c)
                overMapPerEntry = BreakEven.cost(of: line, over: b)
            }
        }
    }

    /// One (L2:L1 ratio, policy) of section 3.
    public struct ExposureRow: Sendable, Equatable {
        public var ratio: Int?
        public var l1VCPUs: Int?
        public var l2VCPUs: Int?
        public var policy: PolicySpec
        public var peakMappedPages: UInt64
        public var exposure: Double?
        /// The most pages the policy can ever keep mapped at this size (workloads only).
        public var boundPages: UInt64?
    }

    public var input: String
    /// A simulated or selftest workload (else trace files).
    public var isWorkload: Bool
    public var cost: CostModel
    public var pagesPerContext: Int
    public var k: Int
    public var r: Int
    public var vms = 0
    /// Σ M over the VMs.
    public var l1VCPUs = 0
    public var switches: UInt64 = 0
    public var entries: UInt64 = 0
    public var policies: [PolicyRow] = []
    /// K = 0..kmax.
    public var lruHits: [UInt64] = []
    public var optVCPUHits: [UInt64] = []
    /// R of the table, ascending; `tableHits` and `optVMHits` in that order.
    public var ratios: [Int] = []
    public var tableHits: [UInt64] = []
    public var optVMHits: [UInt64] = []
    public var exposure: [ExposureRow] = []
    public var breakEven: [BreakEvenRow] = []
    public var readings = ReportReading.Readings()
    public var figures: [(name: String, value: UInt64)] = []
    public var warnings: [String] = []
    public var skippedEvents: EventCounts?

    init(input: String, isWorkload: Bool, cost: CostModel, pagesPerContext: Int, k: Int, r: Int) {
        self.input = input
        self.isWorkload = isWorkload
        self.cost = cost
        self.pagesPerContext = pagesPerContext
        self.k = k
        self.r = r
    }

    public var kmax: Int { lruHits.count - 1 }

    /// `hits / switches`, nil without switches.
    public func ratio(_ hits: UInt64) -> Double? { switches == 0 ? nil : Double(hits) / Double(switches) }

    public func row(_ p: PolicySpec) -> PolicyRow? { policies.first { $0.policy == p } }
}
