import Foundation
import Testing
import PolychipTestSupport

/// `polychip diff` through the built binary: the exit status says whether the model is within
/// budget, `--json` and `--plot` carry the culprit, output files are checked before the run.
@Suite struct DiffCommandTests {
    @Test func withinBudgetExitsZero() throws {
        let r = try CLITests.runBinary(["diff", "--device", "cpu", "--layers", "1", "--tokens", "8"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("Final output: NMSE") && r.out.contains("within budget"), "\(r.out.suffix(400))")
        #expect(r.out.contains("L0.moe.router_topk") && r.out.contains("Router agreement"))
    }

    @Test func plantedIndexerFaultIsNamedInJSONAndPlotted() throws {
        let dir = try CLITests.tempDir()
        let svg = dir.appendingPathComponent("growth.svg").path
        let r = try CLITests.runBinary(["diff", "--device", "sim:ascend-910b", "--set", "numerics.kernels.lightning-indexer.accumulator=f16",
                                        "--layers", "1", "--tokens", "64", "--bisect", "--json", "--plot", svg])
        #expect(r.status == 1, "over budget must exit 1: \(r.err.suffix(300))")
        let json = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
        let culprits = (json?["bisection"] as? [String: Any])?["culprits"] as? [[String: Any]]
        #expect(culprits?.compactMap { $0["op"] as? String } == ["L0.attn.indexer.scores"], "\(r.out.prefix(300))")
        #expect(try String(contentsOfFile: svg, encoding: .utf8).contains("<svg"))
    }

    @Test func badArgumentsFailBeforeTheRun() throws {
        let dir = try CLITests.tempDir()
        let cases: [([String], String)] = [
            (["diff", "--device", "cpu", "--plot", dir.appendingPathComponent("missing/x.svg").path], "missing"),
            (["diff", "--device", "cpu", "--device", "reference"], "--device"),
            (["diff", "--device", "sim:ascend-910b", "--profile", "/nonexistent.json"], "/nonexistent.json"),
            (["diff", "--device", "sim:ascend-910b", "--set", "numerics.kernels.moe-router.accumulator=int8"], "accumulator"),
            (["diff", "--device", "cpu", "--dtype", "i8"], "--dtype"),
            (["diff", "--device", "cpu", "--weights-from", dir.appendingPathComponent("none").path], "none"),
        ]
        for (args, fragment) in cases {
            let r = try CLITests.runBinary(args)
            #expect(r.status != 0, "polychip \(args) succeeded")
            #expect(r.err.contains(fragment), "polychip \(args): expected '\(fragment)' in: \(r.err.suffix(300))")
        }
    }
}
