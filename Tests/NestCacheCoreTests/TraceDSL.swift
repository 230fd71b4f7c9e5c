import NestCacheCore
import NestCacheReference
import Testing

/// A hand-written trace for one VM, "vcpu op 0xgpa" per line, run under one policy with
/// `checkInvariants()` after every event.
struct HandTrace {
    var vm = VMInfo(id: "vm0")
    var lines: [String]

    init(l1VCPUs: Int? = nil, pages: Int? = nil, _ lines: [String]) {
        vm.l1VCPUs = l1VCPUs
        vm.pagesPerContext = pages
        self.lines = lines
    }

    var events: [Event] {
        lines.enumerated().map { i, line in
            let w = line.split(separator: " ")
            precondition(w.count == 3, "bad hand trace line \(line)")
            guard let v = UInt16(w[0]), let op = TraceOp(name: w[1]), let g = UInt64(w[2].dropFirst(2), radix: 16) else {
                preconditionFailure("bad hand trace line \(line)")
            }
            return Event(timeNs: UInt64(i), vm: 0, vcpu: v, op: op, gpa: GPA(g))
        }
    }

    var registry: VMRegistry {
        var r = VMRegistry()
        r.update(r.intern(vm.id), vm)
        return r
    }

    /// Runs the trace; checks invariants after every event and that the reference model agrees.
    func run(_ spec: PolicySpec, sourceLocation: SourceLocation = #_sourceLocation) -> StatsSnapshot {
        var engine = spec.makeEngine(defaultPagesPerContext: 4)
        let reference = ReferenceModel(spec: spec, defaultPagesPerContext: 4)
        let registry = registry
        engine.sync(with: registry)
        for e in events {
            engine.apply(e, registry: registry)
            reference.apply(e, registry: registry)
            engine.checkInvariants()
        }
        var s = engine.snapshot(vm: 0)
        #expect(s.counters == reference.snapshot(vm: 0).counters, "reference model disagrees", sourceLocation: sourceLocation)
        #expect(s.gauges == reference.snapshot(vm: 0).gauges, "reference model disagrees", sourceLocation: sourceLocation)
        s.memoryBytes = nil
        return s
    }
}

/// Expected counters and gauges, given as a partial list. Every one named must match. Of those
/// not named, every counter that is the policy's decision or a page count (`CounterField.Role`)
/// must be 0; the stream's counters (events, switches, ...) and the gauges are checked only when
/// named (the identities and the reference model check them on every trace).
func expectCounters(
    _ s: StatsSnapshot, _ expected: KeyValuePairs<String, UInt64>, sourceLocation: SourceLocation = #_sourceLocation
) {
    let want = Dictionary(uniqueKeysWithValues: expected.map { ($0.key, $0.value) })
    for f in Counters.fields {
        let a = s.counters[keyPath: f.keyPath]
        if let w = want[f.name] {
            #expect(a == w, "\(f.name)", sourceLocation: sourceLocation)
        } else if f.role != .stream {
            #expect(a == 0, "\(f.name) should be 0", sourceLocation: sourceLocation)
        }
    }
    for f in Gauges.fields {
        if let w = want[f.name] { #expect(s.gauges[keyPath: f.keyPath] == w, "\(f.name)", sourceLocation: sourceLocation) }
    }
    let known = Set(Counters.names + Gauges.names)
    for name in want.keys { #expect(known.contains(name), "unknown counter \(name)", sourceLocation: sourceLocation) }
}
