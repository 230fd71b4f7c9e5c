import NestCacheDaemon
import Synchronization
import Testing

/// A clock that moves only when the test says so.
final class ManualClock: Clock {
    struct Instant: InstantProtocol {
        var offset: Duration
        func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        func duration(to other: Instant) -> Duration { other.offset - offset }
        static func < (a: Instant, b: Instant) -> Bool { a.offset < b.offset }
    }

    private let current = Mutex(Duration.zero)

    var now: Instant { Instant(offset: current.withLock { $0 }) }
    var minimumResolution: Duration { .nanoseconds(1) }

    /// Sets the time to `seconds` after the start.
    func set(seconds: Double) { current.withLock { $0 = .seconds(seconds) } }

    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        current.withLock { $0 = max($0, deadline.offset) }
    }
}

@Suite struct RateLimiterTests {
    /// The sequence in RateLimiter's doc comment: thrash warnings, one per VM per 60 s.
    @Test func oncePerMinutePerVM() {
        let clock = ManualClock()
        var thrash = RateLimiter<String, ManualClock>(limit: 1, per: .seconds(60), clock: clock)
        let steps: [(Double, String, RateLimiter<String, ManualClock>.Decision)] = [
            (0, "web0", .allow(suppressed: 0)),   // window [0, 60) opens
            (10, "web0", .suppress),              // 1 suppressed
            (20, "web1", .allow(suppressed: 0)),  // own window
            (30, "web0", .suppress),              // 2 suppressed
            (59, "web1", .suppress),
            (75, "web0", .allow(suppressed: 2)),  // window [75, 135) opens, reports the 2
            (80, "web1", .allow(suppressed: 1)),  // web1's [20, 80) ended at 80
            (134, "web0", .suppress),
        ]
        for (t, vm, expected) in steps {
            clock.set(seconds: t)
            #expect(thrash.admit(vm) == expected, "t=\(t) \(vm)")
        }
    }

    @Test func burstThenSilenceUntilTheWindowEnds() {
        let clock = ManualClock()
        var limiter = RateLimiter<Int, ManualClock>(limit: 3, per: .seconds(10), clock: clock)
        // t=0: 3 of 5 allowed.
        let first = (0..<5).map { _ in limiter.admit(7) }
        #expect(first == [.allow(suppressed: 0), .allow(suppressed: 0), .allow(suppressed: 0), .suppress, .suppress])
        clock.set(seconds: 9.999)
        #expect(limiter.admit(7) == .suppress)  // 3 suppressed
        clock.set(seconds: 10)  // the window is [0, 10): 10 opens the next one
        #expect(limiter.admit(7) == .allow(suppressed: 3))
        #expect(limiter.admit(7) == .allow(suppressed: 0))
    }

    @Test func forgetReturnsUnreportedAndResets() {
        let clock = ManualClock()
        var limiter = RateLimiter<String, ManualClock>(limit: 1, per: .seconds(60), clock: clock)
        #expect(limiter.admit("db1") == .allow(suppressed: 0))
        #expect(limiter.admit("db1") == .suppress)
        #expect(limiter.admit("db1") == .suppress)
        #expect(limiter.forget("db1") == 2)
        #expect(limiter.forget("db1") == 0)
        #expect(limiter.admit("db1") == .allow(suppressed: 0))  // same instant, fresh window
    }

    @Test func continuousClockByDefault() {
        var limiter = RateLimiter<String, ContinuousClock>(limit: 1, per: .seconds(3600))
        #expect(limiter.admit("web0") == .allow(suppressed: 0))
        #expect(limiter.admit("web0") == .suppress)
    }
}
