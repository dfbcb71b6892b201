import Foundation
import PolychipCore

func ceilDiv(_ a: Int, _ b: Int) -> Int { (a + b - 1) / b }

extension OpenCLDevice {
    /// Whether `kernel` runs here for activation dtype `dtype`: every catalog kernel runs
    /// natively (f32 arithmetic; f16/bf16 loaded and stored by bit conversion, so no
    /// `cl_khr_fp16` is needed) when its source file is embedded. Shapes past a device
    /// limit (e.g. a head dim too large for local memory) are rejected at execution
    /// with ``PolychipError/unsupported(kernel:device:reason:)``.
    public func supports(_ kernel: OpKind, dtype: DType) -> Support {
        if kernel == .topK {
            return dtype == .f32 ? .native : .unsupported("topK takes f32 scores")
        }
        guard dtype.isFloat else { return .unsupported("activations must be f32, f16 or bf16, got \(dtype)") }
        for file in Self.files(for: kernel) + [.gemm] where OpenCLKernelSources.files[file.rawValue] == nil {
            return .unsupported("kernels/opencl/\(file.rawValue) was not embedded in this build")
        }
        return .native
    }

    static func files(for kind: OpKind) -> [CLFile] {
        switch kind {
        case .matmul, .groupedMatmul: return [.gemm]
        case .int4Matmul, .int4GroupedMatmul, .quantizeInt4, .dequantizeInt4: return [.int4]
        case .rmsNorm, .softmax, .silu, .swiglu, .rope, .add, .scale: return [.elementwise]
        case .attention, .sparseAttention: return [.attention]
        case .lightningIndexer, .topK: return [.dsa]
        case .moeRouter, .moePermute, .moeCombine: return [.moe]
        case .moeLayer: return [.gemm, .int4, .elementwise, .moe]
        }
    }

    /// Runs one catalog kernel. Data-dependent arguments (offsets, indices, ids, source
    /// maps, zero points) are checked on the host before anything is launched, so a bad
    /// call throws the reference's `invalidArgument` and leaves the outputs untouched.
    /// Returns the summed device time of the OpenCL commands (profiling events).
    public func execute(_ op: Op, inputs: [Tensor], outputs: [Tensor]) throws -> KernelTiming {
        let expected = try op.validate(inputs.map(\.desc))
        guard outputs.count == expected.count, zip(outputs, expected).allSatisfy({ $0.desc == $1 }) else {
            throw PolychipError.invalidTensor(reason: "\(op.kind.name): outputs \(outputs.map(\.desc)) do not match \(expected)")
        }
        if case .unsupported(let why) = supports(op.kind, dtype: op.primaryDType(inputs.map(\.desc))) {
            throw PolychipError.unsupported(kernel: op.kind.name, device: id, reason: why)
        }
        for t in inputs + outputs where t.desc.elementCount > Int(Int32.max) {
            throw PolychipError.unsupported(kernel: op.kind.name, device: id,
                                            reason: "\(t.desc) has more than 2³¹−1 elements (the kernels index with 32-bit ints)")
        }
        let ins = try inputs.map(operand)
        let outs = try outputs.map(operand)
        let sub = Submission(device: self)
        // Only the elementwise kernels may write over their inputs; any other call whose
        // output overlaps an input computes into temporaries and copies them over last.
        let inPlaceOK = [.rmsNorm, .softmax, .silu, .swiglu, .rope, .add, .scale].contains(op.kind)
        let staged = inPlaceOK ? outs : try outs.map { o in
            guard ins.contains(where: { overlaps($0, o) }) || outs.contains(where: { $0 !== o && overlaps($0, o) }) else { return o }
            let bytes = try o.desc.checkedByteCount()
            return Operand(buffer: try sub.scratch(bytes), offset: 0, desc: o.desc)
        }
        let k = KernelCall(device: self, sub: sub, op: op, ins: ins, outs: staged)
        try k.run()
        for (o, s) in zip(outs, staged) where o !== s {
            let size = max(o.desc.dtype.bitWidth / 8, 1)
            try sub.copy(s.buffer, 0, o.buffer, Int(o.offset) * size, bytes: try o.desc.checkedByteCount())
        }
        return .measured(seconds: try sub.finish())
    }
}

/// Whether two operands share bytes of one buffer.
func overlaps(_ a: Operand, _ b: Operand) -> Bool {
    guard a.buffer === b.buffer else { return false }
    let sa = Int(a.offset) * max(a.desc.dtype.bitWidth / 8, 1), sb = Int(b.offset) * max(b.desc.dtype.bitWidth / 8, 1)
    return sa < sb + b.desc.byteCount && sb < sa + a.desc.byteCount
}

/// One catalog call being dispatched.
struct KernelCall {
    let device: OpenCLDevice
    let sub: Submission
    let op: Op
    let ins: [Operand]
    let outs: [Operand]

    var t: OpenCLTuning { device.tuning }
    var name: String { op.kind.name }

    subscript(_ input: String) -> Operand { ins[op.inputNames.firstIndex(of: input)!] }
    func has(_ input: String) -> Bool { op.inputNames.contains(input) }

    func invalid(_ kind: OpKind, _ argument: String, _ reason: String) -> PolychipError {
        PolychipError.invalidArgument(kernel: kind.name, argument: argument, reason: reason)
    }

    func unsupported(_ reason: String) -> PolychipError {
        PolychipError.unsupported(kernel: name, device: device.id, reason: reason)
    }

    func run() throws {
        for (i, name) in op.zeroPointInputs { try Int4Format.checkZeroPoints(readInts(ins[i]), kernel: self.name, argument: name) }
        switch op {
        case .matmul(let tb): try matmul(tb)
        case .groupedMatmul(let tb): try groupedMatmul(tb)
        case .rmsNorm(let eps): try rmsNorm(eps)
        case .softmax: try softmax()
        case .silu, .scale, .swiglu, .add: try elementwise()
        case .rope(let p): try rope(p)
        case .attention(let p): try attention(p)
        case .lightningIndexer: try lightningIndexer()
        case .topK(let k): try topK(k)
        case .sparseAttention(let p): try sparseAttention(p)
        case .moeRouter(let p): try moeRouter(p)
        case .moePermute(let e): try moePermute(e)
        case .moeCombine: try moeCombine()
        case .moeLayer(let p): try moeLayer(p)
        case .quantizeInt4(let f): try quantize(f)
        case .dequantizeInt4(let f, let out): try dequantize(f, out)
        case .int4Matmul(let f): try int4Matmul(f)
        case .int4GroupedMatmul(let f): try int4GroupedMatmul(f)
        }
    }

    // MARK: Host-side validation (same errors as the reference backend)

    /// Offsets must start at 0, never decrease and end at `rows`.
    func checkOffsets(_ kind: OpKind, _ o: Operand, rows: Int) throws -> [Int] {
        let offsets = try device.readInt32s(Tensor(desc: o.desc, buffer: o.buffer, byteOffset: Int(o.offset) * 4))
        guard offsets.first == 0, offsets.last == rows, zip(offsets, offsets.dropFirst()).allSatisfy({ $0 <= $1 }) else {
            throw invalid(kind, "offsets", "must start at 0, never decrease and end at \(rows) rows, got \(offsets.prefix(16))")
        }
        return offsets
    }

    func readInts(_ o: Operand) throws -> [Int] {
        let size = max(o.desc.dtype.bitWidth / 8, 1)
        let t = Tensor(desc: o.desc, buffer: o.buffer, byteOffset: Int(o.offset) * size)
        return o.desc.dtype == .i8 ? try device.readInt8s(t) : try device.readInt32s(t)
    }

    // MARK: Linear algebra

    var gemmLocal: [Int] { t.gemmLocal }

    func gemmGlobal(m: Int, n: Int) -> [Int] {
        [ceilDiv(n, t.tn) * gemmLocal[0], ceilDiv(m, t.tm) * gemmLocal[1]]
    }

    func groupedGlobal(rows: Int, n: Int, experts: Int) -> [Int] {
        [ceilDiv(n, t.tn) * gemmLocal[0], (ceilDiv(rows, t.tm) + experts) * gemmLocal[1]]
    }

    func matmul(_ tb: Bool) throws {
        let a = self["a"], b = self["b"], c = outs[0]
        let (m, k) = (a.desc.shape[0], a.desc.shape[1])
        let n = c.desc.shape[1]
        try gemm(a, b, c, m: m, n: n, k: k, transposed: tb)
    }

    func gemm(_ a: Operand, _ b: Operand, _ c: Operand, m: Int, n: Int, k: Int, transposed: Bool, f32Out: Bool = false) throws {
        let p = try device.catalogProgram(.gemm, dtype: a.desc.dtype)
        let kernel = f32Out ? "matmul_nt_f32out" : transposed ? "matmul_nt" : "matmul_nn"
        try sub.launch(p, kernel, a.args + b.args + c.args + [.int(m), .int(n), .int(k)],
                       global: gemmGlobal(m: m, n: n), local: gemmLocal)
    }

    func groupedMatmul(_ tb: Bool) throws {
        let x = self["x"], w = self["w"], offs = self["offsets"], y = outs[0]
        let rows = x.desc.shape[0], k = x.desc.shape[1], n = y.desc.shape[1]
        _ = try checkOffsets(.groupedMatmul, offs, rows: rows)
        try groupedGemm(x, w, offs, y, rows: rows, n: n, k: k, experts: w.desc.shape[0], transposed: tb)
    }

    func groupedGemm(_ x: Operand, _ w: Operand, _ offs: Operand, _ y: Operand, rows: Int, n: Int, k: Int, experts: Int, transposed: Bool) throws {
        let p = try device.catalogProgram(.gemm, dtype: x.desc.dtype)
        try sub.launch(p, transposed ? "grouped_matmul_nt" : "grouped_matmul_nn",
                       x.args + w.args + offs.args + y.args + [.int(rows), .int(n), .int(k), .int(experts)],
                       global: groupedGlobal(rows: rows, n: n, experts: experts), local: gemmLocal)
    }

    // MARK: Elementwise

    func rmsNorm(_ eps: Double) throws {
        let x = self["x"], w = self["weight"], y = outs[0]
        let d = x.desc.shape.last!, rows = x.desc.elementCount / d
        let p = try device.catalogProgram(.elementwise, dtype: x.desc.dtype)
        try sub.launch(p, "rms_norm", x.args + w.args + y.args + [.int(rows), .int(d), .f32(Float(eps))],
                       global: [rows * t.rowWG], local: [t.rowWG])
    }

    func softmax() throws {
        let x = self["x"], y = outs[0]
        let d = x.desc.shape.last!, rows = x.desc.elementCount / d
        let p = try device.catalogProgram(.elementwise, dtype: x.desc.dtype)
        try sub.launch(p, "softmax", x.args + y.args + [.int(rows), .int(d)], global: [rows * t.rowWG], local: [t.rowWG])
    }

    func elementwise() throws {
        let x = ins[0], y = outs[0]
        let n = x.desc.elementCount
        let p = try device.catalogProgram(.elementwise, dtype: x.desc.dtype)
        switch op {
        case .silu: try sub.launch(p, "silu", x.args + y.args + [.int(n)], global: [n], local: nil)
        case .scale(let alpha): try sub.launch(p, "scale", x.args + y.args + [.int(n), .f32(Float(alpha))], global: [n], local: nil)
        case .swiglu: try swiglu(ins[0], ins[1], y, n: n)
        default: try sub.launch(p, "add", ins[0].args + ins[1].args + y.args + [.int(n)], global: [n], local: nil)
        }
    }

    func swiglu(_ g: Operand, _ u: Operand, _ y: Operand, n: Int) throws {
        let p = try device.catalogProgram(.elementwise, dtype: g.desc.dtype)
        try sub.launch(p, "swiglu", g.args + u.args + y.args + [.int(n)], global: [n], local: nil)
    }

    func rope(_ rp: RopeParams) throws {
        let x = self["x"], pos = self["positions"], y = outs[0]
        let (tt, h, d) = (x.desc.shape[0], x.desc.shape[1], x.desc.shape[2])
        let r = rp.rotaryDim ?? d
        let p = try device.catalogProgram(.elementwise, dtype: x.desc.dtype)
        try sub.launch(p, "rope", x.args + pos.args + y.args
                       + [.int(tt), .int(h), .int(d), .int(r), .int(rp.style == .neox ? 0 : 1), .f32(Float(rp.base))],
                       global: [d - r / 2, tt * h], local: nil)
    }

    // MARK: Attention

    /// The attention program for head dims (hd, hdv) with the first of `candidates`
    /// whose work-group local memory fits the device.
    func attentionProgram(_ dtype: DType, hd: Int, hdv: Int, _ candidates: [AttentionTiles]) throws -> (OpenCLProgram, AttentionTiles) {
        guard let tiles = candidates.first(where: { $0.localBytes(hd: hd, hdv: hdv) <= device.limits.localMemBytes }) else {
            throw unsupported("head dims D = \(hd), Dv = \(hdv) need more local memory than the device's \(device.limits.localMemBytes) bytes")
        }
        let p = try device.catalogProgram(.attention, dtype: dtype, [("HD", hd), ("HDV", hdv), ("ATT_CPU", t.attCPU ? 1 : 0)] + tiles.macros)
        return (p, tiles)
    }

    /// The row-private CPU attention program (`ATT_ROWS=1`) with the first of
    /// `t.rowsPrefill` that is valid for the chunk widths and fits local memory; nil when
    /// the tuning does not use it or none fits (the flash core is used then).
    func attentionRowsProgram(_ dtype: DType, hd: Int, hdv: Int) throws -> (OpenCLProgram, AttentionTiles)? {
        guard t.attRows else { return nil }
        let (kc, dc) = (t.attKC, t.attDC)
        guard let tiles = t.rowsPrefill.first(where: {
            $0.rq >= 1 && $0.bq % $0.rq == 0 && $0.bk % (8 * kc) == 0
                && $0.rowsLocalBytes(hd: hd, hdv: hdv, dc: dc) <= device.limits.localMemBytes
        }) else { return nil }
        let p = try device.catalogProgram(.attention, dtype: dtype,
                                          [("HD", hd), ("HDV", hdv), ("ATT_CPU", 1), ("ATT_ROWS", 1), ("BQ", tiles.bq), ("BK", tiles.bk),
                                           ("RQ", tiles.rq), ("TC", 1), ("KC", kc), ("DC", dc)])
        return (p, AttentionTiles(bq: tiles.bq, bk: tiles.bk, rq: tiles.rq, tc: 1))
    }

    /// Split-KV count: enough work-groups to fill the device (≥ 2× compute units), with
    /// at least one key block per split.
    func splits(groups: Int, keys: Int, bk: Int) -> Int {
        let target = 2 * max(device.info.computeUnits, 1)
        guard groups < target else { return 1 }
        return max(1, min(ceilDiv(target, groups), ceilDiv(keys, bk), 256))
    }

    func attention(_ ap: AttentionParams) throws {
        let q = self["q"], k = self["k"], v = self["v"], o = outs[0]
        let (b, hq, lq, d) = (q.desc.shape[0], q.desc.shape[1], q.desc.shape[2], q.desc.shape[3])
        let (hkv, lk, dv) = (k.desc.shape[1], k.desc.shape[2], v.desc.shape[3])
        let scale = Float(ap.scale ?? 1 / Double(d).squareRoot())
        let g = hq / hkv
        // Prefill on CPU devices: the row-private kernel (same arguments as attention_fwd).
        let rowsProgram = g * lq > 8 ? try attentionRowsProgram(q.desc.dtype, hd: d, hdv: dv) : nil
        let (p, tiles) = try rowsProgram ?? attentionProgram(q.desc.dtype, hd: d, hdv: dv, g * lq <= 8 ? t.decode : t.prefill)
        let fwd = rowsProgram == nil ? "attention_fwd" : "attention_fwd_rows"
        let (threads, bq) = (tiles.threads, tiles.bq)
        let lse: [KernelArg] = ap.returnLSE ? outs[1].args : [.null, .u64(0)]
        let groups = ceilDiv(g * lq, bq) * b * hkv
        let nsplit = splits(groups: groups, keys: lk, bk: tiles.bk)
        let dims: [KernelArg] = [.int(b), .int(hq), .int(hkv), .int(lq), .int(lk), .f32(scale), .int(ap.causal ? 1 : 0)]
        let global = [ceilDiv(g * lq, bq) * threads, b * hkv]
        // Prefill on GPUs: the register-tiled kernel where the head dims allow.
        if rowsProgram == nil && t.attTiled && g * lq > 8 && d % 32 == 0 && (dv == 64 || dv == 128) {
            try sub.launch(p, "attention_fwd_tiled", q.args + k.args + v.args + o.args + lse + dims,
                           global: [ceilDiv(g * lq, 64) * 256, b * hkv], local: [256, 1])
            return
        }
        if nsplit == 1 {
            try sub.launch(p, fwd, q.args + k.args + v.args + o.args + lse + [.null, .u64(0), .null, .u64(0)] + dims + [.int(1), .int(lk)],
                           global: global + [1], local: [threads, 1, 1])
            return
        }
        let rows = b * hq * lq
        let splitLen = ceilDiv(ceilDiv(lk, nsplit), tiles.bk) * tiles.bk
        let n = ceilDiv(lk, splitLen)
        let op = try sub.scratch(rows * n * dv * 4), lp = try sub.scratch(rows * n * 4)
        try sub.launch(p, fwd, q.args + k.args + v.args + o.args + lse
                       + [.buffer(op), .u64(0), .buffer(lp), .u64(0)] + dims + [.int(n), .int(splitLen)],
                       global: global + [n], local: [threads, 1, 1])
        try sub.launch(p, "attention_combine", [.buffer(op), .u64(0), .buffer(lp), .u64(0)] + o.args + lse + [.int(rows), .int(n)],
                       global: [dv, rows], local: nil)
    }

    func sparseAttention(_ sp: SparseAttentionParams) throws {
        let q = self["q"], k = self["k"], v = self["v"], ix = self["indices"], o = outs[0]
        let (tt, h, d) = (q.desc.shape[0], q.desc.shape[1], q.desc.shape[2])
        let (s, hkv, dv) = (k.desc.shape[0], k.desc.shape[1], v.desc.shape[2])
        let ksel = ix.desc.shape[1]
        let given = try readInts(ix)
        if let bad = given.first(where: { $0 < -1 || $0 >= s }) {
            throw invalid(.sparseAttention, "indices", "index \(bad) is outside 0..<\(s) (−1 marks padding)")
        }
        // A repeated index is attended once (docs/kernels.md): upload the deduplicated copy.
        var indexArgs = ix.args
        if let unique = given.map({ Int32($0) }).withUnsafeBufferPointer({
            SparseAttentionParams.firstOccurrences($0, rows: tt, k: ksel, keys: s)
        }) {
            let buf = try sub.scratch(unique.count * 4)
            try unique.withUnsafeBytes { try device.write($0, to: buf, at: 0) }
            indexArgs = [.buffer(buf), .u64(0)]
        }
        let scale = Float(sp.scale ?? 1 / Double(d).squareRoot())
        let (p, tiles) = try attentionProgram(q.desc.dtype, hd: d, hdv: dv, t.sparse)
        let (threads, bq) = (tiles.threads, tiles.bq)
        let lse: [KernelArg] = sp.returnLSE ? outs[1].args : [.null, .u64(0)]
        let g = h / hkv
        let groups = ceilDiv(g, bq) * tt * hkv
        let nsplit = splits(groups: groups, keys: ksel, bk: tiles.bk)
        let dims: [KernelArg] = [.int(tt), .int(h), .int(hkv), .int(s), .int(ksel), .f32(scale)]
        let global = [ceilDiv(g, bq) * threads, tt * hkv]
        let err: [KernelArg] = [.null, .u64(0)]
        if nsplit == 1 {
            try sub.launch(p, "sparse_attention_fwd", q.args + k.args + v.args + indexArgs + o.args + lse
                           + [.null, .u64(0), .null, .u64(0)] + err + dims + [.int(1), .int(ksel)],
                           global: global + [1], local: [threads, 1, 1])
            return
        }
        let rows = tt * h
        let splitLen = ceilDiv(ceilDiv(ksel, nsplit), tiles.bk) * tiles.bk
        let n = ceilDiv(ksel, splitLen)
        let op = try sub.scratch(rows * n * dv * 4), lp = try sub.scratch(rows * n * 4)
        try sub.launch(p, "sparse_attention_fwd", q.args + k.args + v.args + indexArgs + o.args + lse
                       + [.buffer(op), .u64(0), .buffer(lp), .u64(0)] + err + dims + [.int(n), .int(splitLen)],
                       global: global + [n], local: [threads, 1, 1])
        try sub.launch(p, "attention_combine", [.buffer(op), .u64(0), .buffer(lp), .u64(0)] + o.args + lse + [.int(rows), .int(n)],
                       global: [dv, rows], local: nil)
    }

    // MARK: DSA

    func lightningIndexer() throws {
        let q = self["q"], k = self["k"], w = self["w"], sc = outs[0]
        let (tt, hi, d) = (q.desc.shape[0], q.desc.shape[1], q.desc.shape[2])
        let s = k.desc.shape[0]
        var it = t.it
        while 4 * (t.iS * (d + 1) + it * d + it) > device.limits.localMemBytes {
            guard it > t.rt else { throw unsupported("head dim D = \(d) needs more local memory than the device has") }
            it /= 2
        }
        let p = try device.catalogProgram(.dsa, dtype: q.desc.dtype, [("HD", d), ("IT", it)])
        let local = [t.iS / t.rs, it / t.rt]
        try sub.launch(p, "lightning_indexer", q.args + k.args + w.args + sc.args + [.int(tt), .int(hi), .int(s)],
                       global: [ceilDiv(s, t.iS) * local[0], ceilDiv(tt, it) * local[1]], local: local)
    }

    func topK(_ k: Int) throws {
        let sc = self["scores"]
        let (tt, s) = (sc.desc.shape[0], sc.desc.shape[1])
        var sortMax = t.sortMax
        while k > sortMax {
            sortMax *= 2
            guard 8 * sortMax + 4 * (256 + t.topkWG + 8) <= device.limits.localMemBytes else {
                throw unsupported("k = \(k) exceeds the local-memory sort capacity")
            }
        }
        let p = try device.catalogProgram(.dsa, dtype: .f32, [("SORT_MAX", sortMax)])
        try sub.launch(p, "topk", sc.args + outs[0].args + outs[1].args + [.int(tt), .int(s), .int(k)],
                       global: [tt * t.topkWG], local: [t.topkWG])
    }

    // MARK: MoE

    /// Extra macros for a MoE program handling `experts` experts.
    func moeMacros(_ experts: Int) -> [(String, Int)] {
        var emax = 512
        while emax < experts { emax *= 2 }
        return [("EMAX", emax)]
    }

    func moeRouter(_ rp: RouterParams) throws {
        let l = self["logits"]
        let (tt, e) = (l.desc.shape[0], l.desc.shape[1])
        let p = try device.catalogProgram(.moe, dtype: l.desc.dtype, moeMacros(e))
        let bias: [KernelArg] = rp.hasBias ? self["bias"].args : [.null, .u64(0)]
        try sub.launch(p, "moe_router", l.args + bias + outs[0].args + outs[1].args + routerArgs(rp, tokens: tt, experts: e),
                       global: [tt * t.rowWG], local: [t.rowWG])
    }

    func routerArgs(_ rp: RouterParams, tokens: Int, experts: Int) -> [KernelArg] {
        [.int(tokens), .int(experts), .int(rp.topK), .int(rp.scoring == .softmax ? 0 : 1), .int(rp.nGroup),
         .int(rp.topkGroup), .int(rp.renormalize ? 1 : 0), .f32(Float(rp.routedScale))]
    }

    /// Counts, prefix sums and stable placement of the (token, slot) pairs by expert, on
    /// device: writes `offsets [E+1]`, `sourceMap [P]` and (when given) its inverse.
    func permute(ids: Operand, tokens: Int, k: Int, experts: Int, dtype: DType,
                 offsets: [KernelArg], sourceMap: [KernelArg], inverse: [KernelArg]) throws {
        let p = try device.catalogProgram(.moe, dtype: dtype, moeMacros(experts))
        let pairs = tokens * k
        let nblk = ceilDiv(pairs, t.permuteBlock)
        let bc = try sub.scratch(nblk * experts * 4)
        try sub.launch(p, "moe_perm_hist", ids.args + [.buffer(bc), .int(pairs), .int(experts), .null, .u64(0)],
                       global: [nblk * t.permuteBlock], local: [t.permuteBlock])
        try sub.launch(p, "moe_perm_scan", [.buffer(bc)] + offsets + [.int(nblk), .int(experts)],
                       global: [t.rowWG], local: [t.rowWG])
        try sub.launch(p, "moe_perm_scatter", ids.args + [.buffer(bc)] + offsets + sourceMap + inverse + [.int(pairs), .int(experts)],
                       global: [nblk * t.permuteBlock], local: [t.permuteBlock])
    }

    func gatherRows(_ x: Operand, sourceMap: [KernelArg], rows: [KernelArg], pairs: Int, k: Int, h: Int) throws {
        let p = try device.catalogProgram(.moe, dtype: x.desc.dtype)
        try sub.launch(p, "moe_gather_rows", x.args + sourceMap + rows + [.int(pairs), .int(k), .int(h)],
                       global: [h, pairs], local: nil)
    }

    func moePermute(_ e: Int) throws {
        let x = self["x"], ids = self["ids"]
        let (tt, h) = (x.desc.shape[0], x.desc.shape[1])
        let k = ids.desc.shape[1]
        if let bad = try readInts(ids).first(where: { $0 < 0 || $0 >= e }) {
            throw invalid(.moePermute, "ids", "expert id \(bad) is outside 0..<\(e)")
        }
        try permute(ids: ids, tokens: tt, k: k, experts: e, dtype: x.desc.dtype,
                    offsets: outs[1].args, sourceMap: outs[2].args, inverse: [.null, .u64(0)])
        try gatherRows(x, sourceMap: outs[2].args, rows: outs[0].args, pairs: tt * k, k: k, h: h)
    }

    func moeCombine() throws {
        let y = self["y"], map = self["sourceMap"], w = self["weights"], out = outs[0]
        let (tt, k) = (w.desc.shape[0], w.desc.shape[1])
        let h = y.desc.shape[1], pairs = tt * k
        let sourceMap = try readInts(map)
        var seen = [Bool](repeating: false, count: pairs)
        for (row, flat) in sourceMap.enumerated() {
            guard flat >= 0, flat < pairs, !seen[flat] else {
                throw invalid(.moeCombine, "sourceMap", "must be a permutation of 0..<\(pairs); entry \(row) is \(flat)")
            }
            seen[flat] = true
        }
        let p = try device.catalogProgram(.moe, dtype: y.desc.dtype)
        let inv = try sub.scratch(pairs * 4)
        try sub.launch(p, "moe_invert_map", map.args + [.buffer(inv), .u64(0), .int(pairs)], global: [pairs], local: nil)
        try sub.launch(p, "moe_combine", y.args + [.buffer(inv), .u64(0)] + w.args + [.null, .u64(0)] + out.args
                       + [.int(tt), .int(k), .int(h)], global: [h, tt], local: nil)
    }

    // MARK: INT4

    func zerosArgs(_ f: Int4Format, prefix: String = "") -> [KernelArg] {
        f.symmetric ? [.null, .u64(0)] : self[prefix + "zeros"].args
    }

    func quantize(_ f: Int4Format) throws {
        let x = self["x"]
        let (n, k) = (x.desc.shape[0], x.desc.shape[1])
        let p = try device.catalogProgram(.int4, dtype: x.desc.dtype)
        let z: [KernelArg] = f.symmetric ? [.null, .u64(0)] : outs[2].args
        try sub.launch(p, "int4_quantize", x.args + outs[0].args + outs[1].args + z
                       + [.int(n), .int(k), .int(f.groupSize), .int(f.symmetric ? 0 : 1)],
                       global: [quantizeWorkItems(groups: n * (k / f.groupSize))], local: [64])
    }

    /// Work-items of `int4_quantize` (a multiple of its local size 64): one per group on
    /// GPUs; on CPU devices at most 4096 per compute unit, each taking a contiguous run of
    /// groups (PoCL pays its per-work-item cost once per run).
    func quantizeWorkItems(groups: Int) -> Int {
        let one = ceilDiv(groups, 64) * 64
        return device.vendorClass == .cpu ? min(one, 64 * 64 * max(1, device.info.computeUnits)) : one
    }

    func dequantize(_ f: Int4Format, _ out: DType) throws {
        let q = self["q"], s = self["scales"]
        let (n, k) = (q.desc.shape[0], q.desc.shape[1])
        let p = try device.catalogProgram(.int4, dtype: out)
        try sub.launch(p, "int4_dequantize", q.args + s.args + zerosArgs(f) + outs[0].args
                       + [.int(n), .int(k), .int(f.groupSize), .int(f.symmetric ? 0 : 1)],
                       global: [n * k / 2], local: nil)
    }

    func int4Matmul(_ f: Int4Format) throws {
        let x = self["x"], y = outs[0]
        let (m, k) = (x.desc.shape[0], x.desc.shape[1])
        let n = y.desc.shape[1]
        try int4Gemm(x, self["q"], self["scales"], zerosArgs(f), y, m: m, n: n, k: k, f: f)
    }

    func int4Gemm(_ x: Operand, _ q: Operand, _ s: Operand, _ z: [KernelArg], _ y: Operand, m: Int, n: Int, k: Int, f: Int4Format) throws {
        let fmt: [KernelArg] = [.int(f.groupSize), .int(f.symmetric ? 0 : 1)]
        if m <= 8 {
            let gv = t.gvShape(m)
            let p = try device.catalogProgram(.int4, dtype: x.desc.dtype, [("GV_MAXM", gv.maxM), ("GV_ROWS", gv.rows)])
            try sub.launch(p, "int4_gemv", x.args + q.args + s.args + z + y.args + [.int(m), .int(n), .int(k)] + fmt,
                           global: [ceilDiv(n, gv.rows) * t.gvWG], local: [t.gvWG])
        } else {
            let p = try device.catalogProgram(.int4, dtype: x.desc.dtype)
            try sub.launch(p, "int4_gemm", x.args + q.args + s.args + z + y.args + [.int(m), .int(n), .int(k)] + fmt,
                           global: gemmGlobal(m: m, n: n), local: gemmLocal)
        }
    }

    func int4GroupedMatmul(_ f: Int4Format) throws {
        let x = self["x"], offs = self["offsets"], y = outs[0]
        let (rows, k) = (x.desc.shape[0], x.desc.shape[1])
        let n = y.desc.shape[1], e = offs.desc.shape[0] - 1
        let offsets = try checkOffsets(.int4GroupedMatmul, offs, rows: rows)
        let largest = zip(offsets, offsets.dropFirst()).map { $1 - $0 }.max() ?? 0
        try int4GroupedGemm(x, self["q"], self["scales"], zerosArgs(f), offs.args, y, rows: rows, n: n, k: k, experts: e,
                            f: f, gemvRows: largest <= 8 ? largest : nil)
    }

    func int4GroupedGemm(_ x: Operand, _ q: Operand, _ s: Operand, _ z: [KernelArg], _ offs: [KernelArg], _ y: Operand,
                         rows: Int, n: Int, k: Int, experts: Int, f: Int4Format, gemvRows: Int?) throws {
        let tail: [KernelArg] = [.int(rows), .int(n), .int(k), .int(f.groupSize), .int(f.symmetric ? 0 : 1), .int(experts)]
        if let gemvRows {
            let gv = t.gvShape(gemvRows, grouped: true)
            let p = try device.catalogProgram(.int4, dtype: x.desc.dtype, [("GV_MAXM", gv.maxM), ("GV_ROWS", gv.rows)])
            try sub.launch(p, "int4_grouped_gemv", x.args + q.args + s.args + z + offs + y.args + tail,
                           global: [ceilDiv(n, gv.rows) * t.gvWG, experts], local: [t.gvWG, 1])
        } else {
            let p = try device.catalogProgram(.int4, dtype: x.desc.dtype)
            try sub.launch(p, "int4_grouped_gemm", x.args + q.args + s.args + z + offs + y.args + tail,
                           global: groupedGlobal(rows: rows, n: n, experts: experts), local: gemmLocal)
        }
    }
}
