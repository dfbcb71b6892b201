import PolychipCore

// The OpenCL backend's tiling as the conformance suite sees it: the work-group tiles of each
// kernel family from `OpenCLTuning` (so `POLYCHIP_OPENCL_TUNING` overrides show), the path a
// call takes, and the `small` preset that makes the multi-tile paths run at small shapes.

extension OpenCLTuning {
    /// `POLYCHIP_OPENCL_TUNING=small`: tiles of one or two micro-tiles, so several
    /// work-groups, K slabs, key blocks, splits and sort passes happen at conformance sizes.
    /// Each value keeps its kernel's constraints (float8 widths on CPU mappings, BK a
    /// multiple of 8·KC for the row-private attention, power-of-two work-group sizes).
    static let smallPreset = "tm=12,tn=32,tk=8,wptm=6,wptn=16,gvWG=4,gvRows=2,rowWG=8,permuteBlock=8,"
        + "it=4,iS=32,rt=2,rs=16,sortMax=64,topkWG=8,"
        + "prefill=8/8/2/4,decode=8/16/1/8,sparse=8/16/2/4,rowsPrefill=12/16/6/1"
}

extension OpenCLDevice {
    /// Block sizes and path thresholds of the OpenCL kernels on this device.
    public var tiling: DeviceTiling {
        let t = tuning
        let prefill = t.attRows ? (t.rowsPrefill.first ?? t.prefill[0]) : t.prefill[0]
        let decode = t.decode[0], sparse = t.sparse[0]
        let gemm = [TileBoundary("M", t.tm, name: "gemm.TM"), TileBoundary("N", t.tn, name: "gemm.TN"), TileBoundary("K", t.tk, name: "gemm.TK")]
        var kernels: [KernelTiling] = [
            KernelTiling(.matmul, gemm, variant: "\(t.gemmCPU ? "GEMM_CPU" : "GPU") TM\(t.tm) TN\(t.tn) TK\(t.tk) WPT \(t.wptm)×\(t.wptn)"),
            KernelTiling(.groupedMatmul, gemm + [TileBoundary("T", t.tm, name: "gemm.TM (segment rows)", context: ["E": 1])]),
            KernelTiling(.int4Matmul, [
                TileBoundary("M", 9, .threshold, name: "int4 GEMV up to M 8, GEMM above"),
                TileBoundary("M", 3, .threshold, name: "GV_MAXM 2 → 4"), TileBoundary("M", 5, .threshold, name: "GV_MAXM 4 → 8"),
                TileBoundary("N", t.gvRows, name: "GV_ROWS"), TileBoundary("K", 32, name: "int4 32-element chunks"),
                TileBoundary("K", t.tk, name: "gemm.TK (int4_gemm)", context: ["M": 9]),
                TileBoundary("N", t.tn, name: "gemm.TN (int4_gemm)", context: ["M": 9]),
            ], variant: "GEMV \(t.gvVec ? "GV_VEC" : "GPU") WG \(t.gvWG) rows \(t.gvRows); GEMM above M 8"),
            KernelTiling(.int4GroupedMatmul, [
                TileBoundary("T", 9, .threshold, name: "grouped GEMV up to 8 rows per expert", context: ["E": 1]),
                TileBoundary("N", t.gvRows, name: "GV_ROWS"), TileBoundary("K", 32, name: "int4 32-element chunks"),
            ]),
            KernelTiling(.attention, [
                TileBoundary("Lq", 9, .threshold, name: "decode tiles up to G·Lq 8, prefill above", context: ["Hq": 1, "Hkv": 1]),
                TileBoundary("Lq", prefill.bq, name: "prefill BQ"), TileBoundary("Lk", prefill.bk, name: "prefill BK"),
                TileBoundary("Lk", decode.bk, name: "decode BK (split-KV)", context: ["Lq": 1]),
            ], variant: t.attRows ? "attention_fwd_rows \(prefill.bq)/\(prefill.bk)/\(prefill.rq)" : "flash \(prefill.bq)/\(prefill.bk)/\(prefill.rq)/\(prefill.tc)"
                + (t.attTiled ? ", attention_fwd_tiled 64×64 where D % 32 = 0 and Dv ∈ {64, 128}" : "")),
            KernelTiling(.sparseAttention, [TileBoundary("k", sparse.bk, name: "sparse BK"), TileBoundary("H", sparse.bq, name: "sparse BQ", context: ["Hkv": 1])]),
            KernelTiling(.lightningIndexer, [TileBoundary("S", t.iS, name: "indexer IS"), TileBoundary("T", t.it, name: "indexer IT")]),
            KernelTiling(.topK, [TileBoundary("S", t.sortMax + 1, .threshold, name: "topk S past SORT_MAX (select path)"),
                                 TileBoundary("k", t.topkWG, name: "topk work-group")]),
            KernelTiling(.moePermute, [TileBoundary("T", t.permuteBlock, name: "permute block (pairs)", context: ["k": 1])]),
            KernelTiling(.moeRouter, [TileBoundary("E", t.rowWG, name: "router work-group")]),
        ]
        for kind in [OpKind.rmsNorm, .addRmsNorm, .softmax] {
            kernels.append(KernelTiling(kind, [TileBoundary("D", t.rowWG, name: "row work-group"),
                                               TileBoundary("D", 8 * t.rowWG, name: "row work-group × float8")]))
        }
        return DeviceTiling(kernels: kernels, overrides: "POLYCHIP_OPENCL_TUNING=key=value,… or small")
    }

    /// The kernel entry and tiles a call uses (attention, INT4 and GEMM).
    public func path(of op: Op, inputs: [TensorDesc]) -> String? {
        let t = tuning
        switch op {
        case .matmul, .groupedMatmul:
            return "\(t.gemmCPU ? "GEMM_CPU" : "GPU") tiles \(t.tm)×\(t.tn)×\(t.tk)"
        case .int4Matmul:
            guard let m = inputs.first?.shape.first else { return nil }
            if m <= 8 { let gv = t.gvShape(m); return "int4_gemv GV_MAXM \(gv.maxM) rows \(gv.rows)" }
            return "int4_gemm tiles \(t.tm)×\(t.tn)×\(t.tk)"
        case .attention:
            guard inputs.count == 3, inputs[0].rank == 4 else { return nil }
            let (hq, lq, hkv) = (inputs[0].shape[1], inputs[0].shape[2], inputs[1].shape[1])
            let g = hq / max(1, hkv)
            if g * lq <= 8 { return "attention decode tiles \(t.decode[0].bq)/\(t.decode[0].bk)" }
            if t.attRows, let r = t.rowsPrefill.first { return "attention_fwd_rows \(r.bq)/\(r.bk)/\(r.rq)" }
            let (d, dv) = (inputs[0].shape[3], inputs[2].shape[3])
            if t.attTiled && d % 32 == 0 && (dv == 64 || dv == 128) { return "attention_fwd_tiled 64×64" }
            return "attention prefill tiles \(t.prefill[0].bq)/\(t.prefill[0].bk)"
        default:
            return nil
        }
    }
}
