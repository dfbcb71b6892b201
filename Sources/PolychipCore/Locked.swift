#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A value guarded by a `pthread_mutex_t`: the package's lock, used instead of
/// `Synchronization.Mutex`.
///
/// The API mirrors `Mutex` (``withLock(_:)`` with `sending` in and out), so the value can be
/// any type, as with `Mutex`: it enters the lock as a disconnected value and only ever leaves
/// it as one.
///
/// Why not `Mutex`: on Linux, a contended `Mutex` is handed from thread to thread by PI-futex
/// system calls made inside the uninstrumented `libswiftSynchronization.so`, so Thread Sanitizer
/// sees no happens-before edge between the unlocking and the locking thread and reported the
/// state guarded by every `Mutex` as racing (docs/reliability.md, "Sanitizers"). TSan intercepts
/// `pthread_mutex_lock`/`unlock`, so with this lock it models the edges and reports only real
/// races. Uncontended, a glibc mutex is one atomic operation to lock and one to unlock, like
/// `Mutex`'s fast path.
///
/// The lock is not recursive: calling ``withLock(_:)`` again from inside its body on the same
/// object deadlocks.
package final class Locked<Value>: @unchecked Sendable {
    // @unchecked: `storage` is read and written only inside `withLock`, between
    // pthread_mutex_lock and pthread_mutex_unlock on `mutex`, so accesses from different
    // threads never overlap and each one happens-after the previous unlock. `sending` on
    // `init` and on `withLock`'s argument and result keeps non-Sendable values from
    // escaping the lock still connected to other state, as `Mutex` does. Both pointers are
    // allocated once, never move (a pthread mutex must not be copied) and are freed in
    // `deinit`, when no other reference can exist.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let storage: UnsafeMutablePointer<Value>

    /// Creates a lock holding `initialValue`.
    package init(_ initialValue: sending Value) {
        mutex = .allocate(capacity: 1)
        let rc = pthread_mutex_init(mutex, nil)
        precondition(rc == 0, "pthread_mutex_init failed (\(rc))")
        storage = .allocate(capacity: 1)
        storage.initialize(to: initialValue)
    }

    deinit {
        storage.deinitialize(count: 1)
        storage.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with exclusive access to the value and returns its result; the lock is
    /// released when `body` returns or throws.
    package func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&storage.pointee)
    }
}
