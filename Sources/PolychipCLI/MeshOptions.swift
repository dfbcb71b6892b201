import ArgumentParser
import Foundation
import Polychip
import PolychipMPI

/// `--mesh mpi` and its options, shared by `conform`, `run`, `bench` and `calibrate`: the
/// command runs as one rank of an MPI job (`mpirun -np N polychip … --mesh mpi`), each rank in
/// its own process with its own device.
struct MeshOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Run across processes: 'mpi' (start with mpirun -np N; each rank opens its own device; see docs/distributed.md).", valueName: "mpi"))
    var mesh: String?

    @Option(name: .customLong("mpi-timeout"), help: ArgumentHelp("With --mesh mpi: seconds a collective may make no progress before every surviving rank fails it with a typed error.", valueName: "seconds"))
    var mpiTimeout: Double = MPIProcessGroup.defaultTimeout

    @Option(name: .customLong("mpi-fault"), help: ArgumentHelp("With --mesh mpi: inject a fault to test failure handling — kill:RANK@N (rank RANK dies at its N-th collective) or stall:RANK@N[:SECONDS] (it stops communicating).", valueName: "spec"))
    var mpiFault: String?

    /// Whether `--mesh mpi` was given.
    var isMPI: Bool { mesh == "mpi" }

    func validate() throws {
        if let mesh, mesh != "mpi" { throw ValidationError("--mesh takes 'mpi', got '\(mesh)'") }
        guard mpiTimeout > 0, mpiTimeout.isFinite, mpiTimeout <= 86_400 else {
            throw ValidationError("--mpi-timeout must be in (0, 86400] seconds, got \(mpiTimeout)")
        }
        if let mpiFault {
            guard isMPI else { throw ValidationError("--mpi-fault needs --mesh mpi") }
            do { _ = try MPIFaultPlan(parsing: mpiFault) } catch { throw ValidationError("--mpi-fault: \(error)") }
        }
    }

    /// The job's process group (MPI initialised), with the timeout and fault plan applied.
    func group() throws -> MPIProcessGroup {
        let g = try MPIProcessGroup.world(timeout: mpiTimeout)
        if let mpiFault { g.faultPlan = try MPIFaultPlan(parsing: mpiFault) }
        return g
    }

    /// This rank's device: the `--device` selectors (a backend name expands to its devices) in
    /// order, taken at the host-local rank modulo their count. Without selectors, `cpu`, with the
    /// host's cores shared out between the ranks on it (`cpu:threads=N`).
    static func device(for group: MPIProcessGroup, selectors: [String], registry: BackendRegistry) throws -> any Device {
        var list = selectors
        if list.isEmpty {
            let cores = ProcessInfo.processInfo.activeProcessorCount
            list = [group.localSize > 1 ? "cpu:threads=\(max(1, cores / group.localSize))" : "cpu"]
        }
        let devs = try registry.resolve(list, fallback: [])
        guard !devs.isEmpty else { throw ValidationError("no device for rank \(group.rank)") }
        return devs[group.localRank % devs.count]
    }

    /// Runs `body` as one rank: a failure is printed with the rank and becomes exit status 1;
    /// MPI is finalised unless the group failed (then the process just exits).
    static func asRank(_ group: MPIProcessGroup, _ body: () throws -> Void) throws {
        defer { group.finalize() }
        do { try body() } catch let e as ExitCode {
            throw e
        } catch let e as ValidationError {
            throw e
        } catch {
            // After a failed collective every later call reports the group as broken: name the cause.
            eprint("polychip: rank \(group.rank) of \(group.size): error: \(group.failure.map { "\($0)" } ?? "\(error)")")
            throw ExitCode(1)
        }
    }
}
