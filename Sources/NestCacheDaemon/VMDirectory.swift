/// The VMs the daemon serves, by id, in order of arrival: shared by the runners (which add VMs
/// as their sources name them) and the control socket (which reads them).
public final class VMDirectory: Sendable {
    /// Each VM with the runner that feeds it (what `pause VM` acts on).
    let entries = Locked<[(vm: VMRuntime, runner: WorkloadRunner)]>([])

    public init() {}

    /// Adds `vm`, fed by `runner`, unless its id is taken; returns whether it was added.
    func add(_ vm: VMRuntime, fedBy runner: WorkloadRunner) -> Bool {
        entries.withLock { list in
            guard !list.contains(where: { $0.vm.id == vm.id }) else { return false }
            list.append((vm, runner))
            return true
        }
    }

    func remove(_ ids: Set<String>) {
        entries.withLock { $0.removeAll { ids.contains($0.vm.id) } }
    }

    /// Every VM, sorted by id.
    public var all: [VMRuntime] { entries.withLock { $0.map(\.vm) }.sorted { $0.id < $1.id } }

    public func vm(_ id: String) -> VMRuntime? { entries.withLock { $0.first { $0.vm.id == id }?.vm } }

    /// The runner feeding VM `id`.
    func runner(of id: String) -> WorkloadRunner? { entries.withLock { $0.first { $0.vm.id == id }?.runner } }
}
