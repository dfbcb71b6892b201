import COpenCL
import PolychipCore

/// Flash-attention tiling: `bq` query rows and `bk` keys per block, `rq` rows per
/// work-item, `tc` work-items per row (kernels/opencl/README.md §3).
public struct AttentionTiles: Sendable, Hashable {
    /// Query rows per work-group.
    public var bq: Int
    /// Keys per block.
    public var bk: Int
    /// Query rows per work-item.
    public var rq: Int
    /// Work-items sharing a row.
    public var tc: Int
    /// Creates a tiling.
    public init(bq: Int, bk: Int, rq: Int, tc: Int) { self.bq = bq; self.bk = bk; self.rq = rq; self.tc = tc }
    /// Work-items per work-group.
    public var threads: Int { (bq / rq) * tc }
    /// Local memory of a work-group for head dims (hd, hdv), in bytes.
    public func localBytes(hd: Int, hdv: Int) -> Int {
        4 * (bq * hd + max(bk * (hd + 1), bk * hdv) + tc + bq * (bk + 1) + 4 * bq + bk)
    }
    /// Local memory of a work-group of the row-private CPU kernel (`ATT_ROWS=1`, `tc` = 1)
    /// for head dims (hd, hdv) and `dc` float8 output dims per chunk, in bytes.
    public func rowsLocalBytes(hd: Int, hdv: Int, dc: Int) -> Int {
        4 * (bq * hd + hd * bk + bk * ((hdv + 8 * dc - 1) / (8 * dc) * 8 * dc))
    }
    var macros: [(String, Int)] { [("BQ", bq), ("BK", bk), ("RQ", rq), ("TC", tc)] }
}

/// Tile and work-group parameters of the kernels in kernels/opencl, per device.
///
/// Starts from kernels/opencl/README.md §6 for the vendor class (NVIDIA GPU, CPU device
/// such as PoCL, other) and is then clamped to the device's work-group size, work-item
/// sizes and local memory.
public struct OpenCLTuning: Sendable, Hashable {
    /// GEMM tile: `TM×TN` outputs per work-group, `TK`-deep K slabs, `WPTM×WPTN` per work-item.
    public var tm: Int, tn: Int, tk: Int, wptm: Int, wptn: Int
    /// Local-memory row padding of the GEMM slabs.
    public var lpad: Int
    /// Use the CPU register mapping of the GEMM core (`GEMM_CPU=1`, float8 accumulators).
    public var gemmCPU: Bool
    /// GPU mapping: fetch the next K slab into registers while multiplying the current one (`GEMM_PREFETCH`).
    public var gemmPrefetch: Bool = false
    /// INT4 GEMV: work-group size and output rows per work-group.
    public var gvWG: Int, gvRows: Int
    /// INT4 GEMV: the CPU vector path (`GV_VEC=1`, float8 accumulators) instead of the GPU one.
    public var gvVec: Bool = false
    /// INT4 GEMV, GPU path: 16-byte weight loads per row and work-item (`GV_WIDE=1`) or 4-byte ones.
    public var gvWide: Bool = true
    /// INT4 GEMV, GPU path: 32-element chunks loaded per step before the math (`GV_PAIR`, 1 or 2).
    public var gvPair: Int = 1
    /// Work-group size of the row kernels (rmsNorm, softmax) and of the MoE router/scan.
    public var rowWG: Int
    /// Pairs per block of the MoE permute kernels.
    public var permuteBlock: Int
    /// rmsNorm and softmax: the CPU vector paths (`ROW_VEC=1`, float8 per work-item, vector `exp`).
    public var rowVec: Bool = false
    /// Attention: the CPU mapping of the flash core (`ATT_CPU=1`, float8 dot products).
    public var attCPU: Bool = false
    /// Attention prefill: the register-tiled GPU kernel (`attention_fwd_tiled`; 256 work-items,
    /// 64×64 tiles) where head dims allow (D % 32 = 0, Dv ∈ {64, 128}).
    public var attTiled: Bool = false
    /// Attention prefill on CPU devices: the row-private kernel (`attention_fwd_rows`,
    /// `ATT_ROWS=1`; each work-item owns `rq` query rows, the work-group shares K/V blocks)
    /// with the `rowsPrefill` tilings instead of the flash core.
    public var attRows: Bool = false
    /// Row-private attention: float8 key vectors per score chunk (`KC`) and float8 output
    /// dims per P·V chunk (`DC`); `rq·KC` and `rq·DC` accumulators must fit the registers.
    public var attKC: Int = 2, attDC: Int = 2
    /// Row-private attention tilings (`tc` = 1: one work-item per row group), best first.
    public var rowsPrefill: [AttentionTiles] = []
    /// Attention tilings, best first, for prefill, decode (few query rows per kv head,
    /// split-KV) and DSA sparse attention; the first that fits the head dims is used.
    public var prefill: [AttentionTiles], decode: [AttentionTiles], sparse: [AttentionTiles]
    /// Lightning indexer: tokens × keys per work-group and per work-item.
    public var it: Int, iS: Int, rt: Int, rs: Int
    /// Lightning indexer: the CPU mapping (`IX_CPU=1`: keys staged transposed, `rs`
    /// contiguous keys per work-item as float8 lanes; needs `rs % 8 == 0`).
    public var ixCPU: Bool = false
    /// Top-K: local sort capacity and work-group size.
    public var sortMax: Int, topkWG: Int

    /// Work-items per GEMM work-group.
    var gemmLocal: [Int] { [tn / wptn, tm / wptm] }

    static func make(_ vendor: OpenCLVendorClass, _ limits: OpenCLLimits) -> OpenCLTuning {
        var t: OpenCLTuning
        switch vendor {
        case .nvidia:
            // lpad 4 keeps the slab rows 16-byte aligned for the float4 reads (GEMM_VEC)
            // with at most 2-way bank conflicts on the transposed slab stores.
            t = OpenCLTuning(tm: 128, tn: 128, tk: 8, wptm: 8, wptn: 8, lpad: 4, gemmCPU: false, gvWG: 64, gvRows: 8,
                             rowWG: 256, permuteBlock: 256,
                             prefill: [AttentionTiles(bq: 32, bk: 32, rq: 2, tc: 16), AttentionTiles(bq: 16, bk: 16, rq: 1, tc: 16),
                                       AttentionTiles(bq: 8, bk: 8, rq: 1, tc: 8)],
                             decode: [AttentionTiles(bq: 8, bk: 64, rq: 1, tc: 32), AttentionTiles(bq: 8, bk: 32, rq: 1, tc: 32),
                                      AttentionTiles(bq: 8, bk: 8, rq: 1, tc: 8)],
                             sparse: [AttentionTiles(bq: 8, bk: 32, rq: 1, tc: 16), AttentionTiles(bq: 8, bk: 8, rq: 1, tc: 8)],
                             it: 16, iS: 64, rt: 2, rs: 4, sortMax: 4096, topkWG: 512)
            t.gemmPrefetch = true
            t.attTiled = true
        case .cpu:
            // PoCL runs a work-group as loops over work-items: few, fat work-items with
            // vector accumulators; barriers are cheap region splits.
            t = OpenCLTuning(tm: 96, tn: 128, tk: 64, wptm: 6, wptn: 16, lpad: 0, gemmCPU: true, gvWG: 8, gvRows: 8,
                             rowWG: 64, permuteBlock: 256,
                             prefill: [AttentionTiles(bq: 32, bk: 64, rq: 4, tc: 8)],
                             decode: [AttentionTiles(bq: 8, bk: 64, rq: 1, tc: 32)],
                             sparse: [AttentionTiles(bq: 16, bk: 32, rq: 2, tc: 8)],
                             // INT4 GEMV 8 rows × 8 work-items (PoCL sweep 2026-11-23: 15.4 → 4.0 ms
                             // at M=1 N=4096 K=14336 G=32 with the chunk-outer GV_VEC path);
                             // indexer (IX_CPU) 16×128 tiles with 4 tokens × 16 keys per work-item
                             // (PoCL sweep 2026-11-23: 107 → 44 ms at the bench suite's shape);
                             // top-k 32 work-items over a 4096-entry local sort (2026-11-22 sweep:
                             // 137 → 27 ms)
                             it: 16, iS: 128, rt: 4, rs: 16, sortMax: 4096, topkWG: 32)
            t.ixCPU = true
            t.gvVec = true
            t.attCPU = true
            // Row-private prefill: 6 rows per work-item, 2 float8 chunks (12 ymm
            // accumulators in both products), 16 work-items, 64-key blocks (PoCL sweep
            // 2026-11-23 at B1 Hq32 Hkv8 L2048 D128 causal: 96/64/6 0.49 s, 48/64/6
            // 0.55 s, 8 rows x 1 chunk 0.58 s, 4 rows x 3 chunks 0.60 s; flash core 1.9 s).
            t.attRows = true
            t.rowsPrefill = [AttentionTiles(bq: 96, bk: 64, rq: 6, tc: 1)]
            t.rowVec = true
        case .other:
            t = OpenCLTuning(tm: 64, tn: 64, tk: 16, wptm: 4, wptn: 4, lpad: 1, gemmCPU: false, gvWG: 64, gvRows: 4,
                             rowWG: 128, permuteBlock: 128,
                             prefill: [AttentionTiles(bq: 32, bk: 32, rq: 2, tc: 8), AttentionTiles(bq: 16, bk: 16, rq: 1, tc: 16),
                                       AttentionTiles(bq: 8, bk: 8, rq: 1, tc: 8)],
                             decode: [AttentionTiles(bq: 8, bk: 32, rq: 1, tc: 16), AttentionTiles(bq: 8, bk: 8, rq: 1, tc: 8)],
                             sparse: [AttentionTiles(bq: 8, bk: 16, rq: 1, tc: 8), AttentionTiles(bq: 8, bk: 8, rq: 1, tc: 8)],
                             it: 16, iS: 32, rt: 2, rs: 2, sortMax: 1024, topkWG: 128)
        }
        let maxWG = limits.maxWorkGroupSize
        let item0 = limits.maxWorkItemSizes.first ?? maxWG
        let item1 = limits.maxWorkItemSizes.count > 1 ? limits.maxWorkItemSizes[1] : maxWG
        // GEMM: fall back to a small generic tile when the work-group or local memory does not fit.
        func gemmFits(_ t: OpenCLTuning) -> Bool {
            t.gemmLocal[0] * t.gemmLocal[1] <= maxWG && t.gemmLocal[0] <= item0 && t.gemmLocal[1] <= item1
                && 4 * t.tk * (t.tm + t.tn + 2 * t.lpad) <= limits.localMemBytes
        }
        if !gemmFits(t) { (t.tm, t.tn, t.tk, t.wptm, t.wptn, t.lpad, t.gemmCPU) = (32, 32, 16, 4, 4, 1, false) }
        if !gemmFits(t) { (t.tm, t.tn, t.tk, t.wptm, t.wptn) = (8, 8, 8, 2, 2) }
        func pow2Fit(_ v: Int, _ cap: Int) -> Int { var x = v; while x > cap && x > 1 { x /= 2 }; return x }
        t.rowWG = pow2Fit(t.rowWG, min(maxWG, item0))
        t.permuteBlock = pow2Fit(t.permuteBlock, min(maxWG, item0))
        t.topkWG = pow2Fit(t.topkWG, min(maxWG, item0))
        t.gvWG = pow2Fit(t.gvWG, min(maxWG, item0))
        let small = AttentionTiles(bq: 2, bk: 2, rq: 1, tc: 2)
        t.prefill = t.prefill.filter { $0.threads <= min(maxWG, item0) } + [small]
        t.decode = t.decode.filter { $0.threads <= min(maxWG, item0) } + [small]
        t.sparse = t.sparse.filter { $0.threads <= min(maxWG, item0) } + [small]
        t.rowsPrefill = t.rowsPrefill.filter { $0.threads <= min(maxWG, item0) }
        while (t.iS / t.rs) * (t.it / t.rt) > maxWG && t.it > t.rt { t.it /= 2 }
        // attention_fwd_tiled: 256 work-items and about 40 KB of local memory.
        if maxWG < 256 || item0 < 256 || limits.localMemBytes < 40 * 1024 { t.attTiled = false }
        while 8 * t.sortMax + 4 * (264 + t.topkWG) > limits.localMemBytes && t.sortMax > 64 { t.sortMax /= 2 }
        return t
    }

    /// Applies `POLYCHIP_OPENCL_TUNING` overrides, e.g. `"gvWG=16,rowWG=32,tm=64,tn=64"`
    /// (keys are this type's scalar field names, switches 0 or 1; attention tilings as
    /// `prefill=BQ/BK/RQ/TC`, likewise `decode`, `sparse` and `rowsPrefill`; `small` is the preset of
    /// small tiles the conformance suite reruns with), then checks the
    /// result against the kernels' requirements and the device's limits (``validate(_:origin:)``).
    /// For tuning runs on new devices.
    /// - Throws: `PolychipError.invalidArgument` naming the key for an unknown key, a value that
    ///   is not a whole number, or a value the kernels cannot run with (a zero tile hangs a
    ///   kernel's loop; a work-group over the device limit fails its launch).
    func overridden(by spec: String?, limits: OpenCLLimits, origin: String = "POLYCHIP_OPENCL_TUNING") throws -> OpenCLTuning {
        guard let spec, !spec.isEmpty else { return self }
        func bad(_ key: String, _ reason: String) -> PolychipError {
            .invalidArgument(kernel: "opencl", argument: "\(origin) \(key)", reason: reason)
        }
        var t = self
        // `small` expands to the preset (OpenCLTiling.swift), which later items may override.
        let items = spec.split(separator: ",").flatMap { $0.trimmingCharacters(in: .whitespaces) == "small"
            ? OpenCLTuning.smallPreset.split(separator: ",") : [$0] }
        for item in items {
            let kv = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2 else { throw bad("\(Quoted(item))", "expected KEY=VALUE") }
            let (key, text) = (kv[0], kv[1])
            if ["prefill", "decode", "sparse", "rowsPrefill"].contains(key) {
                let tiles = text.split(separator: "/", omittingEmptySubsequences: false).map { Int($0) }
                guard tiles.count == 4, let bq = tiles[0], let bk = tiles[1], let rq = tiles[2], let tc = tiles[3] else {
                    throw bad(key, "expected BQ/BK/RQ/TC whole numbers, got \(Quoted(text))")
                }
                let a = AttentionTiles(bq: bq, bk: bk, rq: rq, tc: tc)
                switch key {
                case "prefill": t.prefill.insert(a, at: 0)
                case "decode": t.decode.insert(a, at: 0)
                case "sparse": t.sparse.insert(a, at: 0)
                default: t.rowsPrefill.insert(a, at: 0)
                }
                continue
            }
            guard let v = Int(text) else { throw bad(Quoted(key).description, "expected a whole number, got \(Quoted(text))") }
            func flag() throws -> Bool {
                guard v == 0 || v == 1 else { throw bad(key, "is a switch: 0 or 1, got \(v)") }
                return v == 1
            }
            switch key {
            case "tm": t.tm = v
            case "tn": t.tn = v
            case "tk": t.tk = v
            case "wptm": t.wptm = v
            case "wptn": t.wptn = v
            case "lpad": t.lpad = v
            case "gemmCPU": t.gemmCPU = try flag()
            case "gemmPrefetch": t.gemmPrefetch = try flag()
            case "gvWG": t.gvWG = v
            case "gvRows": t.gvRows = v
            case "gvVec": t.gvVec = try flag()
            case "gvWide": t.gvWide = try flag()
            case "gvPair": t.gvPair = v
            case "attCPU": t.attCPU = try flag()
            case "rowVec": t.rowVec = try flag()
            case "attTiled": t.attTiled = try flag()
            case "attRows": t.attRows = try flag()
            case "attKC": t.attKC = v
            case "attDC": t.attDC = v
            case "rowWG": t.rowWG = v
            case "permuteBlock": t.permuteBlock = v
            case "ixCPU": t.ixCPU = try flag()
            case "it": t.it = v
            case "iS": t.iS = v
            case "rt": t.rt = v
            case "rs": t.rs = v
            case "sortMax": t.sortMax = v
            case "topkWG": t.topkWG = v
            default:
                throw bad(Quoted(key).description, "unknown key; known: tm, tn, tk, wptm, wptn, lpad, gemmCPU, gemmPrefetch, gvWG, gvRows, "
                          + "gvVec, gvWide, gvPair, attCPU, rowVec, attTiled, attRows, attKC, attDC, rowWG, permuteBlock, ixCPU, it, iS, "
                          + "rt, rs, sortMax, topkWG, prefill, decode, sparse, rowsPrefill")
            }
        }
        try t.validate(limits, origin: origin)
        return t
    }

    /// Checks every tile parameter against kernels/opencl/README.md's requirements and the
    /// device's work-group and local-memory limits.
    func validate(_ limits: OpenCLLimits, origin: String) throws {
        func bad(_ key: String, _ reason: String) -> PolychipError {
            .invalidArgument(kernel: "opencl", argument: "\(origin) \(key)", reason: reason)
        }
        let maxWG = limits.maxWorkGroupSize
        let item0 = limits.maxWorkItemSizes.first ?? maxWG
        let item1 = limits.maxWorkItemSizes.count > 1 ? limits.maxWorkItemSizes[1] : maxWG
        let bound = 1 << 20
        for (k, v) in [("tm", tm), ("tn", tn), ("tk", tk), ("wptm", wptm), ("wptn", wptn), ("gvWG", gvWG), ("gvRows", gvRows),
                       ("attKC", attKC), ("attDC", attDC), ("rowWG", rowWG), ("permuteBlock", permuteBlock), ("it", it), ("iS", iS),
                       ("rt", rt), ("rs", rs), ("sortMax", sortMax), ("topkWG", topkWG)] where v < 1 || v > bound {
            throw bad(k, "must be in 1…\(bound), got \(v)")
        }
        guard (0...64).contains(lpad) else { throw bad("lpad", "must be in 0…64, got \(lpad)") }
        guard (1...4).contains(gvPair) else { throw bad("gvPair", "must be in 1…4, got \(gvPair)") }
        guard tm % wptm == 0 else { throw bad("tm", "TM \(tm) must be a multiple of WPTM \(wptm)") }
        guard tn % wptn == 0 else { throw bad("tn", "TN \(tn) must be a multiple of WPTN \(wptn)") }
        guard tk % 2 == 0 else { throw bad("tk", "TK must be even (the INT4 GEMM reads nibble pairs), got \(tk)") }
        if gemmCPU { guard wptn % 8 == 0 else { throw bad("wptn", "GEMM_CPU needs WPTN a multiple of 8, got \(wptn)") } }
        let (lx, ly) = (tn / wptn, tm / wptm)
        guard lx * ly <= maxWG, lx <= item0, ly <= item1 else {
            throw bad("tm", "the GEMM work-group \(lx)×\(ly) exceeds the device's \(maxWG) work-items (\(item0)×\(item1))")
        }
        let gemmLocalBytes = gemmCPU ? 4 * (tm * (tk + lpad) + tk * (tn + lpad)) : 4 * tk * (tm + tn + 2 * lpad)
        guard gemmLocalBytes <= limits.localMemBytes else {
            throw bad("tk", "the GEMM tiles need \(gemmLocalBytes) bytes of local memory; the device has \(limits.localMemBytes)")
        }
        for (k, v) in [("gvWG", gvWG), ("rowWG", rowWG), ("topkWG", topkWG), ("sortMax", sortMax)] where v & (v - 1) != 0 {
            throw bad(k, "must be a power of two, got \(v)")
        }
        for (k, v) in [("gvWG", gvWG), ("rowWG", rowWG), ("permuteBlock", permuteBlock), ("topkWG", topkWG)] where v > min(maxWG, item0) {
            throw bad(k, "\(v) work-items exceed the device's work-group limit \(min(maxWG, item0))")
        }
        guard it % rt == 0, iS % rs == 0 else { throw bad("it", "IT \(it) must be a multiple of RT \(rt) and IS \(iS) of RS \(rs)") }
        if ixCPU { guard rs % 8 == 0 else { throw bad("rs", "IX_CPU needs RS a multiple of 8, got \(rs)") } }
        guard (iS / rs) * (it / rt) <= maxWG else {
            throw bad("it", "the indexer work-group \(iS / rs)×\(it / rt) exceeds the device's \(maxWG) work-items")
        }
        guard 8 * sortMax + 4 * (264 + topkWG) <= limits.localMemBytes else {
            throw bad("sortMax", "the top-k sort needs \(8 * sortMax + 4 * (264 + topkWG)) bytes of local memory; the device has \(limits.localMemBytes)")
        }
        for (k, list) in [("prefill", prefill), ("decode", decode), ("sparse", sparse), ("rowsPrefill", rowsPrefill)] {
            for a in list {
                guard [a.bq, a.bk, a.rq, a.tc].allSatisfy({ (1...bound).contains($0) }), a.bq % a.rq == 0 else {
                    throw bad(k, "tiles \(a.bq)/\(a.bk)/\(a.rq)/\(a.tc) must be whole numbers ≥ 1 with BQ a multiple of RQ")
                }
                guard a.threads <= min(maxWG, item0) else {
                    throw bad(k, "tiles \(a.bq)/\(a.bk)/\(a.rq)/\(a.tc) need \(a.threads) work-items; the device allows \(min(maxWG, item0))")
                }
            }
        }
    }

    /// `GV_MAXM` and `GV_ROWS` for an INT4 GEMV over up to `m` activation rows (`grouped`:
    /// the grouped GEMV, m rows per expert segment).
    /// GPUs: `GV_MAXM` 1 for decode (M = 1), else 8, and always 8 for the grouped GEMV, with
    /// the tuned rows (few variants keep compile time down; the int4 program is the slowest
    /// to compile; the per-M variants below are measured on PoCL only).
    /// CPU devices (`GV_VEC`): `GV_MAXM` is m rounded up to a power of two, and the rows stay
    /// `gvRows` up to 32 float8 accumulators (`GV_MAXM × GV_ROWS`), fewer beyond. Measured on
    /// PoCL at N 4096 K 14336 G 32 (2026-11-23): one `GV_MAXM = 8` variant for every M > 1
    /// took 12.8 ms at M = 2 (5.7× cpu:0); with this rule 5.0 ms (2.1×). Fewer rows per variant
    /// were slower up to M = 4 (the activations are reused across the rows; spilled
    /// accumulators cost less), and 4 rows beat 8 at M = 8.
    func gvShape(_ m: Int, grouped: Bool = false) -> (maxM: Int, rows: Int) {
        guard gvVec else { return (m <= 1 && !grouped ? 1 : 8, gvRows) }
        let maxM = m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : 8
        return (maxM, max(1, min(gvRows, 32 / maxM)))
    }
}
