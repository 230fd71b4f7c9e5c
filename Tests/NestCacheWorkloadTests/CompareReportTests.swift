import Foundation
import NestCacheCore
import NestCacheWorkload
import Testing

@Suite struct CompareReportTests {
    /// vCPU 0 alternates between two control blocks, entering each twice; vCPU 1 enters a third.
    static func report(_ policies: [PolicySpec], cost: CostModel = .default) -> CompareReport {
        var registry = VMRegistry()
        let vm = registry.intern("vm0")
        registry.update(vm, VMInfo(id: "vm0", l1VCPUs: 2, memoryMiB: 1))
        var events: [Event] = []
        var t: UInt64 = 0
        func add(_ v: UInt16, _ op: TraceOp, _ g: UInt64) {
            t += 1
            events.append(Event(timeNs: t, vm: vm, vcpu: v, op: op, gpa: GPA(g)))
        }
        for _ in 0..<3 { for g in [0x1000, 0x2000] as [UInt64] { add(0, .load, g); add(0, .enter, g); add(0, .enter, g) } }
        add(1, .enter, 0x3000)
        var engines = policies.map { $0.makeEngine(defaultPagesPerContext: 4) }
        for i in engines.indices { engines[i].apply(events, registry: registry) }
        return CompareReport(engines: engines, cost: cost, figures: [("events_read", UInt64(events.count))])
    }

    /// Every column of every format is the counters' arithmetic, row by row, in the order given.
    @Test func jsonColumnsAreTheCountersArithmetic() throws {
        let policies: [PolicySpec] = [.mapPerEntry, .single, .perVCPULRU(k: 1)]
        let r = Self.report(policies)
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.render(.json).utf8)) as? [String: Any])
        #expect(doc["events_read"] as? Int == 19)
        let rows = try #require(doc["policies"] as? [[String: Any]])
        #expect(rows.map { $0["policy"] as? String } == policies.map(\.description))
        for (row, spec) in zip(rows, policies) {
            #expect(Set(row.keys) == Set(CompareReport.columns))
            let s = try #require(r.rows.first { $0.policy == spec }?.stats)
            let c = s.counters
            #expect(row["switches"] as? Int == Int(c.switches))
            #expect(row["misses"] as? Int == Int(c.misses))
            #expect(row["peak_mapped_pages"] as? Int == Int(s.gauges.peakMappedPages))
            let perK = Double(c.mapPages + c.unmapPages) * 1000 / Double(c.entries)
            #expect(abs((row["map_unmap_pages_per_1k_entries"] as? Double ?? -1) - perK) < 1e-6)
            #expect(abs((row["overhead_ns_per_entry"] as? Double ?? -1) - s.overheadNs(.default) / Double(c.entries)) < 1e-6)
            #expect(abs((row["exposure"] as? Double ?? -1) - Double(s.gauges.peakMappedPages) * 4096 / 1_048_576) < 1e-6)
        }
        // The stream: 7 switches (6 on vCPU 0, 1 on vCPU 1), 13 entries.
        #expect(rows.allSatisfy { $0["switches"] as? Int == 7 })
        // single: every switch misses; per-vcpu-lru:1 keeps both of vCPU 0's blocks after the first two.
        #expect(rows[1]["hit_ratio"] as? Double == 0)
        #expect(abs((rows[2]["hit_ratio"] as? Double ?? -1) - 4.0 / 7) < 1e-6)
        // map-per-entry maps 4 pages at each of the 13 entries and unmaps them at the vCPU's next
        // event: 11 of vCPU 0's 12 (its last has no next event), none of vCPU 1's.
        #expect(abs((rows[0]["map_unmap_pages_per_1k_entries"] as? Double ?? -1) - Double(13 * 4 + 11 * 4) * 1000 / 13) < 1e-6)
    }

    @Test func csvAndMarkdownHaveOneLinePerPolicy() {
        let r = Self.report([.single, .seed])
        let csv = r.render(.csv).split(separator: "\n")
        #expect(csv.count == 3)
        #expect(csv[0] == CompareReport.columns.joined(separator: ","))
        #expect(csv[1].hasPrefix("single,7,0,7,"))
        #expect(csv[2].split(separator: ",", omittingEmptySubsequences: false).count == CompareReport.columns.count)
        let md = r.render(.markdown).split(separator: "\n")
        #expect(md.count == 4)
        #expect(md[1].hasPrefix("| --- | ---: |"))
        #expect(md[3].hasPrefix("| per-vm-table:8 | 7 | "))
        let table = r.render(.table).split(separator: "\n")
        #expect(table.count == 3)
        #expect(table[1].hasPrefix("single"))
        #expect(table[1].contains("0%"))
    }

    /// Without entries the per-entry columns are unknown: null in JSON, empty in CSV, - for people.
    @Test func perEntryColumnsWithoutEntriesAreUnknown() throws {
        var registry = VMRegistry()
        let vm = registry.intern("idle")
        var e = PolicySpec.single.makeEngine()
        e.apply([Event(timeNs: 1, vm: vm, vcpu: 0, op: .load, gpa: GPA(0x1000))], registry: registry)
        let r = CompareReport(engines: [e], cost: .default, figures: [])
        let row = try #require((try JSONSerialization.jsonObject(with: Data(r.render(.json).utf8)) as? [String: Any])?["policies"] as? [[String: Any]]).first
        #expect(row?["overhead_ns_per_entry"] is NSNull)
        #expect(row?["exposure"] is NSNull, "memory unknown")
        #expect(r.render(.csv).split(separator: "\n")[1].hasSuffix(",,"))
        #expect(r.render(.table).contains("-"))
    }
}
