import Logging
import Synchronization

/// The daemon's `log_level`, shared by every log handler it made, so that a reload can change it
/// (swift-log copies a handler into each `Logger`; a plain stored level would be frozen at start).
/// Read on every log call: one relaxed atomic load.
public final class LogLevelSetting: Sendable {
    private let raw: Atomic<Int>

    public init(_ level: Logger.Level) {
        raw = Atomic(Self.index(level))
    }

    public var level: Logger.Level {
        get { Logger.Level.allCases[raw.load(ordering: .relaxed)] }
        set { raw.store(Self.index(newValue), ordering: .relaxed) }
    }

    private static func index(_ level: Logger.Level) -> Int {
        Logger.Level.allCases.firstIndex(of: level) ?? 0
    }
}
