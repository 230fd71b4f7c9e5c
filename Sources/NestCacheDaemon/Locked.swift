import NIOConcurrencyHelpers

/// A value behind a pthread mutex (`NIOLock`), with `Synchronization.Mutex`'s `withLock`.
///
/// Why not `Mutex`: on Linux it is a futex driven by atomics inside the standard library, which
/// is not built with ThreadSanitizer, so TSan cannot see its happens-before edges and reports
/// every access made under it as a race (dozens of "Swift access race" reports on the engines;
/// issue 8). glibc's `pthread_mutex_lock` is intercepted by TSan, so a TSan run of the daemon
/// means something. The uncontended cost is the same futex fast path, inside glibc.
public final class Locked<Value> {
    private let lock = NIOLock()
    private var value: Value

    public init(_ value: Value) {
        self.value = value
    }

    public func withLock<Result, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

extension Locked: @unchecked Sendable where Value: Sendable {}
