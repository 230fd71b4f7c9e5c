import NestCacheCore
import NestCacheWorkload

/// What feeds one workload: a simulated VM, a replayed trace or a followed capture (DESIGN §7).
public enum WorkloadKind: Sendable, Equatable {
    case simulated(DaemonConfig.SimulatedVM)
    case replay(DaemonConfig.ReplaySource)
    case live(DaemonConfig.LiveSource)

    var speed: Speed {
        switch self {
        case .simulated(let v): v.speed
        case .replay(let r): r.speed
        case .live: .max
        }
    }

    var ordering: Ordering {
        switch self {
        case .simulated: .concurrent
        case .replay(let r): r.ordering
        case .live: .strict
        }
    }

    var policies: [PolicySpec] {
        switch self {
        case .simulated(let v): [v.policy] + v.shadowPolicies
        case .replay(let r): [r.policy] + r.shadowPolicies
        case .live(let l): [l.policy] + l.shadowPolicies
        }
    }

    var name: String {
        switch self {
        case .simulated(let v): "vm \(v.id)"
        case .replay(let r): "replay \(r.trace)"
        case .live(let l): "live \(l.trace)"
        }
    }

    func makeSource() throws(TraceError) -> any EventSource {
        switch self {
        case .simulated(let v): v.workload.makeSource()
        case .replay(let r):
            TraceFileSequence(paths: [r.trace], format: r.format, vm: r.vm, invalidLines: .fail)
        case .live(let l):
            try LiveTrace(path: l.trace, format: l.format, vm: l.vm ?? TraceFileSequence.defaultVMName(l.trace))
        }
    }
}
