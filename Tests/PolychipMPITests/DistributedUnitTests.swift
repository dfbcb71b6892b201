// DistributedUnitTests.swift — the pure parts of process meshes: the f32 rank-order sum, a
// rank's view of a collective, benchmark sizes and checks, the interconnect fit, fault specs.

import Foundation
import Testing
import Polychip
@testable import PolychipBench
import PolychipMPI

@Suite struct DistributedUnitTests {
    private func inputs(_ p: Int, _ shape: [Int], _ dt: DType, seed: Double) throws -> [HostTensor] {
        try (0..<p).map { r in
            try HostTensor(shape, dt, floats: (0..<shape.reduce(1, *)).map { Float(sin(Double($0) * 1.3 + Double(r) * 0.7 + seed)) * Float(1 << (r % 3)) })
        }
    }

    @Test func f32RankOrderEqualsF64ForTwoRanksAndIsCloseForMore() throws {
        for dt in DType.floats {
            let two = try inputs(2, [34, 9], dt, seed: 1)
            for c in [Collective.allReduce, .reduceScatter] {
                let a = try c.evaluate(two, accumulation: .f32), b = try c.evaluate(two)
                if dt == .f32 { #expect(a == b, "\(c) \(dt): one f32 addition is correctly rounded") }
                for (x, y) in zip(a, b) { #expect(zip(x.floats, y.floats).allSatisfy { abs($0 - $1) <= 1e-2 * max(1, abs($1)) }) }
            }
            let four = try inputs(4, [64, 5], dt, seed: 2)
            let a = try Collective.allReduce.evaluate(four, accumulation: .f32)[0].floats
            let b = try Collective.allReduce.evaluate(four)[0].floats
            let mag = (0..<a.count).map { i in four.reduce(Float(0)) { $0 + abs($1.floats[i]) } }
            // (p − 1)·2⁻²⁴·Σ|x| for the f32 additions, plus the dtype's own final rounding.
            let unit: Float = dt == .f32 ? 0 : (dt == .f16 ? 1.0 / 1024 : 1.0 / 128)
            for i in a.indices { #expect(abs(a[i] - b[i]) <= 3 * 0x1p-24 * mag[i] + unit * abs(b[i]) + 1e-30, "\(dt) element \(i)") }
        }
        // The documented order, written out: ((x0 + x1) + x2) in f32.
        let x = try [Float(1e8), 1, -1e8].map { try HostTensor([1], .f32, floats: [$0]) }
        #expect(try Collective.allReduce.evaluate(x, accumulation: .f32)[0].floats == [0])   // 1e8 + 1 rounds to 1e8
        #expect(try Collective.allReduce.evaluate(x)[0].floats == [1])                        // f64 keeps the 1
    }

    @Test func aRankInfersItsOutputAndBytesSent() throws {
        let counts = [[1, 2, 0], [0, 0, 3], [4, 1, 1]]
        let c = Collective.allToAll(counts: counts)
        #expect(try c.validate(rank: 1, of: 3, input: TensorDesc([3, 8], .bf16)) == TensorDesc([3, 8], .bf16))
        #expect(try c.validate(rank: 2, of: 3, input: TensorDesc([6, 8], .bf16)) == TensorDesc([4, 8], .bf16))
        #expect(throws: PolychipError.self) { try c.validate(rank: 0, of: 3, input: TensorDesc([4, 8], .bf16)) }
        #expect(throws: PolychipError.self) { try Collective.allReduce.validate(rank: 3, of: 3, input: TensorDesc([4], .f32)) }
        #expect(try Collective.reduceScatter.validate(rank: 1, of: 2, input: TensorDesc([6, 2], .f16)) == TensorDesc([3, 2], .f16))
        #expect(c.bytesSent(rank: 0, of: 3, input: TensorDesc([3, 8], .bf16)) == 2 * 16)
        #expect(Collective.allReduce.bytesSent(rank: 0, of: 4, input: TensorDesc([8], .f32)) == 48)
    }

    @Test func benchmarkSizesAndExpectedValues() throws {
        #expect(try CollectiveBenchmark.sizes(parsing: "4K:64K") == [4096, 8192, 16384, 32768, 65536])
        #expect(try CollectiveBenchmark.sizes(parsing: "4K:256M:4").count == 9)
        #expect(try CollectiveBenchmark.sizes(parsing: "1000, 2M") == [1000, 2 << 20])
        for bad in ["", "0", "64K:4K", "1K:2K:1", "17G", "-4K", "4X", "1:2:3:4", "9999999999999999999K"] {
            #expect(throws: PolychipError.self, "\(bad)") { try CollectiveBenchmark.sizes(parsing: bad) }
        }
        #expect(CollectiveBenchmark.runnableSize(1000, .allGather, ranks: 3, dtype: .f32) == 996)
        #expect(CollectiveBenchmark.runnableSize(1001, .allReduce, ranks: 3, dtype: .f16) == 1000)
        #expect(CollectiveKind.allReduce.busFactor(ranks: 4) == 1.5 && CollectiveKind.allToAll.busFactor(ranks: 4) == 0.75)
        // The checker knows the exact answers (and catches a wrong element).
        let p = 3, n = 12
        let out = UnsafeMutableRawPointer.allocate(byteCount: 4 * n, alignment: 16)
        defer { out.deallocate() }
        for i in 0..<n { out.storeBytes(of: (0..<p).reduce(Float(0)) { $0 + CollectiveBenchmark.inputValue(rank: $1, index: i) }, toByteOffset: 4 * i, as: Float.self) }
        #expect(CollectiveBenchmark.countWrong(.allReduce, output: out, count: n, dtype: .f32, rank: 0, ranks: p) == 0)
        out.storeBytes(of: Float(1e9), toByteOffset: 8, as: Float.self)
        #expect(CollectiveBenchmark.countWrong(.allReduce, output: out, count: n, dtype: .f32, rank: 0, ranks: p) == 1)
    }

    /// The model's own times on `profile` for every collective and size over `devices`.
    private func modeledRows(_ profile: DeviceProfile, devices: [Int], sizes: String = "64K:64M:4") throws -> [CollectiveBenchRow] {
        var rows: [CollectiveBenchRow] = []
        for k in CollectiveKind.allCases {
            for s in try CollectiveBenchmark.sizes(parsing: sizes) {
                let t = try InterconnectModel.modeledSeconds(profile, k, size: s, ranks: devices.count, devices: devices)
                rows.append(CollectiveBenchRow(collective: k.rawValue, ranks: devices.count, hosts: 1, dtype: "f32", size: s, count: s / 4, seconds: t,
                                               minSeconds: t, maxSeconds: t, algbw: 0, busbw: 0, wrong: 0, iterations: 1, rounds: 1))
            }
        }
        return rows
    }

    @Test func theInterconnectFitRecoversTheModelsOwnParameters() throws {
        let base = try SimulatedBackend.loadProfile("h100-sxm")
        let truth = try InterconnectModel.profile(base: base, ranks: 4, overhead: 20e-6, latency: 35e-6, bandwidth: 1.1e8, source: "truth")
        let layout = InterconnectModel.Layout(hosts: 1, ranksPerHost: 4)
        let rows = try modeledRows(truth, devices: layout.devices(.intraHost))
        let fit = try InterconnectModel.fit(intraHost: rows, interHost: [], base: base, layout: layout)
        let intra = try #require(fit.intraHost)
        #expect(abs(fit.overhead - 20e-6) < 1e-9 && abs(intra.latency - 35e-6) < 1e-9 && abs(intra.bandwidth / 1.1e8 - 1) < 1e-6, "\(fit)")
        #expect(intra.medianAbsoluteError < 1e-9 && intra.points == rows.count)
        // One host: the inter-host level is not measured, and said so; the profile is one switch.
        #expect(fit.interHost == nil && fit.notMeasured.count == 1 && fit.notMeasured[0].hasPrefix("inter-host: not measured"))
        #expect(try InterconnectModel.profile(base: base, fit: fit, source: "t").interconnect.topology.value == .switch)
        // The all-reduce of the direct algorithm: two phases, each (p−1)/p of the buffer through a port.
        let ar = try InterconnectModel.modeledSeconds(truth, .allReduce, size: 1 << 20, ranks: 4)
        #expect(abs(ar - (20e-6 + 2 * (35e-6 + 0.75 * Double(1 << 20) / 1.1e8))) < 1e-12)
        // One point measured ten times too fast does not drag the fit of the others with it.
        var outlier = rows
        outlier[3].seconds /= 10
        let robust = try #require(try InterconnectModel.fit(intraHost: outlier, interHost: [], base: base, layout: layout).intraHost)
        #expect(robust.medianAbsoluteError < 0.05 && abs(robust.bandwidth / 1.1e8 - 1) < 0.1, "\(robust)")
        #expect(throws: PolychipError.self) { try InterconnectModel.fit(intraHost: Array(rows.prefix(2)), interHost: [], base: base, layout: layout) }
        #expect(throws: PolychipError.self) {
            try InterconnectModel.fit(intraHost: rows, interHost: [], base: base, layout: .init(hosts: 1, ranksPerHost: 1))
        }
    }

    @Test func theTwoLevelFitRecoversEachLevelFromItsOwnSubCommunicator() throws {
        let base = try SimulatedBackend.loadProfile("h100-sxm")
        let layout = InterconnectModel.Layout(hosts: 3, ranksPerHost: 2)
        let truthIntra = InterconnectModel.Figures(latency: 4e-6, bandwidth: 6e9), truthInter = InterconnectModel.Figures(latency: 60e-6, bandwidth: 1.2e8)
        let truth = try InterconnectModel.profile(base: base, layout: layout, overhead: 15e-6, intraHost: truthIntra, interHost: truthInter, source: "truth")
        #expect(truth.interconnect.topology.value == .twoLevel && truth.interconnect.devicesPerNode.value == 2)
        #expect(layout.devices(.intraHost) == [0, 1] && layout.devices(.interHost) == [0, 2, 4])
        // Synthetic measurements: host 0's two ranks, and one rank on each of the three hosts.
        let intraRows = try modeledRows(truth, devices: layout.devices(.intraHost))
        let interRows = try modeledRows(truth, devices: layout.devices(.interHost))
        // The levels differ (a flat fit of both would be off): 64 MiB all-reduce, 50× apart.
        #expect(interRows[5].seconds / intraRows[5].seconds > 40)
        let fit = try InterconnectModel.fit(intraHost: intraRows, interHost: interRows, base: base, layout: layout)
        let intra = try #require(fit.intraHost), inter = try #require(fit.interHost)
        #expect(abs(fit.overhead - 15e-6) < 1e-9, "\(fit)")
        #expect(abs(intra.latency - 4e-6) < 1e-9 && abs(intra.bandwidth / 6e9 - 1) < 1e-6 && intra.ranks == 2, "\(intra)")
        #expect(abs(inter.latency - 60e-6) < 1e-9 && abs(inter.bandwidth / 1.2e8 - 1) < 1e-6 && inter.ranks == 3, "\(inter)")
        #expect(fit.notMeasured.isEmpty && intra.medianAbsoluteError < 1e-9 && inter.medianAbsoluteError < 1e-9)
        // The fitted profile prices the whole job (both levels in one collective) as the truth does.
        let fitted = try InterconnectModel.profile(base: base, fit: fit, source: "t")
        for k in CollectiveKind.allCases {
            let a = try InterconnectModel.modeledSeconds(fitted, k, size: 1 << 24, ranks: 6)
            let b = try InterconnectModel.modeledSeconds(truth, k, size: 1 << 24, ranks: 6)
            #expect(abs(a / b - 1) < 1e-6, "\(k)")
        }
        // Noise on the measurements (±10%, fixed pattern) moves each level's figures by about as much, no more.
        let noisy = { (rows: [CollectiveBenchRow]) in rows.enumerated().map { i, r in var r = r; r.seconds *= 1 + 0.1 * sin(Double(i) * 2.1); return r } }
        let rough = try InterconnectModel.fit(intraHost: noisy(intraRows), interHost: noisy(interRows), base: base, layout: layout)
        let roughIntra = try #require(rough.intraHost), roughInter = try #require(rough.interHost)
        #expect(abs(roughIntra.bandwidth / 6e9 - 1) < 0.15 && abs(roughInter.bandwidth / 1.2e8 - 1) < 0.15, "\(rough)")

        // One rank per host: only the inter-host level exists; the profile keeps the base's link, marked.
        let columns = InterconnectModel.Layout(hosts: 2, ranksPerHost: 1)
        let only = try InterconnectModel.fit(intraHost: [], interHost: try modeledRows(truth, devices: [0, 2]), base: base, layout: columns)
        #expect(only.intraHost == nil && only.notMeasured.count == 1 && only.notMeasured[0].hasPrefix("intra-host: not measured"))
        let onlyInter = try #require(only.interHost)
        #expect(abs(onlyInter.bandwidth / 1.2e8 - 1) < 1e-6 && abs(onlyInter.latency - 60e-6) < 1e-9)
        let kept = try InterconnectModel.profile(base: base, fit: only, source: "t").interconnect
        #expect(kept.link.bandwidth.value == base.interconnect.link.bandwidth.value && kept.link.bandwidth.source.hasPrefix("not measured"))
        // Bad inputs are typed errors: intra-host points with one rank per host, a missing inter-host level.
        #expect(throws: PolychipError.self) { try InterconnectModel.fit(intraHost: intraRows, interHost: interRows, base: base, layout: columns) }
        #expect(throws: PolychipError.self) { try InterconnectModel.fit(intraHost: intraRows, interHost: [], base: base, layout: layout) }
    }

    @Test func faultSpecs() throws {
        #expect(try MPIFaultPlan(parsing: "kill:2@5") == MPIFaultPlan(kind: .kill, rank: 2, atCollective: 5))
        #expect(try MPIFaultPlan(parsing: "stall:0@1:2.5") == MPIFaultPlan(kind: .stall(seconds: 2.5), rank: 0, atCollective: 1))
        for bad in ["kill", "kill:1", "kill:-1@2", "kill:1@0", "stall:1@2:0", "stall:1@2:99999", "boom:1@2", "kill:1@2:3"] {
            #expect(throws: PolychipError.self, "\(bad)") { try MPIFaultPlan(parsing: bad) }
        }
    }
}
