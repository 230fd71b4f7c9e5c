import Dispatch
import NestCacheCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `nestcache sweep`: the data the patch review asked for (seed-review.txt). Several policies
/// over one stream — recorded traces, or a simulated workload at several L2:L1 ratios — one row
/// per (ratio, policy).
///
/// Streams. Trace files are one stream (no ratio). A workload is one stream per ratio `r`:
/// a simulated VM gets `l2_vcpus = r * l1_vcpus` (every other setting as given, seed included);
/// a selftest preset gets `n = r` (it has one L1 vCPU). Out-of-range results are `.usage` errors
/// naming the ratio.
///
/// Parallelism. The work is cut into tasks, each one stream and a group of its policies: every
/// task generates (or reads) its stream from the start on its own, so nothing is shared but the
/// spec, and each row depends only on its stream and policy: rows and their order are the same
/// for every `jobs` and every schedule. With `jobs = 1` there is one task per stream (each stream
/// is made once, all its policies fed together, as `compare` does). With more jobs each stream's
/// policies are split into `g` groups, `g` chosen by `groupsPerStream(jobs:)` to finish first
/// by a simple cost estimate: more groups balance the workers better, but each one makes its
/// stream again (one large trace with 2 jobs: read twice, not once per policy; 6 ratios with 2
/// jobs: each made once). Workers take the next task, largest groups first, until none is left;
/// rows are assembled in task order; the first error, in task order, is thrown.
///
/// - Complexity: time O(streams · g · events + streams · policies · events) over `jobs` workers;
///   memory: one batch and one set of engines per running task.
public struct Sweep: Sendable {
    /// Where the stream comes from.
    public enum Input: Sendable {
        /// Trace files read in order as one stream (`TraceFileSequence`).
        case files(paths: [String], format: TraceFileSequence.Format, vm: String?, invalidLines: InvalidLinePolicy)
        /// A simulated or selftest workload, swept over L2:L1 ratios.
        case workload(WorkloadSpec)
    }

    /// One stream of the sweep.
    public struct Stream: Sendable, Equatable {
        /// The L2:L1 ratio; nil for trace files.
        public var ratio: Int?
        /// The workload at that ratio; nil for trace files.
        public var workload: WorkloadSpec?

        /// L1 vCPUs of the simulated VM (1 for the selftest); nil for trace files.
        public var l1VCPUs: Int? {
            switch workload {
            case .simulate(let s): s.l1VCPUs
            case .selftest: 1
            case nil: nil
            }
        }

        /// L2 vCPUs of the simulated VM (`n` for the selftest); nil for trace files.
        public var l2VCPUs: Int? {
            switch workload {
            case .simulate(let s): s.l2VCPUs
            case .selftest(let s): s.n
            case nil: nil
            }
        }
    }

    /// One (stream, policy) result.
    public struct Row: Sendable, Equatable {
        public var ratio: Int?
        public var l1VCPUs: Int?
        public var l2VCPUs: Int?
        public var policy: PolicySpec
        /// Totals over the stream's VMs (DESIGN §4).
        public var stats: StatsSnapshot
    }

    /// The rows, stream by stream, policies in the order given.
    public struct Result: Sendable {
        public var rows: [Row]
        /// Trace files: the readers' figures (`invalid_lines`, ...) and messages about skipped
        /// lines, from the first read of the stream. Empty for workloads.
        public var figures: [(name: String, value: UInt64)]
        /// Trace files: the readers' lines of unused events per name (nil without ftrace input).
        public var skippedEvents: EventCounts?
        public var warnings: [String]
    }

    /// The default line-up: the baseline, then the seed's table at R = 1..16, then a per-vCPU
    /// LRU at K = 0..15 (K + 1 = 1..16 contexts per vCPU, the same capacities).
    public static let defaultPolicies: [PolicySpec] =
        [.mapPerEntry] + [1, 2, 4, 8, 16].map { .perVMTable(contextsPerVCPU: $0) } + [0, 1, 3, 7, 15].map { .perVCPULRU(k: $0) }

    /// L2:L1 ratios of a workload sweep when none are given.
    public static let defaultRatios = [1, 2, 4, 8, 16, 32]
    /// Bound on one ratio (the workload's own bounds apply too).
    public static let maxRatio = SimulationSpec.maxL2VCPUs
    /// Bound on `jobs`.
    public static let maxJobs = 1024

    public let input: Input
    public let streams: [Stream]
    public let policies: [PolicySpec]
    public let pagesPerContext: Int

    /// A sweep of `policies` over `input`. `ratios` applies to workloads only (nil: the
    /// defaults); giving ratios for trace files, no ratio, or no policy is a `.usage` error.
    public init(
        input: Input, ratios: [Int]? = nil, policies: [PolicySpec] = Sweep.defaultPolicies, pagesPerContext: Int = 4
    ) throws(TraceError) {
        guard !policies.isEmpty else { throw SimulationSpec.usage("a sweep needs at least one policy") }
        self.input = input
        self.policies = policies
        self.pagesPerContext = pagesPerContext
        switch input {
        case .files(let paths, _, _, _):
            guard !paths.isEmpty else { throw SimulationSpec.usage("give at least one trace file ('-' for standard input)") }
            guard ratios == nil else {
                throw SimulationSpec.usage("--ratios applies to simulated workloads (--simulate, --preset), not to trace files")
            }
            streams = [Stream(ratio: nil, workload: nil)]
        case .workload(let base):
            let ratios = ratios ?? Self.defaultRatios
            guard !ratios.isEmpty else { throw SimulationSpec.usage("--ratios: give at least one ratio") }
            var streams: [Stream] = []
            for r in ratios { streams.append(Stream(ratio: r, workload: try Self.workload(base, ratio: r))) }
            self.streams = streams
        }
    }

    /// `base` with `r` L2 vCPUs per L1 vCPU.
    static func workload(_ base: WorkloadSpec, ratio r: Int) throws(TraceError) -> WorkloadSpec {
        guard r >= 1, r <= maxRatio else {
            throw SimulationSpec.usage("--ratios: a ratio must be an integer from 1 to \(maxRatio), got \(r)")
        }
        var w = base
        do throws(TraceError) {
            switch base {
            case .simulate(let s):
                let (l2, overflow) = r.multipliedReportingOverflow(by: s.l1VCPUs)
                try w.set("l2_vcpus", overflow ? "\(UInt64.max)" : String(l2))
            case .selftest:
                try w.set("n", String(r))
            }
        } catch {
            throw SimulationSpec.usage("--ratios: ratio \(r): \(error.message)")
        }
        return w
    }

    /// Parses `1,2,4` (spaces around items allowed).
    public static func parseRatios(_ text: some StringProtocol) throws(TraceError) -> [Int] {
        var out: [Int] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let t = item.trimmingSpaces
            guard let r = Int(t), r >= 1, r <= maxRatio else {
                throw SimulationSpec.usage("--ratios: expected integers from 1 to \(maxRatio) separated by commas, got '\(t)' in '\(text)'")
            }
            out.append(r)
        }
        return out
    }

    /// The processors online (`sysconf(_SC_NPROCESSORS_ONLN)`), at least 1. (Glibc's module does
    /// not export `sched_getaffinity`; pass `--jobs` under a narrower CPU mask or quota.)
    public static var defaultJobs: Int {
        max(1, min(maxJobs, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
    }

    // MARK: - Running

    /// One stream and a contiguous group of policy indices.
    struct Task: Sendable {
        var stream: Int
        var policies: Range<Int>
    }

    struct TaskOutput: Sendable {
        var stats: [StatsSnapshot]
        var figures: [(name: String, value: UInt64)]
        var skippedEvents: EventCounts?
        var warnings: [String]
    }

    /// The tasks for `jobs` workers, in stream order then policy order (see the type's comment).
    func tasks(jobs: Int) -> [Task] {
        tasks(groups: jobs <= 1 ? 1 : groupsPerStream(jobs: jobs))
    }

    /// Each stream's policies cut into `groups` contiguous groups of near-equal size.
    func tasks(groups: Int) -> [Task] {
        let p = policies.count
        var out: [Task] = []
        for s in streams.indices {
            for g in 0..<groups {
                let range = (g * p / groups)..<((g + 1) * p / groups)
                if !range.isEmpty { out.append(Task(stream: s, policies: range)) }
            }
        }
        return out
    }

    /// The order workers take tasks in: largest group first (stable), so the short tasks fill
    /// in at the end (longest processing time first).
    static func takingOrder(_ tasks: [Task]) -> [Int] {
        tasks.indices.sorted { a, b in
            let (x, y) = (tasks[a].policies.count, tasks[b].policies.count)
            return x != y ? x > y : a < b
        }
    }

    /// The number of groups per stream that finishes first by an estimate: a task costs
    /// `streamCost + its policies` (one engine pass = 1; making the stream again costs about half
    /// of that for the simulator, measured, and is taken as 1 for a trace reader), and workers
    /// take tasks in `takingOrder`, each the next one when it is free (as `TaskBoard` hands them
    /// out). Ties go to fewer groups (less total work). Only speed depends on this, never a row.
    func groupsPerStream(jobs: Int) -> Int {
        let streamCost: Double
        if case .workload = input { streamCost = 0.5 } else { streamCost = 1 }
        var best = (groups: 1, makespan: Double.infinity)
        for g in 1...max(1, min(policies.count, 4 * jobs)) {
            let tasks = tasks(groups: g)
            var free = Array(repeating: 0.0, count: jobs)
            for t in Self.takingOrder(tasks) {
                // The earliest free worker takes the next task.
                var w = 0
                for i in free.indices where free[i] < free[w] { w = i }
                free[w] += streamCost + Double(tasks[t].policies.count)
            }
            let makespan = free.max() ?? 0
            if makespan < best.makespan - 1e-9 { best = (g, makespan) }
        }
        return best.groups
    }

    /// Runs every configuration on up to `jobs` threads (`jobs <= 1`: on the calling thread).
    /// Rows do not depend on `jobs`.
    public func run(jobs: Int = Sweep.defaultJobs) throws(TraceError) -> Result {
        let tasks = tasks(jobs: jobs)
        let board = TaskBoard(order: Self.takingOrder(tasks))
        let workers = max(1, min(jobs, tasks.count))
        if workers == 1 {
            board.work { i throws(TraceError) in try run(tasks[i]) }
        } else {
            DispatchQueue.concurrentPerform(iterations: workers) { _ in
                board.work { i throws(TraceError) in try run(tasks[i]) }
            }
        }

        var rows: [Row] = []
        rows.reserveCapacity(streams.count * policies.count)
        var result = Result(rows: [], figures: [], skippedEvents: nil, warnings: [])
        for (i, outcome) in board.outcomes.enumerated() {
            let task = tasks[i]
            switch outcome {
            case .success(let out):
                if i == 0, case .files = input {
                    result.figures = out.figures
                    result.skippedEvents = out.skippedEvents
                    result.warnings = out.warnings
                }
                let stream = streams[task.stream]
                for (policy, stats) in zip(policies[task.policies], out.stats) {
                    rows.append(Row(
                        ratio: stream.ratio, l1VCPUs: stream.l1VCPUs, l2VCPUs: stream.l2VCPUs,
                        policy: policy, stats: stats))
                }
            case .failure(let error):
                throw error
            case nil:
                // Not run because an earlier-taken task failed; that failure is in a lower slot
                // or a later one: keep looking for it.
                continue
            }
        }
        // Every task ran (no failure found above means none was skipped).
        precondition(rows.count == streams.count * policies.count, "sweep lost rows: \(rows.count)")
        result.rows = rows
        return result
    }

    /// One task: a fresh stream through a fresh engine per policy of its group.
    func run(_ task: Task) throws(TraceError) -> TaskOutput {
        var engines = policies[task.policies].map { $0.makeEngine(defaultPagesPerContext: pagesPerContext) }
        let figures: [(name: String, value: UInt64)]
        var skippedEvents: EventCounts?
        let warnings: [String]
        if let workload = streams[task.stream].workload {
            try Replay.drive(workload.makeSource(), into: &engines)
            figures = []
            warnings = []
        } else {
            guard case .files(let paths, let format, let vm, let invalidLines) = input else {
                preconditionFailure("a stream without a workload comes from trace files")
            }
            let source = TraceFileSequence(paths: paths, format: format, vm: vm, invalidLines: invalidLines)
            try Replay.drive(source, into: &engines)
            figures = source.figures
            skippedEvents = source.skippedEvents
            warnings = source.warnings
        }
        return TaskOutput(stats: engines.map(\.totals), figures: figures, skippedEvents: skippedEvents, warnings: warnings)
    }
}

/// Hands out task indices in `order` and keeps each task's outcome in its slot (slots are in
/// task order, whatever the order of running); after a failure no new task starts. Shared by
/// the sweep's workers; every access holds the lock.
final class TaskBoard: @unchecked Sendable {
    private let lock = DispatchQueue(label: "nestcache.sweep.board")
    private let order: [Int]
    private var next = 0
    private var failed = false
    private var slots: [Result<Sweep.TaskOutput, TraceError>?]

    init(order: [Int]) {
        self.order = order
        slots = Array(repeating: nil, count: order.count)
    }

    /// Runs tasks until none is left or one has failed.
    func work(_ body: (Int) throws(TraceError) -> Sweep.TaskOutput) {
        while let i = take() {
            let outcome: Result<Sweep.TaskOutput, TraceError>
            do throws(TraceError) {
                outcome = .success(try body(i))
            } catch {
                outcome = .failure(error)
            }
            lock.sync {
                slots[i] = outcome
                if case .failure = outcome { failed = true }
            }
        }
    }

    private func take() -> Int? {
        lock.sync { () -> Int? in
            guard !failed, next < order.count else { return nil }
            defer { next += 1 }
            return order[next]
        }
    }

    var outcomes: [Result<Sweep.TaskOutput, TraceError>?] { lock.sync { slots } }
}
