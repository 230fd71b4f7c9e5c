import CSystemd
#if canImport(Glibc)
import Glibc
#endif

/// Tells the service manager about the daemon's state through `sd_notify` (DESIGN §7).
///
/// Every message is one datagram to `$NOTIFY_SOCKET`; when that is not set (not started by
/// systemd with `Type=notify`), every call is a cheap no-op returning ``Delivery/notUnderSystemd``.
/// The environment is read on each call and never unset: child processes inherit `NOTIFY_SOCKET`
/// unless the caller clears it. Protocol: sd_notify(3).
///
/// The daemon's sequence: ``ready(status:)`` once serving, ``status(_:)`` with the one-line
/// summary, ``watchdog()`` every ``watchdogInterval`` / 2 while every vCPU queue progresses,
/// ``reloading()`` on SIGHUP then ``ready(status:)`` when reloaded, ``stopping()`` on SIGTERM.
public struct SystemdNotifier: Sendable {
    /// What happened to one notification.
    public enum Delivery: Equatable, Sendable {
        case sent
        /// `NOTIFY_SOCKET` is not set: nothing to tell.
        case notUnderSystemd
        /// `sd_notify` failed with this errno (e.g. the socket vanished); the daemon carries on.
        case failed(errno: Int32)
    }

    public init() {}

    /// Whether `NOTIFY_SOCKET` is set, i.e. systemd listens for notifications.
    public var isEnabled: Bool {
        guard let socket = getenv("NOTIFY_SOCKET") else { return false }
        return socket.pointee != 0
    }

    /// The watchdog interval systemd expects `WATCHDOG=1` within (`WatchdogSec=`), from
    /// `WATCHDOG_USEC` (and `WATCHDOG_PID`, which must be this process); nil when not enabled.
    /// Send ``watchdog()`` at half this interval.
    public var watchdogInterval: Duration? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0 else { return nil }
        return .microseconds(usec)
    }

    /// `READY=1` and `STATUS=status`: startup finished, the daemon serves.
    @discardableResult
    public func ready(status: String) -> Delivery {
        notify("READY=1\nSTATUS=\(Self.oneLine(status))")
    }

    /// `STATUS=status`: the one-line summary `systemctl status` shows.
    @discardableResult
    public func status(_ status: String) -> Delivery {
        notify("STATUS=\(Self.oneLine(status))")
    }

    /// `WATCHDOG=1`: the daemon is alive and making progress.
    @discardableResult
    public func watchdog() -> Delivery {
        notify("WATCHDOG=1")
    }

    /// `RELOADING=1` and `MONOTONIC_USEC=` now on `CLOCK_MONOTONIC` (what `Type=notify-reload`
    /// requires); send ``ready(status:)`` when the reload is done.
    @discardableResult
    public func reloading() -> Delivery {
        notify("RELOADING=1\nMONOTONIC_USEC=\(Self.monotonicMicroseconds())")
    }

    /// `STOPPING=1`: shutdown has begun.
    @discardableResult
    public func stopping() -> Delivery {
        notify("STOPPING=1")
    }

    /// Sends `state` (newline-separated `KEY=value` assignments) as one datagram.
    @discardableResult
    public func notify(_ state: String) -> Delivery {
        let result = sd_notify(0, state)
        if result > 0 { return .sent }
        if result == 0 { return .notUnderSystemd }
        return .failed(errno: -result)
    }

    /// A status is one assignment: a newline would start another (`STATUS=x\nREADY=1`).
    static func oneLine(_ text: String) -> String {
        String(text.map { $0 == "\n" || $0 == "\r" || $0 == "\0" ? " " : $0 })
    }

    static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
    }
}

/// Why socket activation handed over something unusable.
public enum SocketActivationError: Error, Equatable, Sendable {
    /// `sd_listen_fds` failed (e.g. `LISTEN_FDS` is malformed), with this errno.
    case listenFDs(errno: Int32)
    /// A passed descriptor is not a listening Unix stream socket (check `nestcached.socket`'s
    /// `ListenStream=`).
    case notAListeningUnixStreamSocket(fd: Int32)
}

/// The sockets systemd passes when `nestcached.socket` starts the daemon (sd_listen_fds(3)).
public enum SocketActivation {
    /// The first passed descriptor: `SD_LISTEN_FDS_START`, 3.
    public static let firstFD: Int32 = SD_LISTEN_FDS_START

    /// The listening Unix stream sockets passed by systemd, in order, starting at ``firstFD``;
    /// empty when the daemon was not socket-activated (`LISTEN_PID` unset or another process's).
    ///
    /// Unsets `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` (so a second call returns `[]`, and
    /// children do not see them) and marks the descriptors close-on-exec. Call it once, at startup.
    /// Throws when any descriptor is not a listening Unix stream socket: the daemon serves
    /// exactly one kind of socket, so anything else is a misconfigured unit.
    public static func listenFDs() throws(SocketActivationError) -> [Int32] {
        let count = sd_listen_fds(1)
        guard count >= 0 else { throw .listenFDs(errno: -count) }
        var fds: [Int32] = []
        for fd in firstFD..<(firstFD + count) {
            guard sd_is_socket_unix(fd, Int32(SOCK_STREAM.rawValue), 1, nil, 0) > 0 else {
                throw .notAListeningUnixStreamSocket(fd: fd)
            }
            fds.append(fd)
        }
        return fds
    }
}
