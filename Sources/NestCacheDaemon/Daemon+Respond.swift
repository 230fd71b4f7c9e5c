#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NestCacheControl
import NestCacheCore
import NestCacheWorkload

extension Daemon {
    /// What the socket sends for one request line: text, or the shared metrics buffer (written
    /// as it is, then the empty line, so 7 MB are not copied per client).
    enum Answer {
        case text(String, close: Bool)
        case metrics(ByteBuffer)
        /// An answer that takes a while to compute (`show bounds`): the socket runs it off the
        /// event loop and sends its result, still in request order.
        case deferred(@Sendable () -> String)
    }

    /// Parses one request line from a peer with uid `peerUID` and answers it; `close` after a `quit`.
    func answer(toLine bytes: [UInt8], peerUID: UInt32?) -> Answer {
        let request: ControlRequest
        do throws(ControlError) {
            request = try ControlRequest(parsing: bytes)
        } catch {
            return .text(ControlAnswers.error(error, json: ControlRequest.endsWithJSON(bytes)), close: false)
        }
        if request.command == .showMetrics { return .metrics(metricsBuffer()) }
        do throws(ControlError) {
            if case .showBounds(let vm) = request.command { return .deferred(try boundsAnswer(vm, json: request.json)) }
            if request.command == .reload {
                // Re-reading and applying a file of 1,000 VMs takes tens of milliseconds: not on
                // the event loop, which every other client shares.
                try requireAdmin(peerUID)
                let json = request.json
                return .deferred { [self] in
                    switch reload() {
                    case .success(let text): ControlAnswers.ok(text, json: json)
                    case .failure(let e): ControlAnswers.error(Self.reloadFailed(e), json: json)
                    }
                }
            }
            let (text, close) = try respond(to: request, peerUID: peerUID)
            return .text(text, close: close)
        } catch {
            return .text(ControlAnswers.error(error, json: request.json), close: false)
        }
    }

    /// `answer(toLine:peerUID:)` as text (tests, the fuzz target).
    public func respond(toLine bytes: [UInt8], peerUID: UInt32?) -> (text: String, close: Bool) {
        switch answer(toLine: bytes, peerUID: peerUID) {
        case .text(let text, let close): (text, close)
        case .metrics(let buffer): (ControlAnswers.text(String(buffer: buffer)), false)
        case .deferred(let work): (work(), false)
        }
    }

    /// The dispatcher: checks the peer for admin commands, then asks `ControlAnswers` to render
    /// what the command shows, or does what it says.
    func respond(to request: ControlRequest, peerUID: UInt32?) throws(ControlError) -> (text: String, close: Bool) {
        let json = request.json
        if request.command.isAdmin { try requireAdmin(peerUID) }
        typealias A = ControlAnswers
        switch request.command {
        case .help:
            return (A.either(json, .object([("help", .string(A.help))]), A.help), false)
        case .version:
            return (A.either(json, .object([("version", .string(Self.version))]), "nestcached \(Self.version)"), false)
        case .ping:
            return (A.either(json, .object([("pong", .bool(true))]), "pong"), false)
        case .quit:
            return (A.either(json, .object([("bye", .bool(true))]), "bye"), true)
        case .showInfo:
            let info = infoJSON()
            return (A.either(json, info, StatsReport.text(info)), false)
        case .showStats(let vm):
            let snaps = try runtimes(vm).map { $0.snapshot() }
            return (A.either(json, A.statsJSON(snaps, cost: config.defaults.cost, uptimeSeconds: uptimeSeconds), A.statsText(snaps)), false)
        case .showVCPUs(let vm):
            let s = try runtime(vm).snapshot(vcpus: true)
            return (A.either(json, A.vcpusJSON(s, cost: config.defaults.cost), A.vcpusText(s)), false)
        case .showBounds(let vm):
            return (try boundsAnswer(vm, json: json)(), false)  // answer(toLine:) computes it off the loop
        case .showMetrics:
            return (A.text(String(buffer: metricsBuffer())), false)  // answer(toLine:) sends the buffer itself
        case .showConfig:
            let c = config
            return (A.config(path: c.path, text: c.text), false)
        case .resetCounters(let vm):
            let targets = try runtimes(vm)
            for t in targets { t.resetCounters() }
            logger.notice("counters reset: \(targets.map(\.id).joined(separator: ", "))", metadata: ["nestcache.event": "admin"])
            return (A.ok("counters reset for \(targets.count) VM\(targets.count == 1 ? "" : "s")", json: json), false)
        case .pause(let vm), .resume(let vm):
            let rt = try runtime(vm)
            let pausing = request.command == .pause(vm: vm)
            guard let runner = directory.runner(of: rt.id) else {
                throw ControlError(.noSuchVM, "VM '\(vm)' has no running workload")
            }
            guard rt.state == .running || rt.state == .paused else {
                throw ControlError(.badArgument, "VM '\(vm)' is \(rt.state.rawValue)")
            }
            runner.setPaused(pausing)
            logger.notice("\(pausing ? "paused" : "resumed") \(runner.kind.name)", metadata: ["nestcache.event": "admin", "nestcache.vm": "\(vm)"])
            return (A.ok("\(pausing ? "paused" : "resumed") \(runner.kind.name)", json: json), false)
        case .reload:
            switch reload() {
            case .success(let text): return (A.ok(text, json: json), false)
            case .failure(let e): throw Self.reloadFailed(e)
            }
        }
    }

    /// Admin commands: peer uid 0 or the daemon's own (SO_PEERCRED); a refusal is logged.
    func requireAdmin(_ peerUID: UInt32?) throws(ControlError) {
        guard let peer = peerUID, peer == 0 || peer == uid else {
            logger.warning("refused admin command from uid \(peerUID.map(String.init) ?? "unknown")",
                           metadata: ["nestcache.event": "admin"])
            throw ControlError(.permissionDenied, "admin commands need uid 0 or the daemon's uid \(uid)")
        }
    }

    static func reloadFailed(_ e: ConfigError) -> ControlError {
        ControlError(.badArgument, "reload failed, old configuration kept: \(e)")
    }

    /// `show bounds VM`: takes a copy of the VM's switch window now (cheap: its chunks are
    /// shared until the feeder writes one) and returns the work of computing its bounds, which
    /// takes up to about a second for a full window: the caller runs it where it blocks no one.
    func boundsAnswer(_ vm: String, json: Bool) throws(ControlError) -> @Sendable () -> String {
        let rt = try runtime(vm)
        guard let window = rt.switchWindow?.withLock({ $0 }) else {
            throw ControlError(.badArgument, "show bounds: switches are not recorded (bounds_window = 0 when VM '\(rt.id)' started)")
        }
        let (id, declared) = (rt.id, rt.info.l1VCPUs)
        return { ControlAnswers.bounds(id: id, declaredL1VCPUs: declared, window: window, json: json) }
    }

    func runtime(_ vm: String) throws(ControlError) -> VMRuntime {
        guard let rt = directory.vm(vm) else { throw ControlError(.noSuchVM, "no VM '\(vm.prefix(64))'") }
        return rt
    }

    func runtimes(_ vm: String?) throws(ControlError) -> [VMRuntime] {
        guard let vm else { return directory.all }
        return [try runtime(vm)]
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
            ("metrics_listen", metricsBound.withLock { $0 }.map(JSON.string) ?? .null),
            ("vms", .uint(UInt64(directory.all.count))),
            ("default_policy", .string(c.defaults.policy.description)),
            ("shadow_policies", .array(c.defaults.shadowPolicies.map { .string($0.description) })),
            ("pages_per_context", .int(Int64(c.defaults.pagesPerContext))),
            ("cost_model", .object([("map_ns", .double(c.defaults.cost.mapNs)), ("unmap_ns", .double(c.defaults.cost.unmapNs)), ("lookup_ns", .double(c.defaults.cost.lookupNs))])),
            ("reloads", .int(Int64(reloads))),
            ("last_reload_error", reloadError.map(JSON.string) ?? .null),
            ("status", .string(statusLine())),
            ("live", .array(liveJSON())),
        ])
    }

    /// `show info`'s `live`: every `[[live]]` source, with or without VMs yet.
    func liveJSON() -> [JSON] {
        let runners = state.withLock { $0.runners }
        return runners.compactMap { r -> JSON? in
            guard case .live(let l) = r.kind else { return nil }
            let s = r.liveStatus.withLock { $0 }
            return .object([
                ("trace", .string(l.trace)), ("format", .string(l.format.rawValue)), ("state", .string(s.state.rawValue)),
                ("vms", .array(s.vms.map(JSON.string))), ("lines", .int(Int64(s.lines))), ("bytes", .uint(s.bytes)),
                ("opens", .int(Int64(s.opens))), ("error", s.error.map(JSON.string) ?? .null),
            ])
        }
    }
}
