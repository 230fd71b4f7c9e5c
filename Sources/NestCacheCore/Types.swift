/// A guest-physical address of a control block (VMCS12 / VMCB12), DESIGN §1.
///
/// Readers accept only 4 KiB-aligned addresses below 2^52, so `GPA.none` (all ones) can never
/// collide with a real one and serves as the "no GPA" sentinel in the hot structures.
public struct GPA: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var raw: UInt64

    @inline(__always) public init(_ raw: UInt64) { self.raw = raw }

    /// The sentinel for "nothing": no current control block, an unmapped context.
    public static let none = GPA(.max)
    /// One past the highest valid GPA (DESIGN §1: below 2^52).
    public static let limit: UInt64 = 1 << 52

    /// True for a 4 KiB-aligned address below 2^52.
    public var isValid: Bool { raw < GPA.limit && raw & 0xfff == 0 }

    public static func < (a: GPA, b: GPA) -> Bool { a.raw < b.raw }

    /// `0x` followed by lower-case hex, as the native trace format writes it.
    public var description: String { "0x" + String(raw, radix: 16) }
}

/// An L1 vCPU index, `0 ..< VCPU.limit` (DESIGN §1).
public typealias VCPU = Int

public enum VCPULimit {
    /// KVM's KVM_MAX_VCPUS on x86 is 4096; DESIGN §1.
    public static let count = 4096
}

/// The three operations of DESIGN §2.
public enum TraceOp: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// VMPTRLD.
    case load
    /// VMLAUNCH / VMRESUME / VMRUN: an implied load, then an entry.
    case enter
    /// VMCLEAR.
    case clear

    public var description: String {
        switch self {
        case .load: "load"
        case .enter: "enter"
        case .clear: "clear"
        }
    }

    public init?(name: some StringProtocol) {
        switch name {
        case "load": self = .load
        case "enter": self = .enter
        case "clear": self = .clear
        default: return nil
        }
    }
}

/// One event of a workload stream, with the VM interned to an index of a `VMRegistry`.
///
/// 24 bytes, a plain value: batches of these are what readers and simulators hand to engines.
public struct Event: Sendable, Equatable {
    public var timeNs: UInt64
    public var gpa: GPA
    public var vm: Int32
    public var vcpu: UInt16
    public var op: TraceOp

    @inline(__always)
    public init(timeNs: UInt64, vm: Int32, vcpu: UInt16, op: TraceOp, gpa: GPA) {
        self.timeNs = timeNs
        self.gpa = gpa
        self.vm = vm
        self.vcpu = vcpu
        self.op = op
    }
}

/// What a trace or a configuration declares about one VM (the `# vm` line, DESIGN §5).
public struct VMInfo: Sendable, Equatable {
    public var id: String
    /// Declared number of L1 vCPUs (`M`); nil: count the distinct vCPUs seen (DESIGN §3).
    public var l1VCPUs: Int?
    public var memoryMiB: Int?
    /// Pages per context (`P`); nil: the run's default.
    public var pagesPerContext: Int?

    public init(id: String, l1VCPUs: Int? = nil, memoryMiB: Int? = nil, pagesPerContext: Int? = nil) {
        self.id = id
        self.l1VCPUs = l1VCPUs
        self.memoryMiB = memoryMiB
        self.pagesPerContext = pagesPerContext
    }

    /// `[A-Za-z0-9_.:-]{1,64}`, DESIGN §1.
    public static func isValidID(_ bytes: some Collection<UInt8>) -> Bool {
        guard (1...64).contains(bytes.count) else { return false }
        return bytes.allSatisfy(isIDByte)
    }

    @inline(__always)
    public static func isIDByte(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."),
            UInt8(ascii: ":"), UInt8(ascii: "-"):
            true
        default: false
        }
    }
}

/// The VMs of a stream, in order of first appearance; `Event.vm` indexes `infos`.
public struct VMRegistry: Sendable {
    public private(set) var infos: [VMInfo] = []
    private var indexByID: [String: Int32] = [:]

    public init() {}

    public var count: Int { infos.count }

    public func index(of id: String) -> Int32? { indexByID[id] }

    /// The index of `id`, registering it (undeclared) on first sight.
    public mutating func intern(_ id: String) -> Int32 {
        if let i = indexByID[id] { return i }
        let i = Int32(infos.count)
        infos.append(VMInfo(id: id))
        indexByID[id] = i
        return i
    }

    /// Replaces what is known of a VM (its index stays).
    public mutating func update(_ index: Int32, _ info: VMInfo) {
        infos[Int(index)] = info
    }

    public subscript(index: Int32) -> VMInfo { infos[Int(index)] }
}
