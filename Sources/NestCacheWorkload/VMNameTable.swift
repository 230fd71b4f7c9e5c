#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NestCacheCore

/// VM ids as bytes -> registry index, for a reader's per-line lookup (no String, no allocation).
///
/// Ids are at most 64 bytes (DESIGN §1), so each lives in a fixed 64-byte slot of one arena,
/// indexed like the registry. The index is open addressing with linear probing over a
/// power-of-two array kept at most half full; the hash reads 8 bytes at a time.
///
/// A reference type over manual memory on purpose: the reader owns it alone and looks it up on
/// every line, so no copy-on-write check belongs in that path.
///
/// - Complexity: `find` O(id length) expected; `insert` O(1) amortized (the arena and the slots
///   double). Memory O(VMs).
final class VMNameTable {
    static let maxLength = 64

    private(set) var count = 0
    private var capacity = 0
    private var arena: UnsafeMutablePointer<UInt8>
    private var lengths: UnsafeMutablePointer<Int>
    /// Per VM: one past the highest vCPU index its lines may name (declared `l1_vcpus`, else
    /// `VCPULimit.count`).
    private var limits: UnsafeMutablePointer<Int>
    /// Registry index per slot, -1 for empty.
    private var slots: UnsafeMutablePointer<Int32>
    private var mask = 0

    init() {
        capacity = 16
        arena = .allocate(capacity: capacity * Self.maxLength)
        lengths = .allocate(capacity: capacity)
        limits = .allocate(capacity: capacity)
        mask = 63
        slots = .allocate(capacity: mask + 1)
        slots.initialize(repeating: -1, count: mask + 1)
    }

    deinit {
        arena.deallocate()
        lengths.deallocate()
        limits.deallocate()
        slots.deallocate()
    }

    /// One past the highest vCPU index VM `vm` may name.
    @inline(__always)
    func vcpuLimit(_ vm: Int32) -> Int { limits[Int(vm)] }

    func setVCPULimit(_ vm: Int32, _ limit: Int) { limits[Int(vm)] = limit }

    @inline(__always)
    static func hash(_ p: UnsafeRawPointer, _ n: Int) -> Int {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(n)
        var i = 0
        while i &+ 8 <= n {
            h = (h ^ p.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xBF58_476D_1CE4_E5B9
            h ^= h >> 29
            i &+= 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < n {
            tail |= UInt64(p.load(fromByteOffset: i, as: UInt8.self)) << shift
            shift &+= 8
            i &+= 1
        }
        h = (h ^ tail) &* 0x94D0_49BB_1331_11EB
        return Int(truncatingIfNeeded: h ^ (h >> 31))
    }

    /// Whether VM `vm`'s id is the `n` bytes at `p` (8 bytes at a time; the last word overlaps).
    @inline(__always)
    func equals(_ vm: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Bool {
        guard lengths[Int(vm)] == n else { return false }
        let q = UnsafeRawPointer(arena + Int(vm) &* Self.maxLength)
        if n < 8 {
            for i in 0..<n where p.load(fromByteOffset: i, as: UInt8.self) != q.load(fromByteOffset: i, as: UInt8.self) {
                return false
            }
            return true
        }
        var i = 0
        while i &+ 8 < n {
            if p.loadUnaligned(fromByteOffset: i, as: UInt64.self) != q.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
            i &+= 8
        }
        return p.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self) == q.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self)
    }

    /// The registry index of the id at `p`, or -1.
    @inline(__always)
    func find(_ p: UnsafeRawPointer, _ n: Int) -> Int32 {
        var i = Self.hash(p, n) & mask
        while true {
            let vm = slots[i]
            if vm < 0 || equals(vm, p, n) { return vm }
            i = (i &+ 1) & mask
        }
    }

    /// Adds the id at `p` (1 to 64 bytes, not yet present) as registry index `count`.
    func insert(_ p: UnsafeRawPointer, _ n: Int) {
        precondition(n >= 1 && n <= Self.maxLength, "VMNameTable: id of \(n) bytes")
        if count == capacity {
            let grown = capacity * 2
            let a = UnsafeMutablePointer<UInt8>.allocate(capacity: grown * Self.maxLength)
            a.update(from: arena, count: count * Self.maxLength)
            arena.deallocate()
            arena = a
            let l = UnsafeMutablePointer<Int>.allocate(capacity: grown)
            l.update(from: lengths, count: count)
            lengths.deallocate()
            lengths = l
            let m = UnsafeMutablePointer<Int>.allocate(capacity: grown)
            m.update(from: limits, count: count)
            limits.deallocate()
            limits = m
            capacity = grown
        }
        let vm = Int32(count)
        memcpy(arena + count * Self.maxLength, p, n)
        lengths[count] = n
        limits[count] = VCPULimit.count
        count += 1
        if count * 2 > mask + 1 {
            slots.deallocate()
            mask = mask * 2 + 1
            slots = .allocate(capacity: mask + 1)
            slots.initialize(repeating: -1, count: mask + 1)
            for k in 0..<count { place(Int32(k), UnsafeRawPointer(arena + k * Self.maxLength), lengths[k]) }
        } else {
            place(vm, p, n)
        }
    }

    private func place(_ vm: Int32, _ p: UnsafeRawPointer, _ n: Int) {
        var i = Self.hash(p, n) & mask
        while slots[i] >= 0 { i = (i &+ 1) & mask }
        slots[i] = vm
    }

    /// `insert` for a String id.
    func insert(_ id: String) {
        var id = id
        id.withUTF8 { bytes in
            guard let base = bytes.baseAddress else { preconditionFailure("VMNameTable: empty id") }
            insert(UnsafeRawPointer(base), bytes.count)
        }
    }
}
