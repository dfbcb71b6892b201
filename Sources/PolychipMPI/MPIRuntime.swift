import CMPI
import Foundation
import PolychipCore

/// Process-wide MPI state: `MPI_Init_thread` happens once, on the first ``MPIProcessGroup/world(timeout:)``,
/// and `MPI_Finalize` once, on ``MPIProcessGroup/finalize()``.
/// The line the SIGTERM handler writes (set once at initialisation, before the handler exists).
nonisolated(unsafe) private var terminationMessage: (UnsafePointer<UInt8>, Int)?

enum MPIRuntime {
    enum State { case uninitialized, running, finalized }
    static let state = Locked(State.uninitialized)

    /// Initialises MPI (serialized threading: every MPI call of this package is made under one lock).
    static func initialize() throws {
        try state.withLock { s in
            switch s {
            case .running: return
            case .finalized:
                throw PolychipError.backendFailure(backend: "mpi", call: "MPI_Init_thread", code: 0, detail: "MPI was finalized in this process; it cannot be initialised again")
            case .uninitialized:
                var provided: Int32 = 0
                let rc = MPI_Init_thread(nil, nil, Int32(MPI_THREAD_SERIALIZED), &provided)
                guard rc == MPI_SUCCESS else { throw failure("MPI_Init_thread", rc) }
                guard provided >= Int32(MPI_THREAD_SERIALIZED) else {
                    throw PolychipError.backendFailure(backend: "mpi", call: "MPI_Init_thread", code: Int(provided),
                                                       detail: "the MPI library offers thread level \(provided), below MPI_THREAD_SERIALIZED")
                }
                // Errors come back as return codes (typed errors), never as an abort of the job.
                MPI_Comm_set_errhandler(pc_mpi_comm_world(), pc_mpi_errors_return())
                if launchedByMPIRun { installTerminationReport() }
                s = .running
            }
        }
    }

    /// Without `--enable-recovery`, mpirun ends the whole job with SIGTERM as soon as one rank
    /// fails; each surviving rank then says so in one line (exit status 143) instead of vanishing.
    private static func installTerminationReport() {
        var r: Int32 = -1, n: Int32 = 0
        MPI_Comm_rank(pc_mpi_comm_world(), &r)
        MPI_Comm_size(pc_mpi_comm_world(), &n)
        let text = "polychip: rank \(r) of \(n): error: terminated by mpirun, which ends the job when a rank fails; start mpirun with --enable-recovery to have every surviving rank name the failed rank\n"
        let bytes = Array(text.utf8)
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: bytes.count)  // lives until exit
        buffer.initialize(from: bytes, count: bytes.count)
        terminationMessage = (UnsafePointer(buffer), bytes.count)
        signal(SIGTERM) { _ in
            // Async-signal-safe: write(2) of a prepared buffer, then _exit.
            if let (p, n) = terminationMessage { _ = write(2, p, n) }
            _exit(143)
        }
    }

    /// Whether this process was started by an MPI launcher (`mpirun`), as opposed to a singleton.
    static var launchedByMPIRun: Bool {
        let env = ProcessInfo.processInfo.environment
        return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil || env["PMI_RANK"] != nil
    }

    /// `MPI_Error_string` of a return code.
    static func message(_ code: Int32) -> String {
        var buf = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
        var len: Int32 = 0
        guard MPI_Error_string(code, &buf, &len) == MPI_SUCCESS else { return "MPI error \(code)" }
        return String(decoding: buf.prefix(Int(len)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A failed MPI call as a typed error.
    static func failure(_ call: String, _ code: Int32) -> PolychipError {
        .backendFailure(backend: "mpi", call: call, code: Int(code), detail: message(code))
    }

    /// This host's identity for liveness checks: ranks with the same identity share a kernel and
    /// a PID namespace, so one can ask the kernel whether another's process still exists.
    static var hostIdentity: String {
        #if os(Linux)
        let boot = (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        let pidNS = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/pid")) ?? ""
        return "\(ProcessInfo.processInfo.hostName)|\(boot)|\(pidNS)"
        #else
        return UUID().uuidString  // no two processes share it: no liveness checks by process id
        #endif
    }

    /// Whether process `pid` on this host has exited (gone, or a zombie not yet reaped).
    static func processHasExited(_ pid: Int32) -> Bool {
        #if os(Linux)
        if kill(pid, 0) != 0 { return errno == ESRCH }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state == "Z" || state == "X"
        #else
        return false
        #endif
    }
}
