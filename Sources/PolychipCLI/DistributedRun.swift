import ArgumentParser
import Foundation
import Polychip
import PolychipMPI
import PolychipModels

extension RunCommand {
    /// `run moe-layer --mesh mpi`: the layer expert-parallel across the ranks of the MPI job, each
    /// rank holding its experts on its own device (`--device`; see ``MeshOptions``); every rank
    /// reads the same inputs and gets the whole output, rank 0 writes `--output` and reports.
    func runOnMPIMesh(op: Op, inputs: [HostTensor], wanted: [String: String], files: OutputFiles) throws {
        guard case .moeLayer(let params) = op else {
            throw ValidationError("with --mesh mpi, run takes moe-layer (expert-parallel across the ranks); \(op.kind.name) runs on one device")
        }
        guard retries == 0, fallbackDevices.isEmpty else {
            throw ValidationError("--retries and --fallback-device apply to one device; across MPI ranks a failure ends the run on every rank")
        }
        let group = try mesh.group()
        try MeshOptions.asRank(group) {
            let dev = try MeshOptions.device(for: group, selectors: simulation.profileSelectors.isEmpty ? [device] : simulation.profileSelectors,
                                             registry: simulation.registry)
            let layer = try ExpertParallelMoE(processGroup: group, device: dev, params: params, weights: Array(inputs.dropFirst()))
            let step = try layer.forward(inputs[0])
            let devices = try group.allGather(bytes: Array(dev.id.utf8)).map { String(decoding: $0, as: UTF8.self) }
            let slowest = try group.maximum(step.wallSeconds)
            guard group.rank == 0 else { return }
            for name in op.outputNames { if let path = wanted[name] { try files.stage(path, NumPyFile.encode(step.output)) } }
            try files.commit()
            for name in op.outputNames {
                if let path = wanted[name] {
                    print("\(name): \(step.output.desc) → \(path)")
                } else {
                    let v = step.output
                    print("\(name): \(v.desc) [\(v.floats.prefix(6).map { String(format: "%.6g", $0) }.joined(separator: ", "))\(v.desc.elementCount > 6 ? ", …" : "")]")
                }
            }
            print(String(format: "moe-layer expert-parallel on %d MPI ranks (%@): %.3f ms (measured, slowest rank), expert rows per rank %@, imbalance %.2f",
                         group.size, devices.joined(separator: ", "), slowest * 1e3, "\(step.expertRowsPerRank)", step.imbalance))
        }
    }
}
