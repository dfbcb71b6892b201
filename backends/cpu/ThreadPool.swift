import Foundation
import PolychipCore
import Synchronization

/// Reusable scratch memory of one worker: numbered slots that grow on demand and are
/// kept for the next kernel (64-byte aligned, 2 MiB with huge pages advised from 4 MiB;
/// never shrunk).
final class Workspace: @unchecked Sendable {
    // @unchecked: a workspace is used by exactly one thread at a time (its worker, or the
    // submitting thread while the pool is idle under the pool's job lock).
    private var slots: [(UnsafeMutableRawPointer, Int)] = []

    /// A buffer of at least `count` elements of `T` in slot `slot`. Its contents are
    /// undefined; it stays valid until the next call for the same slot.
    @inlinable
    func buffer<T>(_ slot: Int, _ count: Int, as: T.Type = T.self) -> UnsafeMutablePointer<T> {
        let bytes = max(64, count * MemoryLayout<T>.stride)
        while slots.count <= slot { slots.append((UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64), 64)) }
        if slots[slot].1 < bytes {
            slots[slot].0.deallocate()
            let grown = max(bytes, slots[slot].1 + slots[slot].1 / 2)
            // Large slots (packed GEMM panels) on 2 MiB boundaries with huge pages advised.
            let large = grown >= NUMAAllocator.hugePageMinBytes
            let p = UnsafeMutableRawPointer.allocate(byteCount: grown, alignment: large ? NUMAAllocator.hugePageAlignment : 64)
            if large { NUMAAllocator.adviseHugePages(p, grown) }
            slots[slot] = (p, grown)
        }
        return slots[slot].0.bindMemory(to: T.self, capacity: count)
    }

    deinit { for s in slots { s.0.deallocate() } }
}

/// A thread's entry point, passed through pthread_create's `void *` argument.
private final class ThreadBody: Sendable {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}

/// A persistent pool of worker threads, one per core, each pinned to its core's
/// processing units through hwloc.
///
/// ``parallelFor(_:_:)`` runs `count` independent tasks and returns when all are done.
/// Tasks are claimed dynamically, so a kernel must make each task's result independent
/// of which worker runs it (fixed reduction order per task): results are then the same
/// run to run. Jobs from different threads are serialized.
public final class CPUThreadPool: @unchecked Sendable {
    // @unchecked: `job` and `taskCount` are written only by the submitting thread while no
    // job is in flight (under `jobLock`), and published to workers by the release store
    // of `generation`; workers read them after an acquiring load of it.
    /// Number of worker threads.
    public let workerCount: Int
    /// Whether every worker was pinned to its core.
    public var pinned: Bool { wantsPin && pinFailures.load(ordering: .acquiring) == 0 }
    private let wantsPin: Bool

    private let generation = Atomic<Int>(0)
    private let nextTask = Atomic<Int>(0)
    private let pending = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let started = Atomic<Int>(0)
    private let pinFailures = Atomic<Int>(0)
    private var taskCount = 0
    private var job: ((Int, Int) -> Void)?
    private let jobLock = Locked(())
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let wake: UnsafeMutablePointer<pthread_cond_t>
    private let done: UnsafeMutablePointer<pthread_cond_t>
    private let key: pthread_key_t
    let workspaces: [Workspace]

    /// The most worker threads a pool (`POLYCHIP_CPU_THREADS`, `cpu:threads=N`) may have.
    public static let maxThreads = 4096

    /// Creates `threads` workers (1…``maxThreads``); with `bindTo`, worker `i` is pinned to
    /// the processing units `bindTo[i % bindTo.count]`.
    ///
    /// - Throws: `PolychipError.resourceExhausted` when a worker thread cannot be created
    ///   (the process or user thread limit, `ulimit -u`, or memory for its stack): the workers
    ///   already started are stopped, and nothing waits for threads that never ran.
    init(threads: Int, bindTo: [[Int]]?) throws {
        workerCount = min(max(1, threads), Self.maxThreads)
        wantsPin = bindTo != nil && workerCount > 1
        workspaces = (0..<workerCount).map { _ in Workspace() }
        mutex = .allocate(capacity: 1)
        wake = .allocate(capacity: 1)
        done = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        pthread_cond_init(done, nil)
        var k = pthread_key_t()
        pthread_key_create(&k, nil)
        key = k
        guard workerCount > 1 else { return }
        for i in 0..<workerCount {
            let pus = bindTo.map { $0[i % $0.count] }
            let code = Self.spawn(stackSize: 8 << 20) { [self] in self.workerMain(index: i, pus: pus) }
            if code != 0 {
                // Stop the workers that did start (each holds the pool until it exits).
                shutdown()
                throw PolychipError.resourceExhausted(
                    resource: "threads",
                    reason: "the CPU thread pool started \(i) of \(workerCount) worker threads; pthread_create failed: "
                        + "\(String(cString: strerror(code))) (\(code == EAGAIN ? "EAGAIN: the process or user thread limit, ulimit -u, is reached" : "errno \(code)")); "
                        + "set POLYCHIP_CPU_THREADS or cpu:threads=N lower")
            }
        }
        while started.load(ordering: .acquiring) < workerCount { sched_yield() }
    }

    /// Starts a detached thread running `body`; returns pthread_create's error code (0: started).
    private static func spawn(stackSize: Int, _ body: @escaping @Sendable () -> Void) -> Int32 {
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        defer { pthread_attr_destroy(&attr) }
        pthread_attr_setstacksize(&attr, stackSize)
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        let box = Unmanaged.passRetained(ThreadBody(body))
        var tid = pthread_t()
        let code = pthread_create(&tid, &attr, { arg in
            let body = Unmanaged<ThreadBody>.fromOpaque(arg!).takeRetainedValue()
            body.run()
            return nil
        }, box.toOpaque())
        if code != 0 { box.release() }
        return code
    }

    /// Asks the workers to exit once idle. Each worker holds the pool until it exits,
    /// so the pool is freed after the last one has stopped.
    func shutdown() {
        stopping.store(true, ordering: .releasing)
        pthread_mutex_lock(mutex)
        generation.wrappingAdd(1, ordering: .releasing)
        pthread_cond_broadcast(wake)
        pthread_mutex_unlock(mutex)
    }

    deinit {
        pthread_mutex_destroy(mutex); pthread_cond_destroy(wake); pthread_cond_destroy(done)
        mutex.deallocate(); wake.deallocate(); done.deallocate()
        pthread_key_delete(key)
    }

    private func workerMain(index: Int, pus: [Int]?) {
        Thread.current.name = "polychip-cpu-\(index)"
        if let pus, !Hwloc.shared.bindCurrentThread(to: pus) { pinFailures.add(1, ordering: .releasing) }
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: index + 1))
        started.add(1, ordering: .releasing)
        var seen = 0
        while true {
            // Spin (a pinned worker only competes with other processes for its core), then
            // yield for a while, then sleep until the next job.
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins < 20_000 { continue }
                if spins < 20_200 { sched_yield(); continue }
                pthread_mutex_lock(mutex)
                while generation.load(ordering: .acquiring) == seen { pthread_cond_wait(wake, mutex) }
                pthread_mutex_unlock(mutex)
            }
            seen = generation.load(ordering: .acquiring)
            if stopping.load(ordering: .acquiring) { return }
            if let body = job {
                let n = taskCount
                while true {
                    let t = nextTask.wrappingAdd(1, ordering: .relaxed).oldValue
                    if t >= n { break }
                    body(t, index)
                }
            }
            if pending.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                pthread_mutex_lock(mutex)
                pthread_cond_signal(done)
                pthread_mutex_unlock(mutex)
            }
        }
    }

    /// Runs `body(task, worker)` for every `task` in `0..<count` on the workers and waits.
    /// `worker` indexes ``workspaces``. Called from inside a task, it runs inline.
    func parallelFor(_ count: Int, _ body: (_ task: Int, _ worker: Int) -> Void) {
        guard count > 0 else { return }
        if let me = pthread_getspecific(key) {  // nested: already on a worker
            let w = Int(bitPattern: me) - 1
            for t in 0..<count { body(t, w) }
            return
        }
        jobLock.withLock { _ in
            if count == 1 || workerCount == 1 {
                for t in 0..<count { body(t, 0) }
                return
            }
            withoutActuallyEscaping(body) { escaping in
                job = escaping
                taskCount = count
                nextTask.store(0, ordering: .relaxed)
                pending.store(workerCount, ordering: .relaxed)
                pthread_mutex_lock(mutex)
                generation.wrappingAdd(1, ordering: .releasing)
                pthread_cond_broadcast(wake)
                pthread_mutex_unlock(mutex)
                // The submitting thread shares a core with a worker: barely spin, then sleep.
                var spins = 0
                while pending.load(ordering: .acquiring) != 0 {
                    spins += 1
                    if spins < 64 { continue }
                    pthread_mutex_lock(mutex)
                    while pending.load(ordering: .acquiring) != 0 { pthread_cond_wait(done, mutex) }
                    pthread_mutex_unlock(mutex)
                }
                job = nil
            }
        }
    }
}
