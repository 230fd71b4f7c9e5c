/// What the engine keeps for one L1 vCPU (DESIGN §2).
public struct VCPUState: Sendable {
    /// The current control block (VMX `current_vmptr`), or `GPA.none`.
    public var current = GPA.none
    /// The context the next entry maps through, or -1 (none yet).
    public var active: Int32 = -1
    /// Whether this index has appeared in the stream (it counts towards `M` when undeclared).
    public var isSeen = false
    /// map-per-entry only: the pages of the last entry are still mapped.
    public var isEntryMapped = false
    public var counters = Counters()
}

/// The workload state of one VM, shared by the engine and the VM's policy (DESIGN §2).
///
/// Contexts are numbered from 0 in order of creation and never destroyed: a recycled context
/// keeps its number (and, until its next entry, its mapping). `mappedFor[c]` is the GPA whose
/// pages context `c` maps, or `GPA.none`.
public struct VMState: Sendable {
    public let info: VMInfo
    /// `P` of DESIGN §1.
    public let pagesPerContext: UInt64
    public internal(set) var vcpus: [VCPUState] = []
    /// Distinct vCPU indices seen so far.
    public internal(set) var seenVCPUs = 0
    public internal(set) var mappedFor: [GPA] = []
    /// Contexts whose `mappedFor` is a GPA (map-per-entry: vCPUs with pages mapped).
    public internal(set) var mappedUnits = 0
    public internal(set) var peakMappedPages: UInt64 = 0
    /// The vCPU that last switched to each GPA: a switch from another vCPU is a migration.
    /// Starts as a shared empty map (copied on first write): the daemon's per-vCPU shards, told
    /// migrations from outside, never write it, and there are hundreds of thousands of them.
    var lastSwitcher = VMState.emptyMap

    static let emptyMap = GPAMap()

    public init(info: VMInfo, defaultPagesPerContext: Int) {
        self.info = info
        self.pagesPerContext = UInt64(info.pagesPerContext ?? defaultPagesPerContext)
        if let m = info.l1VCPUs { vcpus.reserveCapacity(m) }
    }

    /// `M` of DESIGN §3: declared, else the distinct vCPU indices seen so far.
    @inline(__always)
    public var l1VCPUs: Int { info.l1VCPUs ?? seenVCPUs }

    public var mappedPages: UInt64 { UInt64(mappedUnits) &* pagesPerContext }

    /// A new, unmapped context. Allocates only when the context array grows.
    @inline(__always)
    public mutating func newContext() -> Int32 {
        mappedFor.append(.none)
        return Int32(mappedFor.count - 1)
    }

    /// Makes `vcpu` a known index (growing the per-vCPU array) and counts it as seen.
    @inline(__always)
    mutating func see(_ vcpu: Int) {
        if vcpu >= vcpus.count {
            vcpus.append(contentsOf: repeatElement(VCPUState(), count: vcpu + 1 - vcpus.count))
        }
        if !vcpus[vcpu].isSeen {
            vcpus[vcpu].isSeen = true
            seenVCPUs += 1
        }
    }
}
