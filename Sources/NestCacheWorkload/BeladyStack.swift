/// `opt_vcpu_hits[K]` of DESIGN §11 for every K = 0..kmax at once: Mattson's OPT stack, for
/// Belady's rule with bypass, over each vCPU's switch targets.
///
/// **The rule, per cache size k.** A cache of k contexts that knows the future: on a hit nothing
/// changes; on a miss with room the GPA is cached; on a miss when full, of the cached GPAs and the
/// requested one, the one requested again furthest in the future (or never) is left out — the
/// requested one itself when it is that one (bypass, as `per-vm-table`'s uncached switch). This
/// is optimal: the hits are the reuse intervals kept (from one request of a GPA to its next),
/// at most k of them across any gap between requests, and dropping the one that ends last when
/// k + 1 overlap is the classic greedy for the most intervals (Belady 1966; the proof exchanges
/// any other choice for this one without losing a hit).
///
/// **It is a stack algorithm** (Mattson et al. 1970), bypass included: at every moment the cache
/// of size k is a subset of the cache of size k + 1. By induction over requests, with S_k the
/// cache of size k and |S_k| = min(k, GPAs seen) (a miss with room always caches):
///   - x in S_k: a hit at both sizes, nothing changes;
///   - x in S_{k+1} but not S_k: S_k is full (else S_k = S_{k+1}); S_k swaps one element for x
///     or keeps itself, S_{k+1} keeps itself: still a subset;
///   - x in neither, S_{k+1} full: then S_k is full too; each leaves out the furthest of its own
///     set plus x; if the one S_{k+1} leaves out is in S_k + x it is the furthest there as well,
///     so S_k leaves it out too. With room in S_{k+1}, it only grows.
/// So there is one list per vCPU whose first k entries are S_k, for every k, and a request found
/// at position p (0-based) is a hit for every size > p, i.e. every K >= p (K + 1 contexts).
///
/// **Updating the list** (x requested, found at position d, or not in the list): for every size
/// k <= d, x misses and S_k leaves out the furthest of S_k + x. Call it w_k; w_0 = x. Since
/// w_{k-1} is the furthest of S_{k-1} + x, w_k is the further of w_{k-1} and the list's k-th
/// entry (position k - 1), and the nearer of the two is the new k-th entry. So one element is carried down the list, starting with x:
///
///     requests a b x a b x b x; at the second x (index 5) the list is [b:6 a:never x:5]
///     and x's next use becomes 7:
///     position 0: carry x:7 vs b:6      -> b:6 stays, x:7 carried on    S_1 = {b}: bypass x
///     position 1: carry x:7 vs a:never  -> x:7 stays, a carried on      S_2: {b a} -> {b x}
///     position 2: x's old place         -> a lands here                 S_3 = {b a x}: a hit
///     result: [b:6 x:7 a:never], a hit for K >= 2
///
/// A GPA not in the list is carried through every position; the last carried one goes to the
/// end when there is room, or off the list when it is full.
///
/// **Cutting each list at kmax+1 entries is exact** for every K <= kmax, as for LRU: the update
/// of positions 0..kmax reads only positions 0..kmax and x, and a GPA deeper than kmax is a miss
/// for every K <= kmax whether it is found or not, which is how a GPA off the cut list is treated.
///
/// Ties: only "never again" can tie (two GPAs have different next uses otherwise). Which of two
/// never-again GPAs is kept cannot change any hit, so the carried one simply goes on.
///
/// - Complexity: O(kmax) per switch; memory (kmax+1) · 12 bytes per vCPU index.
struct BeladyStack {
    /// Entries kept per vCPU: kmax + 1.
    let depth: Int
    /// Row `v`: `keys`/`nextUses[v*depth ..< v*depth + counts[v]]`; position 0 is the cache of
    /// one context.
    private(set) var keys: [UInt32] = []
    private(set) var nextUses: [UInt64] = []
    private(set) var counts: [Int32] = []
    /// Switches found at position p, p = 0..kmax.
    private(set) var histogram: [UInt64]
    /// Switches at no position <= kmax.
    private(set) var beyond: UInt64 = 0
    /// The index of the last switch seen: every next use in the lists is past it.
    private(set) var now: UInt64 = 0
    private var isStarted = false

    init(kmax: Int) {
        precondition(kmax >= 0)
        depth = kmax + 1
        histogram = Array(repeating: 0, count: depth)
    }

    /// The switch at index `index` of the sequence (indices increase from call to call), of
    /// `vcpu` to `key`, whose next switch of the same vCPU to the same GPA is at `nextUse`
    /// (`FutureRecord.never`: none). Returns the position it was found at, or nil.
    @discardableResult
    @inline(__always)
    mutating func access(_ key: UInt32, nextUse: UInt64, at index: UInt64, on vcpu: Int) -> Int? {
        now = index
        isStarted = true
        if vcpu >= counts.count {
            let n = vcpu + 1 - counts.count
            counts.append(contentsOf: repeatElement(0, count: n))
            keys.append(contentsOf: repeatElement(0, count: n * depth))
            nextUses.append(contentsOf: repeatElement(0, count: n * depth))
        }
        let base = vcpu &* depth
        let n = Int(counts[vcpu])
        var carriedKey = key
        var carriedNext = nextUse
        var p = 0
        while p < n {
            let k = keys[base &+ p]
            if k == key {
                // x's old place: the carried one lands here; sizes > p hit.
                keys[base &+ p] = carriedKey
                nextUses[base &+ p] = carriedNext
                histogram[p] &+= 1
                return p
            }
            let next = nextUses[base &+ p]
            if next > carriedNext {
                // The entry is needed later than the carried one: it goes on down.
                keys[base &+ p] = carriedKey
                nextUses[base &+ p] = carriedNext
                carriedKey = k
                carriedNext = next
            }
            p &+= 1
        }
        beyond &+= 1
        if n < depth {
            keys[base &+ n] = carriedKey
            nextUses[base &+ n] = carriedNext
            counts[vcpu] = Int32(n &+ 1)
        }
        return nil
    }

    /// `opt_vcpu_hits[K]`, K = 0..kmax: the running sums of the histogram.
    var hits: [UInt64] {
        var sum: UInt64 = 0
        return histogram.map { sum &+= $0; return sum }
    }

    var accesses: UInt64 { histogram.reduce(beyond, &+) }

    /// vCPU `v`'s row: (key, next use), position 0 first.
    func row(_ v: Int) -> [(key: UInt32, nextUse: UInt64)] {
        guard v < counts.count else { return [] }
        return (0..<Int(counts[v])).map { (keys[v * depth + $0], nextUses[v * depth + $0]) }
    }

    /// Checks every structural rule: rows within their depth, no GPA twice in a row, every next
    /// use in the future, no two GPAs of a row with the same next use (but never). O(vCPUs · depth²).
    func checkInvariants() {
        precondition(histogram.count == depth, "BeladyStack: histogram of \(histogram.count), depth \(depth)")
        precondition(keys.count == counts.count * depth && nextUses.count == keys.count, "BeladyStack: slot arrays out of step")
        for v in counts.indices {
            let r = row(v)
            precondition(counts[v] >= 0 && Int(counts[v]) <= depth, "BeladyStack: vCPU \(v) holds \(counts[v]) > \(depth)\n\(self)")
            precondition(Set(r.map(\.key)).count == r.count, "BeladyStack: vCPU \(v) lists a GPA twice\n\(self)")
            for e in r where isStarted {
                precondition(e.nextUse > now, "BeladyStack: vCPU \(v) GPA \(e.key) next use \(e.nextUse) not after \(now)\n\(self)")
            }
            let finite = r.map(\.nextUse).filter { $0 != FutureRecord.never }
            precondition(Set(finite).count == finite.count, "BeladyStack: vCPU \(v) has two GPAs next used at once\n\(self)")
        }
    }
}

extension BeladyStack: CustomStringConvertible {
    var description: String {
        "  now \(now)\n" + counts.indices.map { v in
            "  vCPU \(v): [" + row(v).map { "\($0.key):" + ($0.nextUse == FutureRecord.never ? "never" : String($0.nextUse)) }
                .joined(separator: " ") + "]"
        }.joined(separator: "\n")
    }
}
