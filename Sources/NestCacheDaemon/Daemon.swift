#if canImport(Glibc)
import Glibc
#endif
import CMallocArenas
import Dispatch
import Logging
import NIOCore
import NestCacheCore
import NestCacheWorkload
import NestCacheControl
import NestCacheSystem
import Synchronization

/// nestcached: serves the configured VMs, answers the control socket, talks to systemd.
///
/// Thread-safety: configuration and runners are behind `state`; VMs are in `directory`; each
/// runner confines its own mutable state to its feeder queue.
public final class Daemon: Sendable {
    public static let version = "0.1.0"

    struct State: Sendable {
        var config: DaemonConfig
        var runners: [WorkloadRunner] = []
        var reloads = 0
        var lastReloadError: String?
    }

    let state: Locked<State>
    let directory = VMDirectory()
    /// The file the configuration came from; nil: the embedded default.
    let configPath: String?
    let socketOverride: String?
    let logger: Logger
    /// The handlers' shared level, which a reload sets from `[daemon] log_level`; nil: fixed.
    let logLevel: LogLevelSetting?
    let notifier = SystemdNotifier()
    let startNs = DispatchTime.now().uptimeNanoseconds
    /// Signals, timers and reloads run here, one at a time.
    let signalQueue = DispatchQueue(label: "nestcache.signals")
    let timers = Timers()
    let uid = getuid()
    /// At most one thrash warning per VM per 10 minutes: never a log line per cache event.
    /// The latest rendering of the metrics and when it was made (`metricsBuffer()`).
    let metricsCache = Locked<(atNs: UInt64, buffer: ByteBuffer)?>(nil)
    /// The last textfile write's errno (0: it worked), so that a failure is logged once.
    let textfileErrno = Locked<Int32>(0)
    let thrashWarnings = Locked(RateLimiter<String, ContinuousClock>(limit: 1, per: .seconds(600)))
    /// The address `GET /metrics` is served on (`[daemon] metrics_listen`, as bound); nil: off.
    let metricsBound = Locked<String?>(nil)

    static let onSignalQueue = DispatchSpecificKey<Bool>()

    public init(config: DaemonConfig, configPath: String?, socketOverride: String?, logger: Logger,
                logLevel: LogLevelSetting? = nil) {
        signalQueue.setSpecific(key: Self.onSignalQueue, value: true)
        self.state = Locked(State(config: config))
        self.configPath = configPath
        self.socketOverride = socketOverride
        self.logger = logger
        self.logLevel = logLevel
    }

    public var config: DaemonConfig { state.withLock { $0.config } }
    var uptimeSeconds: Double { Double(DispatchTime.now().uptimeNanoseconds - startNs) / 1e9 }

    public var socketPath: String {
        socketOverride ?? config.socketPath(uid: uid, environment: processEnvironment())
    }

    // MARK: - Workloads

    static func workloads(_ c: DaemonConfig) -> [WorkloadKind] {
        c.vms.map(WorkloadKind.simulated) + c.replays.map(WorkloadKind.replay) + c.lives.map(WorkloadKind.live)
    }

    func startWorkloads() {
        let c = config
        let runners = Self.workloads(c).map {
            WorkloadRunner(kind: $0, directory: directory, defaultPagesPerContext: c.defaults.pagesPerContext, logger: logger,
                           boundsWindow: c.daemon.boundsWindow)
        }
        state.withLock { $0.runners = runners }
        for r in runners { r.start() }
    }

    /// Applies a new configuration: workloads whose definition did not change keep running with
    /// their counters; others stop (their VMs go) or start. Returns what changed, for the log.
    func apply(_ new: DaemonConfig) -> (kept: Int, started: Int, stopped: Int) {
        let (old, oldRunners) = state.withLock { ($0.config, $0.runners) }
        let defaultsChanged = old.defaults.pagesPerContext != new.defaults.pagesPerContext
        var keep: [WorkloadRunner] = []
        var stop: [WorkloadRunner] = []
        var wanted = Self.workloads(new)
        for r in oldRunners {
            if !defaultsChanged, !r.hasFailedLive, let i = wanted.firstIndex(of: r.kind) {
                keep.append(r)
                wanted.remove(at: i)
            } else {
                stop.append(r)
            }
        }
        for r in stop {
            r.stop()
            let ids = r.vmIDs
            directory.remove(Set(ids))
            for id in ids {
                logger.info("VM stopped by reload", metadata: ["nestcache.event": "vm-stop", "nestcache.vm": "\(id)"])
            }
        }
        let started = wanted.map {
            WorkloadRunner(kind: $0, directory: directory, defaultPagesPerContext: new.defaults.pagesPerContext, logger: logger,
                           boundsWindow: new.daemon.boundsWindow)
        }
        state.withLock {
            $0.config = new
            $0.runners = keep + started
            $0.reloads += 1
        }
        for r in started { r.start() }
        return (keep.count, started.count, stop.count)
    }

    /// SIGHUP and the `reload` command: re-read the file; a bad one is logged and the old
    /// configuration keeps running (DESIGN §7).
    @discardableResult
    public func reload() -> Result<String, ConfigError> {
        if DispatchQueue.getSpecific(key: Self.onSignalQueue) == nil {
            return signalQueue.sync { reload() }
        }
        _ = notifier.reloading()
        defer { _ = notifier.ready(status: statusLine()) }
        let loaded: DaemonConfig
        do throws(ConfigError) {
            if let p = configPath { loaded = try DaemonConfig.load(path: p) } else { loaded = try DaemonConfig.embeddedDefault() }
        } catch {
            state.withLock { $0.lastReloadError = error.description }
            logger.error("reload failed, keeping the running configuration: \(error)", metadata: ["nestcache.event": "reload"])
            return .failure(error)
        }
        if let s = loaded.daemon.socket, socketOverride == nil, s != socketPath {
            logger.warning("reload: a new socket path takes effect at the next restart", metadata: ["nestcache.event": "reload"])
        }
        if loaded.daemon.metricsListen != config.daemon.metricsListen {
            logger.warning("reload: a new metrics_listen takes effect at the next restart", metadata: ["nestcache.event": "reload"])
        }
        if let logLevel, logLevel.level != loaded.daemon.logLevel {
            let old = logLevel.level
            logLevel.level = loaded.daemon.logLevel
            logger.notice("reload: log_level \(old) -> \(loaded.daemon.logLevel)", metadata: ["nestcache.event": "reload"])
        }
        let r = apply(loaded)
        state.withLock { $0.lastReloadError = nil }
        restartTimers()
        let text = "reloaded: \(r.kept) workloads kept, \(r.started) started, \(r.stopped) stopped"
        logger.notice("\(text)", metadata: ["nestcache.event": "reload"])
        return .success(text)
    }

    // MARK: - Reading

    public func snapshots(vcpus: Bool = false) -> [VMSnapshot] {
        directory.all.map { $0.snapshot(vcpus: vcpus) }
    }

    /// One line for systemd's STATUS= and `show info`.
    func statusLine() -> String {
        let snaps = snapshots()
        var total = StatsSnapshot()
        for s in snaps { if let p = s.stats.first { total += p } }
        let ratio = total.hitRatio.map { ", hit ratio \(percent($0))" } ?? ""
        let running = snaps.filter { $0.state == .running }.count
        return "\(snaps.count) VMs (\(running) running), \(total.counters.events) events\(ratio)"
    }

    // MARK: - Running

    /// Runs until SIGTERM or SIGINT; returns the exit code.
    public func run() async throws -> Int32 {
        // Before the workloads allocate: as many malloc arenas as cores (glibc's default is 8 per
        // core, each with its own free holes; about 10 MiB for 1,000 simulated VMs, BENCHMARKS.md).
        nestcache_limit_malloc_arenas(Int32(clamping: max(2, sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
        let server = ControlServer(daemon: self)
        // Workloads first: their VMs exist before the first client (under socket activation,
        // the one that started us) is answered.
        startWorkloads()
        do {
            try await server.start()
        } catch {
            logger.critical("cannot serve the control socket: \(error)", metadata: ["nestcache.event": "startup"])
            return 1
        }
        var metricsServer: MetricsServer?
        if let listen = config.daemon.metricsListen {
            let m = MetricsServer(daemon: self)
            do {
                let bound = try await m.start(listen)
                metricsBound.withLock { $0 = bound }
                metricsServer = m
                logger.notice("serving GET /metrics on http://\(bound)/metrics", metadata: ["nestcache.event": "startup"])
            } catch {
                logger.critical("cannot serve metrics_listen \(listen): \(error)", metadata: ["nestcache.event": "startup"])
                await m.stop()
                for r in state.withLock({ $0.runners }) { r.stop() }
                await server.stop()
                return 1
            }
        }
        logger.notice("nestcached \(Self.version) serving \(Self.workloads(config).count) workloads on \(server.description), config \(configPath ?? "(embedded default)")",
                      metadata: ["nestcache.event": "startup"])
        _ = notifier.ready(status: statusLine())

        signalQueue.sync { restartTimers() }
        let (terminated, terminate) = AsyncStream<Void>.makeStream()
        let signals = installSignalHandlers(onTerminate: { terminate.yield() })
        for await _ in terminated { break }
        _ = notifier.stopping()
        for s in signals { s.cancel() }
        signalQueue.sync { timers.cancelAll() }
        let runners = state.withLock { $0.runners }
        for r in runners { r.stop() }
        await server.stop()
        await metricsServer?.stop()
        for s in snapshots() { logSummary(s, event: "shutdown") }
        logger.notice("nestcached stopping: \(statusLine())", metadata: ["nestcache.event": "shutdown"])
        return 0
    }

    /// SIGHUP reloads; SIGTERM and SIGINT end `run` (once).
    func installSignalHandlers(onTerminate: @escaping @Sendable () -> Void) -> [DispatchSourceSignal] {
        let fired = Atomic<Bool>(false)
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGHUP, SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: signalQueue)
            s.setEventHandler { [self] in
                if sig == SIGHUP {
                    reload()
                } else if !fired.exchange(true, ordering: .relaxed) {
                    logger.notice("signal \(sig == SIGTERM ? "SIGTERM" : "SIGINT"): draining", metadata: ["nestcache.event": "shutdown"])
                    onTerminate()
                }
            }
            s.resume()
            sources.append(s)
        }
        return sources
    }

    /// The running timers; touched only on `signalQueue`.
    final class Timers: @unchecked Sendable {
        var list: [DispatchSourceTimer] = []
        func cancelAll() {
            for t in list { t.cancel() }
            list = []
        }
    }

    /// (Re)starts the watchdog, status, summary and textfile timers from the configuration in
    /// force. On `signalQueue`: at startup and after each reload.
    func restartTimers() {
        dispatchPrecondition(condition: .onQueue(signalQueue))
        timers.cancelAll()
        func every(_ seconds: Double, _ body: @escaping @Sendable () -> Void) {
            let t = DispatchSource.makeTimerSource(queue: signalQueue)
            t.schedule(deadline: .now() + seconds, repeating: seconds, leeway: .milliseconds(50))
            t.setEventHandler(handler: body)
            t.resume()
            timers.list.append(t)
        }
        if let interval = notifier.watchdogInterval {
            // Half the interval, as sd_watchdog_enabled(3) advises; WATCHDOG=1 only while every
            // vCPU queue that has work finished some since the last tick.
            let seconds = max(Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18, 0.02) / 2
            let last = Locked<[String: UInt64]>([:])
            every(seconds) { [self] in
                let vms = directory.all
                let stalled = last.withLock { seen in
                    let stuck = vms.filter { vm in seen[vm.id].map { vm.isStalled(since: $0) } ?? false }.map(\.id)
                    seen = Dictionary(uniqueKeysWithValues: vms.map { ($0.id, $0.completed.load(ordering: .relaxed)) })
                    return stuck
                }
                if stalled.isEmpty {
                    _ = notifier.watchdog()
                } else {
                    logger.warning("vCPU queues of \(stalled.joined(separator: ", ")) made no progress: withholding WATCHDOG=1",
                                   metadata: ["nestcache.vm": "\(stalled[0])"])
                }
            }
        }
        every(5) { [self] in _ = notifier.status(statusLine()) }
        let c = config.daemon
        if c.summaryIntervalS > 0 {
            every(c.summaryIntervalS) { [self] in for s in snapshots() { logSummary(s, event: "summary") } }
        }
        if c.textfile != nil {
            every(max(1, min(c.summaryIntervalS > 0 ? c.summaryIntervalS : 15, 15))) { [self] in writeTextfile() }
        }
    }

    func logSummary(_ s: VMSnapshot, event: String) {
        guard let p = s.stats.first, let policy = s.policies.first else { return }
        let shadows = zip(s.policies.dropFirst(), s.stats.dropFirst()).map { "\($0)=\($1.hitRatio.map(percent) ?? "-")" }
        var metadata: Logger.Metadata = [
            "nestcache.event": "\(event)", "nestcache.vm": "\(s.id)", "nestcache.policy": "\(policy)",
        ]
        if let r = p.hitRatio { metadata["nestcache.hit_ratio"] = "\(format6(r))" }
        logger.info("\(s.id) [\(s.state.rawValue)] \(policy): \(p.counters.events) events, \(p.counters.switches) switches, hit ratio \(p.hitRatio.map(percent) ?? "-"), \(p.counters.recycles) recycles, \(p.counters.uncached) uncached, \(p.gauges.mappedPages) pages mapped; shadows \(shadows.joined(separator: " "))",
                    metadata: metadata)
        if event == "summary", let r = p.hitRatio, r < 0.05, p.counters.switches >= 1000,
           case .allow = thrashWarnings.withLock({ $0.admit(s.id) }) {
            logger.warning("\(s.id): \(policy) hits \(percent(r)) of switches: thrashing", metadata: metadata.merging(["nestcache.event": "thrash"]) { $1 })
        }
    }

    func writeTextfile() {
        guard let path = config.daemon.textfile else { return }
        let metrics = metricsBuffer()
        let err = metrics.withUnsafeReadableBytes { writeFileAtomically(path, $0) }
        // Logged when the error starts or changes, and when writing works again: an unwritable or
        // full directory gives one record, not one per interval. The old file stays intact
        // (written to a temporary file, renamed only when complete).
        let last = textfileErrno.withLock { last in defer { last = err }; return last }
        if err != 0, err != last {
            logger.warning("textfile \(path): \(Syscall.describe(err)); the previous file is kept, retrying every interval",
                           metadata: ["nestcache.event": "summary"])
        } else if err == 0, last != 0 {
            logger.notice("textfile \(path): written again", metadata: ["nestcache.event": "summary"])
        }
    }
}

func percent(_ r: Double) -> String { format6((r * 10_000).rounded() / 100) + "%" }

