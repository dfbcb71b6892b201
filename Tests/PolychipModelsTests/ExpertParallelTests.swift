// ExpertParallelTests.swift — the expert-parallel MoE layer against the single-device layer.

import Testing
import Polychip
import PolychipConformance
import PolychipModels
import PolychipReference

private func cpuMesh(_ p: Int) throws -> Mesh {
    let cpu = try Polychip.device("cpu:0")
    return try Mesh(devices: Array(repeating: cpu, count: p))
}

/// The cases with their reference outputs, evaluated once for every mesh below.
private let prepared: Result<[ExpertParallelConformance.PreparedCase], any Error> = Result { try ExpertParallelConformance.prepare() }

@Suite("Expert-parallel MoE conformance")
struct ExpertParallelConformanceTests {
    private func check(_ meshes: [Mesh]) throws {
        let cases = try prepared.get()
        for mesh in meshes {
            let results = ExpertParallelConformance.run(mesh: mesh, prepared: cases)
            #expect(results.count == 36)  // 3 dtypes × (7 cases + 5 shared-TP variants)
            for r in results where r.status != .pass {
                Issue.record("\(r.device) \(r.dtype) \(r.shape): \(r.status) \(r.message ?? "")")
            }
        }
    }

    @Test("EP MoE on meshes of 2, 4 and 8 cpu:0 ranks equals the single-device layer")
    func cpu() throws {
        try check(try [2, 4, 8].map(cpuMesh))
    }

    @Test("EP MoE on meshes of 2, 4 and 8 simulated Ascend 910B devices equals the single-device layer")
    func simulated() throws {
        try check(try [2, 4, 8].map { try SimulatedBackend.mesh(profile: "ascend-910b", count: $0) })
    }
}

@Suite("Expert-parallel MoE behaviour")
struct ExpertParallelBehaviourTests {
    /// A case with 16 experts, 13 tokens, top-4 and a shared expert.
    private func epCase(_ dt: DType = .f32) throws -> (ConformanceCase, MoELayerParams) {
        let c = try #require(try ExpertParallelConformance.cases(dtype: dt, seed: 7).first { $0.label.hasPrefix("EP T13") })
        guard case .moeLayer(let p) = c.op else { throw PolychipError.invalidTensor(reason: "not a moe case") }
        return (c, p)
    }

    @Test("load comes from the router and the slowest simulated rank sets the step time")
    func imbalance() throws {
        let (c, p) = try epCase()
        let mesh = try SimulatedBackend.mesh(profile: "ascend-910b", count: 4)
        let step = try ExpertParallelMoE.run(on: mesh, params: p, inputs: c.inputs)
        #expect(step.tokensPerRank == [3, 3, 3, 4])
        #expect(step.expertsPerRank == [0..<4, 4..<8, 8..<12, 12..<16])
        // Every (token, slot) row goes somewhere exactly once.
        #expect(step.dispatchCounts.joined().reduce(0, +) == 13 * 4)
        #expect(step.expertRowsPerRank.reduce(0, +) == 13 * 4)
        for (i, row) in step.dispatchCounts.enumerated() { #expect(row.reduce(0, +) == step.tokensPerRank[i] * 4) }
        let modeled = try #require(step.modeledSeconds)
        let ranks = try #require(step.rankSeconds)
        #expect(modeled > 0)
        #expect(abs(modeled - (ranks.max() ?? 0)) < 1e-15)
        // The expert-GEMM records on the busiest rank take longer than on the idlest one.
        let busiest = step.expertRowsPerRank.indices.max { step.expertRowsPerRank[$0] < step.expertRowsPerRank[$1] }!
        let idlest = step.expertRowsPerRank.indices.min { step.expertRowsPerRank[$0] < step.expertRowsPerRank[$1] }!
        if step.expertRowsPerRank[busiest] > step.expertRowsPerRank[idlest] {
            func gemmTime(_ r: Int) -> Double {
                mesh.queues[r].records.filter { $0.kernel == "grouped-matmul" }.reduce(0) { $0 + $1.seconds }
            }
            #expect(gemmTime(busiest) >= gemmTime(idlest))
        }
        // Collectives are barriers: every rank's dispatch starts at the same virtual time.
        let starts = mesh.commQueues.map { $0.records.first?.start ?? -1 }
        #expect(Set(starts).count == 1)
    }

    @Test("weights that break the layer contract are a typed error")
    func badWeights() throws {
        let (c, p) = try epCase()
        let mesh = try cpuMesh(2)
        #expect(throws: PolychipError.self) {
            _ = try ExpertParallelMoE(mesh: mesh, params: p, weights: Array(c.inputs.dropFirst().dropLast()))
        }
        var wrong = Array(c.inputs.dropFirst())
        wrong[0] = try HostTensor([3, 5], .f32, floats: [Float](repeating: 0.1, count: 15))
        #expect(throws: PolychipError.self) { _ = try ExpertParallelMoE(mesh: mesh, params: p, weights: wrong) }
        let layer = try ExpertParallelMoE(mesh: mesh, params: p, weights: Array(c.inputs.dropFirst()))
        #expect(throws: PolychipError.self) { _ = try layer.forward(try HostTensor([2, 7], .f32, floats: [Float](repeating: 1, count: 14))) }
    }

    @Test("more ranks than tokens: idle ranks still join the collectives")
    func fewTokens() throws {
        let (c, p) = try epCase()
        var inputs = c.inputs
        inputs[0] = try HostTensor([3, 32], .f32, floats: Array(c.inputs[0].floats.prefix(96)))
        let expected = try Reference.evaluate(c.op, inputs)[0]
        let step = try ExpertParallelMoE.run(on: try cpuMesh(8), params: p, inputs: inputs, options: .init(sharedTensorParallel: true))
        #expect(step.tokensPerRank.filter { $0 == 0 }.count == 5)
        let e = expected.floats, g = step.output.floats
        let num = zip(e, g).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }
        let den = e.reduce(0.0) { $0 + Double($1 * $1) }
        #expect(num / den < OpKind.moeLayer.tolerance(.f32))
    }
}
