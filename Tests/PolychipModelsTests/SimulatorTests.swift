// SimulatorTests.swift — the model-scale simulator on GLM-5 and DeepSeek-V3-style configs.

import Foundation
import Testing
import Polychip
import PolychipModels

private func request(_ profile: String = "ascend-910b", weights: WeightScheme = .w4a8, phase: SimulationPhase = .decode,
                     batch: Int = 16, context: Int = 8192, routing: RoutingModel = .uniform,
                     tp: Int? = nil, dp: Int? = nil, ep: Int? = nil, pp: Int? = nil, nodes: Int = 1) throws -> SimulationRequest {
    let p = try SimulatedBackend.loadProfile(profile)
    let plan = try ParallelPlan.resolve(world: 8 * nodes, model: .glm5, tp: tp, dp: dp, ep: ep, pp: pp)
    return SimulationRequest(model: .glm5, profile: p, devicesPerNode: 8, nodes: nodes, plan: plan, phase: phase, batch: batch,
                             context: context, weights: weights, routing: routing)
}

@Suite("Model-scale simulation")
struct SimulatorTests {
    @Test("GLM-5's parameter counts from its config: 744B total, ~40B active")
    func parameters() {
        let c = MoEModelConfig.glm5
        #expect(abs(c.totalParams / 1e9 - 744) < 1.5)
        #expect(abs(c.activeParams / 1e9 - 40) < 2)
        #expect(c.moeLayers == 75)
        #expect(abs(MoEModelConfig.deepseekV3.totalParams / 1e9 - 671) < 2)
    }

    @Test("GLM-5 decode on 8 Ascend 910B: breakdown adds up, fits in W4A8, quickly")
    func decode() throws {
        let t0 = Date()
        let r = try ModelSimulator.run(try request())
        let wall = Date().timeIntervalSince(t0)
        #if DEBUG
        #expect(wall < 5)
        #else
        #expect(wall < 1)
        #endif
        #expect(r.stepSeconds > 1e-3 && r.stepSeconds < 1)
        let parts = r.breakdown.values.reduce(0, +)
        #expect(abs(parts - r.stepSeconds) < 1e-9 * max(1, r.stepSeconds) + 1e-12)
        #expect(abs(r.layerTypes.reduce(0) { $0 + $1.seconds } - r.stepSeconds) < 1e-9)
        #expect(abs(r.tokensPerSecond - 16 / r.stepSeconds) < 1e-6)
        #expect(r.layerTypes.contains { $0.name.hasPrefix("attention") && $0.layers == 78 })
        #expect(r.layerTypes.contains { $0.name == "MoE FFN" && $0.layers == 75 })
        #expect(r.operations.contains { $0.name == "moe.dispatch (EP all-to-all)" && $0.communication > 0 })
        #expect(r.operations.contains { $0.name == "attn.indexer.scores" })
        #expect(r.memory.fits)
        #expect(r.memory.kvCache > 0 && r.memory.indexerKeys > 0)
        #expect(r.text().contains("Verdict: fits"))
        let json = try JSONSerialization.jsonObject(with: try r.json()) as? [String: Any]
        #expect(abs((json?["stepSeconds"] as? Double ?? 0) - r.stepSeconds) < 1e-12)
    }

    @Test("bf16 GLM-5 does not fit in one 8 × 64 GB node, with the figures")
    func bf16DoesNotFit() throws {
        let r = try ModelSimulator.run(try request(weights: .bf16))
        #expect(!r.memory.fits)
        #expect(r.memory.modelWeights > 1.4e12)
        #expect(abs(r.memory.clusterCapacity - 8 * 64 * 1024 * 1024 * 1024) < 1)
        #expect(r.memory.weights > r.memory.capacity)
        let text = r.text()
        #expect(text.contains("OUT OF MEMORY"))
        #expect(text.contains("1487.8 GB"))
    }

    @Test("the slowest device sets the time: skewed routing makes devices wait, balanced routing does not")
    func imbalance() throws {
        let balanced = try ModelSimulator.run(try request(batch: 64, routing: .balanced))
        let skewed = try ModelSimulator.run(try request(batch: 64, routing: .zipf(1.2)))
        #expect(balanced.expertRowsMax == balanced.expertRowsMin)
        #expect((balanced.breakdown["wait"] ?? 0) < 1e-12)
        #expect(skewed.expertRowsMax > skewed.expertRowsMin)
        #expect((skewed.breakdown["wait"] ?? 0) > 0)
        // (Skew can still shorten a memory-bound decode step: fewer distinct experts are read.)
    }

    @Test("prefill, two nodes and pipeline stages run; a trace has one track per device")
    func otherShapes() throws {
        var req = try request(phase: .prefill, batch: 1, context: 4096)
        req.recordTrace = true
        let prefill = try ModelSimulator.run(req)
        #expect(prefill.tokensPerStep == 4096)
        #expect(Set((prefill.trace ?? []).map(\.device)) == Set(0..<8))
        let trace = try JSONSerialization.jsonObject(with: try prefill.chromeTrace()) as? [String: Any]
        #expect(((trace?["traceEvents"] as? [Any])?.count ?? 0) > 1000)
        #expect(prefill.svg().hasPrefix("<svg"))
        let twoNodes = try ModelSimulator.run(try request(nodes: 2))
        let oneNode = try ModelSimulator.run(try request())
        // EP over 16 devices crosses the RoCE network: the all-to-all gets slower.
        func a2a(_ r: SimulationReport) -> Double { r.operations.filter { $0.name.contains("all-to-all") }.reduce(0) { $0 + $1.seconds } }
        #expect(a2a(twoNodes) > a2a(oneNode))
        let pp = try ModelSimulator.run(try request(tp: 4, pp: 2))
        #expect(pp.stageSeconds.count == 2)
        #expect(pp.memory.weights < oneNode.memory.weights * 1.5)
    }

    @Test("sweep picks a plan that fits; bad plans are rejected with a reason")
    func sweep() throws {
        let base = try request()
        let result = PlanSweep.run(base: base, axes: [("ep", [1, 2, 4, 8, 3])], fixed: [:])
        #expect(result.entries.count == 5)
        #expect(result.entries.last?.rejected?.contains("EP 3") == true)
        let best = try #require(result.best)
        #expect(best.report?.memory.fits == true)
        #expect(PlanSweep.table(result).contains("best plan on ascend-910b"))
        #expect(throws: PolychipError.self) { _ = try ParallelPlan.resolve(world: 8, model: .glm5, tp: 3, dp: nil, ep: nil, pp: nil) }
        #expect(throws: PolychipError.self) { _ = try PlanSweep.parseAxis("xp=1,2") }
    }

    @Test("DeepSeek-V3-style config.json: parsed, simulated; malformed ones are typed errors")
    func configFile() throws {
        let json = """
        {"model_type": "deepseek_v3", "hidden_size": 7168, "num_hidden_layers": 61, "first_k_dense_replace": 3,
         "n_routed_experts": 256, "num_experts_per_tok": 8, "n_shared_experts": 1, "moe_intermediate_size": 2048,
         "intermediate_size": 18432, "num_attention_heads": 128, "q_lora_rank": 1536, "kv_lora_rank": 512,
         "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "vocab_size": 129280,
         "n_group": 8, "topk_group": 4, "scoring_func": "sigmoid", "routed_scaling_factor": 2.5,
         "num_nextn_predict_layers": 1, "max_position_embeddings": 163840, "tie_word_embeddings": false}
        """
        let c = try MoEModelConfig.decode(Data(json.utf8), path: "v3.json")
        #expect(c.totalParams == MoEModelConfig.deepseekV3.totalParams)
        #expect(!c.hasIndexer)
        var req = try request()
        req.model = c
        req.plan = try ParallelPlan.resolve(world: 8, model: c, tp: nil, dp: nil, ep: nil, pp: nil)
        let r = try ModelSimulator.run(req)
        #expect(r.operations.contains { $0.name == "attn.attention" })
        for bad in [#"{"hidden_size": 1}"#, #"{"hidden_size": "big"}"#, "[1]", "not json"] {
            #expect(throws: PolychipError.self) { _ = try MoEModelConfig.decode(Data(bad.utf8), path: "bad.json") }
        }
        let wrongType = json.replacingOccurrences(of: "\"n_group\": 8", with: "\"n_group\": true")
        do { _ = try MoEModelConfig.decode(Data(wrongType.utf8), path: "x.json"); Issue.record("accepted a bool n_group") } catch let e as PolychipError {
            #expect(e == .malformedFile(path: "x.json", field: "n_group", reason: "expected a whole number, got true"))
        }
    }
}
