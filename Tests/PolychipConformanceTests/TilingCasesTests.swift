import Testing
import Polychip
import PolychipReference
import PolychipCPU
@testable import PolychipConformance

/// A device with a planted tiling bug: the matmul skips the K remainder block past a block
/// of `block` (a K of 2·block + r computes only 2·block). Its tiling report says so, the way
/// a real backend reports its blocks; the quick cases never reach the block.
final class RemainderBugDevice: Device, @unchecked Sendable {
    let block: Int
    let base = ReferenceDevice()
    let id = "remainder-bug:0"
    var info: DeviceInfo { base.info }
    init(block: Int) { self.block = block }
    var tiling: DeviceTiling { DeviceTiling(kernels: [KernelTiling(.matmul, [TileBoundary("K", block, name: "planted.kc")])]) }
    func supports(_ kernel: OpKind, dtype: DType) -> Support { .native }
    func allocateBuffer(byteCount: Int) throws -> any DeviceBuffer { HostBuffer(byteCount: byteCount, deviceID: id) }
    func write(_ source: UnsafeRawBufferPointer, to buffer: any DeviceBuffer, at offset: Int) throws {
        try HostMemory.write(source, to: buffer, at: offset, device: id)
    }
    func read(from buffer: any DeviceBuffer, at offset: Int, into destination: UnsafeMutableRawBufferPointer) throws {
        try HostMemory.read(from: buffer, at: offset, into: destination, device: id)
    }
    func execute(_ call: ValidatedCall, inputs: [Tensor], outputs: [Tensor]) throws -> KernelTiming {
        let op = call.op
        var ins = try inputs.map { try $0.hostValue(on: self) }
        if case .matmul(let tb) = op, ins[0].desc.shape[1] > block {
            // The bug: depths of B past the last whole block are treated as zero.
            let k = ins[0].desc.shape[1], n = ins[1].desc.elementCount / k
            var b = ins[1].floats
            for d in (k / block * block)..<k {
                for j in 0..<n { b[tb ? j * k + d : d * n + j] = 0 }
            }
            ins[1] = try HostTensor(ins[1].desc.shape, ins[1].desc.dtype, floats: b)
        }
        for (o, r) in zip(outputs, try Reference.evaluate(op, ins)) { try o.storeHostValue(r, on: self) }
        return .measured(seconds: 0)
    }
}

@Suite struct TilingCasesTests {
    @Test func boundaryValuesFollowTheLevel() {
        let block = TileBoundary("K", 64, name: "kc")
        #expect(BoundaryCases.values(block, .standard).map(\.0) == [63, 65, 149])
        #expect(BoundaryCases.values(block, .thorough).map(\.0) == [1, 63, 64, 65, 128, 213])
        let threshold = TileBoundary("M", 9, .threshold, name: "gemv")
        #expect(BoundaryCases.values(threshold, .standard).map(\.0) == [8, 9])
        #expect(BoundaryCases.values(TileBoundary("N", 1, name: "one"), .standard).map(\.0) == [2, 3])
    }

    @Test func boundarySpecsTakeTheContext() {
        let tiling = DeviceTiling(kernels: [KernelTiling(.matmul, [TileBoundary("K", 128, name: "kc", context: ["M": 300, "N": 40])])])
        let specs = BoundaryCases.specs(.matmul, tiling: tiling, level: .standard)
        #expect(specs.map { $0.dims["K"] } == [127, 129, 299])
        #expect(specs.allSatisfy { $0.dims["M"] == 300 && $0.dims["N"] == 40 && ($0.note ?? "").hasPrefix("kc") })
        // No tiling: generic blocks of 16 and 64 on the main dimensions.
        #expect(!BoundaryCases.specs(.matmul, tiling: .none, level: .standard).isEmpty)
        #expect(BoundaryCases.specs(.matmul, tiling: tiling, level: .quick).isEmpty)
    }

    @Test func standardCatchesWhatQuickMisses() {
        let device = RemainderBugDevice(block: 512)
        let quick = ConformanceRunner.run(on: device, options: ConformanceOptions(kernels: [.matmul], dtypes: [.f32], level: .quick))
        #expect(quick.allSatisfy { $0.status == .pass }, "the quick shapes stay below the block")
        let standard = ConformanceRunner.run(on: device, options: ConformanceOptions(kernels: [.matmul], dtypes: [.f32], level: .standard))
        let caught = standard.filter { $0.status == .fail }
        #expect(!caught.isEmpty)
        #expect(caught.allSatisfy { $0.shape.contains("planted.kc") })
    }

    @Test func derivedCasesAreSeededAndWithinBudget() throws {
        let cpu = try CPUBackend().device(profile: nil, index: nil)
        for kind in [OpKind.matmul, .attention, .int4Matmul, .topK, .moeRouter] {
            var skippedA = 0, skippedB = 0
            let a = try CaseGenerator.cases(kind, dtype: .f32, seed: 3, level: .standard, tiling: cpu.tiling, skipped: &skippedA)
            let b = try CaseGenerator.cases(kind, dtype: .f32, seed: 3, level: .standard, tiling: cpu.tiling, skipped: &skippedB)
            #expect(a.map(\.inputs) == b.map(\.inputs) && skippedA == skippedB, "\(kind)")
            #expect(Set(a.map(\.label)).count == a.count, "\(kind): duplicate labels")
            #expect(a.count > CaseGenerator.quickSpecs(kind).count, "\(kind): standard adds cases")
        }
    }

    @Test func adversarialCasesCoverTheIssueList() {
        let att = AdversarialCases.specs(.attention, tiling: .none, level: .standard, dtype: .f32)
        #expect(att.contains { $0.dims["D"] == 576 && $0.dims["Dv"] == 512 && $0.dims["Hkv"] == 1 })
        #expect(Set(att.compactMap { s in s.dims["Hq"].flatMap { q in s.dims["Hkv"].map { q / $0 } } }).isSuperset(of: [1, 3, 4, 8, 16]))
        #expect(att.contains { $0.pattern == .risingLogits })
        #expect(att.contains { $0.offsetViews })
        let int4 = AdversarialCases.specs(.int4Matmul, tiling: .none, level: .standard, dtype: .f32)
        #expect(Set(int4.compactMap { $0.dims["M"] }).isSuperset(of: Set(1...9)))
        #expect(int4.contains { ($0.dims["K"] ?? 0) % 64 == 32 })
        #expect(AdversarialCases.specs(.moeRouter, tiling: .none, level: .standard, dtype: .f32).contains { $0.pattern == .ties })
    }

    /// A conversion that rounds ties down (or truncates) is off by one ulp on a fraction of
    /// the elements: far under bf16's NMSE threshold, so only the bit-for-bit tie case sees it.
    @Test func roundingTieCasesAreComparedBitForBit() throws {
        for kind in [OpKind.add, .scale] {
            let specs = AdversarialCases.specs(kind, tiling: .none, level: .standard, dtype: .bf16).filter { $0.pattern == .roundingTies }
            #expect(!specs.isEmpty)
            for spec in specs {
                let c = try CaseBuilder.make(spec, dtype: .bf16, seed: 7)
                #expect(c.exact)
                let expected = try Reference.evaluate(c.op, c.inputs)
                #expect(Comparison.compare(c, expected: expected, got: expected).failure == nil)
                // Nudge one element by one bf16 ulp, as a ties-down conversion would.
                var bytes = expected[0].bytes
                bytes[2] ^= 1
                let off = try HostTensor(expected[0].desc, bytes: bytes)
                let outcome = Comparison.compare(c, expected: expected, got: [off])
                #expect(outcome.failure?.contains("bit for bit") == true, "\(spec.note ?? "")")
                var loose = c
                loose.exact = false
                #expect(Comparison.compare(loose, expected: expected, got: [off]).failure == nil, "one ulp passes the NMSE alone")
            }
        }
        let groups = AdversarialCases.specs(.quantizeInt4, tiling: .none, level: .standard, dtype: .f32)
        #expect(groups.contains { s in if case .quantizeInt4(let f) = s.op { return f.groupSize % 8 != 0 } else { return false } })
    }

    @Test func cpuReportsItsBlocksAndPaths() throws {
        let cpu = try #require(try CPUBackend().device(profile: nil, index: nil) as? CPUDevice)
        let kc = cpu.blocking.kc
        #expect(cpu.tiling.boundaries(.matmul).contains { $0.dim == "K" && $0.size == kc })
        let one = cpu.path(of: .matmul(transposeB: false), inputs: [TensorDesc([4, kc], .f32), TensorDesc([kc, 4], .f32)]) ?? ""
        let two = cpu.path(of: .matmul(transposeB: false), inputs: [TensorDesc([4, kc + 1], .f32), TensorDesc([kc + 1, 4], .f32)]) ?? ""
        #expect(one.contains("1 K block") && two.contains("2 K block"))
        let small = try CPUDevice(options: CPUDeviceOptions(tiling: "small"))
        #expect(small.blocking.kc == 16 && small.blocking.mc == small.blocking.mr && small.blocking.attention.bc == small.blocking.nr)
        #expect(throws: PolychipError.self) { try CPUDevice(options: CPUDeviceOptions(tiling: "gemm.kc=0")) }
        #expect(throws: PolychipError.self) { try CPUDevice(options: CPUDeviceOptions(tiling: "gemm.nothing=4")) }
        #expect(throws: PolychipError.self) { try CPUBackend().device(profile: "tiles=huge", index: nil) }
    }
}
