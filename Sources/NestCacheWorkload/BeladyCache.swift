/// Belady's rule with bypass for one cache of C contexts: `opt_vm_hits[R]` of DESIGN §11 with
/// C = R · M, over a VM's whole switch sequence.
///
/// The rule is `BeladyStack`'s (see there why it is optimal): a hit changes nothing; a miss with
/// room caches the GPA; a miss when full leaves out the GPA of the cache plus the requested one
/// that is requested again furthest in the future, or never. One size at a time, with a binary
/// max-heap on next use, because C = R · M can be thousands of contexts (R = 16, M = 256: 4096),
/// where the stack's O(C) per switch would not do:
///
///     hit on g:            g's next use moves later: sift it up
///     miss, room:          push g
///     miss, full, g needed later than the root (or never):   bypass, nothing changes
///     miss, full, else:    the root (needed furthest) leaves; g takes its place, sifts down
///
/// A cached GPA's next use is always the current request's index when it is requested (that is
/// how it was computed), so a hit only ever raises it.
///
/// - Complexity: O(log C) per switch; memory O(min(C, GPAs)) for the heap plus 4 bytes per GPA
///   of the VM (its heap position).
struct BeladyCache {
    let capacity: Int
    /// The heap, as parallel arrays: `heapNext[0]` is the largest next use.
    private(set) var heapKeys: [UInt32] = []
    private(set) var heapNext: [UInt64] = []
    /// Per local key: its heap index, or -1 when not cached. Grows as keys appear.
    private(set) var position: [Int32] = []
    private(set) var hits: UInt64 = 0
    private(set) var accesses: UInt64 = 0

    init(capacity: Int, keys: Int = 0) {
        precondition(capacity >= 0)
        self.capacity = capacity
        position = Array(repeating: -1, count: keys)
        heapKeys.reserveCapacity(min(capacity, keys))
        heapNext.reserveCapacity(min(capacity, keys))
    }

    /// A request for `key` (a VM-local GPA index) whose next request is at `nextUse`
    /// (`FutureRecord.never`: none). Returns whether it hit.
    @discardableResult
    @inline(__always)
    mutating func access(_ key: UInt32, nextUse: UInt64) -> Bool {
        accesses &+= 1
        let k = Int(key)
        if k >= position.count { position.append(contentsOf: repeatElement(-1, count: k + 1 - position.count)) }
        let i = Int(position[k])
        if i >= 0 {
            hits &+= 1
            heapNext[i] = nextUse
            siftUp(i)
            return true
        }
        if heapKeys.count < capacity {
            heapKeys.append(key)
            heapNext.append(nextUse)
            position[k] = Int32(heapKeys.count - 1)
            siftUp(heapKeys.count - 1)
            return false
        }
        // Full (or C = 0): keep the requested GPA only if the furthest cached one is needed later.
        guard let rootNext = heapNext.first, rootNext > nextUse else { return false }
        position[Int(heapKeys[0])] = -1
        heapKeys[0] = key
        heapNext[0] = nextUse
        position[k] = 0
        siftDown(0)
        return false
    }

    @inline(__always)
    private mutating func siftUp(_ start: Int) {
        var i = start
        let key = heapKeys[i]
        let next = heapNext[i]
        while i > 0 {
            let parent = (i &- 1) >> 1
            guard heapNext[parent] < next else { break }
            heapKeys[i] = heapKeys[parent]
            heapNext[i] = heapNext[parent]
            position[Int(heapKeys[i])] = Int32(truncatingIfNeeded: i)
            i = parent
        }
        heapKeys[i] = key
        heapNext[i] = next
        position[Int(key)] = Int32(truncatingIfNeeded: i)
    }

    @inline(__always)
    private mutating func siftDown(_ start: Int) {
        var i = start
        let key = heapKeys[i]
        let next = heapNext[i]
        let n = heapKeys.count
        while true {
            let left = 2 &* i &+ 1
            guard left < n else { break }
            var child = left
            if left &+ 1 < n, heapNext[left &+ 1] > heapNext[left] { child = left &+ 1 }
            guard heapNext[child] > next else { break }
            heapKeys[i] = heapKeys[child]
            heapNext[i] = heapNext[child]
            position[Int(heapKeys[i])] = Int32(truncatingIfNeeded: i)
            i = child
        }
        heapKeys[i] = key
        heapNext[i] = next
        position[Int(key)] = Int32(truncatingIfNeeded: i)
    }

    /// The cached local keys (any order).
    var cached: [UInt32] { heapKeys }

    /// Checks every structural rule: at most C cached, the heap order, positions that point back.
    /// O(keys).
    func checkInvariants() {
        precondition(heapKeys.count <= capacity, "BeladyCache: \(heapKeys.count) cached > capacity \(capacity)")
        precondition(heapKeys.count == heapNext.count, "BeladyCache: heap arrays out of step")
        for i in heapKeys.indices {
            precondition(position[Int(heapKeys[i])] == Int32(i), "BeladyCache: key \(heapKeys[i]) at \(i), position says \(position[Int(heapKeys[i])])\n\(self)")
            if i > 0 {
                precondition(heapNext[(i - 1) / 2] >= heapNext[i], "BeladyCache: heap order broken at \(i)\n\(self)")
            }
        }
        let positioned = position.filter { $0 >= 0 }.count
        precondition(positioned == heapKeys.count, "BeladyCache: \(positioned) positions for \(heapKeys.count) cached")
        precondition(hits <= accesses, "BeladyCache: \(hits) hits > \(accesses) accesses")
    }
}

extension BeladyCache: CustomStringConvertible {
    var description: String {
        "  C = \(capacity): [" + heapKeys.indices.map { i in
            "\(heapKeys[i]):" + (heapNext[i] == FutureRecord.never ? "never" : String(heapNext[i]))
        }.joined(separator: " ") + "]"
    }
}
