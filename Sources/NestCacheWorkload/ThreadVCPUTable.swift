/// Thread (pid) -> the L1 vCPU it last said it runs: `FtraceReader`'s lookup on every KVM line.
///
/// Open addressing with linear probing over power-of-two arrays, a multiplicative hash of the pid
/// (no `Hasher`: pids are not chosen by an adversary, and a collision costs a probe, not a
/// wrong answer), grown to keep the load at most 1/2; entries are never removed (a reader keeps
/// every thread it saw). In front of it, the slot of the last pid looked up: a trace alternates
/// between few threads, most lines are of the thread of the line before.
///
///     keys   [ -1 | 4811 | -1 | 4810 ]     -1: empty slot
///     values [  . |    1 |  . |    0 ]     4811 runs vCPU 1, 4810 vCPU 0
///
/// - Complexity: O(1) expected per lookup or update; memory O(threads).
struct ThreadVCPUTable {
    private var keys: [Int32]
    private var values: [UInt16]
    private(set) var count = 0
    private var lastPID: Int32 = -1
    private var lastSlot = 0

    /// An empty table of `capacity` slots (a power of two).
    init(capacity: Int = 64) {
        precondition(capacity == 0 || capacity.nonzeroBitCount == 1, "capacity \(capacity) is not a power of two")
        keys = Array(repeating: -1, count: capacity)
        values = Array(repeating: 0, count: capacity)
    }

    /// A placeholder without storage, to swap a table out of a class for a loop (no lookup or
    /// update may be made on it).
    static var empty: ThreadVCPUTable { ThreadVCPUTable(capacity: 0) }

    /// The slot of `pid`, or of the empty slot where it would go.
    @inline(__always)
    private func slot(of pid: Int32) -> Int {
        let mask = keys.count - 1
        var s = Int(truncatingIfNeeded: (UInt32(bitPattern: pid) &* 0x9E37_79B9) >> 8) & mask
        while keys[s] != pid, keys[s] != -1 { s = (s + 1) & mask }
        return s
    }

    /// The vCPU of thread `pid` (pids are >= 0), nil if it never said. Mutating: it moves the
    /// last-pid cache.
    @inline(__always)
    mutating func vcpu(of pid: Int32) -> UInt16? {
        if pid == lastPID { return values[lastSlot] }
        let s = slot(of: pid)
        guard keys[s] == pid else { return nil }
        lastPID = pid
        lastSlot = s
        return values[s]
    }

    /// Records that thread `pid` (>= 0) runs `vcpu`.
    @inline(__always)
    mutating func set(_ pid: Int32, _ vcpu: UInt16) {
        if pid == lastPID {
            values[lastSlot] = vcpu
            return
        }
        var s = slot(of: pid)
        if keys[s] != pid {
            if (count + 1) * 2 > keys.count {
                grow()
                s = slot(of: pid)
            }
            keys[s] = pid
            count += 1
        }
        values[s] = vcpu
        lastPID = pid
        lastSlot = s
    }

    /// Every thread recorded is found from its hash by probing, the load is at most 1/2, `count`
    /// counts the used slots, and the last-pid cache names a slot holding that pid. O(capacity).
    func checkInvariants() {
        precondition(keys.count == values.count && (keys.isEmpty || keys.count.nonzeroBitCount == 1), "capacity \(keys.count)")
        precondition(keys.filter { $0 != -1 }.count == count, "\(count) counted, \(keys.filter { $0 != -1 }.count) used")
        precondition(count * 2 <= keys.count, "load \(count)/\(keys.count) above 1/2")
        for k in keys where k != -1 {
            precondition(k >= 0 && keys[slot(of: k)] == k, "pid \(k) not found by probing")
        }
        if lastPID != -1 { precondition(keys[lastSlot] == lastPID, "last-pid cache names slot \(lastSlot), not pid \(lastPID)") }
    }

    private mutating func grow() {
        let oldKeys = keys
        let oldValues = values
        keys = Array(repeating: -1, count: oldKeys.count * 2)
        values = Array(repeating: 0, count: oldKeys.count * 2)
        for (k, v) in zip(oldKeys, oldValues) where k != -1 {
            let s = slot(of: k)
            keys[s] = k
            values[s] = v
        }
        lastPID = -1
    }
}
