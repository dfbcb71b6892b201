import Foundation
import Testing

/// `polychip simulate` through the built binary.
@Suite struct SimulateCommandTests {
    @Test func glm5DecodeOnEightAscend910B() throws {
        let r = try CLITests.runBinary(["simulate", "--model", "glm5", "--profile", "ascend-910b", "--devices", "8", "--phase", "decode"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("attention (MLA + DSA) × 78"))
        #expect(r.out.contains("MoE FFN × 75"))
        #expect(r.out.contains("Where the time goes"))
        #expect(r.out.contains("Verdict: fits"))
    }

    @Test func bf16ReportsOutOfMemoryWithFigures() throws {
        let r = try CLITests.runBinary(["simulate", "--model", "glm5", "--profile", "ascend-910b", "--devices", "8", "--phase", "decode", "--weights", "bf16"])
        #expect(r.status == 0)
        #expect(r.out.contains("OUT OF MEMORY"))
        #expect(r.out.contains("1487.8 GB"))
        #expect(r.out.contains("549.8 GB"))
    }

    @Test func jsonPlotTraceAndErrors() throws {
        let dir = try CLITests.tempDir()
        let svg = dir.appendingPathComponent("p.svg").path, trace = dir.appendingPathComponent("t.json").path
        let r = try CLITests.runBinary(["simulate", "--json", "--plot", svg, "--trace", trace, "--batch", "4", "--context", "1024"])
        #expect(r.status == 0, "\(r.err)")
        let obj = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
        #expect(obj?["model"] as? String == "GLM-5")
        #expect((try? String(contentsOfFile: svg, encoding: .utf8))?.hasPrefix("<svg") == true)
        let t = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: trace))) as? [String: Any]
        #expect(((t?["traceEvents"] as? [Any])?.count ?? 0) > 100)
        for bad in [["--tp", "3"], ["--ep", "5"], ["--phase", "train"], ["--weights", "fp8"], ["--model", "nope"], ["--routing", "zipf:x"]] {
            let e = try CLITests.runBinary(["simulate"] + bad)
            #expect(e.status != 0, "simulate \(bad) should fail")
            #expect(!e.err.isEmpty)
        }
    }

    @Test func validateAgainstPublishedMeasurements() throws {
        let r = try CLITests.runBinary(["simulate", "--validate"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("deepgemm-h800"))
        #expect(r.out.contains("Summary: median |error| on held-out records per profile"))
        #expect(r.out.contains("mtt-s4000") && r.out.contains("no published records"))
        let fit = try CLITests.runBinary(["simulate", "--validate", "--fit", "--json"])
        #expect(fit.status == 0, "\(fit.err)")
        let values = try JSONSerialization.jsonObject(with: Data(fit.out.utf8)) as? [[String: Any]]
        #expect(values?.contains { $0["path"] as? String == "compute.matrix.efficiency.max" } == true)
        let noValidate = try CLITests.runBinary(["simulate", "--fit"])
        #expect(noValidate.status != 0 && noValidate.err.contains("--validate"))
        let missing = try CLITests.runBinary(["simulate", "--validate", "--records", "/no/such/dir"])
        #expect(missing.status != 0 && missing.err.contains("/no/such/dir"))
    }
}
