import Foundation
import Testing
import PolychipCore
import PolychipReference
@testable import PolychipCPU
import CPolychipKernels

/// Seeded inputs for the backend tests (never zeros).
struct Inputs {
    var state: UInt64
    init(_ seed: UInt64) { state = seed | 1 }
    mutating func next() -> UInt64 {
        state ^= state >> 12; state ^= state << 25; state ^= state >> 27
        return state &* 2685821657736338717
    }
    mutating func floats(_ shape: [Int], _ dt: DType = .f32, _ lo: Float = -1, _ hi: Float = 1) throws -> HostTensor {
        let n = shape.reduce(1, *)
        return try HostTensor(shape, dt, floats: (0..<n).map { _ in lo + (hi - lo) * Float(next() >> 40) / Float(1 << 24) })
    }
    mutating func int4(_ lead: [Int], _ n: Int, _ k: Int, _ f: Int4Format) throws -> [HostTensor] {
        let count = lead.reduce(1, *) * n * k
        let nib = (0..<count).map { _ in UInt8(next() % 16) }
        let groups = lead.reduce(1, *) * n * (k / f.groupSize)
        var out = [try HostTensor(TensorDesc(lead + [n, k], .int4), bytes: Int4Packing.pack(nib)),
                   try floats(lead + [n, k / f.groupSize], .f32, 0.005, 0.05)]
        if !f.symmetric { out.append(try HostTensor(lead + [n, k / f.groupSize], int8s: (0..<groups).map { _ in Int8(next() % 16) })) }
        return out
    }
}

/// A handful of calls that exercise every threaded code path with sizes above the
/// single-task thresholds.
func determinismCases() throws -> [(Op, [HostTensor])] {
    var r = Inputs(7)
    let f32 = Int4Format(groupSize: 32, symmetric: true)
    let fa = Int4Format(groupSize: 64, symmetric: false)
    let moe = MoELayerParams(router: RouterParams(scoring: .sigmoid, topK: 2, nGroup: 2, topkGroup: 1, hasBias: true),
                             experts: .int4(f32), hasShared: true)
    var moeInputs = [try r.floats([40, 64]), try r.floats([8, 64]), try r.floats([8], .f32, 0.01, 0.1)]
    moeInputs += try r.int4([8], 32, 64, f32) + r.int4([8], 32, 64, f32) + r.int4([8], 64, 32, f32)
    moeInputs += [try r.floats([48, 64], .f32, -0.2, 0.2), try r.floats([48, 64], .f32, -0.2, 0.2), try r.floats([64, 48], .f32, -0.2, 0.2)]
    return [
        (.matmul(transposeB: false), [try r.floats([150, 300]), try r.floats([300, 170])]),
        (.matmul(transposeB: true), [try r.floats([97, 260], .bf16), try r.floats([130, 260], .bf16)]),
        (.int4Matmul(f32), [try r.floats([3, 512])] + (try r.int4([], 300, 512, f32))),
        (.int4Matmul(fa), [try r.floats([40, 256], .f16)] + (try r.int4([], 96, 256, fa))),
        (.attention(AttentionParams(causal: true, returnLSE: true)),
         [try r.floats([1, 8, 200, 64]), try r.floats([1, 2, 200, 64]), try r.floats([1, 2, 200, 64])]),
        (.attention(AttentionParams(causal: true, returnLSE: true)),  // decode: split-KV
         [try r.floats([1, 4, 1, 32]), try r.floats([1, 2, 1100, 32]), try r.floats([1, 2, 1100, 32])]),
        (.lightningIndexer, [try r.floats([30, 4, 32]), try r.floats([300, 32]), try r.floats([30, 4])]),
        (.moeLayer(moe), moeInputs),
        (.softmax, [try r.floats([64, 3000], .f32, -4, 4)]),
    ]
}

@Suite struct CPUBackendTests {
    static let device = try! CPUDevice(options: CPUDeviceOptions())

    /// On every ISA path and GEMM shape this machine has.
    @Test(arguments: everyCPUPath) func resultsAreIdenticalRunToRunAndAcrossThreadCounts(_ options: CPUDeviceOptions) throws {
        var single = options
        single.threads = 1
        let (two, one) = (try CPUDevice(options: options), try CPUDevice(options: single))
        for (op, inputs) in try determinismCases() {
            let a = try two.run(op, inputs)
            let b = try two.run(op, inputs)
            let c = try one.run(op, inputs)
            #expect(a == b, "\(op.kind) differs run to run on \(two.id)")
            #expect(a == c, "\(op.kind) differs between 2 threads and 1 on \(two.id)")
            let ref = try Reference.evaluate(op, inputs)
            for (x, y) in zip(a, ref) where x.desc.dtype.isFloat {
                let pairs = zip(x.floats, y.floats).filter { $0.1.isFinite }
                #expect(zip(x.floats, y.floats).allSatisfy { $0.1.isFinite || $0.0 == $0.1 })
                let num = pairs.reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
                let den = pairs.reduce(0.0) { $0 + Double($1.1) * Double($1.1) }
                #expect(num / max(den, 1e-30) < op.kind.tolerance(x.desc.dtype), "\(op.kind) NMSE \(num / den)")
            }
        }
    }

    @Test func topologyIsSane() throws {
        let t = HostTopology.current
        #expect(t.packages >= 1)
        #expect(!t.cores.isEmpty)
        #expect(t.cores.allSatisfy { !$0.processingUnits.isEmpty })
        #expect(t.processingUnitCount >= t.cores.count)
        #expect(Set(t.cores.flatMap(\.processingUnits)).count == t.processingUnitCount)
        #expect(t.l1Bytes >= 4096 && t.l2Bytes >= t.l1Bytes)
        #expect(!t.numaNodes.isEmpty)
        #expect(Set(t.numaNodes.flatMap(\.cores)) == Set(t.cores.map(\.index)))
        let back = try JSONDecoder().decode(HostTopology.self, from: JSONEncoder().encode(t))
        #expect(back == t)
        let info = Self.device.info
        #expect(info.kind == .cpu)
        #expect(["scalar", "avx2", "avx512", "neon"].contains(info.details["isa"] ?? ""))
        let b = Self.device.blocking
        #expect(b.kc >= 64 && b.mc % b.mr == 0 && b.nc % b.nr == 0)
    }

    /// The MoE layer's two schedules give the same bits on every path: one task per expert
    /// (gate and up from one packed A, SwiGLU on each finished column strip, then down; taken
    /// from `moe.wholeRowExperts` active experts on) and column chunks in two phases. Cases:
    /// INT4 experts of about 12 rows (packed GEMM, a few on the GEMV), of about 3 rows (GEMV),
    /// asymmetric INT4, and bf16 float experts (the pair kernel where there is one); both
    /// devices have one-tile row blocks (`gemm.mc`), so an expert spans several.
    @Test(arguments: everyCPUPath) func moeLayerSchedulesAgree(_ options: CPUDeviceOptions) throws {
        var perExpert = options, chunked = options
        perExpert.tiling = "moe.wholeRowExperts=1,gemm.mc=1"
        chunked.tiling = "moe.wholeRowExperts=100000,gemm.mc=1"  // the same row blocks (and GEMV rows) as perExpert
        let (a, b) = (try CPUDevice(options: perExpert), try CPUDevice(options: chunked))
        var r = Inputs(23)
        let router = RouterParams(scoring: .softmax, topK: 2)
        let (h, f, e) = (96, 64, 16)
        for (t, experts, dt) in [(96, ExpertFormat.int4(Int4Format(groupSize: 32, symmetric: true)), DType.f32),
                                 (24, .int4(Int4Format(groupSize: 16, symmetric: true)), .f32),
                                 (80, .int4(Int4Format(groupSize: 32, symmetric: false)), .f16),
                                 (64, .float, .bf16)] {
            let op = Op.moeLayer(MoELayerParams(router: router, experts: experts, hasShared: false))
            var ins = [try r.floats([t, h], dt), try r.floats([e, h], dt)]
            for (n, k) in [(f, h), (f, h), (h, f)] {
                switch experts {
                case .int4(let fmt): ins += try r.int4([e], n, k, fmt)
                case .float: ins.append(try r.floats([e, n, k], dt, -0.3, 0.3))
                }
            }
            let x = try a.run(op, ins), y = try b.run(op, ins)
            #expect(x == y, "\(experts) \(dt) T\(t): the per-expert and column-chunk schedules differ on \(a.id)")
            let ref = try Reference.evaluate(op, ins)[0]
            let pairs = zip(x[0].floats, ref.floats)
            let num = pairs.reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
            let den = pairs.reduce(0.0) { $0 + Double($1.1) * Double($1.1) }
            #expect(num / max(den, 1e-30) < OpKind.moeLayer.tolerance(dt), "\(experts) \(dt) NMSE \(num / den)")
        }
    }

    /// `Gemm.serialPair` gives each product the bits `Gemm.serial` gives it, also when the
    /// rows span several A blocks (mc one tile) and K several blocks, and hands every
    /// element to `strip` exactly once, after its last K block.
    @Test(arguments: everyCPUPath) func serialPairMatchesTwoSerialGemms(_ options: CPUDeviceOptions) throws {
        let device = try CPUDevice(options: options)
        var r = Inputs(29)
        let (m, n, k) = (37, 70, 300)
        let a = try r.floats([m, k]).floats, b1 = try r.floats([k, n]).floats, b2 = try r.floats([k, n]).floats
        var bl = device.blocking(for: .moe)
        bl.mc = bl.mr
        let table = device.plan.choices[.moe]!.table
        let ws = Workspace()
        var (c1, c2, e1, e2) = ([Float](repeating: .nan, count: m * n), [Float](repeating: .nan, count: m * n),
                                [Float](repeating: .nan, count: m * n), [Float](repeating: .nan, count: m * n))
        var seen = [Int](repeating: 0, count: m * n)
        a.withUnsafeBytes { pa in b1.withUnsafeBytes { p1 in b2.withUnsafeBytes { p2 in
            let aop = GemmA.strided(pa.baseAddress!, PCK_DT_F32, rs: k, cs: 1)
            let (bop1, bop2) = (GemmB.strided(p1.baseAddress!, PCK_DT_F32, rs: n, cs: 1), GemmB.strided(p2.baseAddress!, PCK_DT_F32, rs: n, cs: 1))
            table.with {
                c1.withUnsafeMutableBufferPointer { q1 in c2.withUnsafeMutableBufferPointer { q2 in
                    Gemm.serialPair(bl, m: m, i0: 0, n: n, j0: 0, k: k, a: aop, b1: bop1, b2: bop2, c1: q1.baseAddress!, ldc1: n,
                                    c2: q2.baseAddress!, ldc2: n, ws: ws) { r0, rows, j, nn in
                        for i in r0..<(r0 + rows) {
                            for c in j..<(j + nn) {
                                seen[i * n + c] += 1
                                if q1[i * n + c].isNaN || q2[i * n + c].isNaN { seen[i * n + c] += 100 }
                            }
                        }
                    }
                } }
                e1.withUnsafeMutableBufferPointer { q in
                    Gemm.serial(bl, m: m, i0: 0, n: n, j0: 0, k: k, a: aop, b: bop1, c: q.baseAddress!, ldc: n, accumulate: false, ws: ws)
                }
                e2.withUnsafeMutableBufferPointer { q in
                    Gemm.serial(bl, m: m, i0: 0, n: n, j0: 0, k: k, a: aop, b: bop2, c: q.baseAddress!, ldc: n, accumulate: false, ws: ws)
                }
            }
        } } }
        #expect(c1 == e1 && c2 == e2, "serialPair differs from serial on \(device.id)")
        #expect(seen.allSatisfy { $0 == 1 }, "strip missed or repeated elements on \(device.id)")
    }

    @Test func threadCountOverride() throws {
        let o = try CPUDeviceOptions(profile: "threads=1,bind=0", base: CPUDeviceOptions())
        #expect(o.threads == 1 && !o.bind)
        #expect(try CPUDeviceOptions.fromEnvironment(["POLYCHIP_CPU_THREADS": "3", "POLYCHIP_CPU_BIND": "0"]).threads == 3)
        #expect(try CPUDeviceOptions.fromEnvironment(["POLYCHIP_CPU_THREADS": " "]).threads == nil)
        #expect(throws: PolychipError.self) { try CPUDeviceOptions(profile: "threads=0", base: CPUDeviceOptions()) }
        #expect(throws: PolychipError.self) { try CPUDeviceOptions(profile: "cores=2", base: CPUDeviceOptions()) }
        let d = try CPUBackend().device(profile: "threads=1", index: nil)
        #expect(d.info.computeUnits == 1)
        #expect(d.info.details["threads"] == "1")
        #expect(d.id.hasPrefix("cpu:threads=1"))
        #expect(try CPUBackend().device(profile: "threads=1", index: nil) === d)
        let three = try CPUDevice(options: CPUDeviceOptions(threads: 3, bind: false))
        #expect(three.info.computeUnits == 3 && three.pool.workerCount == 3)
        // Oversubscribed pools still compute the same results.
        let (op, inputs) = try determinismCases()[0]
        #expect(try three.run(op, inputs) == Self.device.run(op, inputs))
    }

    @Test func asymmetricQuantizationKeepsZeroInRange() throws {
        // One-sided groups (all positive, all negative) and an all-zero group.
        let x = try HostTensor([3, 8], .f32, floats: [0.5, 1, 2, 3, 0.25, 0.75, 1.5, 2.5,
                                                      -0.5, -1, -2, -3, -0.25, -0.75, -1.5, -2.5,
                                                      0, 0, 0, 0, 0, 0, 0, 0])
        for sym in [false, true] {
            let op = Op.quantizeInt4(Int4Format(groupSize: 8, symmetric: sym))
            #expect(try Self.device.run(op, [x]) == Reference.evaluate(op, [x]))
        }
    }

    @Test func fusedIndexerTopKMatchesIndexerThenTopK() throws {
        var r = Inputs(11)
        let (t, hi, d, s, k) = (37, 4, 32, 260, 16)
        let q = try r.floats([t, hi, d]), kk = try r.floats([s, d]), w = try r.floats([t, hi])
        let scores = try Self.device.run(.lightningIndexer, [q, kk, w])[0]
        let expected = try Self.device.run(.topK(k: k), [scores])
        let dev = Self.device
        let idx = try dev.allocate(TensorDesc([t, k], .i32)), vals = try dev.allocate(TensorDesc([t, k], .f32))
        try dev.lightningIndexerTopK(q: dev.tensor(q), k: dev.tensor(kk), w: dev.tensor(w), topK: k, indices: idx, values: vals)
        #expect(try dev.download(idx) == expected[0])
        #expect(try dev.download(vals) == expected[1])
        #expect(expected[0] == (try Reference.evaluate(.topK(k: k), [scores]))[0])
    }

    /// A bad data-dependent input throws the reference's error and leaves the output as it was.
    func expectRejected(_ op: Op, _ inputs: [HostTensor]) throws {
        var refError: PolychipError? = nil
        do { _ = try Reference.evaluate(op, inputs) } catch let e as PolychipError { refError = e }
        #expect(refError != nil)
        let dev = Self.device
        let ins = try inputs.map { try dev.tensor($0) }
        let outDescs = try op.validate(inputs.map(\.desc))
        let outs = try outDescs.map { desc -> Tensor in
            let t = try dev.allocate(desc)
            try dev.upload(HostTensor(desc, bytes: [UInt8](repeating: 0x5A, count: desc.byteCount)), to: t)
            return t
        }
        var cpuError: PolychipError? = nil
        do { try Queue(device: dev).enqueue(op, inputs: ins, outputs: outs) } catch let e as PolychipError { cpuError = e }
        #expect(cpuError == refError)
        for o in outs { #expect(try dev.download(o).bytes.allSatisfy { $0 == 0x5A }) }
    }

    @Test func dataDependentValidationMatchesReference() throws {
        var r = Inputs(5)
        try expectRejected(.groupedMatmul(transposeB: false),
                           [try r.floats([6, 8]), try r.floats([2, 8, 4]), try HostTensor([3], int32s: [0, 4, 3])])
        let f = Int4Format(groupSize: 8, symmetric: true)
        try expectRejected(.int4GroupedMatmul(f), [try r.floats([6, 16])] + (try r.int4([2], 4, 16, f)) + [try HostTensor([3], int32s: [1, 2, 6])])
        try expectRejected(.sparseAttention(SparseAttentionParams(returnLSE: true)),
                           [try r.floats([2, 2, 8]), try r.floats([5, 1, 8]), try r.floats([5, 1, 8]), try HostTensor([2, 2], int32s: [0, -1, 5, 1])])
        try expectRejected(.moePermute(numExperts: 4), [try r.floats([3, 4]), try HostTensor([3, 2], int32s: [0, 1, 2, 4, 1, 3])])
        try expectRejected(.moeCombine, [try r.floats([4, 3]), try HostTensor([4], int32s: [0, 2, 2, 1]), try r.floats([2, 2])])
        let fa = Int4Format(groupSize: 8, symmetric: false)
        var bad = try r.int4([], 2, 16, fa)
        bad[2] = try HostTensor([2, 2], int8s: [1, 2, 16, 3])
        try expectRejected(.dequantizeInt4(fa, output: .f32), bad)
    }

    @Test func wideGemmPacksBInPanels() throws {
        // B over the whole-B budget is packed panel by panel (budget shrunk for the test).
        var r = Inputs(13)
        let (m, k, n) = (37, 300, 1000)
        let a = try r.floats([m, k]), b = try r.floats([k, n])
        var bl = Self.device.blocking
        bl.packBudgetBytes = 1 << 18
        bl.nc = 256
        let table = Self.device.plan.choices[.gemm]!.table
        let ctx = KernelContext(pool: Self.device.pool, blocking: bl, table: table, shared: Workspace(), kernel: "matmul")
        var y = [Float](repeating: .nan, count: m * n)
        let av = a.floats, bv = b.floats
        av.withUnsafeBytes { pa in
            bv.withUnsafeBytes { pb in
                y.withUnsafeMutableBufferPointer { py in
                    table.with {
                        Gemm.run(ctx, m: m, n: n, k: k, a: .strided(pa.baseAddress!, PCK_DT_F32, rs: k, cs: 1),
                                 b: .strided(pb.baseAddress!, PCK_DT_F32, rs: n, cs: 1), c: py.baseAddress!, ldc: n, accumulate: false)
                    }
                }
            }
        }
        let expected = try Reference.evaluate(.matmul(transposeB: false), [a, b])[0].floats
        let num = zip(y, expected).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
        let den = expected.reduce(0.0) { $0 + Double($1) * Double($1) }
        #expect(num / den < 1e-12)
    }

    @Test func misalignedViewsWork() throws {
        var r = Inputs(9)
        let a = try r.floats([5, 7]), b = try r.floats([7, 3])
        let dev = Self.device
        let buf = try dev.allocateBuffer(byteCount: 4 * 60 + 2)
        let ta = Tensor(desc: a.desc, buffer: buf, byteOffset: 2)
        try dev.upload(a, to: ta)
        let out = Tensor(desc: TensorDesc([5, 3], .f32), buffer: try dev.allocateBuffer(byteCount: 64), byteOffset: 1)
        try Queue(device: dev).enqueue(.matmul(transposeB: false), inputs: [ta, try dev.tensor(b)], outputs: [out])
        let expected = try Reference.evaluate(.matmul(transposeB: false), [a, b])[0].floats
        for (x, y) in zip(try dev.download(out).floats, expected) { #expect(abs(x - y) <= 1e-5 * max(1, abs(y))) }
    }
}

/// The radix-selection top-k against the reference on the rows that break selections:
/// many ties (a few distinct values), ±0, NaN, ±inf, fewer selectable entries than k, k = S.
@Suite struct TopKSelectionTests {
    @Test func topKMatchesTheReferenceOnAdversarialRows() throws {
        var r = Inputs(21)
        let s = 300
        var rows: [[Float]] = []
        rows.append((0..<s).map { _ in Float(r.next() % 5) })                              // heavy ties
        rows.append((0..<s).map { i in i % 2 == 0 ? 0.0 : -0.0 })                            // ±0 only
        rows.append((0..<s).map { i in [Float.nan, -.infinity, .infinity, 1, -1][i % 5] })   // non-finite
        rows.append((0..<s).map { i in i < 7 ? Float(i) : (i % 2 == 0 ? .nan : -.infinity) })  // 7 selectable
        rows.append((0..<s).map { _ in Float(r.next() >> 40) / Float(1 << 24) - 0.5 })       // distinct
        rows.append((0..<s).map { _ in -Float(r.next() % 3) * 1e-30 })                        // tiny negatives, ties
        let x = try HostTensor([rows.count, s], .f32, floats: rows.flatMap { $0 })
        let dev = try CPUDevice(options: CPUDeviceOptions())
        for k in [1, 5, 64, 299, 300] {
            let got = try dev.run(.topK(k: k), [x]), want = try Reference.evaluate(.topK(k: k), [x])
            #expect(got[0] == want[0], "indices differ at k = \(k)")
            #expect(got[1].bytes == want[1].bytes, "values differ at k = \(k)")
        }
    }
}

/// rmsNorm outputs past `streamStoreBytes` are written with non-temporal stores; conformance
/// shapes are far below the default threshold, so run the path with the threshold at zero and
/// demand the same bits as the plain path (NaN and +inf rows included).
@Suite struct StreamingStoreTests {
    @Test func rmsNormGivesTheSameBitsWithStreamingStores() throws {
        var r = Inputs(31)
        let dev = try CPUDevice(options: CPUDeviceOptions())
        var x = try r.floats([37, 301], .f32, -4, 4)
        var xs = x.floats
        xs[5 * 301 + 7] = .nan; xs[9 * 301 + 2] = .infinity   // the softmax rules' rows
        x = try HostTensor([37, 301], .f32, floats: xs)
        let w = try r.floats([301])
        for (op, inputs) in [(Op.rmsNorm(eps: 1e-5), [x, w])] {
            let plain = try dev.run(op, inputs)[0]
            var bl = dev.blocking
            bl.streamStoreBytes = 0
            let table = dev.plan.table(for: op, dtype: .f32)
            let ctx = KernelContext(pool: dev.pool, blocking: bl, table: table, shared: Workspace(), kernel: op.kind.name)
            // Operands in memory this test owns (the kernels take raw host pointers).
            let buffers = (inputs + [plain]).map { t -> UnsafeMutableRawPointer in
                let p = UnsafeMutableRawPointer.allocate(byteCount: t.bytes.count, alignment: 64)
                t.bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: t.bytes.count) }
                return p
            }
            defer { buffers.forEach { $0.deallocate() } }
            let operands = zip(buffers, inputs).map { Operand(raw: $0, desc: $1.desc) }
            let outs = [Operand(raw: buffers.last!, desc: plain.desc)]
            try table.with { try CPUKernels.run(op, ctx, operands, outs) }
            let out = Array(UnsafeBufferPointer(start: buffers.last!.assumingMemoryBound(to: Float.self), count: plain.desc.elementCount))
            #expect(try HostTensor(plain.desc.shape, .f32, floats: out).bytes == plain.bytes, "\(op.kind) differs with streaming stores")
        }
    }
}

/// NaN logits on every path (docs/kernels.md: a NaN logit makes the query row NaN): a query
/// row that is all NaN (its running max never leaves −inf, so only the sum can carry the NaN),
/// a NaN in the middle of another row, an infinite key; causal, full and sparse.
@Suite struct AttentionNaNTests {
    @Test(arguments: everyCPUPath) func nanRowsStayNaNOnEveryPath(_ options: CPUDeviceOptions) throws {
        let dev = try CPUDevice(options: options)
        var r = Inputs(41)
        let (lq, lk, d) = (130, 150, 16)
        var q = try r.floats([1, 4, lq, d]).floats
        for j in 0..<d { q[3 * d + j] = .nan }                // head 0, query 3: all NaN
        q[(lq + 77) * d + 5] = .nan                            // head 1, query 77: one NaN
        var k = try r.floats([1, 2, lk, d]).floats
        k[(lk + 140) * d + 2] = .infinity                      // kv head 1, key 140
        let qt = try HostTensor([1, 4, lq, d], .f32, floats: q), kt = try HostTensor([1, 2, lk, d], .f32, floats: k)
        let vt = try r.floats([1, 2, lk, d])
        for causal in [true, false] {
            let op = Op.attention(AttentionParams(causal: causal, returnLSE: true))
            let got = try dev.run(op, [qt, kt, vt]), want = try Reference.evaluate(op, [qt, kt, vt])
            for (g, w) in zip(got, want) {
                #expect(zip(g.floats, w.floats).allSatisfy { $0.isNaN == $1.isNaN }, "\(dev.id) causal \(causal): NaN pattern differs")
            }
        }
        let qs = try HostTensor([6, 2, d], .f32, floats: (0..<(12 * d)).map { $0 < d ? .nan : Float($0 % 7) * 0.1 })
        let ks = try r.floats([20, 1, d]), vs = try r.floats([20, 1, d])
        let idx = try HostTensor([6, 4], int32s: (0..<24).map { Int32($0 % 20) })
        let sop = Op.sparseAttention(SparseAttentionParams(returnLSE: true))
        let got = try dev.run(sop, [qs, ks, vs, idx]), want = try Reference.evaluate(sop, [qs, ks, vs, idx])
        for (g, w) in zip(got, want) { #expect(zip(g.floats, w.floats).allSatisfy { $0.isNaN == $1.isNaN }, "\(dev.id) sparse") }
    }
}
