/// `lru_hits[K]` of DESIGN §11 for every K = 0..kmax at once: Mattson's LRU stack distances over
/// each vCPU's switch targets.
///
/// Per vCPU, its switch targets most recently switched first. A switch to the GPA at position p
/// (0 = most recent) is a hit of `per-vcpu-lru:K` for every K >= p and a miss for every K < p:
/// `per-vcpu-lru:K` holds exactly the first K+1 entries of this list (LRU is a stack algorithm:
/// its cache of K+1 contexts is always the K+1 most recently used GPAs). So one pass counts
/// `histogram[p]` and `lru_hits[K]` is the sum of `histogram[0...K]`. With kmax = 3:
///
///     switch to g at p = 2:     [a b g c] -> [g a b c]     hit for K >= 2
///     switch to n, not listed:  [a b c d] -> [n a b c]     miss for every K <= kmax
///     after a clear of a:       [a b c]   -> [a b c]       p = 0: hit for every K
///
/// **Why cutting each list at kmax+1 entries is exact.** The full list's first kmax+1 entries
/// decide every K <= kmax, and they are all the cut list keeps. A GPA at position p <= kmax is
/// found at the same p in both. A GPA deeper than kmax (or never switched to) is a miss for every
/// K <= kmax whether it is found or not; either way it moves to the front and the entries above
/// it move down by one, so the new first kmax+1 entries are again those of the full list: the
/// one dropped off the end of the cut list is the one the full list pushes to position kmax+1,
/// which no K <= kmax can hit before it returns to the front.
///
/// The same order as `PerVCPULRU`'s rows (the engine's `per-vcpu-lru:kmax`), so the tests can
/// compare them entry for entry.
///
/// - Complexity: O(kmax) per switch (a scan and a shift of one row, as `prev_roots`); memory
///   (kmax+1) keys per vCPU index, whatever the trace's length and number of GPAs.
struct LRUStackDistance {
    /// Entries kept per vCPU: kmax + 1.
    let depth: Int
    /// Row `v` is `rows[v*depth ..< v*depth + counts[v]]`, most recent first.
    private(set) var rows: [UInt32] = []
    private(set) var counts: [Int32] = []
    /// Switches found at position p, p = 0..kmax.
    private(set) var histogram: [UInt64]
    /// Switches at no position <= kmax: first switches of a vCPU to a GPA, and deeper ones.
    private(set) var beyond: UInt64 = 0

    init(kmax: Int) {
        precondition(kmax >= 0)
        depth = kmax + 1
        histogram = Array(repeating: 0, count: depth)
    }

    /// A switch of `vcpu` to the GPA `key`. Returns its position (0 = most recent), or nil when
    /// it is not among the first kmax+1; either way it becomes the row's front.
    @discardableResult
    @inline(__always)
    mutating func access(_ key: UInt32, on vcpu: Int) -> Int? {
        if vcpu >= counts.count {
            let n = vcpu + 1 - counts.count
            counts.append(contentsOf: repeatElement(0, count: n))
            rows.append(contentsOf: repeatElement(0, count: n * depth))
        }
        let base = vcpu &* depth
        let n = Int(counts[vcpu])
        var p = 0
        while p < n, rows[base &+ p] != key { p &+= 1 }
        let found = p < n
        if found {
            histogram[p] &+= 1
        } else {
            beyond &+= 1
            if n < depth {
                counts[vcpu] = Int32(n &+ 1)
                p = n
            } else {
                p = n &- 1
            }
        }
        // Shift positions 0 ..< p down by one (the last one falls off when the row was full and
        // the key was not in it), then put the key in front.
        var j = p
        while j > 0 {
            rows[base &+ j] = rows[base &+ j &- 1]
            j &-= 1
        }
        rows[base] = key
        return found ? p : nil
    }

    /// `lru_hits[K]`, K = 0..kmax: hits of `per-vcpu-lru:K`, the running sums of the histogram.
    var hits: [UInt64] {
        var sum: UInt64 = 0
        return histogram.map { sum &+= $0; return sum }
    }

    /// Switches seen.
    var accesses: UInt64 { histogram.reduce(beyond, &+) }

    /// vCPU `v`'s row, most recent first.
    func row(_ v: Int) -> [UInt32] {
        guard v < counts.count else { return [] }
        return Array(rows[v * depth ..< v * depth + Int(counts[v])])
    }

    /// Checks every structural rule: rows within their depth, no GPA twice in a row. O(vCPUs · depth²).
    func checkInvariants() {
        precondition(histogram.count == depth, "LRUStackDistance: histogram of \(histogram.count), depth \(depth)")
        precondition(rows.count == counts.count * depth, "LRUStackDistance: \(rows.count) slots for \(counts.count) rows of \(depth)")
        for v in counts.indices {
            let r = row(v)
            precondition(counts[v] >= 0 && Int(counts[v]) <= depth, "LRUStackDistance: vCPU \(v) holds \(counts[v]) > \(depth)\n\(self)")
            precondition(Set(r).count == r.count, "LRUStackDistance: vCPU \(v) lists a GPA twice\n\(self)")
        }
    }
}

extension LRUStackDistance: CustomStringConvertible {
    var description: String {
        counts.indices.map { v in "  vCPU \(v): [" + row(v).map(String.init).joined(separator: " ") + "]" }
            .joined(separator: "\n")
    }
}
