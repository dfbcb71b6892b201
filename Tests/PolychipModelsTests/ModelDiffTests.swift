// ModelDiffTests.swift — `polychip diff`'s engine: a correct backend stays within budget with
// its discrete choices agreeing, and each planted numerics defect is pinned to its op by the
// bisection (issue 19's "done means"). Small stacks: the whole suite runs in well under a minute.

import Testing
import Polychip
import PolychipConformance
import PolychipModels
import PolychipSimulated

@Suite("Model-level differential runs")
struct ModelDiffTests {
    /// One device from `selector`, with profile overrides for simulated devices.
    static func device(_ selector: String, settings: [String] = []) throws -> any Device {
        let devs = try Polychip.registry(simulationSettings: settings).resolve([selector], fallback: [])
        guard let d = devs.first else { throw PolychipError.invalidArgument(kernel: "test", argument: selector, reason: "no device") }
        return d
    }

    static func diff(_ selector: String, settings: [String] = [], layers: Int, tokens: Int = 32,
                     bisect: Bool = true) throws -> ModelDiffReport {
        let stack = try DecoderStack(config: DecoderStackConfig(layers: layers, tokens: tokens))
        return try ModelDiff.run(stack, device: try device(selector, settings: settings), bisect: bisect)
    }

    @Test("reference vs cpu: 4 layers within budget; routing and DSA selection agree (or flip only on near ties)")
    func cpuWithinBudget() throws {
        let r = try Self.diff("cpu", layers: 4, bisect: false)
        #expect(r.final.withinBudget, "final NMSE \(r.final.nmse) vs \(r.final.budget)")
        for o in r.ops {
            #expect(o.localWithinBudget, "\(o.id): local \(o.local ?? -1) vs \(o.budget)")
            #expect(o.accumulatedWithinBudget, "\(o.id): accumulated \(o.accumulated ?? -1) vs \(o.accumulatedBudget)")
        }
        #expect(r.routers.count == 4 && r.selections.count == 4)
        for a in r.routers { #expect(a.flips.allSatisfy { $0.cause == "near tie" }, "router L\(a.layer): \(a.flips)") }
        for s in r.selections { #expect(s.flips.allSatisfy { $0.cause == "near tie" }, "selection L\(s.layer): \(s.flips)") }
        #expect(r.unsupported.isEmpty, "\(r.unsupported)")
    }

    @Test("planted: a router that accumulates in bf16 is found, kernel and ops")
    func routerInBF16() throws {
        let r = try Self.diff("sim:ascend-910b", settings: ["numerics.kernels.moe-router.accumulator=bf16"], layers: 2)
        #expect(!r.final.withinBudget)
        // The router itself flips on the reference's logits: a selection-kernel flip, not upstream.
        #expect(r.routers.contains { $0.localFlips.contains { $0.cause == "selection kernel" } })
        let b = try #require(r.bisection)
        #expect(!b.culprits.isEmpty && b.culprits.allSatisfy { $0.kernel == "moe-router" && !$0.localWithinBudget }, "\(b.culprits)")
        #expect(b.culpritKernels == ["moe-router"], "\(b.outcome)")
        #expect(b.nmseWithCulprits <= r.final.budget)
    }

    @Test("planted: a lightning indexer that accumulates its scores in fp16 is found; top-k is not blamed")
    func indexerInFP16() throws {
        // 64 tokens (seed 1): one query's 16th and 17th keys are close enough for fp16 scores
        // to swap them in layer 0, and the swap changes the output far beyond its budget.
        let r = try Self.diff("sim:ascend-910b", settings: ["numerics.kernels.lightning-indexer.accumulator=f16"], layers: 1, tokens: 64)
        #expect(!r.final.withinBudget)
        let sel = try #require(r.selections.first)
        #expect(sel.agreement < 1 && sel.localAgreement == 1, "pipeline \(sel.agreement), local \(sel.localAgreement)")
        #expect(sel.flips.allSatisfy { $0.cause == "over-budget input" }, "\(sel.flips)")
        let b = try #require(r.bisection)
        #expect(b.culprits.map(\.op) == ["L0.attn.indexer.scores"], "\(b.culprits) \(b.outcome)")
        #expect(b.culpritKernels == ["lightning-indexer"])
    }

    @Test("planted: one kernel's outputs perturbed by 1e-3 (faults.outputPerturbation) is found")
    func perturbedCombine() throws {
        let r = try Self.diff("sim:ascend-910b",
                              settings: [#"faults.outputPerturbation={"kernel":"moe-combine","relativeError":0.001}"#], layers: 1)
        #expect(!r.final.withinBudget)
        let combine = try #require(r.ops.first { $0.kernel == "moe-combine" })
        #expect(!combine.localWithinBudget)
        #expect(abs((combine.local ?? 0) / 1e-6 - 1) < 0.05, "local NMSE \(combine.local ?? -1): relative RMS error 1e-3")
        #expect(r.ops.filter { !$0.localWithinBudget }.map(\.kernel) == ["moe-combine"])
        let b = try #require(r.bisection)
        #expect(b.culprits.map(\.op) == ["L0.moe.weighted_combine"], "\(b.culprits) \(b.outcome)")
    }

    @Test("every bundled simulated profile runs the stack within budget (f32: their accumulators are f32)")
    func everyBundledProfile() throws {
        for name in SimulatedBackend.bundledProfileNames() {
            let r = try Self.diff("sim:\(name)", layers: 1, tokens: 16, bisect: false)
            #expect(r.ops.count > 20 && r.final.withinBudget && r.unsupported.isEmpty, "\(name): \(r.final) \(r.unsupported)")
            #expect(r.routers.count == 1 && r.selections.count == 1, "\(name)")
        }
    }

    @Test("planted profile fields are validated with the path named")
    func badPlantedFields() throws {
        for (setting, fragment) in [("numerics.kernels.no-such-kernel.accumulator=bf16", "numerics.kernels.no-such-kernel"),
                                    ("numerics.kernels.moe-router.accumulator=int8", "accumulator"),
                                    ("numerics.kernels.lightning-indexer.output=f64", "output"),
                                    (#"faults.outputPerturbation={"kernel":"rms-norm","relativeError":2}"#, "relativeError"),
                                    (#"faults.outputPerturbation={"kernel":"nope","relativeError":0.1}"#, "faults.outputPerturbation.kernel")] {
            #expect(throws: (any Error).self, "\(setting)") { _ = try Self.device("sim:ascend-910b", settings: [setting]) }
            do { _ = try Self.device("sim:ascend-910b", settings: [setting]) } catch {
                #expect("\(error)".contains(fragment), "\(setting): \(error)")
            }
        }
    }
}
