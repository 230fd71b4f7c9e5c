#if canImport(Glibc)
import Glibc
#endif
import Logging
import NestCacheCore
import NestCacheWorkload

/// Rendering of answers: every answer ends with an empty line (DESIGN §8).
enum ControlResponse {
    static func error(_ e: ControlError, json: Bool) -> String {
        if json {
            return JSON.object([("error", .object([("code", .string(e.code.rawValue)), ("message", .string(e.message))]))]).serialized() + "\n\n"
        }
        return "error: \(e.code.rawValue): \(e.message)\n\n"
    }

    static func text(_ s: String) -> String {
        s.hasSuffix("\n") ? s + "\n" : s + "\n\n"
    }

    static func json(_ j: JSON) -> String { j.serialized() + "\n\n" }

    static let help = """
        commands (add 'json' as the last word for one line of JSON):
          help                  this text
          version               the daemon's version
          ping                  answers pong
          show info             daemon, configuration and socket
          show stats [VM]       counters and gauges of every policy, per VM and in total
          show vcpus VM         the primary policy's counters per L1 vCPU
          show metrics          Prometheus text format 0.0.4
          show config           the configuration in force
          quit                  close this connection
        admin (uid 0 or the daemon's uid):
          reset counters [VM]   zero counters (state and mappings are kept)
          pause VM | resume VM  stop or restart feeding the VM's workload
          reload                re-read the configuration (as SIGHUP)
        """
}

extension Daemon {
    /// Answers one request line from a peer with uid `peerUID`; `close` after a `quit`.
    func respond(toLine bytes: [UInt8], peerUID: UInt32?) -> (text: String, close: Bool) {
        let request: ControlRequest
        do throws(ControlError) {
            request = try ControlRequest(parsing: bytes)
        } catch {
            // `json` as the last word still selects the error's form.
            let wantsJSON = String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isWhitespace).last == "json"
            return (ControlResponse.error(error, json: wantsJSON), false)
        }
        do throws(ControlError) {
            return try respond(to: request, peerUID: peerUID)
        } catch {
            return (ControlResponse.error(error, json: request.json), false)
        }
    }

    func respond(to request: ControlRequest, peerUID: UInt32?) throws(ControlError) -> (text: String, close: Bool) {
        let json = request.json
        if request.command.isAdmin {
            guard let peer = peerUID, peer == 0 || peer == uid else {
                logger.warning("refused admin command from uid \(peerUID.map(String.init) ?? "unknown")",
                               metadata: ["nestcache.event": "admin"])
                throw ControlError(.permissionDenied, "admin commands need uid 0 or the daemon's uid \(uid)")
            }
        }
        switch request.command {
        case .help:
            return (json ? ControlResponse.json(.object([("help", .string(ControlResponse.help))])) : ControlResponse.text(ControlResponse.help), false)
        case .version:
            return (json ? ControlResponse.json(.object([("version", .string(Self.version))])) : ControlResponse.text("nestcached \(Self.version)"), false)
        case .ping:
            return (json ? ControlResponse.json(.object([("pong", .bool(true))])) : ControlResponse.text("pong"), false)
        case .quit:
            return (json ? ControlResponse.json(.object([("bye", .bool(true))])) : ControlResponse.text("bye"), true)
        case .showInfo:
            return (json ? ControlResponse.json(infoJSON()) : ControlResponse.text(StatsReport.text(infoJSON())), false)
        case .showStats(let vm):
            let snaps = try selected(vm)
            return (json ? ControlResponse.json(statsJSON(snaps)) : ControlResponse.text(statsText(snaps)), false)
        case .showVCPUs(let vm):
            guard let rt = directory.vm(vm) else { throw ControlError(.noSuchVM, "no VM '\(vm.prefix(64))'") }
            let s = rt.snapshot(vcpus: true)
            return (json ? ControlResponse.json(vcpusJSON(s)) : ControlResponse.text(vcpusText(s)), false)
        case .showMetrics:
            return (ControlResponse.text(Metrics.render(snapshots(vcpus: true), uptimeSeconds: uptimeSeconds, version: Self.version)), false)
        case .showConfig:
            // An answer ends at its first empty line, so the file's blank lines are sent as "#".
            let c = config
            var body = c.text.split(separator: "\n", omittingEmptySubsequences: false)
                .map { $0.allSatisfy(\.isWhitespace) ? "#" : String($0) }
            while body.count > 1, body.last == "#" { body.removeLast() }
            return (ControlResponse.text("# \(c.path)\n" + body.joined(separator: "\n")), false)
        case .resetCounters(let vm):
            let targets = try runtimes(vm)
            for t in targets { t.resetCounters() }
            logger.notice("counters reset: \(targets.map(\.id).joined(separator: ", "))", metadata: ["nestcache.event": "admin"])
            return (ok("counters reset for \(targets.count) VM\(targets.count == 1 ? "" : "s")", json), false)
        case .pause(let vm), .resume(let vm):
            guard let rt = directory.vm(vm) else { throw ControlError(.noSuchVM, "no VM '\(vm.prefix(64))'") }
            let pausing = request.command == .pause(vm: vm)
            guard let runner = directory.runner(of: rt.id) else {
                throw ControlError(.noSuchVM, "VM '\(vm)' has no running workload")
            }
            guard rt.state == .running || rt.state == .paused else {
                throw ControlError(.badArgument, "VM '\(vm)' is \(rt.state.rawValue)")
            }
            runner.setPaused(pausing)
            logger.notice("\(pausing ? "paused" : "resumed") \(runner.kind.name)", metadata: ["nestcache.event": "admin", "nestcache.vm": "\(vm)"])
            return (ok("\(pausing ? "paused" : "resumed") \(runner.kind.name)", json), false)
        case .reload:
            switch reload() {
            case .success(let text): return (ok(text, json), false)
            case .failure(let e): throw ControlError(.badArgument, "reload failed, old configuration kept: \(e)")
            }
        }
    }

    func ok(_ message: String, _ json: Bool) -> String {
        json ? ControlResponse.json(.object([("ok", .bool(true)), ("message", .string(message))])) : ControlResponse.text("ok: \(message)")
    }

    func runtimes(_ vm: String?) throws(ControlError) -> [VMRuntime] {
        guard let vm else { return directory.all }
        guard let rt = directory.vm(vm) else { throw ControlError(.noSuchVM, "no VM '\(vm.prefix(64))'") }
        return [rt]
    }

    func selected(_ vm: String?) throws(ControlError) -> [VMSnapshot] {
        try runtimes(vm).map { $0.snapshot() }
    }

    // MARK: - show info

    func infoJSON() -> JSON {
        let c = config
        let (reloads, reloadError) = state.withLock { ($0.reloads, $0.lastReloadError) }
        return .object([
            ("version", .string(Self.version)),
            ("pid", .int(Int64(getpid()))),
            ("uid", .uint(UInt64(uid))),
            ("uptime_s", .double((uptimeSeconds * 1000).rounded() / 1000)),
            ("config", .string(c.path)),
            ("socket", .string(socketPath)),
            ("vms", .uint(UInt64(directory.all.count))),
            ("default_policy", .string(c.defaults.policy.description)),
            ("shadow_policies", .array(c.defaults.shadowPolicies.map { .string($0.description) })),
            ("pages_per_context", .int(Int64(c.defaults.pagesPerContext))),
            ("cost_model", .object([("map_ns", .double(c.defaults.cost.mapNs)), ("unmap_ns", .double(c.defaults.cost.unmapNs)), ("lookup_ns", .double(c.defaults.cost.lookupNs))])),
            ("reloads", .int(Int64(reloads))),
            ("last_reload_error", reloadError.map(JSON.string) ?? .null),
            ("status", .string(statusLine())),
        ])
    }

    // MARK: - show stats

    /// DESIGN §8: `{"uptime_s", "vms": {ID: {policy, l1_vcpus, state, counters, gauges,
    /// hit_ratio, exposure, shadows: {P: {...}}}}, "totals": {...}}`; totals sum the primaries.
    func statsJSON(_ snaps: [VMSnapshot]) -> JSON {
        let cost = config.defaults.cost
        var vms: [(String, JSON)] = []
        var totals = StatsSnapshot()
        totals.memoryBytes = snaps.isEmpty ? nil : 0
        for s in snaps {
            guard let primary = s.stats.first, let policy = s.policies.first else { continue }
            totals += primary
            var m: [(String, JSON)] = [
                ("policy", .string(policy.description)), ("l1_vcpus", .int(Int64(s.l1VCPUs))), ("state", .string(s.state.rawValue)),
            ]
            m += StatsReport.members(primary, cost: cost)
            m.append(("lock_wait", .object([
                ("total_ns", .uint(s.lockWait.totalNs)), ("max_ns", .uint(s.lockWait.maxNs)), ("acquisitions", .uint(s.lockWait.acquisitions)),
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

    func statsText(_ snaps: [VMSnapshot]) -> String {
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
                    i == 0 ? format6((Double(s.lockWait.totalNs) / 1e6 * 100).rounded() / 100) : "",
                ])
            }
        }
        return TextTable.render(rows)
    }

    // MARK: - show vcpus

    func vcpusJSON(_ s: VMSnapshot) -> JSON {
        let cost = config.defaults.cost
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

    func vcpusText(_ s: VMSnapshot) -> String {
        var rows = [["vcpu", "events", "switches", "hits", "hit ratio", "misses", "recycles", "uncached", "steals", "migrations", "map pages"]]
        for (v, c) in s.vcpus.enumerated() {
            let ratio = c.switches == 0 ? "-" : percent(Double(c.hits) / Double(c.switches))
            rows.append([String(v), String(c.events), String(c.switches), String(c.hits), ratio, String(c.misses), String(c.recycles),
                         String(c.uncached), String(c.steals), String(c.migrations), String(c.mapPages)])
        }
        return "\(s.id) (\(s.policies.first?.description ?? ""))\n" + TextTable.render(rows)
    }
}
