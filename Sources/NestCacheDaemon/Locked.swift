#if canImport(Glibc)
import Glibc
#endif

/// A value behind a pthread mutex, with `Synchronization.Mutex`'s `withLock`; a reference (copies
/// share the value and the mutex).
///
/// Why not `Mutex`: on Linux it is a futex driven by atomics inside the standard library, which
/// is not built with ThreadSanitizer, so TSan cannot see its happens-before edges and reports
/// every access made under it as a race (dozens of "Swift access race" reports on the engines;
/// issue 8). glibc's `pthread_mutex_lock` is intercepted by TSan, so a TSan run of the daemon
/// means something. The uncontended cost is the same futex fast path, inside glibc.
///
/// Why not a class holding a `NIOLock` (what this was): that is two heap blocks, the object and
/// the lock's own storage; the daemon has one per vCPU lane, 64,000 for 1,000 VMs of 64 vCPUs.
/// Here the value and the mutex share one block (a `ManagedBuffer`: the value in its header, the
/// mutex as its one element, as `NIOLockedValueBox` does), which saves about 64 bytes a lock.
public struct Locked<Value> {
    final class Storage: ManagedBuffer<Value, pthread_mutex_t> {
        deinit {
            _ = withUnsafeMutablePointerToElements { pthread_mutex_destroy($0) }
        }
    }

    private let storage: Storage

    public init(_ value: Value) {
        // `create` returns the dynamic type it was called on.
        storage = unsafeDowncast(Storage.create(minimumCapacity: 1) { _ in value }, to: Storage.self)
        let rc = storage.withUnsafeMutablePointerToElements { pthread_mutex_init($0, nil) }
        precondition(rc == 0, "pthread_mutex_init: \(rc)")
    }

    public func withLock<Result, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result {
        // The pointers stay valid while `storage` lives, which `self` ensures for the call.
        let (value, mutex) = storage.withUnsafeMutablePointers { ($0, $1) }
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value.pointee)
    }
}

extension Locked: @unchecked Sendable where Value: Sendable {}
