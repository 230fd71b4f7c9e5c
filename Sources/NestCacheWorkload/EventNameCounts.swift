#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Lines counted per event name: the ftrace reader's `skipped_events` (DESIGN §5: the lines of
/// events the reader does not use are passed over and counted).
///
/// A name is looked up by its bytes in place, so counting a line allocates nothing once its name
/// has been seen. An open-addressing table (linear probing over a power-of-two slot array, FNV-1a
/// hashes) maps a name to its index in `names`/`counts`; the index of the last name counted is
/// tried first, since captures repeat an event in runs.
///
///     slots:  [-1, 2, -1, 0, 1, -1, -1, -1]     index into names, -1 empty; at most half full
///     names:  ["kvm_fpu", "kvm_msr", "sched_switch"]    in order of first sight
///     counts: [7, 1, 3]
///
/// At most `limit` distinct names are kept (a real capture has a few dozen; the kernel has a few
/// thousand events), so memory stays bounded on any input; the lines of further names are counted
/// under `overflowName`.
/// - Complexity: O(name length) expected per line.
struct EventNameCounts {
    static let limit = 4096
    static let overflowName = "(other)"

    private var names: [[UInt8]] = []
    private var hashes: [UInt64] = []
    private var counts: [UInt64] = []
    private var slots = [Int32](repeating: -1, count: 64)
    private var last = -1
    private var overflow: UInt64 = 0

    var isEmpty: Bool { names.isEmpty && overflow == 0 }

    /// Counts one line of the event `name`.
    mutating func add(_ name: UnsafeBufferPointer<UInt8>) {
        if last >= 0, Self.same(names[last], name) {
            counts[last] &+= 1
            return
        }
        let h = Self.hash(name)
        let mask = slots.count - 1
        var s = Int(truncatingIfNeeded: h) & mask
        while slots[s] >= 0 {
            let i = Int(slots[s])
            if hashes[i] == h, Self.same(names[i], name) {
                counts[i] &+= 1
                last = i
                return
            }
            s = (s + 1) & mask
        }
        guard names.count < Self.limit else {
            overflow &+= 1
            return
        }
        slots[s] = Int32(names.count)
        last = names.count
        names.append(Array(name))
        hashes.append(h)
        counts.append(1)
        if names.count * 2 > slots.count { grow() }
    }

    /// Every name with its count, sorted by name (then `overflowName` if any line went there).
    var sorted: [(name: String, count: UInt64)] {
        var out = zip(names, counts).map { (name: String(decoding: $0, as: UTF8.self), count: $1) }
        out.sort { $0.name < $1.name }
        if overflow > 0 { out.append((Self.overflowName, overflow)) }
        return out
    }

    private mutating func grow() {
        slots = [Int32](repeating: -1, count: slots.count * 2)
        let mask = slots.count - 1
        for (i, h) in hashes.enumerated() {
            var s = Int(truncatingIfNeeded: h) & mask
            while slots[s] >= 0 { s = (s + 1) & mask }
            slots[s] = Int32(i)
        }
    }

    @inline(__always)
    private static func same(_ a: [UInt8], _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBufferPointer { p in
            guard let x = p.baseAddress, let y = b.baseAddress else { return true }
            return memcmp(x, y, a.count) == 0
        }
    }

    /// FNV-1a, 64 bits.
    @inline(__always)
    private static func hash(_ s: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for c in s { h = (h ^ UInt64(c)) &* 0x0000_0100_0000_01b3 }
        return h
    }
}
