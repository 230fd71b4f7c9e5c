/// `map-per-entry`: no cache, as upstream KVM today (DESIGN §3).
///
/// No contexts: every switch is a miss counted as uncached, every entry maps P pages, and the
/// vCPU's next event (the exit to L1 came before it) unmaps them. The engine does the mapping;
/// this type only says that there is nothing to keep.
public struct MapPerEntry: ContextPolicy {
    public static var keepsMappings: Bool { false }

    public init() {}

    public mutating func switchTo(_ gpa: GPA, on vcpu: VCPU, active: inout Int32, in vm: inout VMState) -> SwitchOutcome {
        .uncached
    }

    public mutating func clear(_ gpa: GPA, on vcpu: VCPU, in vm: inout VMState) {}

    public func checkInvariants(_ vm: VMState) {
        for (v, c) in vm.vcpus.enumerated() {
            precondition(c.active < 0, "map-per-entry: vCPU \(v) has an active context")
        }
    }
}

// MARK: - Registry

extension PolicyKind {
    public static let mapPerEntry = PolicyKind(
        name: "map-per-entry", parameter: nil, shortName: "m-p-e", policy: MapPerEntry.self,
        // Mapped from an entry to the vCPU's next event: one unit per vCPU at most.
        maxMappedContextsPerVCPU: { _ in 1 },
        makeEngine: { spec, pages in
            MapPerEntryEngine(engine: Engine(spec: spec, prototype: MapPerEntry(), defaultPagesPerContext: pages))
        },
        makeShard: { _, info, pages in MapPerEntryShard(pagesPerContext: UInt64(info.pagesPerContext ?? pages)) })
}

extension PolicySpec {
    public static let mapPerEntry = PolicySpec(kind: .mapPerEntry, parameter: 0)
}

/// `map-per-entry`'s engine (`ConcreteEngine`).
struct MapPerEntryEngine: ConcreteEngine { var engine: Engine<MapPerEntry> }
