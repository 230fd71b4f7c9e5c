import NestCacheCore

/// A simulated VM's event stream (DESIGN §6): how an L1 KVM drives its L2 vCPUs.
///
/// The model. One VM, `M = l1_vcpus` L1 vCPUs, `N = l2_vcpus` L2 vCPUs, each with its own control
/// block GPA (see `SimulationSpec.GPALayout`). Time advances in rounds; in each round every L1
/// vCPU, in index order, takes one step:
///
///     running an L2 vCPU g:   enter g                       (one more nested entry: VMRESUME)
///     not running one:        pick g (scheduler); then
///        g is v's current:    enter g                       (no switch)
///        VMX "sched":         load g, enter g               (VMPTRLD + VMRESUME, no VMCLEAR)
///        VMX "migrate":       clear g @old, load g, enter g (g's VMCS is active on another
///                                                            L1 vCPU: VMCLEAR there first,
///                                                            when vmclear_on_migrate)
///        vmclear_on_switch:   clear cur, ...                (the outgoing one, on v, first)
///        SVM:                 enter g                       (VMRUN of the new VMCB)
///
/// After each `enter`, the L2 vCPU stops running with probability `1 / entries_per_switch`, so
/// the entries of one run are geometric with that mean; the next step picks again. An L2 vCPU
/// runs on at most one L1 vCPU at a time: a pick skips L2 vCPUs running elsewhere, and an L1
/// vCPU finding none free idles for the round. The simulator tracks each vCPU's current control
/// block exactly as DESIGN §2 does, so its `simulated_switches` and `simulated_migrations`
/// equal every engine's `switches` and `migrations`.
///
/// Timestamps: a round lasts `q = 1e9 / (switch_rate_hz * entries_per_switch)` ns, so each L1
/// vCPU makes `switch_rate_hz` switch decisions a second; vCPU `v` steps at `round * q + v * q /
/// M`, and the events of one step share its timestamp. Times never decrease.
///
/// Randomness: one `Xoshiro256StarStar` seeded with `seed`, and only its exact integer and
/// `nextDouble` draws (see Xoshiro256.swift): the same spec gives the same stream on every
/// machine.
///
/// - Complexity: O(1) per event, except a pick (once per switch decision): O(1) expected for
///   `pinned` and `random`, O(log N) for `zipf`, O(running L1 vCPUs) at worst for round-robin.
///   No allocation per event: `next(into:limit:)` fills the caller's batch in place.
public struct Simulator: EventSource, Sendable {
    public let spec: SimulationSpec
    public private(set) var registry = VMRegistry()

    /// Switches and migrations as DESIGN §2 counts them (the engines' `switches`, `migrations`).
    public private(set) var switches: UInt64 = 0
    public private(set) var migrations: UInt64 = 0

    private var rng: Xoshiro256StarStar
    private let m: Int
    private let n: Int
    private let isVMX: Bool
    private let vmclearOnMigrate: Bool
    private let vmclearOnSwitch: Bool
    private let endRun: Chance
    private let migrate: Chance
    private let scheduler: SimulationSpec.Scheduler
    /// Control block of each L2 vCPU.
    private let gpas: [GPA]
    /// Cumulative Zipf weights of L2 vCPUs 0 ..< N (zipf only).
    private let zipfCDF: [Double]
    /// Round length and per-vCPU offset within a round, in ns.
    private let roundNs: Double
    private let offsetNs: [Double]
    private let maxEvents: UInt64
    private let maxRounds: UInt64

    /// The per-vCPU state below, written through pointers: no uniqueness or bounds check per
    /// write (vCPU indices are below `m` and `n` by construction); copied if shared when a batch
    /// starts (`makeStateUnique`).
    private var state: State

    // Per L1 vCPU.
    /// L2 vCPU whose control block is current (DESIGN §2), or -1.
    private var current: UnsafeMutablePointer<Int32> { state.current }
    /// L2 vCPU running (in a run of entries), or -1.
    private var running: UnsafeMutablePointer<Int32> { state.running }
    /// pinned: the rank among this vCPU's residents to try next.
    private var residentCursor: UnsafeMutablePointer<Int32> { state.residentCursor }
    /// Each step's time in the current round, made once a round (`startRound`).
    private var roundTimes: UnsafeMutablePointer<UInt64> { state.roundTimes }

    // Per L2 vCPU.
    /// L1 vCPU it runs on, or -1.
    private var runningOn: UnsafeMutablePointer<Int32> { state.runningOn }
    /// VMX: the L1 vCPU where its VMCS was last loaded and not cleared since, or -1.
    private var activeOn: UnsafeMutablePointer<Int32> { state.activeOn }
    /// The L1 vCPU that last switched to it, or -1 (a switch from elsewhere is a migration).
    private var lastSwitchedOn: UnsafeMutablePointer<Int32> { state.lastSwitchedOn }

    /// round-robin: the next L2 vCPU in the global order.
    private var globalCursor = 0
    private var round: UInt64 = 0
    private var nextVCPU = 0
    private var emitted: UInt64 = 0
    private var isGenerated = false
    /// Events of a step that did not fit in the caller's batch.
    private var overflow: [Event] = []
    private var overflowStart = 0

    private static let vmIndex: Int32 = 0
    /// Linear layout: the first control block (4 GiB, above a typical guest's low memory).
    public static let gpaBase: UInt64 = 0x1_0000_0000

    public init(_ spec: SimulationSpec) {
        self.spec = spec
        m = spec.l1VCPUs
        n = spec.l2VCPUs
        isVMX = spec.isa == .vmx
        vmclearOnMigrate = spec.vmclearOnMigrate
        vmclearOnSwitch = spec.vmclearOnSwitch
        endRun = Chance(1 / spec.entriesPerSwitch)
        migrate = Chance(spec.migrationRate)
        scheduler = spec.scheduler
        rng = Xoshiro256StarStar(seed: spec.seed)
        gpas = Self.layOut(spec)
        zipfCDF = spec.scheduler == .zipf ? Self.zipfWeights(count: spec.l2VCPUs, s: spec.zipfS) : []

        roundNs = 1e9 / (spec.switchRateHz * spec.entriesPerSwitch)
        offsetNs = (0..<spec.l1VCPUs).map { [roundNs, m] v in Double(v) * roundNs / Double(m) }
        switch spec.length {
        case .events(let e):
            maxEvents = e
            maxRounds = .max
        case .duration(let s):
            maxEvents = .max
            let rounds = (s * 1e9 / roundNs).rounded(.up)
            maxRounds = rounds < 0x1.0p63 ? UInt64(rounds) : 1 << 63
        }
        isGenerated = maxEvents == 0 || maxRounds == 0

        state = State(m: m, n: n)
        startRound()

        let index = registry.intern(spec.vm)
        registry.update(index, spec.vmInfo)
    }

    public var figures: [(name: String, value: UInt64)] {
        [("simulated_switches", switches), ("simulated_migrations", migrations)]
    }

    /// The control block GPA of each L2 vCPU, in order (tests, reports).
    public var controlBlocks: [GPA] { gpas }

    public mutating func next(into batch: inout [Event], limit: Int) throws(TraceError) -> Bool {
        guard limit > 0 else {
            batch.removeAll(keepingCapacity: true)
            return !(isGenerated && overflowStart == overflow.count)
        }
        // Written in place, as the native reader does: the batch is grown to `limit` plus a
        // step's most events (4) with placeholders, filled through a pointer, and cut to what
        // was made. An `append` per event cost a uniqueness check (a runtime call) each.
        let room = limit + Self.maxEventsPerStep
        if batch.count < room {
            // Exactly `room`: a daemon holds one batch per simulated VM (doubling would double it).
            batch.reserveCapacity(room)
            batch.append(contentsOf: repeatElement(Event(timeNs: 0, vm: 0, vcpu: 0, op: .load, gpa: .none), count: room - batch.count))
        }
        makeStateUnique()
        var n = 0
        batch.withUnsafeMutableBufferPointer { out in
            while overflowStart < overflow.count, n < limit {
                out[n] = overflow[overflowStart]
                n += 1
                overflowStart += 1
            }
            if overflowStart == overflow.count {
                overflow.removeAll(keepingCapacity: true)
                overflowStart = 0
            }
            var sink = BatchSink(out: out, count: n)
            while sink.count < limit, !isGenerated { step(into: &sink) }
            n = sink.count
        }
        if n > limit {
            // The last step made more events than there was room for: keep the rest for later.
            overflow.append(contentsOf: batch[limit..<n])
            n = limit
        }
        batch.removeLast(batch.count - n)
        return n > 0
    }

    /// The stream of `next(into:limit:)`, split by L1 vCPU with each event's migration flag and
    /// the switches, as it is generated (the daemon's feeder; flags and switches are those of
    /// `VCPUSplit.fill` with a `SwitchTracker`, which the simulator's DESIGN §2 state equals).
    /// Whole steps: a batch ends at `limit` events or up to `maxEventsPerStep - 1` past it.
    /// Returns false, with `split` empty, at the end of the stream. Not to be mixed with
    /// `next(into:limit:)` calls that leave events over.
    public mutating func next(split: inout VCPUSplit, limit: Int) -> Bool {
        precondition(overflowStart == overflow.count, "next(split:) after next(into:) left events over")
        split.removeAll(vcpuCount: m, batch: limit)
        makeStateUnique()
        while split.count < limit, !isGenerated { step(into: &split) }
        return split.count > 0
    }

    /// The most events one step makes: clear of the outgoing, clear on the other vCPU, load,
    /// enter.
    static let maxEventsPerStep = 4

    // MARK: - One step of one L1 vCPU

    /// Hands `e` to `sink` unless the stream has reached its length (`events`): the last step may
    /// be cut. `isSwitch`: a switch (DESIGN §2), a migration if `migrates`.
    @inline(__always)
    private mutating func emit(_ e: Event, isSwitch: Bool = false, migrates: Bool = false, into sink: inout some EventSink & ~Copyable) {
        guard emitted < maxEvents else { return }
        emitted &+= 1
        sink.take(e, isSwitch: isSwitch, migrates: migrates)
    }

    /// The next L1 vCPU's step (see the type's comment), then the round's bookkeeping.
    @inline(__always)
    private mutating func step(into sink: inout some EventSink & ~Copyable) {
        let v = nextVCPU
        let time = roundTimes[v]

        var g = Int(running[v])
        // SVM: the enter below is the switch (VMRUN of the new VMCB).
        var isSwitch = false
        var migrates = false
        if g < 0 {
            g = pick(on: v)
            if g >= 0 {
                if Int(current[v]) != g {
                    migrates = switchTo(g, on: v, time: time, into: &sink)
                    isSwitch = !isVMX
                }
                running[v] = Int32(g)
                runningOn[g] = Int32(v)
            }
        }
        if g >= 0 {
            emit(Event(timeNs: time, vm: Self.vmIndex, vcpu: UInt16(v), op: .enter, gpa: gpas[g]),
                 isSwitch: isSwitch, migrates: isSwitch && migrates, into: &sink)
            if rng.happens(endRun) {
                running[v] = -1
                runningOn[g] = -1
            }
        }

        nextVCPU += 1
        if nextVCPU == m {
            nextVCPU = 0
            round += 1
            startRound()
            if round >= maxRounds { isGenerated = true }
        }
        if emitted == maxEvents { isGenerated = true }
    }

    /// Works out the times of `round`'s steps in one loop, so that a step only reads its own (the
    /// double-to-integer conversion and clamp had a third of a step's samples).
    private mutating func startRound() {
        let base = Double(round) * roundNs
        // Rounding must not reorder: never before the step before (the last round's last one).
        var last = round == 0 ? 0 : roundTimes[m - 1]
        for v in 0..<m {
            var t = base + offsetNs[v]
            t = t < 0x1.0p63 ? t : 0x1.0p63
            last = max(UInt64(t), last)
            roundTimes[v] = last
        }
    }

    /// Gives this simulator its own `state` if a copy of it shares it (once per batch).
    private mutating func makeStateUnique() {
        if !isKnownUniquelyReferenced(&state) { state = state.copy() }
    }

    /// Makes `g` current on `v`: the events before its first entry, and the DESIGN §2 state.
    /// Returns whether the switch is a migration.
    @inline(__always)
    private mutating func switchTo(_ g: Int, on v: Int, time: UInt64, into sink: inout some EventSink & ~Copyable) -> Bool {
        let vcpu = UInt16(v)
        let last = lastSwitchedOn[g]
        let migrates = last >= 0 && last != Int32(v)
        if isVMX {
            if vmclearOnSwitch, current[v] >= 0 {
                let old = Int(current[v])
                emit(Event(timeNs: time, vm: Self.vmIndex, vcpu: vcpu, op: .clear, gpa: gpas[old]), into: &sink)
                current[v] = -1
                if activeOn[old] == Int32(v) { activeOn[old] = -1 }
            }
            let a = Int(activeOn[g])
            if vmclearOnMigrate, a >= 0, a != v {
                // L1 KVM's loaded_vmcs_clear: VMCLEAR on the CPU where the VMCS is active.
                emit(Event(timeNs: time, vm: Self.vmIndex, vcpu: UInt16(a), op: .clear, gpa: gpas[g]), into: &sink)
                if current[a] == Int32(g) { current[a] = -1 }
                activeOn[g] = -1
            }
            emit(Event(timeNs: time, vm: Self.vmIndex, vcpu: vcpu, op: .load, gpa: gpas[g]),
                 isSwitch: true, migrates: migrates, into: &sink)
            activeOn[g] = Int32(v)
        }
        current[v] = Int32(g)
        switches &+= 1
        if migrates { migrations &+= 1 }
        lastSwitchedOn[g] = Int32(v)
        return migrates
    }

    // MARK: - Schedulers

    /// The L2 vCPU `v` runs next, never one running elsewhere; -1 when none is free.
    @inline(__always)
    private mutating func pick(on v: Int) -> Int {
        switch scheduler {
        case .pinned: return pickPinned(on: v)
        case .roundRobin:
            for _ in 0..<n {
                let g = globalCursor
                globalCursor = g + 1 == n ? 0 : g + 1
                if runningOn[g] < 0 { return g }
            }
            return -1
        case .random:
            for _ in 0..<4 {
                let g = Int(rng.bounded(UInt64(n)))
                if runningOn[g] < 0 { return g }
            }
            return firstFree(from: Int(rng.bounded(UInt64(n))))
        case .zipf:
            var g = 0
            for _ in 0..<4 {
                g = sampleZipf()
                if runningOn[g] < 0 { return g }
            }
            return firstFree(from: g)
        }
    }

    /// Residents of `v` are `v, v + M, v + 2M, ...` below N.
    @inline(__always)
    private func residentCount(_ v: Int) -> Int { v < n ? (n - v + m - 1) / m : 0 }

    /// pinned: with `migration_rate`, an L2 vCPU homed elsewhere (uniform, by rejection);
    /// otherwise the next free resident in cyclic order.
    @inline(__always)
    private mutating func pickPinned(on v: Int) -> Int {
        let count = residentCount(v)
        if m > 1, n > count, rng.happens(migrate) {
            for _ in 0..<8 {
                let g = Int(rng.bounded(UInt64(n)))
                if g % m != v, runningOn[g] < 0 { return g }
            }
        }
        var r = Int(residentCursor[v])
        for _ in 0..<count {
            let g = v + r * m
            r = r + 1 == count ? 0 : r + 1
            if runningOn[g] < 0 {
                residentCursor[v] = Int32(r)
                return g
            }
        }
        return -1
    }

    /// The first L2 vCPU from `start` on (cyclically) that is not running, or -1.
    private func firstFree(from start: Int) -> Int {
        var g = start
        for _ in 0..<n {
            if runningOn[g] < 0 { return g }
            g = g + 1 == n ? 0 : g + 1
        }
        return -1
    }

    /// Inverse CDF by binary search: the first index whose cumulative weight exceeds u.
    @inline(__always)
    private mutating func sampleZipf() -> Int {
        let u = rng.nextDouble() * zipfCDF[n - 1]
        var lo = 0
        var hi = n - 1
        while lo < hi {
            let mid = (lo + hi) >> 1
            if zipfCDF[mid] > u { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    // MARK: - Set-up

    /// Cumulative weights `sum_{j <= i} (j + 1)^-s`, with the portable `log`/`exp`.
    static func zipfWeights(count: Int, s: Double) -> [Double] {
        var cdf = [Double]()
        cdf.reserveCapacity(count)
        var sum = 0.0
        for i in 0..<count {
            sum += PortableMath.inversePower(Double(i + 1), s)
            cdf.append(sum)
        }
        return cdf
    }

    /// Distinct, 4 KiB-aligned control block GPAs below 2^52.
    static func layOut(_ spec: SimulationSpec) -> [GPA] {
        let count = spec.l2VCPUs
        switch spec.gpaLayout {
        case .linear:
            return (0..<count).map { GPA(gpaBase + UInt64($0) << 12) }
        case .scattered:
            // An affine map i -> (a*i + b) mod 2^k with odd a is a bijection on 0 ..< 2^k, so the
            // pages are distinct. 2^k >= 64 N pages, at least 4096 (16 MiB); N <= 2^20 keeps the
            // region below 2^38 bytes. Its own generator, so the layout does not shift the
            // stream's draws.
            var bits = 12
            while (1 << bits) < 64 * count { bits += 1 }
            let mask = UInt64(1) << UInt64(bits) - 1
            var sm = SplitMix64(seed: spec.seed ^ 0x6C61_796F_7574_0000)  // "layout"
            let a = sm.next() | 1
            let b = sm.next()
            return (0..<count).map { i in
                GPA(gpaBase + ((a &* UInt64(i) &+ b) & mask) << 12)
            }
        }
    }
}

/// Where the simulator's steps put their events: the caller's batch, or a split by vCPU.
protocol EventSink: ~Copyable {
    /// Takes the next event of the stream; `isSwitch`: a switch (DESIGN §2), a migration if
    /// `migrates`.
    mutating func take(_ e: Event, isSwitch: Bool, migrates: Bool)
}

/// `next(into:limit:)`'s batch, written in place: room for `limit` plus a step.
struct BatchSink: EventSink {
    let out: UnsafeMutableBufferPointer<Event>
    var count: Int

    @inline(__always)
    mutating func take(_ e: Event, isSwitch: Bool, migrates: Bool) {
        out[count] = e
        count += 1
    }
}

extension VCPUSplit: EventSink {
    @inline(__always)
    mutating func take(_ e: Event, isSwitch: Bool, migrates: Bool) {
        append(e, migration: migrates)
        if isSwitch { appendSwitch(e) }
    }
}

extension Simulator {
    /// The per-vCPU arrays of a simulator, in one allocation (see `Simulator.state`).
    final class State: @unchecked Sendable {
        let m: Int
        let n: Int
        private let words: UnsafeMutableRawPointer
        let current: UnsafeMutablePointer<Int32>
        let running: UnsafeMutablePointer<Int32>
        let residentCursor: UnsafeMutablePointer<Int32>
        let runningOn: UnsafeMutablePointer<Int32>
        let activeOn: UnsafeMutablePointer<Int32>
        let lastSwitchedOn: UnsafeMutablePointer<Int32>
        let roundTimes: UnsafeMutablePointer<UInt64>

        /// `roundTimes` first (8-byte aligned), then 3 `m` and 3 `n` Int32 arrays.
        private var byteCount: Int { 8 * m + 4 * (3 * m + 3 * n) }

        /// L1 vCPUs idle with no current control block, L2 vCPUs nowhere.
        init(m: Int, n: Int) {
            self.m = m
            self.n = n
            words = .allocate(byteCount: 8 * m + 4 * (3 * m + 3 * n), alignment: 8)
            roundTimes = words.bindMemory(to: UInt64.self, capacity: m)
            roundTimes.initialize(repeating: 0, count: m)
            let int32s = (words + 8 * m).bindMemory(to: Int32.self, capacity: 3 * m + 3 * n)
            int32s.initialize(repeating: -1, count: 3 * m + 3 * n)
            current = int32s
            running = int32s + m
            residentCursor = int32s + 2 * m
            runningOn = int32s + 3 * m
            activeOn = int32s + 3 * m + n
            lastSwitchedOn = int32s + 3 * m + 2 * n
            residentCursor.update(repeating: 0, count: m)
        }

        func copy() -> State {
            let c = State(m: m, n: n)
            c.words.copyMemory(from: words, byteCount: byteCount)
            return c
        }

        deinit { words.deallocate() }
    }
}
