/// Admits at most `limit` messages per `interval` for each key; the rest are counted, not logged
/// (DESIGN §7: "rate-limited, never per cache event at info level").
///
/// Fixed windows per key: a key's window opens at the first message after the previous window
/// ended and lasts `interval`. `thrash` warnings, one per VM per 60 s:
/// ```
/// var thrash = RateLimiter<String, ContinuousClock>(limit: 1, per: .seconds(60))   // key: VM id
///   t=0    admit(web0) -> .allow(suppressed: 0)   window [0, 60) opens
///   t=10   admit(web0) -> .suppress               1 suppressed
///   t=20   admit(web1) -> .allow(suppressed: 0)   web1 has its own window
///   t=30   admit(web0) -> .suppress               2 suppressed
///   t=75   admit(web0) -> .allow(suppressed: 2)   window [75, 135) opens; report the 2
/// ```
/// A value type with no lock: keep it where its caller's state lives (one vCPU queue, one actor).
/// It remembers one small window per key ever admitted; ``forget(_:)`` drops a key (a stopped VM).
///
/// - Complexity: ``admit(_:)`` is O(1) expected: one Dictionary lookup and one clock read.
public struct RateLimiter<Key: Hashable, C: Clock> where C.Duration == Duration {
    /// What to do with one message.
    public enum Decision: Equatable, Sendable {
        /// Log it; `suppressed` messages of this key were dropped since the last one logged
        /// (non-zero only on the first message of a window).
        case allow(suppressed: Int)
        /// Drop it: the key's window is full.
        case suppress
    }

    private struct Window {
        var start: C.Instant
        var admitted: Int
        var suppressed: Int
    }

    public let limit: Int
    public let interval: Duration
    public let clock: C
    private var windows: [Key: Window] = [:]

    /// - Precondition: `limit >= 1` and `interval > .zero` (constants of the caller, not input).
    public init(limit: Int, per interval: Duration, clock: C) {
        precondition(limit >= 1, "RateLimiter limit \(limit) < 1")
        precondition(interval > .zero, "RateLimiter interval \(interval) <= 0")
        self.limit = limit
        self.interval = interval
        self.clock = clock
    }

    /// Counts one message for `key` and says whether to log it.
    public mutating func admit(_ key: Key) -> Decision {
        let now = clock.now
        guard var window = windows[key], window.start.duration(to: now) < interval else {
            let carried = windows[key]?.suppressed ?? 0
            windows[key] = Window(start: now, admitted: 1, suppressed: 0)
            return .allow(suppressed: carried)
        }
        defer { windows[key] = window }
        if window.admitted < limit {
            window.admitted += 1
            return .allow(suppressed: 0)
        }
        window.suppressed += 1
        return .suppress
    }

    /// Drops `key`'s window; its next message is allowed. Returns how many were suppressed and
    /// not yet reported.
    @discardableResult
    public mutating func forget(_ key: Key) -> Int {
        windows.removeValue(forKey: key)?.suppressed ?? 0
    }
}

extension RateLimiter where C == ContinuousClock {
    /// A limiter on the continuous clock (it keeps counting while the machine sleeps).
    public init(limit: Int, per interval: Duration) {
        self.init(limit: limit, per: interval, clock: ContinuousClock())
    }
}

extension RateLimiter: Sendable where Key: Sendable, C: Sendable, C.Instant: Sendable {}
