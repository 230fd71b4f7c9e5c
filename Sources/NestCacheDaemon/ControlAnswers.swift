import NestCacheControl
import NestCacheCore
import NestCacheWorkload

/// Every answer of the control socket as a pure function of what it shows (snapshots, the cost
/// model, daemon facts), the way `Metrics.render` is: no locks, no I/O, so the renderers can be
/// tested and fuzzed without a running daemon. Every answer ends with an empty line (DESIGN §8).
public enum ControlAnswers {
    public static func error(_ e: ControlError, json: Bool) -> String {
        if json {
            return JSON.object([("error", .object([("code", .string(e.code.rawValue)), ("message", .string(e.message))]))]).serialized() + "\n\n"
        }
        return "error: \(e.code.rawValue): \(e.message)\n\n"
    }

    public static func text(_ s: String) -> String {
        s.hasSuffix("\n") ? s + "\n" : s + "\n\n"
    }

    public static func json(_ j: JSON) -> String { j.serialized() + "\n\n" }

    public static func ok(_ message: String, json: Bool) -> String {
        json ? Self.json(.object([("ok", .bool(true)), ("message", .string(message))])) : text("ok: \(message)")
    }

    /// `text` or its JSON object, as the request asked.
    static func either(_ json: Bool, _ object: @autoclosure () -> JSON, _ plain: @autoclosure () -> String) -> String {
        json ? Self.json(object()) : text(plain())
    }

    public static let help = """
        commands (add 'json' as the last word for one line of JSON):
          help                  this text
          version               the daemon's version
          ping                  answers pong
          show info             daemon, configuration and socket
          show stats [VM]       counters and gauges of every policy, per VM and in total
          show vcpus VM         the primary policy's counters per L1 vCPU
          show bounds VM        optimal bounds (LRU and OPT hits by K, OPT by R) of the
                                VM's recent switches (the last 1 Mi by default)
          show metrics          Prometheus text format 0.0.4
          show config           the configuration in force
          quit                  close this connection
        admin (uid 0 or the daemon's uid):
          reset counters [VM]   zero counters (state and mappings are kept)
          pause VM | resume VM  stop or restart feeding the VM's workload
          reload                re-read the configuration (as SIGHUP)
        """

    // MARK: - show bounds

    /// DESIGN §8/§11: `{"vm": ID, "switches", "l1_vcpus", "lru_hits", "opt_vcpu_hits",
    /// "opt_vm_hits"` (`nestcache bounds --json`'s per-VM members, default kmax and ratios)`,
    /// "window", "window_start", "stream_switches", "truncated"}`: the window's capacity, the
    /// index in the VM's switch sequence of the first switch considered, the switches of the
    /// whole stream, and whether older ones were left out. The text form is `nestcache bounds`'s
    /// tables (without the blank line between them) after a line on the window.
    public static func bounds(id: String, declaredL1VCPUs: Int?, window: SwitchWindow, json: Bool) -> String {
        let result: BoundsResult
        do throws(TraceError) {
            result = try window.bounds(id: id, declaredL1VCPUs: declaredL1VCPUs)
        } catch {
            return Self.error(ControlError(.badArgument, "bounds of VM '\(id)' failed: \(error)"), json: json)
        }
        guard let vm = result.vms.first else {
            return Self.error(ControlError(.noSuchVM, "no bounds for VM '\(id)'"), json: json)
        }
        let start = window.switchesSeen - UInt64(window.count)
        if json {
            return Self.json(.object([("vm", .string(id))] + result.members(vm) + [
                ("window", .int(Int64(window.capacity))), ("window_start", .uint(start)),
                ("stream_switches", .uint(window.switchesSeen)), ("truncated", .bool(window.isTruncated)),
            ]))
        }
        let head = window.isTruncated
            ? "window: the last \(window.count) of \(window.switchesSeen) switches (from switch \(start); window \(window.capacity))"
            : "window: all \(window.switchesSeen) switches of the stream so far (window \(window.capacity))"
        // An answer ends at its first empty line: the tables go without the one between them.
        return text(([head] + result.text.split(separator: "\n").map(String.init)).joined(separator: "\n"))
    }

    // MARK: - show config

    /// The configuration's text; an answer ends at its first empty line, so blank lines are sent
    /// as "#".
    public static func config(path: String, text: String) -> String {
        var body = text.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.allSatisfy(\.isWhitespace) ? "#" : String($0) }
        while body.count > 1, body.last == "#" { body.removeLast() }
        return Self.text("# \(path)\n" + body.joined(separator: "\n"))
    }

    // MARK: - show stats

    /// DESIGN §8: `{"uptime_s", "vms": {ID: {policy, l1_vcpus, state, counters, gauges,
    /// hit_ratio, exposure, shadows: {P: {...}}}}, "totals": {...}}`; totals sum the primaries.
    public static func statsJSON(_ snaps: [VMSnapshot], cost: CostModel, uptimeSeconds: Double) -> JSON {
        var vms: [(String, JSON)] = []
        var totals = StatsSnapshot()
        totals.memoryBytes = snaps.isEmpty ? nil : 0
        for s in snaps {
            guard let primary = s.stats.first, let policy = s.policies.first else { continue }
            totals += primary
            var m: [(String, JSON)] = [
                ("policy", .string(policy.description)), ("l1_vcpus", .int(Int64(s.l1VCPUs))), ("state", .string(s.state.rawValue)),
            ]
            if let e = s.error { m.append(("error", .string(e))) }
            m += StatsReport.members(primary, cost: cost)
            // The primary's wait, as always; then every policy's under `policies` (its lock: the
            // table's own, `vm`, or the vCPU lanes', `vcpu`; docs/DESIGN-NOTES.md, "Locks").
            m.append(("lock_wait", .object(lockWaitMembers(s.lockWait, policy: policy) + [
                ("policies", .object(zip(s.policies, s.lockWaits).map { p, w in (p.description, .object(lockWaitMembers(w, policy: p))) })),
            ])))
            m.append(("shadows", .object(zip(s.policies.dropFirst(), s.stats.dropFirst()).map { p, st in
                (p.description, JSON.object(StatsReport.members(st, cost: cost)))
            })))
            vms.append((s.id, .object(m)))
        }
        return .object([
            ("uptime_s", .double((uptimeSeconds * 1000).rounded() / 1000)),
            ("vms", .object(vms)),
            ("totals", .object(StatsReport.members(totals, cost: cost))),
        ])
    }

    static func lockWaitMembers(_ w: LockWait, policy: PolicySpec) -> [(String, JSON)] {
        [("total_ns", .uint(w.totalNs)), ("max_ns", .uint(w.maxNs)), ("acquisitions", .uint(w.acquisitions)),
         ("lock", .string(policy.isPerVCPU ? "vcpu" : "vm"))]
    }

    public static func statsText(_ snaps: [VMSnapshot]) -> String {
        let header = ["vm", "state", "policy", "events", "switches", "hit ratio", "misses", "recycles", "uncached", "steals",
                      "mapped pages", "peak", "exposure", "lock wait ms"]
        var rows: [[String]] = [header]
        for s in snaps {
            for (i, (p, st)) in zip(s.policies, s.stats).enumerated() {
                let c = st.counters
                rows.append([
                    i == 0 ? s.id : "", i == 0 ? s.state.rawValue : "", i == 0 ? p.description : "  " + p.description,
                    String(c.events), String(c.switches), st.hitRatio.map(percent) ?? "-", String(c.misses), String(c.recycles),
                    String(c.uncached), String(c.steals), String(st.gauges.mappedPages), String(st.gauges.peakMappedPages),
                    st.exposure.map { format6(($0 * 1_000_000).rounded() / 10_000) + "%" } ?? "-",
                    format6((Double((i < s.lockWaits.count ? s.lockWaits[i] : i == 0 ? s.lockWait : LockWait()).totalNs) / 1e6 * 100).rounded() / 100),
                ])
            }
        }
        return TextTable.render(rows)
    }

    // MARK: - show vcpus

    public static func vcpusJSON(_ s: VMSnapshot, cost: CostModel) -> JSON {
        return .object([
            ("vm", .string(s.id)),
            ("policy", .string(s.policies.first?.description ?? "")),
            ("vcpus", .object(s.vcpus.enumerated().map { v, c in
                var one = StatsSnapshot()
                one.counters = c
                let members = StatsReport.members(one, cost: cost).filter { Counters.names.contains($0.0) || $0.0 == "hit_ratio" }
                return (String(v), JSON.object(members))
            })),
        ])
    }

    public static func vcpusText(_ s: VMSnapshot) -> String {
        var rows = [["vcpu", "events", "switches", "hits", "hit ratio", "misses", "recycles", "uncached", "steals", "migrations", "map pages"]]
        for (v, c) in s.vcpus.enumerated() {
            let ratio = c.switches == 0 ? "-" : percent(Double(c.hits) / Double(c.switches))
            rows.append([String(v), String(c.events), String(c.switches), String(c.hits), ratio, String(c.misses), String(c.recycles),
                         String(c.uncached), String(c.steals), String(c.migrations), String(c.mapPages)])
        }
        return "\(TextTable.printable(s.id)) (\(s.policies.first?.description ?? ""))\n" + TextTable.render(rows)
    }
}
