/// How a switch was served (DESIGN §3). The engine turns outcomes into counters, in one place.
public enum SwitchOutcome: Equatable, Sendable {
    /// Found a context filed under the GPA; `stole` when it was attached to another vCPU.
    case hit(stole: Bool)
    /// A new, unmapped context.
    case alloc
    /// An existing context refiled under the GPA; it keeps its old mapping until the next entry.
    case recycle
    /// No context could be had: the vCPU keeps its active context (or has none).
    case uncached
}

/// A caching policy: decides which context becomes a vCPU's active one (DESIGN §3).
///
/// One value per VM. The engine owns the workload state of DESIGN §2 (current GPA, migrations,
/// mapping at entry, counters) and calls the policy only for what differs between policies. A new
/// policy is one file in `Policies/` and one row in `PolicyKind.registry` (the checklist is
/// there).
public protocol ContextPolicy: Sendable {
    /// False for `map-per-entry`: no contexts, pages mapped at each entry and unmapped at the
    /// vCPU's next event. True for every caching policy: mapping happens at entry through the
    /// vCPU's active context (DESIGN §2).
    static var keepsMappings: Bool { get }

    /// Asked on every switch of `vcpu` to `gpa` (DESIGN §2). Sets `active`, the vCPU's active
    /// context, unless the outcome is `.uncached`. (The engine holds the vCPU's record outside
    /// `vm.vcpus` during the event and stores it back once: `vm.vcpus[vcpu]` is stale here.)
    /// - Complexity: O(1) expected for the table, O(K) for a per-vCPU list; no allocation once
    ///   the policy's structures are full.
    mutating func switchTo(_ gpa: GPA, on vcpu: VCPU, active: inout Int32, in vm: inout VMState) -> SwitchOutcome

    /// Asked on every `clear` of `gpa` executed on `vcpu`, after the engine dropped the vCPU's
    /// current control block.
    mutating func clear(_ gpa: GPA, on vcpu: VCPU, in vm: inout VMState)

    /// Length of the free list (the `free` gauge); 0 for policies without one.
    var freeCount: Int { get }

    /// Checks every structural rule against the VM's state; traps with a description on failure.
    /// O(contexts). Tests call it after every event; hot paths never do.
    func checkInvariants(_ vm: VMState)
}

extension ContextPolicy {
    public static var keepsMappings: Bool { true }
    public var freeCount: Int { 0 }
}
