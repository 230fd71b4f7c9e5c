import NestCacheCore

/// The recent switch sequence of one VM, for `nestcached`'s `show bounds VM` (DESIGN §8, §11).
///
/// Switches are detected over the VM's whole stream, as `SwitchSequence.apply` detects them (each
/// vCPU's current control block is followed from the VM's first event, so the window's switches
/// are exactly the stream's), and the most recent `capacity` of them are kept, oldest first, in a
/// ring of chunks of `chunkSize` records, each allocated when first needed (the first grown by
/// doubling up to its size, the others whole): a VM that switched little costs little, one that
/// switched more than `capacity` times costs `capacity` records (4 bytes each) for good.
///
///     not full:  chunks [0 ..< count), oldest at 0, `head` = 0
///     full:      physical index p holds logical (p - head) mod capacity; the next switch
///                overwrites `head`, the oldest, and `head` moves on
///
/// A record is the vCPU's 12 bits under a 20-bit id of the GPA: the GPAs of the kept switches
/// are interned (`ids`, `gpaOf`), each id counting the records that name it (`uses`) and given
/// back (`freeIDs`) when the last of them is overwritten, so the table holds only the GPAs in
/// the window and ids stay below `capacity` <= 2^20. A VM switches among few control blocks (one
/// per L2 vCPU): the table costs about 40 bytes a GPA (10 KiB for 256), the 4 bytes a switch saved
/// against 8 come to 32 KiB on a full default window (BENCHMARKS.md, "Memory").
///
/// The bounds of a window are those of a stream that starts with its oldest switch: every cache
/// starts cold there. `M` is the declared `l1_vcpus`, else the vCPUs seen in the whole stream
/// (DESIGN §11), not only in the window.
///
/// Not synchronized: the daemon keeps it behind a lock and records one batch at a time.
/// - Complexity: a switch is recorded in O(1) expected (one `GPAMap` look-up, and a removal when
///   it overwrites the last record of a GPA); `subscript` and `forEach` decode in O(1) per switch.
public struct SwitchWindow: Sendable {
    /// One switch, as the window is fed and read: the GPA's page number (below 2^40: readers
    /// accept only 4 KiB-aligned GPAs below 2^52, DESIGN §1) above the vCPU's 16 bits, in 8 bytes
    /// (the window itself keeps 4 per switch).
    public struct Switch: Sendable, Equatable {
        var packed: UInt64

        public init(gpa: GPA, vcpu: UInt16) {
            precondition(gpa.raw & 0xfff == 0 && gpa.raw < 1 << 52, "switch window: GPA \(gpa) not 4 KiB-aligned below 2^52")
            packed = (gpa.raw >> 12) << 16 | UInt64(vcpu)
        }

        public var gpa: GPA { GPA((packed >> 16) << 12) }
        public var vcpu: UInt16 { UInt16(truncatingIfNeeded: packed) }
    }

    /// Bits of a record for the vCPU: indices are below `VCPULimit.count` (4096: 12 bits).
    static let vcpuBits = VCPULimit.count.trailingZeroBitCount
    /// The largest `capacity`: every id of a GPA in the window (at most `capacity` of them) fits
    /// in the record's other 20 bits.
    public static let maxCapacity = 1 << (32 - vcpuBits)

    /// 1 Mi switches (4 MiB once full).
    public static let defaultCapacity = maxCapacity
    /// Records per chunk: 1 Ki (4 KiB).
    public static let defaultChunkSize = 1 << 10

    /// The most switches kept.
    public let capacity: Int
    let chunkSize: Int
    private var chunks: [[UInt32]] = []
    /// The interned GPAs: GPA -> id, id -> GPA, and per id the records naming it (0: a free id,
    /// on `freeIDs`, its GPA out of `ids`). `ids` starts as the shared empty map (copied on first
    /// write): a window that never switched holds no memory of its own.
    private var ids = SwitchWindow.noIDs
    private var gpaOf: [GPA] = []
    private var uses: [UInt32] = []
    private var freeIDs: [Int32] = []
    /// The physical index of the oldest switch (0 until the ring is full).
    private var head = 0
    /// Switches kept: min(capacity, switchesSeen).
    public private(set) var count = 0
    /// Switches and events of the whole stream so far.
    public private(set) var switchesSeen: UInt64 = 0
    public private(set) var eventsSeen: UInt64 = 0
    /// Per vCPU index: its current control block (`GPA.none` for none), and whether it was seen.
    private var current: [GPA] = []
    private var isSeen: [Bool] = []
    /// Distinct vCPU indices in any event of the stream.
    public private(set) var seenVCPUs = 0

    private static let noIDs = GPAMap()

    /// `capacity` from 1 (smaller values are taken as 1) to `maxCapacity`.
    public init(capacity: Int = SwitchWindow.defaultCapacity, chunkSize: Int = SwitchWindow.defaultChunkSize) {
        precondition(capacity <= Self.maxCapacity, "switch window: capacity \(capacity) above \(Self.maxCapacity)")
        self.capacity = max(1, capacity)
        self.chunkSize = max(1, min(chunkSize, self.capacity))
    }

    /// True when older switches were dropped: the window is not the whole stream.
    public var isTruncated: Bool { switchesSeen > UInt64(count) }

    /// Follows events of this VM (their `vm` is ignored), in stream order.
    public mutating func record(_ events: some Sequence<Event>) {
        for e in events { record(e) }
    }

    @inline(__always)
    public mutating func record(_ e: Event) {
        eventsSeen &+= 1
        let v = Int(e.vcpu)
        see(v)
        switch e.op {
        case .clear:
            if current[v] == e.gpa { current[v] = .none }
        case .load, .enter:
            if current[v] == e.gpa { return }
            current[v] = e.gpa
            switchesSeen &+= 1
            append(Switch(gpa: e.gpa, vcpu: e.vcpu))
        }
    }

    /// Counts vCPU `v` as seen (its first event), growing the per-vCPU arrays to it.
    @inline(__always)
    private mutating func see(_ v: Int) {
        if v >= current.count {
            let n = v + 1 - current.count
            current.append(contentsOf: repeatElement(.none, count: n))
            isSeen.append(contentsOf: repeatElement(false, count: n))
        }
        if !isSeen[v] {
            isSeen[v] = true
            seenVCPUs += 1
        }
    }

    /// Records a stretch of the VM's stream whose switches the caller found itself, by the rules
    /// `record(_:)` follows (the daemon's feeder: `SwitchTracker.advance`, already run over every
    /// event): `switches` in stream order, out of `events` events naming the vCPUs `vcpus`.
    /// A window is fed this way or by `record(_:)` for its whole life, not both: this one does
    /// not follow the vCPUs' current control blocks.
    /// - Complexity: O(switches + vcpus), not O(events).
    public mutating func record(switches: some Sequence<Switch>, events: Int, vcpus: some Sequence<Int>) {
        eventsSeen &+= UInt64(events)
        for v in vcpus { see(v) }
        for s in switches {
            switchesSeen &+= 1
            append(s)
        }
    }

    private mutating func append(_ s: Switch) {
        let v = UInt32(s.vcpu)
        precondition(v < 1 << Self.vcpuBits, "switch window: vCPU \(v) not below \(1 << Self.vcpuBits)")
        if count < capacity {
            let c = count / chunkSize
            if c == chunks.count { chunks.append([]) }
            if chunks[c].count == chunks[c].capacity {
                // The first chunk doubles from 64 records (a VM that switched little holds
                // little), the others come whole: windows filling in a long-running daemon free
                // no blocks on the way (as the doubling of one big chunk did, at every size:
                // holes in malloc's arenas that the next, larger windows could not use).
                let size = min(chunkSize, capacity - c * chunkSize)
                chunks[c].reserveCapacity(c == 0 ? min(size, max(64, 2 * chunks[c].count)) : size)
            }
            chunks[c].append(UInt32(truncatingIfNeeded: intern(s.gpa)) << Self.vcpuBits | v)
            count += 1
        } else {
            // The oldest record's id first: at most `capacity` ids are then in use.
            release(Int(chunks[head / chunkSize][head % chunkSize] >> Self.vcpuBits))
            chunks[head / chunkSize][head % chunkSize] = UInt32(truncatingIfNeeded: intern(s.gpa)) << Self.vcpuBits | v
            head += 1
            if head == capacity { head = 0 }
        }
    }

    /// The id of `gpa`, counting one more record naming it.
    private mutating func intern(_ gpa: GPA) -> Int32 {
        if let id = ids.value(for: gpa) {
            uses[Int(id)] += 1
            return id
        }
        let id: Int32
        if let free = freeIDs.popLast() {
            id = free
            gpaOf[Int(id)] = gpa
            uses[Int(id)] = 1
        } else {
            id = Int32(gpaOf.count)
            gpaOf.append(gpa)
            uses.append(1)
        }
        ids.updateValue(id, for: gpa)
        return id
    }

    /// One record naming `id` is gone: the id is free once none is left.
    private mutating func release(_ id: Int) {
        uses[id] -= 1
        guard uses[id] == 0 else { return }
        ids.removeValue(for: gpaOf[id])
        freeIDs.append(Int32(id))
    }

    @inline(__always)
    private func decode(_ r: UInt32) -> Switch {
        Switch(gpa: gpaOf[Int(r >> Self.vcpuBits)], vcpu: UInt16(truncatingIfNeeded: r & (1 << Self.vcpuBits - 1)))
    }

    /// The kept switches, oldest first.
    public func forEach<E: Error>(_ body: (Switch) throws(E) -> Void) throws(E) {
        var p = head
        for _ in 0..<count {
            try body(decode(chunks[p / chunkSize][p % chunkSize]))
            p += 1
            if p == count { p = 0 }  // count == capacity whenever head > 0
        }
    }

    /// The `i`th kept switch, oldest first.
    public subscript(i: Int) -> Switch {
        precondition(i >= 0 && i < count)
        let p = head + i
        let q = p >= capacity ? p - capacity : p
        return decode(chunks[q / chunkSize][q % chunkSize])
    }

    /// The kept switches, oldest first (tests).
    public var switches: [Switch] {
        var out: [Switch] = []
        out.reserveCapacity(count)
        forEach { out.append($0) }
        return out
    }

    /// Bytes held by the ring (its chunks' capacity) and the GPA table (arrays and map slots; the
    /// map is the shared empty one until a GPA is first interned, which is when `gpaOf` grows).
    public var memoryBytes: Int {
        chunks.reduce(0) { $0 + $1.capacity } * MemoryLayout<UInt32>.stride
            + gpaOf.capacity * MemoryLayout<GPA>.stride + uses.capacity * MemoryLayout<UInt32>.stride
            + freeIDs.capacity * MemoryLayout<Int32>.stride + (gpaOf.isEmpty ? 0 : ids.memoryBytes)
    }

    /// Checks the ring's layout; traps on a violation (tests).
    public func checkInvariants() {
        precondition(count <= capacity && UInt64(count) <= switchesSeen)
        precondition(switchesSeen <= eventsSeen)
        precondition(head == 0 || count == capacity, "head moves only once full")
        precondition(head < capacity)
        precondition(chunks.count == (count + chunkSize - 1) / chunkSize, "chunks are allocated lazily, one at a time")
        for (i, c) in chunks.enumerated() {
            precondition(i == chunks.count - 1 ? c.count == count - i * chunkSize : c.count == chunkSize)
            // malloc may round a chunk up (by a page for 1 MiB): never to the whole capacity.
            precondition(c.capacity <= chunkSize + chunkSize / 16 + 64, "a chunk keeps to its size: \(c.capacity) of \(chunkSize)")
        }
        precondition(current.count == isSeen.count && seenVCPUs == isSeen.filter { $0 }.count)
        // The GPA table: every id's uses are the records naming it; exactly the used ids are
        // filed, under their GPA, and the others are free.
        precondition(gpaOf.count == uses.count && gpaOf.count <= capacity)
        var named = [UInt32](repeating: 0, count: uses.count)
        for c in chunks { for r in c { named[Int(r >> Self.vcpuBits)] += 1 } }
        precondition(named == uses, "switch window: id uses \(uses), records name \(named)")
        ids.checkInvariants()
        precondition(ids.count + freeIDs.count == uses.count && Set(freeIDs).count == freeIDs.count)
        for id in freeIDs { precondition(uses[Int(id)] == 0, "switch window: free id \(id) in use") }
        for (id, n) in uses.enumerated() where n > 0 {
            precondition(ids.value(for: gpaOf[id]) == Int32(id), "switch window: id \(id) not filed under \(gpaOf[id])")
        }
    }

    /// DESIGN §11's bounds of the kept switches, as `nestcache bounds` computes them for a VM
    /// `id` whose stream were exactly these switches, with `M` = `declaredL1VCPUs` ?? the vCPUs
    /// of the whole stream. Everything in memory (no spill file): at most 32 bytes per switch
    /// while it runs. O(count · (kmax + |ratios| · log(R · M))).
    public func bounds(id: String, declaredL1VCPUs: Int?, kmax: Int = Bounds.defaultKMax,
                       ratios: [Int] = Bounds.defaultRatios) throws(TraceError) -> BoundsResult {
        var b = try Bounds(kmax: kmax, ratios: ratios)
        b.memoryRecords = count + 1
        let m = declaredL1VCPUs ?? (seenVCPUs > 0 ? seenVCPUs : nil)
        return try b.run(Source(window: self, info: VMInfo(id: id, l1VCPUs: m)))
    }

    /// The window as events, made as they are read: a load per switch, after a clear when the
    /// vCPU's current control block is that GPA already (a switch back to it after a clear in the
    /// original stream).
    struct Source: EventSource {
        let registry: VMRegistry
        private let window: SwitchWindow
        private var next = 0
        private var current: [GPA] = []

        init(window: SwitchWindow, info: VMInfo) {
            var r = VMRegistry()
            r.update(r.intern(info.id), info)
            registry = r
            self.window = window
        }

        mutating func next(into batch: inout [Event], limit: Int) throws(TraceError) -> Bool {
            batch.removeAll(keepingCapacity: true)
            while next < window.count, batch.count + 2 <= max(limit, 2) {
                let s = window[next]
                next += 1
                let v = Int(s.vcpu)
                if v >= current.count { current.append(contentsOf: repeatElement(.none, count: v + 1 - current.count)) }
                if current[v] == s.gpa {
                    batch.append(Event(timeNs: 0, vm: 0, vcpu: s.vcpu, op: .clear, gpa: s.gpa))
                }
                current[v] = s.gpa
                batch.append(Event(timeNs: 0, vm: 0, vcpu: s.vcpu, op: .load, gpa: s.gpa))
            }
            return !batch.isEmpty
        }

        var figures: [(name: String, value: UInt64)] { [] }
    }
}
