import Synchronization

/// Open connections of one server, each counted from its first `channelActive` to its
/// `channelInactive`, exactly once (a handler's `Slot`), so a limit can turn the next one away.
final class ConnectionCount: Sendable {
    private let open = Atomic<Int>(0)

    /// A handler's share of the count.
    struct Slot {
        private var counted: ConnectionCount?

        init() {}

        /// Counts the connection; returns how many are open with it.
        mutating func enter(_ count: ConnectionCount) -> Int {
            precondition(counted == nil, "a connection is counted once")
            counted = count
            return count.open.add(1, ordering: .relaxed).newValue
        }

        /// Uncounts the connection if it was counted; safe to call more than once.
        mutating func leave() {
            counted?.open.subtract(1, ordering: .relaxed)
            counted = nil
        }
    }
}
