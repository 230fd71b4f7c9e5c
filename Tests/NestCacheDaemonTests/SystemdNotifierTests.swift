import Foundation
import NestCacheDaemon
import Testing

/// Runs `body` with the environment variables in `values` set (nil: unset), then restores them.
private func withEnvironment(_ values: [String: String?], _ body: () throws -> Void) throws {
    let saved = values.keys.map { ($0, getenv($0).map { String(cString: $0) }) }
    defer {
        for (name, value) in saved {
            if let value { setenv(name, value, 1) } else { unsetenv(name) }
        }
    }
    for (name, value) in values {
        if let value { setenv(name, value, 1) } else { unsetenv(name) }
    }
    try body()
}

private func isSet(_ name: String) -> Bool { getenv(name) != nil }

/// CLOCK_MONOTONIC in µs, read independently of the notifier.
private func monotonicMicroseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
}

/// These tests set `NOTIFY_SOCKET`, `WATCHDOG_*` and `LISTEN_*` in the process environment, so
/// they run one at a time and restore what they changed. The datagrams are what systemd would
/// receive: sd_notify(3) sends each call as one datagram, before it returns.
@Suite(.serialized) struct SystemdNotifierTests {
    /// Binds a datagram socket, points `NOTIFY_SOCKET` at it, and runs `body` with it.
    private func withNotifySocket(_ body: (DatagramSocket) throws -> Void) throws {
        let socket = try DatagramSocket(boundTo: temporarySocketPath("notify"))
        defer { socket.close() }
        try withEnvironment(["NOTIFY_SOCKET": socket.path]) { try body(socket) }
    }

    @Test func withoutNotifySocketNothingIsSent() throws {
        try withEnvironment(["NOTIFY_SOCKET": nil]) {
            let notifier = SystemdNotifier()
            #expect(!notifier.isEnabled)
            #expect(notifier.ready(status: "serving") == .notUnderSystemd)
            #expect(notifier.watchdog() == .notUnderSystemd)
        }
        try withEnvironment(["NOTIFY_SOCKET": ""]) { #expect(!SystemdNotifier().isEnabled) }
    }

    @Test func sendsTheExactAssignments() throws {
        try withNotifySocket { socket in
            let notifier = SystemdNotifier()
            #expect(notifier.isEnabled)

            #expect(notifier.ready(status: "2 VMs, hit ratio 0.97") == .sent)
            #expect(socket.receive() == "READY=1\nSTATUS=2 VMs, hit ratio 0.97")
            #expect(notifier.status("web0 thrashing") == .sent)
            #expect(socket.receive() == "STATUS=web0 thrashing")
            #expect(notifier.watchdog() == .sent)
            #expect(socket.receive() == "WATCHDOG=1")
            #expect(notifier.stopping() == .sent)
            #expect(socket.receive() == "STOPPING=1")
            #expect(socket.receive() == nil)
        }
    }

    @Test func statusCannotSmuggleAssignments() throws {
        try withNotifySocket { socket in
            SystemdNotifier().status("line one\nREADY=1")
            #expect(socket.receive() == "STATUS=line one READY=1")
        }
    }

    @Test func reloadingCarriesTheMonotonicClock() throws {
        try withNotifySocket { socket in
            let before = monotonicMicroseconds()
            #expect(SystemdNotifier().reloading() == .sent)
            let after = monotonicMicroseconds()

            let datagram = try #require(socket.receive())
            let lines = datagram.split(separator: "\n", omittingEmptySubsequences: false)
            try #require(lines.count == 2, "\(datagram)")
            #expect(lines[0] == "RELOADING=1")
            #expect(lines[1].hasPrefix("MONOTONIC_USEC="))
            let digits = lines[1].dropFirst("MONOTONIC_USEC=".count)
            #expect(!digits.isEmpty && digits.allSatisfy(\.isASCII) && digits.allSatisfy(\.isNumber), "\(datagram)")
            let usec = try #require(UInt64(digits))
            #expect(before <= usec && usec <= after, "\(before) <= \(usec) <= \(after)")
        }
    }

    @Test func aVanishedSocketIsReportedNotThrown() throws {
        try withEnvironment(["NOTIFY_SOCKET": temporarySocketPath("gone")]) {
            let delivery = SystemdNotifier().watchdog()
            guard case .failed(let errno) = delivery else {
                Issue.record("expected .failed, got \(delivery)")
                return
            }
            #expect(errno == ENOENT || errno == ECONNREFUSED, "errno \(errno)")
        }
    }

    @Test func watchdogIntervalFromTheEnvironment() throws {
        let pid = "\(getpid())"
        try withEnvironment(["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": pid]) {
            #expect(SystemdNotifier().watchdogInterval == .seconds(2))
            // Not unset: asking twice gives the same answer.
            #expect(SystemdNotifier().watchdogInterval == .seconds(2))
        }
        try withEnvironment(["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "\(getpid() + 1)"]) {
            #expect(SystemdNotifier().watchdogInterval == nil)  // meant for another process
        }
        try withEnvironment(["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": nil]) {
            #expect(SystemdNotifier().watchdogInterval == .seconds(2))  // no PID: for whoever reads it
        }
        try withEnvironment(["WATCHDOG_USEC": nil, "WATCHDOG_PID": nil]) {
            #expect(SystemdNotifier().watchdogInterval == nil)
        }
        try withEnvironment(["WATCHDOG_USEC": "soon", "WATCHDOG_PID": pid]) {
            #expect(SystemdNotifier().watchdogInterval == nil)
        }
    }

    // MARK: SocketActivation

    private static let listenVariables = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"]

    @Test func notActivatedMeansNoSockets() throws {
        try withEnvironment(["LISTEN_PID": nil, "LISTEN_FDS": nil]) {
            let fds = try SocketActivation.listenFDs()
            #expect(fds == [])
        }
        // Descriptors meant for another process (e.g. our parent) are not ours; the variables go.
        try withEnvironment(["LISTEN_PID": "\(getpid() + 1)", "LISTEN_FDS": "1"]) {
            let fds = try SocketActivation.listenFDs()
            #expect(fds == [])
            #expect(Self.listenVariables.allSatisfy { !isSet($0) })
        }
    }

    @Test func malformedListenFDsThrows() throws {
        try withEnvironment(["LISTEN_PID": "\(getpid())", "LISTEN_FDS": "two"]) {
            #expect(throws: SocketActivationError.listenFDs(errno: EINVAL)) { try SocketActivation.listenFDs() }
        }
    }

    // systemd passes sockets from descriptor 3 on, but in the test process 3 is already taken
    // (Dispatch's epoll). So these run as exit tests: in a child process of their own, where
    // nothing else runs, a socket replaces descriptor 3 for the moment of the call.

    @Test func passedListeningStreamSocketIsReturned() async {
        await #expect(processExitsWith: .success) {
            let outcome = activationProbe(type: Int32(SOCK_STREAM.rawValue), listening: true, fdNames: "control")
            exit(outcome == .fds([3]) ? 0 : 1)
        }
    }

    @Test func passedDatagramSocketIsRejected() async {
        await #expect(processExitsWith: .success) {
            let outcome = activationProbe(type: Int32(SOCK_DGRAM.rawValue), listening: false, fdNames: nil)
            exit(outcome == .error(.notAListeningUnixStreamSocket(fd: 3)) ? 0 : 1)
        }
    }

    @Test func passedStreamSocketThatDoesNotListenIsRejected() async {
        await #expect(processExitsWith: .success) {
            let outcome = activationProbe(type: Int32(SOCK_STREAM.rawValue), listening: false, fdNames: nil)
            exit(outcome == .error(.notAListeningUnixStreamSocket(fd: 3)) ? 0 : 1)
        }
    }
}

/// What ``SocketActivation/listenFDs()`` gave in ``activationProbe(type:listening:fdNames:)``.
private enum ActivationOutcome: Equatable {
    case fds([Int32])
    case error(SocketActivationError)
    case setupFailed
    /// `listenFDs` returned but left `LISTEN_*` set.
    case variablesLeft
}

/// Does what systemd does for a socket unit with one socket of `type`: the socket at descriptor 3,
/// `LISTEN_PID` this process, `LISTEN_FDS=1`; then calls ``SocketActivation/listenFDs()`` and
/// puts descriptor 3 back. `.fds` only when the `LISTEN_*` variables are gone. For exit tests
/// only: nothing else in the process may be using descriptor 3 meanwhile.
private func activationProbe(type: Int32, listening: Bool, fdNames: String?) -> ActivationOutcome {
    let path = temporarySocketPath("listen")
    guard let socket = makeUnixSocket(type: type, boundTo: path, listening: listening) else { return .setupFailed }
    defer {
        close(socket)
        unlink(path)
    }
    let first = SocketActivation.firstFD
    let saved = fcntl(first, F_DUPFD_CLOEXEC, 100)  // -1 when descriptor 3 was free
    guard dup2(socket, first) == first else { return .setupFailed }
    defer {
        if saved >= 0 {
            dup2(saved, first)
            close(saved)
        } else {
            close(first)
        }
    }
    setenv("LISTEN_PID", "\(getpid())", 1)
    setenv("LISTEN_FDS", "1", 1)
    if let fdNames { setenv("LISTEN_FDNAMES", fdNames, 1) }
    do {
        let fds = try SocketActivation.listenFDs()
        let names = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"]
        return names.contains { getenv($0) != nil } ? .variablesLeft : .fds(fds)
    } catch {
        return .error(error)
    }
}
