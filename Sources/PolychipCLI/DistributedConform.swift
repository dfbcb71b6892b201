import ArgumentParser
import Foundation
import Polychip
import PolychipConformance
import PolychipMPI

extension ConformCommand {
    /// The collective kernels `conform --mesh mpi` runs, by name.
    static let collectiveNames = ["all-reduce", "all-gather", "reduce-scatter", "all-to-all"]

    /// `conform --mesh mpi`: the collectives and the expert-parallel MoE layer across the ranks of
    /// the MPI job, checked on every rank; rank 0 prints the report and writes the files, and
    /// every rank exits non-zero iff a case failed on any rank.
    func runOnMPIMesh(files: OutputFiles) throws {
        let ep = ExpertParallelConformance.kernelName
        let known = Self.collectiveNames + [ep]
        if let bad = kernels.first(where: { !known.contains($0) }) {
            throw ValidationError("with --mesh mpi, --kernel takes \(known.joined(separator: ", ")); got '\(bad)'")
        }
        if !expertParallel.isEmpty { throw ValidationError("--expert-parallel is for in-process meshes; with --mesh mpi the ranks are the processes (mpirun -np N)") }
        if retries != 0 || spares != 0 { throw ValidationError("--retries and --spares are for in-process meshes") }
        let dts = try dtypes.map { s -> DType in
            guard let d = DType(rawValue: s), d.isFloat else { throw ValidationError("unknown dtype '\(s)'; use f32, f16 or bf16") }
            return d
        }
        let selected = kernels.isEmpty ? known : kernels
        let group = try mesh.group()
        try MeshOptions.asRank(group) {
            let device = try MeshOptions.device(for: group, selectors: devices + simulation.profileSelectors, registry: simulation.registry)
            let lead = group.rank == 0
            if lead { eprint("conform: \(group.size) MPI ranks on \(group.hostCount) host\(group.hostCount == 1 ? "" : "s"), rank 0 on \(device.id) (\(device.info.name))") }
            var mine: [CaseResult] = []
            let collectives = selected.filter { Self.collectiveNames.contains($0) }
            if !collectives.isEmpty {
                // Small segments, so that cases of tens of kilobytes already run the pipelined path.
                let segment = group.segmentBytes
                group.segmentBytes = 64 << 10
                defer { group.segmentBytes = segment }
                mine += DistributedConformance.collectives(group: group, device: device, dtypes: dts.isEmpty ? DType.floats : dts,
                                                           kernels: Set(collectives), seed: seed)
            }
            if selected.contains(ep) {
                if lead { eprint("conform: expert-parallel MoE across \(group.size) ranks") }
                let prepared = try ExpertParallelConformance.prepare(dtypes: dts.isEmpty ? DType.floats : dts, seed: seed)
                mine += DistributedConformance.expertParallel(group: group, device: device, prepared: prepared)
            }
            if verbose {
                for r in mine { eprint("  rank \(group.rank): \(r.status.rawValue.uppercased()) \(r.kernel) \(r.dtype) \(r.shape)\(r.message.map { ": " + $0 } ?? "")") }
            }
            let report = ConformanceReport(results: try DistributedConformance.gather(mine, group: group))
            try writeReports(report, files: files, lead: lead)
        }
    }
}
