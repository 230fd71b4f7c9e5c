import Foundation

/// A real `systemd-journald` for tests, and `journalctl` to read back what they logged.
///
/// libsystemd's `sd_journal_sendv` always sends to `/run/systemd/journal/socket`, so the tests use
/// the machine's journald if one listens there, and otherwise start `/lib/systemd/systemd-journald`
/// on its own (root only; no systemd, no PID 1). A started journald:
/// - runs in its own session with stdin/stdout/stderr on /dev/null, no inherited descriptors and a
///   minimal environment (other tests set `NOTIFY_SOCKET`/`LISTEN_FDS` in this process; journald
///   must not see them);
/// - stores entries in its runtime journal, `/run/log/journal/<machine-id>/` (no
///   `/var/log/journal` here), which `journalctl` reads directly: no `--flush` needed;
/// - is left running when the tests end, so that later test runs, other test processes and
///   process-level tests of `nestcached` find it. ``stop(_:)`` ends it, and only a journald this
///   process started.
/// Starting is serialized within the process (one `Task`) and across processes (`flock` on
/// ``lockPath``), so two test runs never start two journalds on the same socket.
///
/// Usage:
/// ```swift
/// @Test(.enabled(if: JournaldFixture.isAvailable, "needs a journald")) func logs() async throws {
///     _ = try await JournaldFixture.ensureRunning()
///     // log with a unique NESTCACHE_TEST_ID ...
///     let entries = try await JournaldFixture.entries(matching: "NESTCACHE_TEST_ID=\(id)")
/// }
/// ```
enum JournaldFixture {
    static let socketPath = "/run/systemd/journal/socket"
    static let journaldPath = "/lib/systemd/systemd-journald"
    static let journalctlPath = "/usr/bin/journalctl"
    static let lockPath = "/run/nestcache-test-journald.lock"
    /// The whole environment a started journald and journalctl get.
    static let environment = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "SYSTEMD_PAGER="]

    enum Failure: Error, CustomStringConvertible {
        case spawn(errno: Int32)
        case exited(status: Int32)
        case socketNeverAppeared(seconds: Int)
        case journalctl(status: Int32)

        var description: String {
            switch self {
            case .spawn(let errno): "posix_spawn \(JournaldFixture.journaldPath): \(String(cString: strerror(errno)))"
            case .exited(let status): "systemd-journald exited early (wait status \(status))"
            case .socketNeverAppeared(let seconds): "\(JournaldFixture.socketPath) not connectable after \(seconds) s"
            case .journalctl(let status): "journalctl exited with \(status)"
            }
        }
    }

    /// The journald in use.
    struct Instance: Sendable {
        /// The pid of the journald this process started; nil when one was running already.
        let startedPID: pid_t?
    }

    /// Why journald tests cannot run on this machine; nil when they can.
    static var unavailableReason: String? {
        if !FileManager.default.isExecutableFile(atPath: journalctlPath) { return "\(journalctlPath) is missing" }
        if isSocketConnectable(socketPath) { return nil }
        if geteuid() != 0 { return "no journald listens on \(socketPath) and starting one needs root" }
        if !FileManager.default.isExecutableFile(atPath: journaldPath) { return "\(journaldPath) is missing" }
        return nil
    }

    static var isAvailable: Bool { unavailableReason == nil }

    /// Makes sure a journald listens on ``socketPath``; starts one at most once per process.
    static func ensureRunning() async throws -> Instance {
        try await started.value
    }

    private static let started = Task<Instance, any Error> { try await startIfNeeded() }

    private static func startIfNeeded() async throws -> Instance {
        let lock = open(lockPath, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        if lock >= 0 { _ = flock(lock, LOCK_EX) }
        defer { if lock >= 0 { close(lock) } }  // closing releases the flock
        if isSocketConnectable(socketPath) { return Instance(startedPID: nil) }

        try FileManager.default.createDirectory(atPath: "/run/systemd/journal", withIntermediateDirectories: true)
        let pid = try spawnJournald()
        for _ in 0..<100 {
            if isSocketConnectable(socketPath) { return Instance(startedPID: pid) }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { throw Failure.exited(status: status) }
            try await Task.sleep(for: .milliseconds(50))
        }
        kill(pid, SIGTERM)
        throw Failure.socketNeverAppeared(seconds: 5)
    }

    private static func spawnJournald() throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        closeFrom3(&actions)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaultSignals = sigset_t()
        sigemptyset(&defaultSignals)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGUSR1, SIGUSR2] { sigaddset(&defaultSignals, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaultSignals)
        posix_spawnattr_setflags(
            &attributes, Int16(posixSpawnSetsid | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(journaldPath), nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, journaldPath, &actions, &attributes, argv, envp)
        guard result == 0 else { throw Failure.spawn(errno: result) }
        return pid
    }

    /// glibc's `POSIX_SPAWN_SETSID` (<spawn.h>, `__USE_GNU` only, so Swift does not import it).
    private static let posixSpawnSetsid: Int32 = 0x80

    /// Adds glibc's `posix_spawn_file_actions_addclosefrom_np(actions, 3)` (glibc >= 2.34, GNU
    /// only, so looked up at run time): the journald must not hold the test runner's pipes open.
    private static func closeFrom3(_ actions: inout posix_spawn_file_actions_t) {
        typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return }
        _ = unsafeBitCast(symbol, to: AddCloseFrom.self)(&actions, 3)
    }

    /// Stops `instance`'s journald if this process started it (SIGTERM, then reaps it).
    static func stop(_ instance: Instance) async {
        guard let pid = instance.startedPID else { return }
        kill(pid, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<100 where waitpid(pid, &status, WNOHANG) == 0 {
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Whether a datagram socket connects to `path`.
    static func isSocketConnectable(_ path: String) -> Bool {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }

    /// The journal entries matching `match` (`FIELD=value`, as journalctl takes it), oldest first,
    /// each as its string fields. journald stores asynchronously: polls every 100 ms until at
    /// least `count` entries appear or `timeout` passes, then returns what there is.
    static func entries(
        matching match: String, atLeast count: Int = 1, timeout: Duration = .seconds(5)
    ) async throws -> [[String: String]] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let found = try journalctl(["-o", "json", "--no-pager", match])
            if found.count >= count || ContinuousClock.now >= deadline { return found }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Runs journalctl with `arguments` and parses its `-o json` lines.
    private static func journalctl(_ arguments: [String]) throws -> [[String: String]] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: journalctlPath)
        process.arguments = arguments
        process.environment = Dictionary(uniqueKeysWithValues: environment.compactMap { assignment in
            assignment.firstIndex(of: "=").map { (String(assignment[..<$0]), String(assignment[$0...].dropFirst())) }
        })
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = try output.fileHandleForReading.readToEnd() ?? Data()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw Failure.journalctl(status: process.terminationStatus) }
        return data.split(separator: UInt8(ascii: "\n")).compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])?
                .compactMapValues { $0 as? String }
        }
    }
}
