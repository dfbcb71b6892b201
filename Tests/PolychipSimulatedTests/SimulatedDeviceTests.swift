// SimulatedDeviceTests.swift — simulated devices: memory capacity, dry runs, faults,
// meshes, queue overlap, the CPU engine's arithmetic and the embedded profiles.
//
// Tests that change a device's state (faults, allocations) build their own `SimulatedDevice`
// (or use backend settings no other test uses) so the shared device cache is never disturbed.

import Foundation
import Testing
import PolychipCore
import PolychipCPU
@testable import PolychipSimulated

/// backends/profiles in the source tree.
private let profilesDirectory = SimulatedBackend.sourceProfileDirectory

/// A fresh device of a bundled profile (not cached), with optional `--set` settings.
private func freshDevice(_ name: String, _ settings: [String] = [], index: Int = 0) throws -> SimulatedDevice {
    let p = try DeviceProfile.load(path: profilesDirectory + "/" + name + ".json").applying(settings: settings)
    return try SimulatedDevice(profile: p, index: index)
}

/// A deterministic float tensor.
private func values(_ shape: [Int], _ dtype: DType = .f32, seed: Double = 1) throws -> HostTensor {
    let n = shape.reduce(1, *)
    return try HostTensor(shape, dtype, floats: (0..<n).map { Float(sin(Double($0) * 0.37 + seed)) * 0.5 + 0.1 })
}

/// The `PolychipError.deviceFault` a call throws (nil when it throws nothing or something else).
private func deviceFault(_ body: () throws -> Void) -> (device: String, kernel: String, kind: String, detail: String)? {
    do {
        try body()
        return nil
    } catch PolychipError.deviceFault(let device, let kernel, let kind, let detail) {
        return (device, kernel, kind, detail)
    } catch {
        Issue.record("expected a device fault, got \(error)")
        return nil
    }
}

/// Fills a tensor with a recognisable sentinel (so an untouched output can be checked).
private func sentinel(_ desc: TensorDesc) throws -> HostTensor {
    try HostTensor(desc, bytes: [UInt8](repeating: 0xA5, count: try desc.checkedByteCount()))
}

@Suite("Simulated devices")
struct SimulatedDeviceTests {
    // MARK: Memory

    @Test("allocation past the capacity throws out-of-memory with requested/available; nothing is half-allocated")
    func outOfMemory() throws {
        let d = try freshDevice("ascend-910b", ["memory.capacity=1048576"])
        #expect(d.info.memoryBytes == 1 << 20)
        let a = try d.allocate(TensorDesc([600 * 256], .f32))  // 614400 bytes
        #expect(d.allocatedBytes == 614_400)
        #expect(throws: PolychipError.outOfMemory(device: d.id, requested: 614_400, available: 1_048_576 - 614_400)) {
            _ = try d.allocate(TensorDesc([600 * 256], .f32))
        }
        #expect(d.allocatedBytes == 614_400)
        // A tensor upload that cannot fit leaves nothing behind either.
        #expect(throws: PolychipError.self) { _ = try d.tensor(try values([512, 512])) }
        #expect(d.allocatedBytes == 614_400)
        // Exactly the rest fits; freeing returns the bytes.
        var b: Tensor? = try d.allocate(TensorDesc([1_048_576 - 614_400], .i8))
        #expect(d.allocatedBytes == 1 << 20)
        #expect(b != nil)
        b = nil
        _ = a
        #expect(d.allocatedBytes == 614_400)
        #expect(throws: PolychipError.self) { _ = try d.allocate(TensorDesc([Int.max / 2, 4], .f32)) }
        #expect(d.allocatedBytes == 614_400)
    }

    @Test("dry-running GLM-5-sized tensors with meta tensors allocates nothing")
    func glm5DryRun() throws {
        let d = try freshDevice("ascend-910c")
        let q = Queue(device: d)
        let t = 4096, hidden = 6144, experts = 256, inter = 2048, ctx = 202_752
        func meta(_ s: [Int], _ dt: DType) -> Tensor { .meta(TensorDesc(s, dt)) }
        func run(_ op: Op, _ ins: [Tensor]) throws -> KernelRecord {
            let outs = try op.validate(ins.map(\.desc)).map { Tensor.meta($0) }
            return try q.enqueue(op, inputs: ins, outputs: outs)
        }
        let f = Int4Format(groupSize: 32, symmetric: true)
        var records: [KernelRecord] = []
        // Routed experts' gate projection: 256 × [2048, 6144] INT4 (1.6 GB of weights).
        records.append(try run(.int4GroupedMatmul(f), [meta([t, hidden], .bf16), meta([experts, inter, hidden], .int4),
                                                     meta([experts, inter, hidden / 32], .f32), meta([experts + 1], .i32)]))
        // Router over 256 experts, sigmoid, top-8.
        records.append(try run(.moeRouter(RouterParams(scoring: .sigmoid, topK: 8, routedScale: 2.5, hasBias: true)),
                               [meta([t, experts], .f32), meta([experts], .f32)]))
        // Decode attention against the full 202752-token context: 64 heads, 256-dim (13 GB of K/V).
        records.append(try run(.attention(AttentionParams(causal: true)),
                               [meta([1, 64, 1, 256], .bf16), meta([1, 64, ctx, 256], .bf16), meta([1, 64, ctx, 256], .bf16)]))
        // DSA indexer over the full context: 32 heads × 128 dims, 16 query tokens.
        records.append(try run(.lightningIndexer, [meta([16, 32, 128], .bf16), meta([ctx, 128], .bf16), meta([16, 32], .bf16)]))
        // The vocabulary projection: [4096, 6144] · [154880, 6144]ᵀ.
        records.append(try run(.matmul(transposeB: true), [meta([t, hidden], .bf16), meta([154_880, hidden], .bf16)]))
        #expect(d.allocatedBytes == 0)
        for r in records {
            #expect(r.source == .modeled)
            #expect((r.breakdown?.total ?? 0) > 0, "\(r.kernel) has no modeled time")
        }
        #expect(q.virtualTime == records.map(\.seconds).reduce(0, +))
        // The same tensors with storage would not fit in 128 GiB.
        #expect(throws: PolychipError.self) { _ = try d.allocate(TensorDesc([experts, 4 * inter, 4 * hidden], .bf16)) }
        #expect(d.allocatedBytes == 0)
    }

    // MARK: Faults

    @Test("kernel launch failure: a typed error naming device and kernel; inputs and output untouched")
    func kernelLaunchFailure() throws {
        // From settings (`--set faults.kernelLaunchFailure.atEvent=2`): the second launch fails.
        let d = try freshDevice("ascend-910b", ["faults.kernelLaunchFailure.atEvent=2"], index: 3)
        let a = try values([8, 16]), b = try values([16, 4], seed: 2)
        let ta = try d.tensor(a), tb = try d.tensor(b)
        let c1 = try d.allocate(TensorDesc([8, 4], .f32)), c2 = try d.tensor(try sentinel(TensorDesc([8, 4], .f32)))
        let q = Queue(device: d)
        try q.enqueue(.matmul(transposeB: false), inputs: [ta, tb], outputs: [c1])
        let f = deviceFault { try q.enqueue(.matmul(transposeB: false), inputs: [ta, tb], outputs: [c2]) }
        #expect(f?.device == "sim:ascend-910b:3")
        #expect(f?.kernel == "matmul")
        #expect(f?.kind == "kernelLaunchFailure")
        #expect(f?.detail.contains("atEvent = 2") == true)
        #expect(try d.download(ta) == a)
        #expect(try d.download(tb) == b)
        #expect(try d.download(c2) == (try sentinel(c2.desc)))
        #expect(q.records.count == 1)
        // Not sticky: the third launch runs and matches the first.
        try q.enqueue(.matmul(transposeB: false), inputs: [ta, tb], outputs: [c2])
        #expect(try d.download(c2) == (try d.download(c1)))
        #expect(d.firedFaults.map(\.kind) == [.kernelLaunchFailure])
    }

    @Test("seeded probabilistic faults fail at the same launches every run")
    func seededFaultsAreDeterministic() throws {
        let settings = ["faults.seed=7", "faults.kernelLaunchFailure.probability=0.3"]
        func failures() throws -> [Int] {
            let d = try freshDevice("mtt-s4000", settings)
            let x = try d.tensor(try values([4, 32]))
            let y = try d.allocate(x.desc)
            let q = Queue(device: d)
            return (1...40).filter { _ in (try? q.enqueue(.softmax, inputs: [x], outputs: [y])) == nil }
        }
        let first = try failures()
        #expect(!first.isEmpty && first.count < 40)
        #expect(try failures() == first)
    }

    @Test("memory error on allocation, transfer and kernel: nothing allocated, written or stored")
    func memoryError() throws {
        let d = try freshDevice("mlu590")
        // Allocation.
        d.injectFault(.memoryError, kernel: "allocate")
        let fa = deviceFault { _ = try d.allocate(TensorDesc([1024], .f32)) }
        #expect(fa?.kind == "memoryError" && fa?.kernel == "allocate" && fa?.device == d.id)
        #expect(d.allocatedBytes == 0)
        // Transfer into a buffer: the buffer keeps its bytes.
        let x = try values([4, 64])
        let tx = try d.tensor(x)
        d.injectFault(.memoryError, kernel: "write")
        let fw = deviceFault { try d.upload(try values([4, 64], seed: 9), to: tx) }
        #expect(fw?.kind == "memoryError" && fw?.kernel == "write")
        #expect(try d.download(tx) == x)
        // Transfer out: reported, and the next read works.
        d.injectFault(.memoryError, kernel: "read")
        #expect(deviceFault { _ = try d.download(tx) }?.kernel == "read")
        #expect(try d.download(tx) == x)
        // During a kernel: computed into temporaries, nothing stored.
        let ty = try d.tensor(try sentinel(TensorDesc([4, 64], .f32)))
        d.injectFault(.memoryError, kernel: "softmax")
        let fk = deviceFault { try Queue(device: d).enqueue(.softmax, inputs: [tx], outputs: [ty]) }
        #expect(fk?.kind == "memoryError" && fk?.kernel == "softmax")
        #expect(try d.download(tx) == x)
        #expect(try d.download(ty) == (try sentinel(ty.desc)))
        #expect(d.firedFaults.map(\.operation) == ["allocate", "write", "read", "softmax"])
    }

    @Test("device lost: every later call fails; the buffers are intact")
    func deviceLost() throws {
        // From settings: the 7th operation (3 allocations and 3 writes, then the kernel) loses the device.
        let d = try freshDevice("h100-sxm", ["faults.deviceLost.atEvent=7"])
        let a = try values([16, 32]), b = try values([32, 8], seed: 3)
        let ta = try d.tensor(a), tb = try d.tensor(b)
        let tc = try d.tensor(try sentinel(TensorDesc([16, 8], .f32)))
        let q = Queue(device: d)
        let f = deviceFault { try q.enqueue(.matmul(transposeB: false), inputs: [ta, tb], outputs: [tc]) }
        #expect(f?.kind == "deviceLost" && f?.kernel == "matmul" && f?.device == "sim:h100-sxm:0")
        #expect(d.isLost)
        // Every later call fails, naming the call and where the device was lost.
        let later: [(String, () throws -> Void)] = [
            ("allocate", { _ = try d.allocate(TensorDesc([4], .f32)) }),
            ("write", { try d.upload(a, to: ta) }),
            ("read", { _ = try d.download(ta) }),
            ("softmax", { try q.enqueue(.softmax, inputs: [ta], outputs: [try d.allocate(ta.desc)]) }),
            ("softmax", { _ = try q.enqueue(.softmax, inputs: [.meta(ta.desc)], outputs: [.meta(ta.desc)]) }),
        ]
        for (op, call) in later {
            let e = deviceFault(call)
            #expect(e?.kind == "deviceLost", "\(op) did not fail")
            #expect(e?.detail.contains("lost during matmul") == true)
        }
        // The memory itself is intact.
        #expect(try d.hostValue(ta) == a)
        #expect(try d.hostValue(tb) == b)
        #expect(try d.hostValue(tc) == (try sentinel(tc.desc)))
        d.restore()
        #expect(try d.download(ta) == a)
    }

    @Test("a downed full-mesh link is rerouted, and the record says which way")
    func linkDownReroutes() throws {
        let backend = SimulatedBackend(settings: ["faults.linkDown.link=[0,1]"])
        let mesh = try backend.mesh(profile: "ascend-910b", count: 4)
        #expect(mesh.simulated?.downedLinks == [.link(0, 1)])
        let inputs = try (0..<4).map { try values([64, 8], seed: Double($0)) }
        let got = try mesh.run(.allReduce, inputs)
        #expect(got == (try Collective.allReduce.evaluate(inputs)))
        let cost = try #require(mesh.simulated?.history.last)
        #expect(!cost.reroutes.isEmpty)
        #expect(cost.reroutes.allSatisfy { $0.fault == .link(0, 1) && $0.path.count == 3 })
        let rec = try #require(mesh.commQueues[0].records.last)
        #expect(rec.breakdown?.detail?.contains("rerouted") == true)
        #expect(rec.breakdown?.detail?.contains("link 0↔1") == true)
        // The healthy fabric is faster.
        let healthy = try TimeModel(profile: try DeviceProfile.load(path: profilesDirectory + "/ascend-910b.json"))
            .allReduce(bytes: Double(inputs[0].desc.byteCount), devices: 4, algorithm: cost.algorithm)
        #expect(cost.total > healthy.total)
    }

    @Test("a link that goes down at a collective stays down; a ring cut twice cannot reroute")
    func linkDownAtEventAndUnreachable() throws {
        let mesh = try SimulatedBackend(settings: ["faults.linkDown.atEvent=2", "faults.linkDown.link=[2,3]"])
            .mesh(profile: "mtt-s4000", count: 4)
        let inputs = try (0..<4).map { try values([8, 4], seed: Double($0)) }
        _ = try mesh.run(.allGather, inputs)
        #expect(mesh.simulated?.history.last?.reroutes.isEmpty == true)
        _ = try mesh.run(.allGather, inputs)
        #expect(mesh.simulated?.downedLinks == [.link(2, 3)])
        #expect(mesh.simulated?.history.last?.reroutes.isEmpty == false)
        // A second cut splits the ring: a typed fault naming the pair; nothing stored.
        mesh.simulated?.takeDown(.link(0, 1))
        let ins = try zip(mesh.devices, inputs).map { try $0.tensor($1) }
        let outs = try mesh.devices.map { try $0.tensor(try sentinel(TensorDesc([8, 4], .f32))) }
        let f = deviceFault { try mesh.run(.allReduce, inputs: ins, outputs: outs) }
        #expect(f?.kind == "linkDown")
        #expect(f?.kernel == "all-reduce")
        #expect(f?.detail.contains("cannot reach") == true)
        for (i, d) in mesh.devices.enumerated() {
            #expect(try d.download(ins[i]) == inputs[i])
            #expect(try d.download(outs[i]) == (try sentinel(outs[i].desc)))
        }
        mesh.simulated?.restoreLinks()
        try mesh.run(.allReduce, inputs: ins, outputs: outs)
        #expect(try mesh.devices[2].download(outs[2]) == (try Collective.allReduce.evaluate(inputs))[2])
    }

    @Test("a dead switch port has no detour: the collective fails with a typed fault")
    func linkDownUnreachable() throws {
        // On NVSwitch, `linkDown.link=[0,1]` takes device 0's switch port down.
        let mesh = try SimulatedBackend(settings: ["faults.linkDown.link=[0,1]"]).mesh(profile: "h100-sxm", count: 2)
        #expect(mesh.simulated?.downedLinks == [.switchPort(device: 0)])
        let inputs = try (0..<2).map { try values([4, 4], seed: Double($0)) }
        let f = deviceFault { _ = try mesh.run(.allReduce, inputs) }
        #expect(f?.kind == "linkDown")
        #expect(f?.detail.contains("switch port of device 0") == true)
    }

    // MARK: Queues

    @Test("compute and communication queues keep separate clocks; a wait joins them")
    func computeCommunicationOverlap() throws {
        let mesh = try SimulatedBackend(settings: ["faults.seed=3"]).mesh(profile: "ascend-910b", count: 2)
        let a = try values([64, 64]), b = try values([64, 64], seed: 2)
        func matmul(_ r: Int) throws -> KernelRecord {
            let d = mesh.devices[r]
            return try mesh.queues[r].enqueue(.matmul(transposeB: false), inputs: [try d.tensor(a), try d.tensor(b)],
                                              outputs: [try d.allocate(TensorDesc([64, 64], .f32))])
        }
        let k1 = try matmul(0)
        #expect(k1.start == 0)
        // A 4 MiB all-reduce starts when rank 0's compute is done and runs on the comm queue.
        let big = try (0..<2).map { _ in try HostTensor(zeros: TensorDesc([1 << 20], .f32)) }
        _ = try mesh.run(.allReduce, big)
        let comm = try #require(mesh.commQueues[0].records.last)
        #expect(comm.start == k1.end)
        #expect(comm.end > comm.start)
        // Compute goes on meanwhile: the next kernel starts at the compute clock, not after the collective.
        let k2 = try matmul(0)
        #expect(k2.start == k1.end)
        #expect(k2.end < comm.end)
        #expect(mesh.queues[0].virtualTime == k2.end)
        #expect(mesh.commQueues[0].virtualTime == comm.end)
        // Waiting on the collective joins the clocks; the next kernel starts after it.
        mesh.queues[0].wait(until: mesh.commQueues[0].virtualTime)
        let k3 = try matmul(0)
        #expect(k3.start == comm.end)
        #expect(k3.breakdown?.total == k1.breakdown?.total)
    }

    // MARK: Arithmetic

    @Test("arithmetic runs on the CPU engine: results equal cpu:0's bit for bit")
    func cpuEngineArithmetic() throws {
        let sim = try freshDevice("h100-sxm")
        let cpu = try CPUBackend.engine()
        let a = try values([33, 70], .bf16), b = try values([70, 19], .bf16, seed: 4)
        for op in [Op.matmul(transposeB: false)] {
            #expect(try sim.run(op, [a, b]) == (try cpu.run(op, [a, b])))
        }
        let x = try values([5, 100], .f16)
        #expect(try sim.run(.softmax, [x]) == (try cpu.run(.softmax, [x])))
        #expect(sim.profile.arithmeticPath(for: .matmul) == .cpuEngine)
    }

    @Test("a bf16 matmul accumulator rounds after every tile-depth chunk of K")
    func lowPrecisionAccumulator() throws {
        let d = try freshDevice("ascend-910b", ["numerics.accumulator.matmul=bf16"])
        #expect(d.profile.arithmeticPath(for: .matmul) == .lowPrecision(.bf16))
        #expect(d.profile.arithmeticPath(for: .moeRouter) == .cpuEngine)
        let kc = d.profile.compute.matrix.tile.k  // 16
        let k = 4 * kc
        // One row of ones against a column whose chunk sums are not bf16-representable.
        let a = try HostTensor([1, k], .f32, floats: [Float](repeating: 1, count: k))
        let col: [Float] = (0..<k).map { 1 + Float($0 % 7) / 128 }
        let b = try HostTensor([k, 1], .f32, floats: col)
        let got = try d.run(.matmul(transposeB: false), [a, b])[0].floats[0]
        var acc: Float = 0
        for c in 0..<(k / kc) {
            let chunk = col[(c * kc)..<((c + 1) * kc)].reduce(0, +)
            acc = FloatBits.round(acc + chunk, to: .bf16)
        }
        #expect(got == acc)
        #expect(got != col.reduce(0, +))
        // The vector accumulator stays f32 unless set; the router's 16-bit accumulator is
        // modeled, an unmodeled one (the composite moe-layer's) is reported, not hidden.
        let v = try freshDevice("ascend-910b", ["numerics.accumulator.vector=f16"])
        #expect(v.profile.arithmeticPath(for: .moeRouter) == .lowPrecision(.f16))
        #expect(v.supports(.moeRouter, dtype: .f32) == .native)
        let m = try freshDevice("ascend-910b", ["numerics.accumulator.matmul=f16"])
        guard case .emulated(let why) = m.supports(.moeLayer, dtype: .f32) else {
            Issue.record("moe-layer with an f16 matmul accumulator should be reported as emulated")
            return
        }
        #expect(why.contains("f16 accumulator is not modeled"))
        let x = try values([3, 40])
        let sm = try v.run(.softmax, [x])[0].floats
        #expect(abs(sm[0..<40].reduce(0, +) - 1) < 1e-2)
    }

    @Test("tf32/hf32 matrix modes round the GEMM's inputs: TF32 10 bits ties away, HF32 11 bits ties to even")
    func matrixModesRoundInputs() throws {
        let one = try HostTensor([1, 1], .f32, floats: [1])
        // 1 + 2⁻¹¹ is a TF32 tie (→ 1 + 2⁻¹⁰, away from zero) and exact in HF32; 1 + 3·2⁻¹² is
        // an HF32 tie between an odd and an even mantissa (→ 1 + 2⁻¹⁰, to even).
        let x = [1 + 0x1p-11, 1 + 3 * 0x1p-12] as [Float]
        let want: [String: [Float]] = ["tf32": [1 + 0x1p-10, 1 + 0x1p-10], "hf32": [1 + 0x1p-11, 1 + 0x1p-10]]
        for (mode, expected) in want {
            let d = try freshDevice("ascend-910b", ["numerics.accumulator.matmul=\(mode)"])
            #expect(d.profile.arithmeticPath(for: .matmul) == .roundedInputs(mode == "tf32" ? .tf32 : .hf32))
            #expect(d.profile.arithmeticPath(for: .softmax) == .cpuEngine)
            for (xi, e) in zip(x, expected) {
                let got = try d.run(.matmul(transposeB: false), [try HostTensor([1, 1], .f32, floats: [xi]), one])[0].floats[0]
                #expect(got == e, "\(mode): \(xi) → \(got), expected \(e)")
            }
        }
    }

    @Test("a kernel's output dtype and a planted output perturbation apply to that kernel only")
    func kernelOutputNumerics() throws {
        let x = try values([4, 64])
        let plain = try freshDevice("ascend-910b").run(.softmax, [x])[0].floats
        let f16 = try freshDevice("ascend-910b", ["numerics.kernels.softmax.output=f16"])
        #expect(try f16.run(.softmax, [x])[0].floats == plain.map { FloatBits.round($0, to: .f16) })
        let p = try freshDevice("ascend-910b", [#"faults.outputPerturbation={"kernel":"softmax","relativeError":0.01,"seed":3}"#])
        let a = try p.run(.softmax, [x])[0].floats, b = try p.run(.softmax, [x])[0].floats
        #expect(a == b, "the same call is corrupted the same way")
        #expect(zip(a, plain).allSatisfy { abs(abs($0 / $1 - 1) - 0.01) < 1e-5 })
        #expect(try p.run(.silu, [x])[0].floats == (try freshDevice("ascend-910b").run(.silu, [x])[0].floats))
    }

    // MARK: Profiles in the binary

    @Test("the embedded profiles are exactly the files in backends/profiles")
    func embeddedProfilesMatchDisk() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: profilesDirectory).filter { $0.hasSuffix(".json") }.sorted()
        #expect(SimulatedBackend.embeddedProfiles.keys.sorted() == files)
        for f in files {
            let disk = try String(contentsOfFile: profilesDirectory + "/" + f, encoding: .utf8)
            #expect(SimulatedBackend.embeddedProfiles[f] == disk, "\(f) differs from its embedded copy")
        }
        if ProcessInfo.processInfo.environment["POLYCHIP_PROFILE_DIR"] == nil {
            let p = try SimulatedBackend.loadProfile("mlu370-x8")
            #expect(p.origin == "embedded:backends/profiles/mlu370-x8.json")
            #expect(p == (try DeviceProfile.load(path: profilesDirectory + "/mlu370-x8.json")).withOrigin(p.origin))
        }
    }

    @Test("backend settings apply to every device it opens; other settings give other devices")
    func backendSettings() throws {
        let plain = try SimulatedBackend().device(profile: "ascend-910b", index: 5)
        let fast = try SimulatedBackend(settings: ["memory.bandwidth=3.2e12"]).device(profile: "ascend-910b", index: 5)
        #expect(plain.id == fast.id)
        #expect(plain !== fast)
        #expect(fast.info.memoryBandwidth == 3.2e12)
        #expect(plain === (try SimulatedBackend().device(profile: "ascend-910b", index: 5)))
        #expect(throws: PolychipError.self) { _ = try SimulatedBackend(settings: ["memory.bandwith=1"]).device(profile: "ascend-910b", index: 0) }
        #expect(throws: PolychipError.self) { _ = try SimulatedBackend().device(profile: "no-such-chip", index: 0) }
    }
}

extension DeviceProfile {
    /// A copy with another origin (origins are not part of a profile's content).
    func withOrigin(_ o: String) -> DeviceProfile {
        var p = self
        p.origin = o
        return p
    }
}
