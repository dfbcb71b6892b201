import Foundation
import PolychipCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How to run cases in child processes.
public struct IsolationOptions: Sendable {
    /// The executable that serves cases: `polychip` (its hidden `conform-worker` command).
    public var executable: URL
    /// The worker's arguments, device included (`["conform-worker", "--device", "onednn:0",
    /// "--plugin", "/path/libPolychipOneDNN.so"]`).
    public var arguments: [String]
    /// Worker processes running cases at once (`conform -j N`), 1…256.
    public var workers: Int
    /// Seconds one case may take (reference, upload, kernel, comparison) before its worker is
    /// killed and the case reported as `timeout`.
    public var caseTimeout: Double
    /// Seconds a fresh worker may take to open its device.
    public var startTimeout: Double

    /// Creates options.
    public init(executable: URL, arguments: [String], workers: Int = 1, caseTimeout: Double = 300, startTimeout: Double = 120) {
        self.executable = executable; self.arguments = arguments; self.workers = workers
        self.caseTimeout = caseTimeout; self.startTimeout = startTimeout
    }
}

/// One case of a run's plan: what the suite runs on a device, in report order.
public struct PlannedCase: Sendable {
    /// The kernel.
    public var kind: OpKind
    /// The activation dtype.
    public var dtype: DType
    /// The case before its inputs exist.
    public var spec: CaseSpec
}

/// Conformance with each case in a worker process (`polychip conform --isolate`, `-j N`): a
/// case that kills its worker is `crashed` (with the signal), one that runs past the case
/// timeout is `timeout` (its worker is killed), and the run goes on with a fresh worker.
/// Workers rebuild each case from its spec and seed, so the results and their order are those of
/// ``ConformanceRunner/run(on:options:expected:progress:)`` whatever the number of workers.
///
/// While it runs, SIGPIPE is ignored in this process (a worker that died must not take the
/// parent down when the parent writes its next request).
public enum IsolatedConformance {
    /// Every case of `options` for `device` (its tiling decides the boundary shapes), in the
    /// order ``ConformanceRunner`` runs them, and the count of derived cases over the level's
    /// cost budget per kernel and dtype.
    public static func plan(for device: any Device, options: ConformanceOptions) -> (cases: [PlannedCase], skipped: [String: Int]) {
        var out: [PlannedCase] = []
        var skipped: [String: Int] = [:]
        let tiling = device.tiling
        for kind in options.kernels ?? OpKind.allCases {
            for dt in CaseGenerator.dtypes(for: kind) where options.dtypes?.contains(dt) ?? true {
                var n = 0
                out += CaseGenerator.specs(kind, dtype: dt, level: options.level, tiling: tiling, skipped: &n).map {
                    PlannedCase(kind: kind, dtype: dt, spec: $0)
                }
                if n > 0 { skipped["\(kind.name) \(dt)"] = n }
            }
        }
        return (out, skipped)
    }

    /// Runs every case of `options` on `device` in workers; the collectives (when selected) run
    /// in this process afterwards. Throws when a worker cannot start at all (the device does not
    /// open in a fresh process); every per-case problem is a result.
    public static func run(on device: any Device, options: ConformanceOptions, isolation: IsolationOptions,
                           expected: ExpectedFailures = .init(), progress: (@Sendable (String) -> Void)? = nil) throws -> [CaseResult] {
        guard (1...256).contains(isolation.workers) else {
            throw PolychipError.invalidArgument(kernel: "conform", argument: "workers", reason: "must be in 1…256, got \(isolation.workers)")
        }
        guard isolation.caseTimeout > 0, isolation.caseTimeout.isFinite else {
            throw PolychipError.invalidArgument(kernel: "conform", argument: "case-timeout", reason: "must be a positive number of seconds")
        }
        let (cases, skipped) = plan(for: device, options: options)
        let previous = signal(SIGPIPE, SIG_IGN)
        defer { signal(SIGPIPE, previous) }
        let state = Locked((next: 0, results: [CaseResult?](repeating: nil, count: cases.count), failure: PolychipError?.none))
        let group = DispatchGroup()
        let workers = min(isolation.workers, max(1, cases.count))
        for w in 0..<workers {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                serve(worker: w, cases: cases, device: device, options: options, isolation: isolation, state: state,
                      expected: expected, progress: progress)
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        group.wait()
        let (results, failure) = state.withLock { ($0.results, $0.failure) }
        if let failure { throw failure }
        for (what, n) in skipped.sorted(by: { $0.key < $1.key }) {
            progress?("SKIPPED \(what): \(n) boundary case(s) over the \(options.level) cost budget")
        }
        return results.compactMap { $0 } + ConformanceRunner.collectiveResults(on: device, options: options, expected: expected)
    }

    /// One worker slot: takes the next case, runs it in its process, restarts the process after
    /// a crash or a timeout.
    static func serve(worker w: Int, cases: [PlannedCase], device: any Device, options: ConformanceOptions, isolation: IsolationOptions,
                      state: Locked<(next: Int, results: [CaseResult?], failure: PolychipError?)>, expected: ExpectedFailures,
                      progress: (@Sendable (String) -> Void)?) {
        let encoder = JSONEncoder()
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let stderrPath = FileManager.default.temporaryDirectory.appendingPathComponent("polychip-worker-\(getpid())-\(w)-\(UUID().uuidString).log").path
        var process: WorkerProcess? = nil
        defer { process?.finish() }
        while true {
            let i: Int? = state.withLock { s in
                guard s.failure == nil, s.next < cases.count else { return nil }
                s.next += 1
                return s.next - 1
            }
            guard let i else { return }
            let c = cases[i]
            let normalized = CaseBuilder.normalized(c.spec)
            var base = CaseResult(kernel: c.kind.name, device: device.id, dtype: c.dtype.rawValue, shape: CaseBuilder.label(normalized),
                                  status: .fail, threshold: c.kind.tolerance(c.dtype),
                                  seed: CaseBuilder.seed(normalized, dtype: c.dtype, base: options.seed))
            if process == nil {
                do { process = try start(isolation, stderrPath: stderrPath, device: device) } catch {
                    state.withLock { $0.failure = $0.failure ?? (error as? PolychipError ?? .io(path: isolation.executable.path, reason: "\(error)")) }
                    return
                }
            }
            guard let p = process else { return }
            let request = WorkerRequest(spec: c.spec, dtype: c.dtype, seed: options.seed)
            let sent = (try? encoder.encode(request)).map(p.send) ?? false
            let reply = sent ? p.readLine(timeout: isolation.caseTimeout) : .endOfFile
            var result: CaseResult
            switch reply {
            case .line(let data):
                if let r = try? decoder.decode(WorkerReply.self, from: data), let got = r.result {
                    result = ConformanceRunner.classify(got, expected: expected.reason(c.kind.name, c.dtype))
                } else {
                    let why = (try? decoder.decode(WorkerReply.self, from: data))?.error ?? String(decoding: data.prefix(200), as: UTF8.self)
                    base.message = "the worker could not run the case: \(why)"
                    result = base
                }
            case .tooLong:
                p.kill()
                process = nil
                base.message = "the worker wrote more than \(WorkerProcess.maxLineBytes) bytes without ending its reply; it was killed"
                result = base
            case .timedOut:
                p.kill()
                process = nil
                base.status = .timeout
                base.message = "ran past the case timeout of \(isolation.caseTimeout) s; its worker (pid \(p.pid)) was killed"
                result = base
            case .endOfFile:
                let (sig, status) = p.reap()
                let tail = p.stderrTail()
                process = nil
                base.status = .crashed
                base.signal = sig
                base.message = (sig.map { "killed by signal \($0) (\(signalName($0)))" }
                    ?? status.map { "the worker exited with status \($0) during the case" }
                    ?? "the worker closed its output during the case and did not end; it was killed")
                    + (tail.isEmpty ? "" : "; stderr: \(tail)")
                result = base
            }
            progress?("\(result.status.rawValue.uppercased()) \(c.kind.name) \(c.dtype) \(result.shape) on \(device.id)"
                      + (result.path.map { " — " + $0 } ?? "") + (result.status == .crashed || result.status == .timeout ? ": \(result.message ?? "")" : ""))
            state.withLock { $0.results[i] = result }
        }
    }

    /// A worker that answered `ready` for the right device.
    static func start(_ isolation: IsolationOptions, stderrPath: String, device: any Device) throws -> WorkerProcess {
        let p = try WorkerProcess(executable: isolation.executable, arguments: isolation.arguments, stderrPath: stderrPath)
        switch p.readLine(timeout: isolation.startTimeout) {
        case .line(let data):
            if let r = try? JSONDecoder().decode(WorkerReply.self, from: data), r.ready == device.id { return p }
            p.kill()
            throw PolychipError.backendFailure(backend: "conform worker", call: "start", code: 0,
                                               detail: "expected ready for \(device.id), got \(String(decoding: data.prefix(200), as: UTF8.self))")
        case .timedOut:
            p.kill()
            throw PolychipError.backendFailure(backend: "conform worker", call: "start", code: 0,
                                               detail: "no answer within \(isolation.startTimeout) s from \(isolation.executable.path)")
        case .tooLong:
            p.kill()
            throw PolychipError.backendFailure(backend: "conform worker", call: "start", code: 0,
                                               detail: "\(isolation.executable.path) wrote more than \(WorkerProcess.maxLineBytes) bytes instead of ready")
        case .endOfFile:
            let (sig, status) = p.reap()
            let tail = p.stderrTail()
            try? FileManager.default.removeItem(atPath: stderrPath)
            throw PolychipError.backendFailure(backend: "conform worker", call: "start", code: Int(sig ?? status ?? -1),
                                               detail: "\(isolation.executable.path) \(isolation.arguments.joined(separator: " ")) "
                                                   + (sig.map { "was killed by signal \($0) (\(signalName($0)))" }
                                                      ?? status.map { "exited with status \($0)" } ?? "closed its output and did not end")
                                                   + " before it could run a case" + (tail.isEmpty ? "" : ": \(tail)"))
        }
    }

    /// `SIGSEGV`, `SIGABRT`, … for a signal number.
    public static func signalName(_ s: Int32) -> String {
        let names: [Int32: String] = [SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP",
                                      SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGSEGV: "SIGSEGV",
                                      SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM", SIGTERM: "SIGTERM"]
        return names[s] ?? "signal \(s)"
    }
}
