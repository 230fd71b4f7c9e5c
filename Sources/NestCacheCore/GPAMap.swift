/// A hash map from GPA to a small integer, for the per-event paths.
///
/// Open addressing with linear probing over a power-of-two array, at most 3/4 full, and
/// backward-shift deletion (no tombstones, so a long-running table never degrades). GPAs are
/// 4 KiB aligned, so the hash drops the low 12 bits and multiplies by 2^64/phi (Fibonacci
/// hashing); the top bits pick the slot, with no SipHash and no generic probing as in
/// `Dictionary<GPA, Int32>` (the engine, built on it, runs about 10x the Dictionary-based
/// reference model: BENCHMARKS.md).
///
/// - Complexity: lookup, insert and remove O(1) expected; insert allocates only when the map
///   doubles, so a table of bounded size stops allocating once warm.
public struct GPAMap: Sendable {
    var keys: [UInt64]
    var values: [Int32]
    var shift: UInt64
    public private(set) var count = 0

    static let empty = UInt64.max

    public init(minimumCapacity: Int = 8) {
        var slots = 16
        while slots * 3 < minimumCapacity * 4 { slots <<= 1 }
        keys = Array(repeating: Self.empty, count: slots)
        values = Array(repeating: -1, count: slots)
        shift = UInt64(64 - slots.trailingZeroBitCount)
    }

    @inline(__always)
    func home(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: ((key >> 12) &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    @inline(__always)
    var mask: Int { keys.count &- 1 }

    /// The value filed under `gpa`, or nil.

    public func value(for gpa: GPA) -> Int32? {
        let key = gpa.raw
        var i = home(key)
        let m = mask
        while true {
            let k = keys[i]
            if k == key { return values[i] }
            if k == Self.empty { return nil }
            i = (i &+ 1) & m
        }
    }

    /// Files `value` under `gpa` and returns the value it replaced, if any.
    @discardableResult
    public mutating func updateValue(_ value: Int32, for gpa: GPA) -> Int32? {
        let key = gpa.raw
        let m = mask
        var i = home(key)
        while true {
            let k = keys[i]
            if k == key {
                let old = values[i]
                values[i] = value
                return old
            }
            if k == Self.empty { break }
            i = (i &+ 1) & m
        }
        if (count &+ 1) &* 4 > keys.count &* 3 {
            grow()
            insertNew(key, value)
        } else {
            keys[i] = key
            values[i] = value
        }
        count &+= 1
        return nil
    }

    /// Removes `gpa` and returns its value, if it was there.
    @discardableResult
    public mutating func removeValue(for gpa: GPA) -> Int32? {
        let key = gpa.raw
        let m = mask
        var i = home(key)
        while true {
            let k = keys[i]
            if k == Self.empty { return nil }
            if k == key { break }
            i = (i &+ 1) & m
        }
        let removed = values[i]
        // Backward-shift: pull later members of the probe run into the hole whenever the hole
        // lies on their way from their home slot, so every key stays reachable without tombstones.
        var hole = i
        var j = i
        while true {
            j = (j &+ 1) & m
            let k = keys[j]
            if k == Self.empty { break }
            let h = home(k)
            // Is `hole` cyclically within [h, j)? Then the key at j may move to the hole.
            if (j &- h) & m >= (j &- hole) & m {
                keys[hole] = k
                values[hole] = values[j]
                hole = j
            }
        }
        keys[hole] = Self.empty
        values[hole] = -1
        count &-= 1
        return removed
    }


    mutating func grow() {
        let oldKeys = keys
        let oldValues = values
        let slots = keys.count * 2
        keys = Array(repeating: Self.empty, count: slots)
        values = Array(repeating: -1, count: slots)
        shift = UInt64(64 - slots.trailingZeroBitCount)
        for (k, v) in zip(oldKeys, oldValues) where k != Self.empty { insertNew(k, v) }
    }


    mutating func insertNew(_ key: UInt64, _ value: Int32) {
        let m = mask
        var i = home(key)
        while keys[i] != Self.empty { i = (i &+ 1) & m }
        keys[i] = key
        values[i] = value
    }

    /// Bytes of its two slot arrays.
    public var memoryBytes: Int { keys.capacity * MemoryLayout<UInt64>.stride + values.capacity * MemoryLayout<Int32>.stride }

    /// Every (gpa, value) pair, in slot order (not sorted).
    public var pairs: [(GPA, Int32)] {
        zip(keys, values).compactMap { $0.0 == Self.empty ? nil : (GPA($0.0), $0.1) }
    }

    /// Checks that every key is reachable from its home slot and the count is right. O(slots).
    public func checkInvariants() {
        var n = 0
        for (i, k) in keys.enumerated() where k != Self.empty {
            n += 1
            var j = home(k)
            while j != i {
                precondition(keys[j] != Self.empty, "GPAMap: key \(GPA(k)) at slot \(i) unreachable from home \(home(k))")
                j = (j + 1) & mask
            }
        }
        precondition(n == count, "GPAMap: count \(count) but \(n) keys stored")
        precondition(count * 4 <= keys.count * 3, "GPAMap: more than 3/4 full")
    }
}
