// TimeModelTests.swift — the time model against hand calculations.
//
// Every expected value is computed here from the literal figures of the bundled profile
// files (rates, efficiencies, half-saturation points, overheads, link figures) and the
// formulas in TimeModel.swift — never from the model's own helpers.

import Foundation
import Testing
@testable import PolychipSimulated

private let profilesDirectory: String = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("backends").appendingPathComponent("profiles").path

private func model(_ name: String, _ overrides: [String: String] = [:]) throws -> TimeModel {
    TimeModel(profile: try DeviceProfile.load(path: profilesDirectory + "/" + name + ".json", overrides: overrides))
}

/// Equal to within floating-point rounding of a differently ordered evaluation.
private func close(_ a: Double, _ b: Double, _ rel: Double = 1e-12) -> Bool {
    abs(a - b) <= rel * max(abs(a), abs(b))
}

private func collectiveError(_ body: () throws(CollectiveError) -> CollectiveCost) -> CollectiveError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

private let MiB = 1_048_576.0

@Suite("Time model")
struct TimeModelTests {
    // MARK: Ascend 910B — hand calculations

    @Test("910B: f16 GEMM 1000×4096×4096 (m padded to 16)")
    func ascendGemm() throws {
        let t = try model("ascend-910b").kernelTime(.gemm(m: 1000, n: 4096, k: 4096, dtype: .f16))
        let flops = 2.0 * 1000 * 4096 * 4096
        let bytes = (1000.0 * 4096 + 4096.0 * 4096 + 1000.0 * 4096) * 2
        let padded = flops * (1008.0 * 4096 * 4096) / (1000.0 * 4096 * 4096)  // ⌈1000/16⌉·16 = 1008
        let eC = 0.8345 * padded / (padded + 5.0e8)                            // max 0.8345 (fitted), halfSaturation 5e8
        let compute = padded / (376e12 * eC)                                   // f16 cube peak 376 TFLOP/s
        let eM = 0.8029 * bytes / (bytes + 1.0e6)                              // max 0.8029 (fitted), halfSaturation 1e6
        let memory = bytes / (1.6e12 * eM)                                     // 1.6 TB/s
        #expect(close(t.paddedFlops, padded))
        #expect(close(t.compute, compute))
        #expect(close(t.memory, memory))
        #expect(t.launch == 5e-6)
        #expect(close(t.total, 5e-6 + max(compute, memory)))
        #expect(t.bound == .compute)
        #expect(t.effectiveDtype == .f16 && !t.emulated)
    }

    @Test("910B: f16 GEMV 1×4096×4096 (decode) is memory bound; m pads 1 → 16")
    func ascendGemv() throws {
        let t = try model("ascend-910b").kernelTime(.gemm(m: 1, n: 4096, k: 4096, dtype: .f16))
        let flops = 2.0 * 4096 * 4096
        let bytes = (4096.0 + 4096.0 * 4096 + 4096.0) * 2
        let padded = flops * 16
        let ramp = max(padded, bytes * 376e12 / 1.6e12)                        // the ramp counts traffic too
        let compute = padded / (376e12 * (0.8345 * ramp / (ramp + 5.0e8)))
        let memory = bytes / (1.6e12 * (0.8029 * bytes / (bytes + 1.0e6)))
        #expect(t.paddingFactor == 16)
        #expect(close(t.compute, compute))
        #expect(close(t.memory, memory))
        #expect(close(t.total, 5e-6 + memory))
        #expect(t.bound == .memory)
    }

    @Test("910B: f16 softmax over 4096 rows of 1000 on the vector unit (rows pad to 1024 lanes)")
    func ascendSoftmax() throws {
        let rows = 4096.0, len = 1000.0
        let q = KernelCostQuery(name: "softmax", unit: .vector, dtype: .f16, flops: 5 * rows * len, bytes: 2 * rows * len * 2,
                                shape: .rows(count: 4096, length: 1000))
        let t = try model("ascend-910b").kernelTime(q)
        let padded = 5 * rows * len * (1024.0 / 1000.0)                          // 128 fp16 lanes: 1000 → 1024
        let bytes = 2 * rows * len * 2
        let ramp = max(padded, bytes * 22e12 / 1.6e12)                          // the ramp counts traffic too
        let compute = padded / (22e12 * (0.7 * ramp / (ramp + 8.0e6)))          // AIV f16 22 TFLOP/s
        let memory = bytes / (1.6e12 * (0.8029 * bytes / (bytes + 1.0e6)))
        #expect(close(t.compute, compute))
        #expect(close(t.memory, memory))
        #expect(t.launch == 2e-6)
        #expect(close(t.total, 2e-6 + max(compute, memory)))
        #expect(t.bound == .memory)
    }

    @Test("910B: ring all-reduce of 64 MiB over 8 NPUs uses one HCCS link per device")
    func ascendRingAllReduce() throws {
        let n = 64 * MiB
        let c = try model("ascend-910b").allReduce(bytes: n, devices: 8, algorithm: .ring)
        // Full mesh: ⌊7 links / 7 peers⌋ = 1 link of 28 GB/s × efficiency 0.7 to the ring successor.
        let step = 0.5e-6 + (n / 8) / (28e9 * 0.7)
        let expected = 10e-6 + 2 * 7 * step
        #expect(close(c.total, expected))
        #expect(close(c.latency, 14 * 0.5e-6))
        #expect(close(c.transfer, 14 * (n / 8) / (28e9 * 0.7)))
        #expect(c.overhead == 10e-6)
        #expect(c.phases == 14)
        #expect(c.perDevice.allSatisfy { close($0, expected) })
        #expect(c.reroutes.isEmpty)
    }

    @Test("910B: direct all-reduce uses all 7 links at once and beats ring")
    func ascendDirect() throws {
        let m = try model("ascend-910b")
        let n = 64 * MiB
        let direct = try m.allReduce(bytes: n, devices: 8, algorithm: .direct)
        #expect(close(direct.total, 10e-6 + 2 * (0.5e-6 + (n / 8) / (28e9 * 0.7))))
        let best = try m.allReduce(bytes: n, devices: 8)
        #expect(best.algorithm == .direct)
        // A 4-device group uses 3 of the 7 links: still one link per pair.
        let four = try m.allReduce(bytes: n, devices: 4, algorithm: .direct)
        #expect(close(four.total, 10e-6 + 2 * (0.5e-6 + (n / 4) / (28e9 * 0.7))))
    }

    @Test("910B: int4 GEMM runs natively on the cube with a 16×16×64 tile")
    func ascendInt4() throws {
        let t = try model("ascend-910b").kernelTime(.gemm(m: 16, n: 4096, k: 4000, dtype: .int4, bytes: 1e6))
        #expect(t.rate == 1504e12)
        #expect(close(t.paddingFactor, 4032.0 / 4000.0))  // k: ⌈4000/64⌉·64 = 4032
        #expect(!t.emulated)
    }

    // MARK: MTT S4000 — hand calculations

    @Test("MTT S4000: bf16 GEMM 2048³ (no padding)")
    func mttGemm() throws {
        let t = try model("mtt-s4000").kernelTime(.gemm(m: 2048, n: 2048, k: 2048, dtype: .bf16))
        let flops = 2.0 * 2048 * 2048 * 2048
        let bytes = 3 * 2048.0 * 2048 * 2
        let compute = flops / (100e12 * (0.7 * flops / (flops + 1.4e8)))
        let memory = bytes / (768e9 * (0.75 * bytes / (bytes + 5.8e5)))
        #expect(t.paddingFactor == 1)
        #expect(close(t.compute, compute))
        #expect(close(t.memory, memory))
        #expect(close(t.total, 5e-6 + max(compute, memory)))
        #expect(t.bound == .compute)
    }

    @Test("MTT S4000: bf16 GEMV 1×4096×4096")
    func mttGemv() throws {
        let t = try model("mtt-s4000").kernelTime(.gemm(m: 1, n: 4096, k: 4096, dtype: .bf16))
        let padded = 2.0 * 4096 * 4096 * 16
        let bytes = (4096.0 + 4096.0 * 4096 + 4096.0) * 2
        let ramp = max(padded, bytes * 100e12 / 768e9)                         // the ramp counts traffic too
        let compute = padded / (100e12 * (0.7 * ramp / (ramp + 1.4e8)))
        let memory = bytes / (768e9 * (0.75 * bytes / (bytes + 5.8e5)))
        #expect(close(t.compute, compute))
        #expect(close(t.memory, memory))
        #expect(close(t.total, 5e-6 + memory))
        #expect(t.bound == .memory)
    }

    @Test("MTT S4000: f16 softmax runs on SIMT FP32 (emulated), 32-lane padding")
    func mttSoftmax() throws {
        let rows = 4096.0, len = 1000.0
        let q = KernelCostQuery(name: "softmax", unit: .vector, dtype: .f16, flops: 5 * rows * len, bytes: 2 * rows * len * 2,
                                shape: .rows(count: 4096, length: 1000))
        let t = try model("mtt-s4000").kernelTime(q)
        let padded = 5 * rows * len * (1024.0 / 1000.0)                          // 32 lanes: 1000 → 1024
        let bytes = 2 * rows * len * 2
        let ramp = max(padded, bytes * 25e12 / 768e9)                           // the ramp counts traffic too
        let compute = padded / (25e12 * (0.7 * ramp / (ramp + 8.8e6)))
        let memory = bytes / (768e9 * (0.75 * bytes / (bytes + 5.8e5)))
        #expect(t.effectiveDtype == .f32)
        #expect(t.emulated)
        #expect(close(t.compute, compute))
        #expect(close(t.memory, memory))
        #expect(close(t.total, 5e-6 + max(compute, memory)))
    }

    @Test("MTT S4000: ring all-reduce of 64 MiB over the 8-card MTLink ring")
    func mttRingAllReduce() throws {
        let n = 64 * MiB
        let c = try model("mtt-s4000").allReduce(bytes: n, devices: 8, algorithm: .ring)
        // Ring topology: ⌊2 links / 2⌋ = 1 link of 120 GB/s × 0.7 to each neighbour, 1 hop of 1 µs.
        let expected = 10e-6 + 2 * 7 * (1e-6 + (n / 8) / (120e9 * 0.7))
        #expect(close(c.total, expected))
        #expect(c.perDevice.allSatisfy { close($0, expected) })
    }

    @Test("MTT S4000: W4A16 has no INT4 path — emulated through bf16 at the bf16 rate")
    func mttW4A16() throws {
        let t = try model("mtt-s4000").kernelTime(.gemm(m: 64, n: 4096, k: 4096, dtype: .int4, bytes: 4096.0 * 4096 / 2))
        #expect(t.effectiveDtype == .bf16)
        #expect(t.emulated)
        #expect(t.rate == 100e12)
    }

    @Test("MTT S4000: binomial tree all-reduce on a ring pays multi-hop latency")
    func mttTree() throws {
        let n = 1 * MiB
        let c = try model("mtt-s4000").allReduce(bytes: n, devices: 8, algorithm: .tree)
        // Reduce rounds: 1, 2, 4 hops; broadcast: 4, 2, 1 hops; each round moves n bytes over distinct links.
        let expected = 10e-6 + (1 + 2 + 4 + 4 + 2 + 1) * 1e-6 + 6 * n / (120e9 * 0.7)
        #expect(close(c.total, expected))
        #expect(c.phases == 6)
    }

    @Test("MTT S4000: direct all-to-all on a ring is limited by the most loaded link")
    func mttAllToAllContention() throws {
        let b = 1 * MiB
        let c = try model("mtt-s4000").allToAll(bytesPerPair: b, devices: 8, algorithm: .direct)
        // Shortest paths (ties clockwise): each clockwise link carries the transfers of distance
        // 1, 2, 3 and 4 that cross it = 1 + 2 + 3 + 4 = 10 transfers; the critical transfer is 4 hops.
        let expected = 10e-6 + 4 * 1e-6 + 10 * b / (120e9 * 0.7)
        #expect(close(c.total, expected))
    }

    // MARK: Switch and two-level topologies

    @Test("H100: direct all-reduce on NVSwitch shares each GPU's port")
    func h100Direct() throws {
        let n = 64 * MiB
        let c = try model("h100-sxm").allReduce(bytes: n, devices: 8, algorithm: .direct)
        let port = 18 * 25e9 * (370.5 / 450)
        #expect(close(c.total, 5e-6 + 2 * (1e-6 + 7 * (n / 8) / port)))
    }

    @Test("910B: a flat ring over 2 nodes is limited by the inter-node NIC")
    func twoNodeRing() throws {
        let n = 64 * MiB
        let c = try model("ascend-910b").allReduce(bytes: n, devices: 16, algorithm: .ring)
        // Steps 7→8 and 15→0 cross nodes: NIC 25 GB/s × 0.7 (one NIC per NPU), 1.5 µs.
        let expected = 10e-6 + 2 * 15 * (1.5e-6 + (n / 16) / (25e9 * 0.7))
        #expect(close(c.total, expected))
    }

    @Test("910B: hierarchical all-reduce over 2 nodes, and NIC sharing when a node has fewer NICs")
    func hierarchical() throws {
        let n = 64 * MiB
        let c = try model("ascend-910b").allReduce(bytes: n, devices: 16, algorithm: .hierarchical)
        let intra = 0.5e-6 + (n / 8) / (28e9 * 0.7)          // direct reduce-scatter / all-gather in a node
        let inter = 1.5e-6 + (n / 16) / (25e9 * 0.7)         // 8 column rings of 2, each device on its own NIC
        #expect(close(c.total, 10e-6 + 2 * intra + 2 * inter))
        // With 2 NICs per node the 8 concurrent column transfers share 2 × 17.5 GB/s.
        let shared = try model("ascend-910b", ["interconnect.interNode.nicsPerNode": "2"]).allReduce(bytes: n, devices: 16, algorithm: .hierarchical)
        let sharedInter = 1.5e-6 + (8 * n / 16) / (2 * 25e9 * 0.7)
        #expect(close(shared.total, 10e-6 + 2 * intra + 2 * sharedInter))
    }

    // MARK: All-to-all with variable counts: the per-device view

    @Test("variable-count all-to-all: the slowest device sets the end, light devices finish early")
    func allToAllPerDevice() throws {
        var m = [[Double]](repeating: [Double](repeating: 1 * MiB, count: 4), count: 4)
        for i in 0..<4 { m[i][i] = 0 }
        m[0][1] = 8 * MiB
        let c = try model("ascend-910b").allToAll(bytes: m, algorithm: .direct)
        let bw = 28e9 * 0.7
        #expect(close(c.total, 10e-6 + 0.5e-6 + 8 * MiB / bw))
        #expect(c.slowestDevice == 0)
        #expect(close(c.perDevice[0], c.total))
        #expect(close(c.perDevice[1], c.total))
        #expect(close(c.perDevice[2], 10e-6 + 0.5e-6 + 1 * MiB / bw))
        #expect(close(c.perDevice[3], 10e-6 + 0.5e-6 + 1 * MiB / bw))
        #expect(c.bytes == 10 * MiB)
        // Pairwise exchange: 3 steps, each bounded by its largest transfer.
        let ring = try model("ascend-910b").allToAll(bytes: m, algorithm: .ring)
        #expect(close(ring.total, 10e-6 + (0.5e-6 + 8 * MiB / bw) + 2 * (0.5e-6 + 1 * MiB / bw)))
    }

    // MARK: Faults in the interconnect

    @Test("a downed full-mesh link is rerouted through another NPU")
    func meshReroute() throws {
        let n = 64 * MiB
        let c = try model("ascend-910b").allReduce(bytes: n, devices: 8, algorithm: .ring, faults: [.link(0, 1)])
        #expect(close(c.total, 10e-6 + 14 * (2 * 0.5e-6 + (n / 8) / (28e9 * 0.7))))
        #expect(c.reroutes.count == 1)
        #expect(c.reroutes.first?.path == [0, 2, 1])
        #expect(c.reroutes.first?.fault == .link(0, 1))
    }

    @Test("a downed ring link is rerouted the other way round; two cuts are unreachable")
    func ringReroute() throws {
        let n = 64 * MiB
        let m = try model("mtt-s4000")
        let c = try m.allReduce(bytes: n, devices: 8, algorithm: .ring, faults: [.link(1, 0)])
        #expect(close(c.total, 10e-6 + 14 * (7 * 1e-6 + (n / 8) / (120e9 * 0.7))))
        #expect(c.reroutes.first?.path == [0, 7, 6, 5, 4, 3, 2, 1])
        let e = collectiveError { () throws(CollectiveError) in try m.allReduce(bytes: n, devices: 8, algorithm: .ring, faults: [.link(0, 1), .link(4, 5)]) }
        guard case .unreachable(0, 1, let reason)? = e else {
            Issue.record("expected unreachable, got \(String(describing: e))")
            return
        }
        #expect(reason.contains("cut in two places"))
        let bad = collectiveError { () throws(CollectiveError) in try m.allReduce(bytes: n, devices: 8, faults: [.link(0, 5)]) }
        guard case .invalidFault(.link(0, 5), _)? = bad else {
            Issue.record("0–5 are not ring neighbours")
            return
        }
    }

    @Test("a dead switch port cannot be routed around; a downed NIC shrinks the node's pool")
    func switchAndNicFaults() throws {
        let h100 = try model("h100-sxm")
        let e = collectiveError { () throws(CollectiveError) in try h100.allReduce(bytes: MiB, devices: 8, algorithm: .ring, faults: [.switchPort(device: 3)]) }
        guard case .unreachable(_, _, let reason)? = e else {
            Issue.record("expected unreachable, got \(String(describing: e))")
            return
        }
        #expect(reason.contains("switch port of device 3"))
        let n = 64 * MiB
        let m = try model("ascend-910b", ["interconnect.interNode.nicsPerNode": "2"])
        let c = try m.allReduce(bytes: n, devices: 16, algorithm: .hierarchical, faults: [.nic(node: 1, index: 0)])
        let intra = 0.5e-6 + (n / 8) / (28e9 * 0.7)
        let inter = 1.5e-6 + (8 * n / 16) / (1 * 25e9 * 0.7)   // node 1 has one NIC left
        #expect(close(c.total, 10e-6 + 2 * intra + 2 * inter))
        #expect(c.reroutes.count == 1)
        #expect(c.reroutes.first?.fault == .nic(node: 1, index: 0))
        let dead = collectiveError { () throws(CollectiveError) in try m.allReduce(bytes: n, devices: 16, faults: [.nic(node: 0, index: 0), .nic(node: 0, index: 1)]) }
        guard case .unreachable? = dead else {
            Issue.record("a node with no NIC left is unreachable, got \(String(describing: dead))")
            return
        }
    }

    // MARK: Overrides change modeled time

    @Test("overrides change the modeled time as the formulas say")
    func overridesChangeTime() throws {
        let base = try model("ascend-910b")
        let gemv = KernelCostQuery.gemm(m: 1, n: 4096, k: 4096, dtype: .f16)
        let fastMem = try model("ascend-910b", ["memory.bandwidth": "3.2e12"])
        #expect(close(try fastMem.kernelTime(gemv).memory, try base.kernelTime(gemv).memory / 2))
        let gemm = KernelCostQuery.gemm(m: 4096, n: 4096, k: 4096, dtype: .f16)
        let fastCube = try model("ascend-910b", ["compute.matrix.peak.f16": "752e12"])
        #expect(close(try fastCube.kernelTime(gemm).compute, try base.kernelTime(gemm).compute / 2))
        let constant = try model("ascend-910b", ["compute.matrix.efficiency.halfSaturation": "0"])
        let flops = 2.0 * 4096 * 4096 * 4096
        #expect(close(try constant.kernelTime(gemm).compute, flops / (376e12 * 0.8345)))  // the fitted cube efficiency
        let n = 64 * MiB
        let fastLink = try model("ascend-910b", ["interconnect.link.bandwidth": "56e9"])
        let slow = try base.allReduce(bytes: n, devices: 8, algorithm: .ring)
        let fast = try fastLink.allReduce(bytes: n, devices: 8, algorithm: .ring)
        #expect(close(fast.transfer, slow.transfer / 2))
        #expect(close(fast.latency, slow.latency))
        let noLaunch = try model("ascend-910b", ["compute.vector.launchOverhead": "0"])
        let tiny = KernelCostQuery(unit: .vector, dtype: .f16, flops: 0, bytes: 64)
        #expect(try base.kernelTime(tiny).bound == .launch)
        #expect(try noLaunch.kernelTime(tiny).launch == 0)
    }

    // MARK: Errors and edge cases

    @Test("bad queries and unsupported dtypes are typed errors")
    func kernelErrors() throws {
        let m = try model("ascend-910b")
        #expect(throws: TimeModelError.invalidQuery(kernel: "k", field: "flops", value: "nan", expected: "a finite number ≥ 0")) {
            try m.kernelTime(KernelCostQuery(name: "k", unit: .matrix, dtype: .f16, flops: .nan, bytes: 0))
        }
        #expect(throws: TimeModelError.invalidQuery(kernel: "k", field: "bytes", value: "-1.0", expected: "a finite number ≥ 0")) {
            try m.kernelTime(KernelCostQuery(name: "k", unit: .matrix, dtype: .f16, flops: 1, bytes: -1))
        }
        #expect(throws: TimeModelError.invalidQuery(kernel: "matmul", field: "shape.m", value: "-3", expected: "a dimension ≥ 0")) {
            try m.kernelTime(.gemm(m: -3, n: 4, k: 4, dtype: .f16, bytes: 0))
        }
        do {
            _ = try m.kernelTime(.gemm(m: 16, n: 16, k: 16, dtype: .fp8))
            Issue.record("fp8 must be unsupported on 910B")
        } catch {
            guard case .unsupportedDtype(let device, .matrix, .fp8, _) = error else {
                Issue.record("wrong error \(error)")
                return
            }
            #expect(device == "ascend-910b")
        }
        // A memory-only kernel needs no rate.
        let copy = try m.kernelTime(KernelCostQuery(unit: .vector, dtype: .fp8, flops: 0, bytes: 1e9))
        #expect(copy.compute == 0)
        #expect(copy.bound == .memory)
    }

    @Test("collective argument and algorithm errors")
    func collectiveErrors() throws {
        let m = try model("ascend-910b")
        #expect(collectiveError { () throws(CollectiveError) in try m.allReduce(bytes: MiB, devices: 8, algorithm: .tree) }
                == .algorithmUnavailable(algorithm: .tree, device: "ascend-910b", available: [.ring, .halvingDoubling, .direct, .hierarchical]))
        #expect(collectiveError { () throws(CollectiveError) in try m.allReduce(bytes: -1, devices: 8) }
                == .invalidArgument(name: "bytes", value: "-1.0", expected: "a finite byte count ≥ 0"))
        #expect(collectiveError { () throws(CollectiveError) in try m.allReduce(bytes: 1, devices: 0) }
                == .invalidArgument(name: "devices", value: "0", expected: "1…4096"))
        #expect(collectiveError { () throws(CollectiveError) in try m.collective(.allReduce, bytes: 1, group: [0, 1, 1]) }
                == .invalidArgument(name: "group", value: "1 twice", expected: "distinct devices"))
        let opencl = try model("h100-opencl")
        guard case .invalidArgument(name: "group", _, _)? = collectiveError({ () throws(CollectiveError) in
            try opencl.allReduce(bytes: 1, devices: 9)
        }) else {
            Issue.record("a single-level topology bounds the group by devicesPerNode")
            return
        }
        guard case .algorithmNotApplicable(.halvingDoubling, .reduceScatter, _)? = collectiveError({ () throws(CollectiveError) in
            try m.reduceScatter(bytes: MiB, devices: 6, algorithm: .halvingDoubling)
        }) else {
            Issue.record("recursive halving needs a power of two")
            return
        }
        let mtt = try model("mtt-s4000")
        guard case .algorithmNotApplicable(.tree, .allGather, _)? = collectiveError({ () throws(CollectiveError) in
            try mtt.allGather(bytes: MiB, devices: 8, algorithm: .tree)
        }) else {
            Issue.record("tree is all-reduce only")
            return
        }
        #expect(collectiveError { () throws(CollectiveError) in try m.allToAll(bytes: [[0, 1], [1]]) } != nil)
        // Halving-doubling all-reduce folds non-power-of-two groups: 1 + 2 + 2 + 1 phases for 6 devices.
        let hd = try m.allReduce(bytes: MiB, devices: 6, algorithm: .halvingDoubling)
        #expect(hd.phases == 6)
        // One device: nothing to do.
        let one = try m.allReduce(bytes: MiB, devices: 1)
        #expect(one.total == 0 && one.perDevice == [0])
    }

    @Test("halving-doubling all-reduce on a power-of-two group matches Rabenseifner's closed form")
    func halvingDoubling() throws {
        let n = 64 * MiB
        let c = try model("ascend-910b").allReduce(bytes: n, devices: 8, algorithm: .halvingDoubling)
        // Full mesh, one link per pair: 2·log2(8) steps, moving n/2, n/4, n/8 twice.
        let bw = 28e9 * 0.7
        let expected = 10e-6 + 6 * 0.5e-6 + 2 * (n / 2 + n / 4 + n / 8) / bw
        #expect(close(c.total, expected))
    }

    @Test("reduce-scatter and all-gather ring costs")
    func reduceScatterAllGather() throws {
        let n = 64 * MiB
        let m = try model("mtt-s4000")
        let rs = try m.reduceScatter(bytes: n, devices: 8, algorithm: .ring)
        let ag = try m.allGather(bytes: n, devices: 8, algorithm: .ring)
        let expected = 10e-6 + 7 * (1e-6 + (n / 8) / (120e9 * 0.7))
        #expect(close(rs.total, expected))
        #expect(close(ag.total, expected))
    }

    @Test("the model is deterministic and safe to share across tasks")
    func deterministic() async throws {
        let m = try model("ascend-910c")
        let q = KernelCostQuery.gemm(m: 333, n: 7168, k: 2048, dtype: .bf16)
        let first = try m.kernelTime(q)
        let results = await withTaskGroup(of: Double.self) { group in
            for _ in 0..<16 { group.addTask { (try? m.kernelTime(q).total) ?? -1 } }
            var out: [Double] = []
            for await r in group { out.append(r) }
            return out
        }
        #expect(results.allSatisfy { $0 == first.total })
        let a = try m.allToAll(bytesPerPair: 3 * MiB, devices: 16)
        let b = try m.allToAll(bytesPerPair: 3 * MiB, devices: 16)
        #expect(a == b)
    }

    @Test("every bundled profile models the headline kernels and collectives", arguments: [
        "ascend-910b", "ascend-910c", "enflame-t20", "h100-opencl", "h100-sxm", "hygon-bw200", "iluvatar-bi150", "kunlun-r300",
        "mlu370-x8", "mlu590", "mtt-s4000",
    ])
    func everyProfileModels(name: String) throws {
        let m = try model(name)
        for dtype in [ProfileDType.f32, .f16, .bf16, .int8, .int4] {
            let t = try m.kernelTime(.gemm(m: 128, n: 4096, k: 4096, dtype: dtype))
            #expect(t.total > 0 && t.total.isFinite)
        }
        let sm = try m.kernelTime(KernelCostQuery(unit: .vector, dtype: .f32, flops: 5e6, bytes: 8e6, shape: .rows(count: 1000, length: 1000)))
        #expect(sm.total > 0)
        for op in [CollectiveOperation.allReduce, .allGather, .reduceScatter] {
            let c = try m.collective(op, bytes: 16 * MiB, group: Array(0..<8))
            #expect(c.total > 0 && c.total.isFinite)
        }
        let a2a = try m.allToAll(bytesPerPair: MiB, devices: 8)
        #expect(a2a.total > 0)
    }
}
