import NestCacheCore

/// The JSON and table forms of counters and gauges, shared by `replay`, `compare` and the daemon.
public enum StatsReport {
    /// Counters, gauges and derived values of DESIGN §4, in that order, as JSON members.
    public static func members(_ s: StatsSnapshot, cost: CostModel) -> [(String, JSON)] {
        var m: [(String, JSON)] = []
        m.reserveCapacity(Counters.names.count + Gauges.names.count + 3)
        for (k, v) in zip(Counters.names, s.counters.values) { m.append((k, .uint(v))) }
        for (k, v) in zip(Gauges.names, s.gauges.values) { m.append((k, .uint(v))) }
        m.append(("hit_ratio", .number(s.hitRatio)))
        m.append(("exposure", .number(s.exposure)))
        m.append(("overhead_ns", .double(s.overheadNs(cost))))
        return m
    }

    /// The JSON of `nestcache replay` (DESIGN §9).
    public static func replayJSON(
        engine: any PolicyEngine, registry: VMRegistry, pagesPerContext: Int, cost: CostModel,
        figures: [(name: String, value: UInt64)], skippedEvents: EventCounts? = nil
    ) -> JSON {
        var vms: [(String, JSON)] = []
        for i in sortedVMIndices(registry, count: engine.vmCount) {
            vms.append((registry[i].id, .object(members(engine.snapshot(vm: i), cost: cost))))
        }
        var top: [(String, JSON)] = [
            ("policy", .string(engine.spec.description)),
            ("pages_per_context", .int(Int64(pagesPerContext))),
            ("totals", .object(members(engine.totals, cost: cost))),
            ("vms", .object(vms)),
        ]
        for f in figures { top.append((f.name, .uint(f.value))) }
        top += skippedEventsMembers(skippedEvents)
        return .object(top)
    }

    /// VM indices ordered by id, so output never depends on arrival order.
    public static func sortedVMIndices(_ registry: VMRegistry, count: Int) -> [Int32] {
        (0..<Int32(min(count, registry.count))).sorted { registry[$0].id < registry[$1].id }
    }
}

extension StatsReport {
    /// A plain-text rendering of a report object: `key: value` lines, nested objects indented.
    public static func text(_ json: JSON, indent: String = "") -> String {
        guard case .object(let members) = json else { return indent + json.serialized() }
        return members.map { k, v in
            if case .object = v { return indent + k + ":\n" + text(v, indent: indent + "  ") }
            if case .string(let s) = v { return indent + k + ": " + s }
            return indent + k + ": " + v.serialized()
        }.joined(separator: "\n")
    }
}
