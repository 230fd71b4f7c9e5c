import Foundation
import NestCacheCore
import NestCacheDaemon
import NestCacheWorkload

/// The renderers (`show metrics`, `show stats`, `show vcpus`, text and JSON) on snapshots made
/// from the input: any VM id (any bytes, not only DESIGN §1's alphabet: the renderers must not
/// trust their caller), any counter values. The Prometheus text must be format 0.0.4 line by
/// line, the JSON must parse and give back the ids and counters, and a text answer must hold no
/// empty line.
enum FuzzRender {
    static let policies: [PolicySpec] = [.seed, .perVCPULRU(k: 3), .single, .mapPerEntry]

    struct Bytes {
        var rest: Slice<UnsafeBufferPointer<UInt8>>
        mutating func byte() -> UInt8 { rest.popFirst() ?? 0 }
        mutating func u64() -> UInt64 {
            // Mostly small numbers, sometimes anything: both ends of the formatting.
            let kind = byte()
            var v: UInt64 = 0
            for _ in 0..<(kind & 0x80 != 0 ? 8 : 2) { v = v << 8 | UInt64(byte()) }
            return v
        }
        mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in byte() } }
    }

    static func run(_ data: UnsafeBufferPointer<UInt8>) {
        var b = Bytes(rest: data[...])
        var snaps: [VMSnapshot] = []
        for i in 0..<Int(b.byte() % 4) {
            let idBytes = b.bytes(Int(b.byte() % 24))
            let id = String(decoding: idBytes, as: UTF8.self) + "#\(i)"  // unique, whatever the bytes
            let n = Int(b.byte() % 4) + 1
            var stats: [StatsSnapshot] = []
            for _ in 0..<n {
                var s = StatsSnapshot()
                var c = Counters()
                c.events = b.u64(); c.loads = b.u64(); c.entries = b.u64(); c.clears = b.u64(); c.switches = b.u64()
                c.hits = b.u64(); c.misses = b.u64(); c.allocs = b.u64(); c.recycles = b.u64(); c.uncached = b.u64()
                c.steals = b.u64(); c.migrations = b.u64(); c.migrationHits = b.u64(); c.mapPages = b.u64(); c.unmapPages = b.u64()
                s.counters = c
                s.gauges.contexts = b.u64(); s.gauges.free = b.u64(); s.gauges.mappedPages = b.u64(); s.gauges.peakMappedPages = b.u64()
                s.memoryBytes = b.byte() & 1 == 0 ? nil : b.u64()
                stats.append(s)
            }
            let vcpus = (0..<Int(b.byte() % 5)).map { _ in
                var c = Counters()
                c.events = b.u64(); c.hits = b.u64(); c.switches = b.u64(); c.misses = b.u64()
                return c
            }
            let states = VMRunState.allCases
            snaps.append(VMSnapshot(id: id, state: states[Int(b.byte()) % states.count], l1VCPUs: Int(b.byte()),
                                    policies: Array(policies.prefix(n)), stats: stats, vcpus: vcpus,
                                    lockWait: LockWait(totalNs: b.u64(), maxNs: b.u64(), acquisitions: b.u64())))
        }
        let cost = CostModel(mapNs: Double(b.byte()), unmapNs: Double(b.byte()), lookupNs: Double(b.byte()))

        checkPrometheus(Metrics.render(snaps, uptimeSeconds: Double(b.u64()) / 1000, version: "fuzz\"\\\n"))
        checkStatsJSON(ControlAnswers.statsJSON(snaps, cost: cost, uptimeSeconds: 1).serialized(), snaps)
        checkText(ControlAnswers.text(ControlAnswers.statsText(snaps)))
        for s in snaps {
            let v = ControlAnswers.vcpusJSON(s, cost: cost).serialized()
            fuzzCheck(parse(v) != nil, "show vcpus json does not parse: \(v.debugDescription)")
            checkText(ControlAnswers.text(ControlAnswers.vcpusText(s)))
        }
    }

    static func parse(_ json: String) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any]
    }

    static func checkStatsJSON(_ json: String, _ snaps: [VMSnapshot]) {
        fuzzCheck(!json.contains("\n"), "show stats json is not one line")
        guard let root = parse(json), let vms = root["vms"] as? [String: Any] else {
            preconditionFailure("fuzz invariant: show stats json does not parse: \(json.debugDescription)")
        }
        for s in snaps {
            guard let vm = vms[s.id] as? [String: Any] else { preconditionFailure("fuzz invariant: VM \(s.id.debugDescription) lost in \(json)") }
            // Compared as text: JSONSerialization turns large integers into doubles.
            fuzzCheck(json.contains("\"hits\":\(s.stats[0].counters.hits),"), "hits of \(s.id.debugDescription) not in \(json)")
            fuzzCheck(vm["policy"] as? String == s.policies[0].description, "policy of \(s.id.debugDescription)")
        }
    }

    static func checkText(_ text: String) {
        fuzzCheck(text.hasSuffix("\n\n") && !text.dropLast(2).contains("\n\n"), "a text answer with an empty line inside: \(text.debugDescription)")
    }

    /// Format 0.0.4, line by line: `# HELP`/`# TYPE` comments, or `name{label="value",...} number`
    /// with label values escaping only `\\`, `\"` and `\n` (a raw newline would split a sample,
    /// and the line would fail here).
    static func checkPrometheus(_ text: String) {
        fuzzCheck(text.hasSuffix("\n"), "metrics do not end with a newline")
        for line in text.utf8.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast() {
            let l = Array(line)
            if l.starts(with: "# HELP ".utf8) || l.starts(with: "# TYPE ".utf8) { continue }
            fuzzCheck(sampleLineIsValid(l), "bad metrics line: \(String(decoding: l, as: UTF8.self).debugDescription)")
        }
    }

    static func sampleLineIsValid(_ l: [UInt8]) -> Bool {
        func isNameByte(_ c: UInt8, first: Bool) -> Bool {
            (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || c == 0x5F || c == 0x3A || (!first && c >= 0x30 && c <= 0x39)
        }
        var i = 0
        guard i < l.count, isNameByte(l[i], first: true) else { return false }
        while i < l.count, isNameByte(l[i], first: false) { i += 1 }
        if i < l.count, l[i] == UInt8(ascii: "{") {
            i += 1
            while true {
                guard i < l.count, isNameByte(l[i], first: true) else { return false }
                while i < l.count, isNameByte(l[i], first: false) { i += 1 }
                guard i + 1 < l.count, l[i] == UInt8(ascii: "="), l[i + 1] == UInt8(ascii: "\"") else { return false }
                i += 2
                while i < l.count, l[i] != UInt8(ascii: "\"") {
                    if l[i] == UInt8(ascii: "\\") {
                        guard i + 1 < l.count, [UInt8(ascii: "\\"), UInt8(ascii: "\""), UInt8(ascii: "n")].contains(l[i + 1]) else { return false }
                        i += 1
                    }
                    i += 1
                }
                guard i < l.count else { return false }
                i += 1
                if i < l.count, l[i] == UInt8(ascii: ",") { i += 1; continue }
                guard i < l.count, l[i] == UInt8(ascii: "}") else { return false }
                i += 1
                break
            }
        }
        guard i < l.count, l[i] == 0x20 else { return false }
        let value = String(decoding: l[(i + 1)...], as: UTF8.self)
        return Double(value) != nil || ["NaN", "+Inf", "-Inf"].contains(value)
    }
}
