import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
import Polychip
@testable import PolychipBench
@testable import PolychipCLI

/// `polychip bench` outputs: --json, --trace, --plot.
@Suite struct BenchOutputTests {
    /// An attribute's value (FoundationXML's `attribute(forName:)` misses attributes of elements
    /// in a default namespace, as every SVG element is).
    func attr(_ e: XMLElement, _ name: String) -> String? {
        e.attributes?.first { $0.name == name }?.stringValue
    }

    static let small = ["--kernel", "matmul", "--shape", "M=16,N=24,K=32", "--min-time", "0.01"]

    @Test func jsonOutputParses() throws {
        let r = try TestSupport.run(["bench", "--device", "cpu", "--device", "sim:ascend-910b"] + Self.small + ["--json"])
        #expect(r.status == 0, "\(r.err)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]])
        #expect(rows.count == 2)
        let measured = try #require(rows.first { $0["source"] as? String == "measured" })
        let modeled = try #require(rows.first { $0["source"] as? String == "modeled" })
        #expect(measured["device"] as? String == "cpu:0")
        #expect(modeled["device"] as? String == "sim:ascend-910b:0")
        for row in rows {
            #expect(row["kernel"] as? String == "matmul")
            #expect(row["shape"] as? String == "M=16 N=24 K=32")
            #expect(row["flops"] as? Double == Double(2 * 16 * 24 * 32))
            #expect((row["medianSeconds"] as? Double ?? 0) > 0)
            #expect((row["verified"] as? String ?? "").hasPrefix("yes"))
        }
        #expect((modeled["breakdown"] as? [String: Any])?["bound"] != nil)
        #expect((measured["repetitions"] as? Int ?? 0) >= 3)
        #expect((measured["cpuSeconds"] as? Double ?? -1) >= 0 && modeled["cpuSeconds"] == nil)
    }

    @Test func traceHasATrackPerDeviceQueueAndASlicePerKernel() throws {
        let dir = try TestSupport.tempDir()
        let trace = dir.appendingPathComponent("t.json").path
        var cmd = try PolychipCommand.parseAsRoot(["bench", "--device", "cpu", "--device", "sim:ascend-910b", "--device", "sim:mlu590",
                                                   "--kernel", "softmax", "--kernel", "rms-norm", "--shape", "R=8,D=64",
                                                   "--min-time", "0.01", "--no-verify", "--trace", trace])
        try cmd.run()
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: trace))) as? [String: Any])
        let events = try #require(obj["traceEvents"] as? [[String: Any]])
        let processes = events.filter { $0["ph"] as? String == "M" && $0["name"] as? String == "process_name" }
        let names = processes.compactMap { ($0["args"] as? [String: Any])?["name"] as? String }
        #expect(Set(names) == ["cpu:0", "sim:ascend-910b:0", "sim:mlu590:0"])
        #expect(Set(processes.compactMap { $0["pid"] as? Int }).count == 3)
        let slices = events.filter { $0["ph"] as? String == "X" }
        for (pid, name) in zip(processes.compactMap { $0["pid"] as? Int }, names) {
            let mine = slices.filter { $0["pid"] as? Int == pid }
            // Two kernels; measured devices also record the warm-up and every repetition.
            #expect(Set(mine.compactMap { $0["name"] as? String }) == ["softmax", "rms-norm"], "\(name)")
            if name.hasPrefix("sim:") {
                #expect(mine.count == 2)
                let args = try #require(mine.first?["args"] as? [String: Any])
                #expect((args["modeled"] as? [String: Any])?["total_s"] != nil)
                // Modeled slices follow each other on the virtual clock.
                let ts = mine.compactMap { $0["ts"] as? Double }, dur = mine.compactMap { $0["dur"] as? Double }
                #expect(ts.count == 2 && abs(ts[1] - (ts[0] + dur[0])) < 1e-6)
            } else {
                #expect(mine.count >= 8)
            }
            for s in mine {
                let args = try #require(s["args"] as? [String: Any])
                #expect(args["inputShapes"] is [[Int]] && args["flops"] is Double && args["bytes"] is Double)
                #expect((s["dur"] as? Double ?? -1) >= 0 && s["tid"] is Int)
            }
        }
    }

    @Test func collectivesAppearOnEveryParticipatingDevice() throws {
        let mesh = try SimulatedBackend.mesh(profile: "ascend-910b", count: 4)
        let values = try (0..<4).map { r in try HostTensor([8, 4], .f32, floats: (0..<32).map { Float($0 + r) }) }
        let softmax = try mesh.devices[0].tensor(values[0])
        let out = try mesh.devices[0].allocate(softmax.desc)
        try mesh.queues[0].enqueue(.softmax, inputs: [softmax], outputs: [out])
        _ = try mesh.run(.allReduce, values)
        let data = try ChromeTrace.encode(ChromeTrace.tracks(mesh: mesh))
        let obj = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let events = try #require(obj["traceEvents"] as? [[String: Any]])
        let collectives = events.filter { $0["cat"] as? String == "collective" }
        #expect(collectives.count == 4)
        #expect(Set(collectives.compactMap { $0["pid"] as? Int }).count == 4)
        for c in collectives {
            #expect(c["name"] as? String == "all-reduce")
            let participants = (c["args"] as? [String: Any])?["participants"] as? [String]
            #expect(participants == mesh.devices.map(\.id))
        }
        let threads = events.filter { $0["name"] as? String == "thread_name" }.compactMap { ($0["args"] as? [String: Any])?["name"] as? String }
        #expect(threads.filter { $0 == "comm" }.count == 4 && threads.filter { $0 == "compute" }.count == 4)
        #expect(events.filter { $0["cat"] as? String == "kernel" }.count == 1)
    }

    @Test func plotIsWellFormedSVGWithTheExpectedSeries() throws {
        let dir = try TestSupport.tempDir()
        let svg = dir.appendingPathComponent("p.svg").path
        let devices = ["cpu", "sim:ascend-910b", "sim:h100-sxm"]
        let rows = try [Workloads.make(.matmul, ["M": 8, "N": 16, "K": 32], .f32), Workloads.make(.rmsNorm, ["R": 8, "D": 64], .f32)]
            .flatMap { w in try devices.map { try BenchRunner.run(w, on: Polychip.device($0), options: BenchOptions(minTime: 0.01, verify: false)) } }
        let roofs = try devices.map { Roof.of(try Polychip.device($0), dtype: .f32) }
        try BenchPlot.write(rows: rows, roofs: roofs, to: svg)
        let doc = try XMLDocument(contentsOf: URL(fileURLWithPath: svg), options: [])
        #expect(doc.rootElement()?.name == "svg")
        func nodes(_ element: String, _ cls: String) throws -> [XMLElement] {
            try doc.nodes(forXPath: "//*[@class='\(cls)']").compactMap { $0 as? XMLElement }.filter { $0.name == element }
        }
        let roofLines = try nodes("polyline", "roof")
        #expect(Set(roofLines.compactMap { attr($0, "data-device") }) == Set(roofs.filter { $0.peakFlops != nil || $0.bandwidth != nil }.map(\.device)))
        let points = try doc.nodes(forXPath: "//*[@class='point']").compactMap { $0 as? XMLElement }
        #expect(points.count == rows.count)
        #expect(points.filter { $0.name == "circle" }.count == 2)  // measured cpu rows
        let bars = try nodes("rect", "bar")
        #expect(bars.count == rows.count)
        #expect(Set(bars.compactMap { attr($0, "data-source") }) == ["measured", "modeled"])
        #expect(Set(bars.compactMap { attr($0, "data-kernel") }) == ["matmul", "rms-norm"])
        let legend = try nodes("g", "legend-entry").compactMap { attr($0, "data-device") }
        #expect(legend == ["cpu:0", "sim:ascend-910b:0", "sim:h100-sxm:0"])
    }

    @Test func plotFromTheCommandLine() throws {
        let dir = try TestSupport.tempDir()
        let svg = dir.appendingPathComponent("cli.svg").path
        let r = try TestSupport.run(["bench", "--device", "cpu", "--device", "sim:mtt-s4000"] + Self.small + ["--no-verify", "--plot", svg])
        #expect(r.status == 0, "\(r.err)")
        let doc = try XMLDocument(contentsOf: URL(fileURLWithPath: svg), options: [])
        #expect(try doc.nodes(forXPath: "//*[@class='point']").count == 2)
        #expect(try doc.nodes(forXPath: "//*[@class='bar']").count == 2)
    }

    @Test func svgEscapesText() {
        let rows = [BenchResult(kernel: "a<b&\"c\"", shape: "x>y", dtype: "f32", device: "dev'1", source: "modeled", medianSeconds: 1e-3,
                                minSeconds: 1e-3, maxSeconds: 1e-3, repetitions: 1, flops: 1e6, bytes: 1e4, gflops: 1, gbps: 0.01,
                                rooflinePercent: nil, bound: "compute", verified: "off", breakdown: nil)]
        let text = BenchPlot.svg(rows: rows, roofs: [Roof(device: "dev'1", peakFlops: 1e9, bandwidth: 1e8)])
        #expect(throws: Never.self) { _ = try XMLDocument(data: Data(text.utf8), options: []) }
    }
}
