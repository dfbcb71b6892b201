import Foundation
import PolychipCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One case sent to a worker process: the spec (kernel, parameters, dims, pattern) and what
/// ``CaseBuilder/make(_:dtype:seed:)`` needs to rebuild exactly the inputs the parent would.
public struct WorkerRequest: Sendable, Codable {
    /// The case.
    public var spec: CaseSpec
    /// The activation dtype.
    public var dtype: DType
    /// The run's base seed.
    public var seed: UInt64
}

/// One line a worker writes: first `ready` (its device opened), then one `result` per request.
public struct WorkerReply: Sendable, Codable {
    /// The device id, once the worker can take cases.
    public var ready: String?
    /// A case's raw result (before expected-failure classification).
    public var result: CaseResult?
    /// A request the worker could not decode or build.
    public var error: String?
}

/// The worker side of crash isolation (`polychip conform-worker`): reads one JSON
/// ``WorkerRequest`` per line on standard input, runs the case on `device` and answers with one
/// JSON ``WorkerReply`` per line, until standard input ends. A case that crashes takes the
/// worker down; the parent reports it and starts another. The worker leads its own process
/// group, which the parent kills whole.
public enum CaseWorker {
    /// Serves requests on standard input. Standard output is kept for replies: anything else
    /// the process prints there (a plugin's diagnostics) is sent to standard error instead.
    public static func serve(device: any Device) {
        // Lead a process group, so the parent's kill also ends what a plugin spawned (helper
        // processes inherit the worker's descriptors and would keep it "running" for Foundation).
        _ = setpgid(0, 0)
        let replies = dup(STDOUT_FILENO)
        dup2(STDERR_FILENO, STDOUT_FILENO)
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let decoder = JSONDecoder()
        func send(_ r: WorkerReply) {
            guard var data = try? encoder.encode(r) else { return }
            data.append(0x0A)
            data.withUnsafeBytes { raw in
                var done = 0
                while done < raw.count {
                    let n = write(replies, raw.baseAddress! + done, raw.count - done)
                    if n <= 0 { if errno == EINTR { continue }; return }
                    done += n
                }
            }
        }
        send(WorkerReply(ready: device.id))
        while let line = readLine(strippingNewline: true) {
            guard !line.isEmpty else { continue }
            do {
                let req = try decoder.decode(WorkerRequest.self, from: Data(line.utf8))
                let c = try CaseBuilder.make(req.spec, dtype: req.dtype, seed: req.seed)
                send(WorkerReply(result: ConformanceRunner.runCase(c, on: device)))
            } catch {
                send(WorkerReply(error: "\(error)"))
            }
        }
        close(replies)
    }
}
