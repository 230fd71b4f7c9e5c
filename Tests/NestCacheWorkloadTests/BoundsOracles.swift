import NestCacheCore
import Testing

@testable import NestCacheWorkload

// Independent, deliberately plain versions of what `Bounds` computes, for the tests to compare
// against: a switch sequence read with dictionaries, Belady's rule by linear scans, and an
// exhaustive search over every caching decision. None of them shares code with the library.

/// Events held in memory, handed out in batches of `batch` (small batches cross VM boundaries
/// mid-stream, as readers do).
struct ArraySource: EventSource {
    var registry: VMRegistry
    let events: [Event]
    let batch: Int
    var offset = 0

    init(registry: VMRegistry, events: [Event], batch: Int = 7) {
        self.registry = registry
        self.events = events
        self.batch = batch
    }

    mutating func next(into out: inout [Event], limit: Int) throws(TraceError) -> Bool {
        out.removeAll(keepingCapacity: true)
        let end = min(events.count, offset + min(limit, batch))
        out.append(contentsOf: events[offset..<end])
        offset = end
        return !out.isEmpty
    }

    var figures: [(name: String, value: UInt64)] { [] }
}

/// A random multi-VM stream: VM 0 declares its vCPUs, the others do not (M counts the vCPUs
/// seen, some of which only ever clear); few GPAs per VM so they recur, on several vCPUs
/// (migrations); clears of the current GPA and of others; a VM declared with no events.
func randomTrace(seed: UInt64, events n: Int = 600, vms: Int = 3, gpasPerVM: Int = 9, vcpusPerVM: Int = 4) -> (VMRegistry, [Event]) {
    var rng = SplitMix64(seed: seed)
    func below(_ k: Int) -> Int { Int(rng.next() % UInt64(k)) }
    var registry = VMRegistry()
    for vm in 0..<vms {
        let id = "vm\(vm)"
        let index = registry.intern(id)
        if vm == 0 { registry.update(index, VMInfo(id: id, l1VCPUs: vcpusPerVM)) }
    }
    let idle = registry.intern("idle")
    registry.update(idle, VMInfo(id: "idle", l1VCPUs: 2))
    var current = Array(repeating: Array(repeating: -1, count: vcpusPerVM + 2), count: vms)
    var events: [Event] = []
    let gpaCount = 1 + below(gpasPerVM)
    while events.count < n {
        let vm = below(vms)
        // Undeclared VMs sometimes use a vCPU index past the others, only for clears.
        let v = vm > 0 && below(20) == 0 ? vcpusPerVM + 1 : below(vcpusPerVM)
        let g = below(max(2, gpaCount + vm))
        let gpa = GPA(UInt64(0x10_0000 * (vm + 1) + 0x1000 * g))
        let op: TraceOp
        switch below(10) {
        case 0, 1: op = .clear
        case 2, 3, 4: op = .load
        default: op = .enter
        }
        if v == vcpusPerVM + 1, op != .clear { continue }
        // Half the time, reuse the vCPU's current GPA (no switch) or clear exactly it.
        var target = gpa
        if below(3) == 0, current[vm][v] >= 0 { target = GPA(UInt64(current[vm][v])) }
        if op != .clear { current[vm][v] = Int(target.raw) } else if current[vm][v] == Int(target.raw) { current[vm][v] = -1 }
        events.append(Event(timeNs: UInt64(events.count), vm: Int32(vm), vcpu: UInt16(v), op: op, gpa: target))
    }
    return (registry, events)
}

/// DESIGN §2's switches, per VM, the plain way: a dictionary of currents.
func plainSwitchSequences(_ registry: VMRegistry, _ events: [Event]) -> [[(vcpu: Int, gpa: UInt64)]] {
    var current: [String: UInt64] = [:]
    var out = Array(repeating: [(vcpu: Int, gpa: UInt64)](), count: registry.count)
    for e in events {
        let where_ = "\(e.vm)/\(e.vcpu)"
        switch e.op {
        case .clear:
            if current[where_] == e.gpa.raw { current[where_] = nil }
        case .load, .enter:
            if current[where_] != e.gpa.raw {
                current[where_] = e.gpa.raw
                out[Int(e.vm)].append((Int(e.vcpu), e.gpa.raw))
            }
        }
    }
    return out
}

/// Distinct vCPU indices in any event of each VM.
func plainSeenVCPUs(_ registry: VMRegistry, _ events: [Event]) -> [Int] {
    var seen = Array(repeating: Set<UInt16>(), count: registry.count)
    for e in events { seen[Int(e.vm)].insert(e.vcpu) }
    return seen.map(\.count)
}

/// Belady's rule with bypass, O(n · k): next uses from a backward scan, the cache an array.
func plainBelady(_ requests: [UInt64], capacity: Int) -> Int {
    var nextUse = Array(repeating: Int.max, count: requests.count)
    var last: [UInt64: Int] = [:]
    for i in requests.indices.reversed() {
        nextUse[i] = last[requests[i]] ?? Int.max
        last[requests[i]] = i
    }
    var cache: [(gpa: UInt64, next: Int)] = []
    var hits = 0
    for (i, g) in requests.enumerated() {
        if let j = cache.firstIndex(where: { $0.gpa == g }) {
            hits += 1
            cache[j].next = nextUse[i]
        } else if cache.count < capacity {
            cache.append((g, nextUse[i]))
        } else if capacity > 0 {
            var far = 0
            for j in cache.indices where cache[j].next > cache[far].next { far = j }
            if cache[far].next > nextUse[i] { cache[far] = (g, nextUse[i]) }
        }
    }
    return hits
}

/// The most hits of any cache of `capacity` entries on `requests`, by trying every decision: on
/// each miss, leave the request out, or cache it in free room, or in place of any cached entry.
/// Exhaustive (memoized on (position, cache contents), which decides everything after it).
/// Requests are small integers (< 16).
func bruteForceOPT(_ requests: [Int], capacity: Int) -> Int {
    var memo: [Int: Int] = [:]
    func best(_ i: Int, _ cache: Int) -> Int {
        if i == requests.count { return 0 }
        let key = i << 16 | cache
        if let m = memo[key] { return m }
        let bit = 1 << requests[i]
        var result: Int
        if cache & bit != 0 {
            result = 1 + best(i + 1, cache)
        } else {
            result = best(i + 1, cache)  // bypass
            if cache.nonzeroBitCount < capacity { result = max(result, best(i + 1, cache | bit)) }
            var rest = cache
            while rest != 0 {
                let victim = rest & -rest
                rest &= rest - 1
                result = max(result, best(i + 1, cache & ~victim | bit))
            }
        }
        memo[key] = result
        return result
    }
    return best(0, 0)
}

/// Replays `events` under `policy` and returns each VM's hits (registry order), switches and M.
func replayHits(_ registry: VMRegistry, _ events: [Event], _ policy: PolicySpec) -> (hits: [UInt64], switches: [UInt64], m: [Int]) {
    var engine = policy.makeEngine()
    engine.sync(with: registry)
    engine.apply(events, registry: registry)
    let vms = (0..<registry.count).map(Int32.init)
    return (vms.map { engine.snapshot(vm: $0).counters.hits }, vms.map { engine.snapshot(vm: $0).counters.switches },
            vms.map { engine.l1VCPUs(vm: $0) })
}

extension BoundsResult {
    func vm(_ id: String) -> VM? { vms.first { $0.id == id } }
}
