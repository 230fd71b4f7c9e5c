import NestCacheCore

extension ReportData {
    /// The report's data with named fields: every number of the text (and more: the hit counts
    /// behind every ratio), the readings with the figures they quote, and the rules' thresholds.
    ///
    /// A break-even that never comes is the string `"never"`; a figure that does not apply is
    /// null.
    public var json: JSON {
        let ratioJSON = { (h: UInt64) in JSON.number(ratio(h)) }
        var top: [(String, JSON)] = [
            ("input", .string(input)),
            ("source", .string(isWorkload ? "workload" : "files")),
            ("cost_model", .object([
                ("map_ns", .double(cost.mapNs)), ("unmap_ns", .double(cost.unmapNs)), ("lookup_ns", .double(cost.lookupNs)),
            ])),
            ("pages_per_context", .int(Int64(pagesPerContext))),
            ("k", .int(Int64(k))),
            ("r", .int(Int64(r))),
            ("vms", .int(Int64(vms))),
            ("l1_vcpus", .int(Int64(l1VCPUs))),
            ("switches", .uint(switches)),
            ("entries", .uint(entries)),
            ("thresholds", .object([
                ("near_optimal", .double(ReportReading.nearOptimal)),
                ("negligible_gain", .double(ReportReading.negligibleGain)),
                ("mostly", .double(ReportReading.mostly)),
                ("majority", .double(ReportReading.majority)),
                ("small_exposure", .double(ReportReading.smallExposure)),
                ("break_even_share", .double(BreakEven.defaultShare)),
            ])),
            ("isolation", .object([
                ("policies", .array(policies.map { p in
                    .object([
                        ("policy", .string(p.policy.description)), ("switches", .uint(p.switches)), ("hits", .uint(p.hits)),
                        ("hit_ratio", .number(p.hitRatio)), ("entries", .uint(p.entries)), ("map_pages", .uint(p.mapPages)),
                        ("unmap_pages", .uint(p.unmapPages)),
                        ("map_unmap_pages_per_1k_entries", .number(p.pagesPer1kEntries)),
                        ("overhead_ns_per_entry", .number(p.overheadNsPerEntry)),
                        ("peak_mapped_pages", .uint(p.peakMappedPages)), ("exposure", .number(p.exposure)),
                    ])
                })),
                ("reading", Self.json(readings.isolation)),
            ])),
            ("sharing", .object([
                ("k", .array(lruHits.indices.map { JSON.int(Int64($0)) })),
                ("lru_hits", .array(lruHits.map(JSON.uint))),
                ("lru_hit_ratio", .array(lruHits.map(ratioJSON))),
                ("opt_vcpu_hits", .array(optVCPUHits.map(JSON.uint))),
                ("opt_vcpu_hit_ratio", .array(optVCPUHits.map(ratioJSON))),
                ("ratios", .array(ratios.map { JSON.int(Int64($0)) })),
                ("table_hits", .array(tableHits.map(JSON.uint))),
                ("table_hit_ratio", .array(tableHits.map(ratioJSON))),
                ("opt_vm_hits", .array(optVMHits.map(JSON.uint))),
                ("opt_vm_hit_ratio", .array(optVMHits.map(ratioJSON))),
                ("reading", Self.json(readings.sharing)),
            ])),
            ("exposure", .object([
                ("rows", .array(exposure.map { e in
                    let int = { (x: Int?) in x.map { JSON.int(Int64($0)) } ?? .null }
                    return .object([
                        ("ratio", int(e.ratio)), ("l1_vcpus", int(e.l1VCPUs)), ("l2_vcpus", int(e.l2VCPUs)),
                        ("policy", .string(e.policy.description)), ("peak_mapped_pages", .uint(e.peakMappedPages)),
                        ("exposure", .number(e.exposure)), ("bound_pages", e.boundPages.map(JSON.uint) ?? .null),
                    ])
                })),
                ("reading", Self.json(readings.exposure)),
            ])),
            ("break_even", .object([
                ("model_map_unmap_ns", .double(BreakEven.modelCost(cost))),
                ("map_share", .double(BreakEven.mapShare(cost))),
                ("rows", .array(breakEven.map { b in
                    .object([
                        ("policy", .string(b.policy.description)),
                        ("saving_over_single_ns_per_entry", .number(b.savingOverSingle)),
                        ("break_even_over_single_ns", Self.json(b.overSingle)),
                        ("saving_over_map_per_entry_ns_per_entry", .number(b.savingOverMapPerEntry)),
                        ("break_even_over_map_per_entry_ns", Self.json(b.overMapPerEntry)),
                    ])
                })),
                ("reading", Self.json(readings.breakEven)),
            ])),
            ("charts", .object([("y_ticks", .array(TextChart.yTicks.map(JSON.double)))])),
        ]
        for f in figures { top.append((f.name, .uint(f.value))) }
        top += skippedEventsMembers(skippedEvents)
        return .object(top)
    }

    static func json(_ r: ReportReading.Reading) -> JSON {
        .object([("text", .string(r.text))] + r.figures.map { ($0.name, JSON.double($0.value)) })
    }

    static func json(_ o: BreakEven.Outcome?) -> JSON {
        switch o {
        case nil: .null
        case .never: .string("never")
        case .below(let c)?: .double(c)
        }
    }
}
