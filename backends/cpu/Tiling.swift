import CPolychipKernels
import Foundation
import PolychipCore

// The CPU backend's tiling as the conformance suite sees it: overrides of every block size
// (`POLYCHIP_CPU_TILING`, `cpu:tiles=small`), the report of block sizes and path
// thresholds per kernel, and the path a call takes. The sizes themselves live in
// `GemmBlocking` (attention-family ones in its `AttentionBlocking`), which every kernel
// reads; nothing here is a second copy of them. Each kernel family runs on its own table
// (`CPUKernelPlan`), so each is reported with its own table's blocking.

extension GemmBlocking {
    /// The override keys, each with the field it sets and the granule it is rounded down to
    /// (never below one granule).
    static func overrideKeys(mr: Int, nr: Int) -> [(key: String, granule: Int, path: WritableKeyPath<GemmBlocking, Int>)] {
        [("gemm.kc", 8, \.kc), ("gemm.mc", mr, \.mc), ("gemm.nc", nr, \.nc),
         ("gemm.serialMaxWork", 1, \.serialMaxWork), ("gemm.packBudgetBytes", 4096, \.packBudgetBytes),
         ("int4.gemvMaxRows", 1, \.int4GemvMaxRows), ("int4.gemvTaskBytes", 64, \.gemvTaskBytes),
         ("attention.rows", mr, \.attention.br), ("attention.keys", nr, \.attention.bc),
         ("attention.prepackKeys", nr, \.attention.prepackKeys), ("attention.prepackLimitBytes", 1, \.attention.prepackLimitBytes),
         ("attention.splitUnits", 1, \.attention.splitKVMaxUnits), ("attention.splitMinKeys", 1, \.attention.splitKVMinKeys),
         ("attention.splitTasks", 1, \.attention.splitKVTasks),
         ("indexer.rows", mr, \.attention.indexerRows), ("indexer.keys", nr, \.attention.indexerKeys),
         ("indexer.chunk", nr, \.attention.indexerTaskKeys), ("indexer.packKeys", nr, \.attention.indexerPackKeys),
         ("grouped.columns", nr, \.groupedColumns), ("moe.columns", nr, \.moeColumns),
         ("moe.wholeRowExperts", 1, \.moeWholeRowExperts),
         ("element.grain", 1, \.elementGrain), ("element.block", 1, \.elementBlock),
         ("element.streamBytes", 1, \.streamStoreBytes)]
    }

    /// The `small` preset: one or two tiles per block, so the multi-block, parallel, chunked,
    /// split-KV, unpacked-K/V and streaming-store paths run at the small shapes of the
    /// conformance suite.
    static let smallPreset: [(String, Int)] = [
        ("gemm.kc", 16), ("gemm.mc", 1), ("gemm.nc", 1), ("gemm.serialMaxWork", 512), ("gemm.packBudgetBytes", 4096),
        ("int4.gemvTaskBytes", 64), ("attention.rows", 1), ("attention.keys", 1), ("attention.prepackKeys", 1),
        ("attention.prepackLimitBytes", 8192), ("attention.splitUnits", 64), ("attention.splitMinKeys", 64),
        ("attention.splitTasks", 8), ("indexer.rows", 1), ("indexer.keys", 1), ("indexer.chunk", 1), ("indexer.packKeys", 1),
        ("grouped.columns", 1), ("moe.columns", 1), ("moe.wholeRowExperts", 3), ("element.grain", 64), ("element.block", 16),
        ("element.streamBytes", 4096),
    ]

    /// This blocking with `spec`'s overrides applied: `key=value` pairs (the keys of
    /// ``overrideKeys(mr:nr:)``, e.g. `gemm.kc=16,attention.keys=32`) or the preset `small`.
    /// Values are rounded down to the field's granule (a multiple of MR, NR or 8) and never
    /// below one granule; `int4.gemvMaxRows` must be 1…8 (the GEMV kernels' M).
    /// - Throws: ``PolychipError/invalidArgument(kernel:argument:reason:)`` naming `source`
    ///   for an unknown key or a value out of range.
    public func overridden(by spec: String, source: String) throws -> GemmBlocking {
        var out = self
        let keys = GemmBlocking.overrideKeys(mr: mr, nr: nr)
        for (key, value) in try TilingOverrides.parse(spec, source: source, presetSmall: GemmBlocking.smallPreset, limit: 1 << 30) {
            guard let entry = keys.first(where: { $0.key == key }) else {
                throw PolychipError.invalidArgument(kernel: "tiling", argument: source,
                                                    reason: "unknown key '\(String(key.prefix(64)))' (\(keys.map(\.key).joined(separator: ", ")) or small)")
            }
            if key == "int4.gemvMaxRows" && value > 8 {
                throw PolychipError.invalidArgument(kernel: "tiling", argument: source, reason: "int4.gemvMaxRows must be 1…8, got \(value)")
            }
            out[keyPath: entry.path] = max(entry.granule, value / entry.granule * entry.granule)
        }
        return out
    }

    /// Whether a GEMM of this size runs as one serial task (else the parallel packed path).
    func isSerial(m: Int, n: Int, k: Int) -> Bool { m * n * k <= serialMaxWork }

    /// Weight rows per INT4 GEMV task: about `gemvTaskBytes` of packed weights, a multiple of
    /// 24 rows (whole row groups of the GEMV microkernels, which take 8 or 12 rows at a time).
    func gemvRowsPerTask(n: Int, k: Int) -> Int {
        let rows = max(24, gemvTaskBytes / max(1, k / 2) / 24 * 24)
        return min(rows, (n + 23) / 24 * 24)
    }

    /// Smallest N that, with `m` rows and depth `k`, takes the parallel GEMM path (`+ extra`
    /// columns so the case is not a multiple of anything).
    func parallelN(m: Int, k: Int) -> Int { serialMaxWork / max(1, m * k) + nr + 3 }
}

extension CPUDevice {
    /// The CPU kernels' block sizes and path thresholds, from each kernel family's blocking
    /// (``blocking(for:)``, so overrides show).
    public var tiling: DeviceTiling {
        let bl = blocking(for: .gemm), ab = blocking(for: .attention), eb = blocking(for: .moe)
        let (mr, nr, kc, mc) = (bl.mr, bl.nr, bl.kc, bl.mc)
        let isa = plan.choices[.gemm]!.isa.rawValue
        func shape(_ f: CPUKernelFamily) -> String {
            let b = blocking(for: f)
            return "\(plan.choices[f]!.isa.rawValue) \(b.mr)×\(b.nr)"
        }
        // Vector loops of the element-wise kernels: 8-lane bodies unrolled to 32 on x86, 4 and
        // 16 on NEON (vector.c); every length crosses their tails.
        let lanes = isa == "neon" ? [4, 16] : isa == "scalar" ? [1] : [8, 32]
        func vector(_ dim: String, _ ctx: [String: Int] = [:]) -> [TileBoundary] {
            lanes.map { TileBoundary(dim, $0, name: "vector.lanes\($0)", context: ctx) }
        }
        let parallelCtx: (Int, Int) -> [String: Int] = { m, k in ["M": m, "N": bl.parallelN(m: m, k: k)] }
        var gemm = [
            TileBoundary("M", mr, name: "gemm.mr"), TileBoundary("N", nr, name: "gemm.nr"),
            TileBoundary("K", kc, name: "gemm.kc (serial)"),
            TileBoundary("K", kc, name: "gemm.kc (parallel)", context: parallelCtx(2 * mr + 1, kc + 1)),
            TileBoundary("M", mc, name: "gemm.mc (parallel)", context: ["K": 16, "N": bl.parallelN(m: mc, k: 16)]),
            TileBoundary("N", bl.nc, name: "gemm.nc (panels past the pack budget)",
                         context: ["M": mr + 1, "K": max(kc + 1, bl.packBudgetBytes / 4 / max(1, bl.nc))]),
        ]
        if plan.bf16Pairs { gemm.append(TileBoundary("K", bl.kcPairs, name: "gemm.kcPairs (bf16 pair GEMM: 2 × KC)")) }
        // Attention: the split-KV threshold with one row block per kv head; the K/V pre-pack
        // limit as the first Lk that is packed block by block at the suite's base head dims.
        let attn = ab.attention
        let splitCtx = ["B": 1, "Hkv": 1, "Lq": 1]
        let packCtx = ["B": 1, "Hkv": 2, "D": 16, "Dv": 16, "Lq": attn.br + 1]
        let unpackedFrom = FlashPlan.firstUnpackedKeys(ab, heads: 2, d: 16, dv: 16)
        var kernels: [KernelTiling] = [
            KernelTiling(.matmul, gemm,
                         variant: "packed GEMM, microkernel \(shape(.gemm)), KC \(kc) MC \(mc) NC \(bl.nc); serial up to M·N·K \(bl.serialMaxWork)"
                             + (plan.bf16Pairs ? "; bf16 on vdpbf16ps pairs, KC \(bl.kcPairs)" : "")),
            KernelTiling(.groupedMatmul, [
                TileBoundary("N", eb.groupedColumns, name: "grouped.columns"), TileBoundary("K", eb.kc, name: "gemm.kc"),
                TileBoundary("T", eb.mc, name: "gemm.mc (segment rows)", context: ["E": 1]),
                TileBoundary("T", eb.mr, name: "gemm.mr (segment rows)", context: ["E": 1]),
            ], variant: "segment tasks of MC rows × \(eb.groupedColumns) columns, microkernel \(shape(.moe))"),
            KernelTiling(.int4Matmul, [
                TileBoundary("M", bl.int4GemvMaxRows + 1, .threshold, name: "int4.gemvMaxRows (GEMM above)"),
                TileBoundary("M", 8, name: "int4.gemv M chunk"),
                TileBoundary("K", 64, name: "int4.k64 (K tail)"), TileBoundary("G", 64, name: "int4.g64 (g % 64 = 32 path)"),
                TileBoundary("N", 4, name: "int4.gemv rows"), TileBoundary("N", 24, name: "int4.gemv row group"),
                TileBoundary("N", bl.gemvRowsPerTask(n: 1 << 20, k: 256), name: "int4.gemvTaskRows (K 256)", context: ["K": 256]),
                TileBoundary("K", kc, name: "gemm.kc (INT4 B panels)", context: ["M": bl.int4GemvMaxRows + 1]),
            ], variant: "GEMV for M ≤ \(bl.int4GemvMaxRows) (\(pck_int4_denormals_fast() != 0 ? "denormal nibbles" : "converted nibbles")), packed GEMM above"),
            KernelTiling(.int4GroupedMatmul, [
                TileBoundary("T", eb.int4GemvMaxRows + 1, .threshold, name: "int4.gemvMaxRows (segment rows)", context: ["E": 1]),
                TileBoundary("K", 64, name: "int4.k64 (K tail)"), TileBoundary("N", eb.groupedColumns, name: "grouped.columns"),
                TileBoundary("K", eb.kc, name: "gemm.kc (INT4 B panels)", context: ["T": eb.int4GemvMaxRows + 1, "E": 1]),
            ]),
            KernelTiling(.attention, [
                TileBoundary("Lq", attn.br, .threshold, name: "attention.rows (per-head row blocks from here)"),
                TileBoundary("Lq", attn.br, name: "attention.rows"),
                TileBoundary("Lk", attn.bc, name: "attention.keys"),
                TileBoundary("Lk", attn.prepackKeys, name: "attention.prepackKeys (K pre-pack tasks)", context: ["Lq": attn.br + 1]),
                TileBoundary("Lk", unpackedFrom, .threshold, name: "attention.prepackLimitBytes (K/V packed per block from here)", context: packCtx),
                TileBoundary("Lk", attn.splitKVMinKeys, .threshold, name: "attention.splitMinKeys (split-KV from here)", context: splitCtx),
                TileBoundary("Dv", ab.nr, name: "gemm.nr (output slivers)"), TileBoundary("Lq", ab.mr, name: "gemm.mr (row tiles)"),
            ], variant: "flash, microkernel \(shape(.attention)), \(attn.br) query rows × \(attn.bc) keys per block, "
                + "split-KV under \(attn.splitKVMaxUnits) units from \(attn.splitKVMinKeys) keys into ~\(attn.splitKVTasks) tasks"),
            KernelTiling(.sparseAttention, [
                TileBoundary("k", attn.bc, name: "attention.keys (selected keys)"),
                TileBoundary("H", ab.mr, name: "gemm.mr (query heads per kv head)", context: ["Hkv": 1]),
                TileBoundary("Dv", ab.nr, name: "gemm.nr"),
            ]),
            KernelTiling(.lightningIndexer, [
                TileBoundary("S", attn.indexerKeys, name: "indexer.keys"), TileBoundary("S", attn.indexerTaskKeys, name: "indexer.chunk"),
                TileBoundary("S", attn.indexerPackKeys, name: "indexer.packKeys"),
                TileBoundary("T", max(1, attn.indexerRows / 4), name: "indexer.rows / Hi (tokens per tile)", context: ["Hi": 4]),
            ]),
        ]
        let rowKernels: [OpKind] = [.rmsNorm, .addRmsNorm, .softmax, .quantizeInt4, .dequantizeInt4, .topK]
        let normRows: Set<OpKind> = [.rmsNorm, .addRmsNorm, .softmax]
        for kind in rowKernels {
            let d = kind == .topK ? "S" : normRows.contains(kind) ? "D" : "K"
            let rows = kind == .topK ? "T" : normRows.contains(kind) ? "R" : "N"
            var b = [TileBoundary(rows, 2, .threshold, name: "element.grain (row chunks)", context: [d: bl.elementGrain + 1])]
            if normRows.contains(kind) { b += vector(d) }
            if kind == .rmsNorm {
                // f32 outputs of at least streamStoreBytes are written with non-temporal stores.
                b.append(TileBoundary("R", (bl.streamStoreBytes + 63) / 64, .threshold,
                                      name: "element.streamBytes (rmsNorm non-temporal stores)", context: ["D": 16]))
            }
            kernels.append(KernelTiling(kind, b))
        }
        for kind in [OpKind.silu, .swiglu, .add, .scale] {
            kernels.append(KernelTiling(kind, [TileBoundary("D", bl.elementGrain, name: "element.grain", context: ["R": 1]),
                                               TileBoundary("D", bl.elementBlock, name: "element.block (16-bit widening)", context: ["R": 1])]
                                        + vector("D")))
        }
        kernels.append(KernelTiling(.rope, [TileBoundary("T", 2, .threshold, name: "element.grain (token chunks)",
                                                         context: ["H": 4, "D": bl.elementGrain / 4 + 2])]))
        kernels.append(KernelTiling(.moeLayer, [
            TileBoundary("E", eb.moeWholeRowExperts, .threshold, name: "moe.wholeRowExperts", context: ["T": 4 * eb.moeWholeRowExperts]),
            TileBoundary("F", eb.moeColumns, name: "moe.columns"),
            TileBoundary("T", eb.int4GemvMaxRows + 1, .threshold, name: "int4.gemvMaxRows (rows per expert)", context: ["E": 1]),
        ], variant: "expert GEMMs on microkernel \(shape(.moe))"))
        return DeviceTiling(kernels: kernels, overrides: "POLYCHIP_CPU_TILING=key=value,… or small; selector cpu:tiles=small")
    }

    /// The path `op` takes for these inputs, from the same blocking decisions the kernels
    /// make (`nil` for kernels with a single path).
    public func path(of op: Op, inputs: [TensorDesc]) -> String? {
        func blocks(_ n: Int, _ b: Int) -> Int { (n + b - 1) / max(1, b) }
        switch op {
        case .matmul(let tb):
            guard inputs.count == 2, inputs[0].rank == 2, inputs[1].rank == 2 else { return nil }
            let dt = inputs[0].dtype
            let bl = blocking(for: CPUKernelFamily.of(op, dtype: dt))
            let pairs = dt == .bf16 && plan.bf16Pairs
            let kc = pairs ? bl.kcPairs : bl.kc
            let (m, k) = (inputs[0].shape[0], inputs[0].shape[1])
            let n = inputs[1].shape[tb ? 0 : 1]
            let kind = pairs ? "bf16 pair gemm" : "gemm"
            if bl.isSerial(m: m, n: n, k: k) { return "\(kind) serial, \(blocks(k, kc)) K block(s)" }
            let panel = k * blocks(n, bl.nr) * bl.nr * 4 <= max(bl.packBudgetBytes, bl.nc * kc * 4) ? "whole B packed" : "B in panels"
            return "\(kind) parallel, \(blocks(m, bl.mc))+ A block(s), \(blocks(k, kc)) K block(s), \(panel)"
        case .int4Matmul:
            guard inputs.count >= 2, inputs[0].rank == 2, inputs[1].rank >= 1 else { return nil }
            let bl = blocking(for: .gemm)
            let (m, k) = (inputs[0].shape[0], inputs[0].shape[1])
            let tail = k % 64 == 0 ? "" : ", K tail \(k % 64)"
            if m <= bl.int4GemvMaxRows {
                return "int4 GEMV M \(m), tasks of \(bl.gemvRowsPerTask(n: inputs[1].shape[0], k: k)) rows\(tail)"
            }
            return "int4 GEMM (INT4 B panels), \(blocks(k, bl.kc)) K block(s)\(tail)"
        case .attention:
            guard inputs.count == 3, inputs[0].rank == 4, inputs[1].rank == 4, inputs[2].rank == 4 else { return nil }
            let bl = blocking(for: .attention)
            let (b, hq, lq, d) = (inputs[0].shape[0], inputs[0].shape[1], inputs[0].shape[2], inputs[0].shape[3])
            let (hkv, lk, dv) = (inputs[1].shape[1], inputs[1].shape[2], inputs[2].shape[3])
            let plan = FlashPlan(bl, b: b, hq: hq, hkv: hkv, lq: lq, lk: lk, d: d, dv: dv)
            return "attention \(plan.perHead ? "per-head" : "head-spanning") row blocks (\(plan.rowBlocks)), "
                + "\(blocks(lk, bl.attention.bc)) key block(s), K/V \(plan.prepack ? "pre-packed per kv head" : "packed per block")"
                + (plan.chunks > 1 ? ", split-KV \(plan.chunks) chunks" : "")
        case .rmsNorm, .addRmsNorm, .softmax, .topK, .quantizeInt4, .dequantizeInt4:
            guard let x = inputs.first, x.rank >= 1 else { return nil }
            let bl = blocking(for: .gemm)
            let d = x.shape.last!, rows = x.elementCount / max(1, d)
            let chunks = rows * d > bl.elementGrain ? "rows in chunks" : "one row chunk"
            if case .rmsNorm = op, x.dtype == .f32, x.elementCount * 4 >= bl.streamStoreBytes {
                return chunks + ", non-temporal stores"
            }
            return chunks
        default:
            return nil
        }
    }
}

/// How flash attention splits a call into tasks: the decisions of `CPUKernels.attention`,
/// in one place so the kernel and ``CPUDevice/path(of:inputs:)`` cannot disagree.
struct FlashPlan {
    /// Query rows per block.
    let br: Int
    /// Row blocks within one query head (`lq ≥ br`), else spanning the group's heads (decode).
    let perHead: Bool
    /// Row blocks per kv head, and per query head when `perHead`.
    let rowBlocks: Int, blocksPerHead: Int
    /// Keys per split-KV chunk and the number of chunks (1: no split).
    let chunkKeys: Int, chunks: Int
    /// Tasks before the split: batch × kv heads × row blocks.
    let units: Int
    /// Whether K and V are packed once per kv head before the blocks run: several row blocks
    /// reuse them and the packed copy fits `prepackLimitBytes`.
    let prepack: Bool

    init(_ bl: GemmBlocking, b: Int, hq: Int, hkv: Int, lq: Int, lk: Int, d: Int, dv: Int) {
        let ab = bl.attention
        let group = hq / max(1, hkv)
        br = ab.br
        let bcK = ab.bc
        perHead = lq >= br
        blocksPerHead = perHead ? (lq + br - 1) / br : 0
        rowBlocks = perHead ? group * blocksPerHead : (group * lq + br - 1) / br
        units = b * hkv * rowBlocks
        if units < ab.splitKVMaxUnits && lk >= ab.splitKVMinKeys {
            let want = (ab.splitKVTasks + units - 1) / max(1, units)
            chunkKeys = max(bcK, ((lk + want - 1) / max(1, want) + bcK - 1) / bcK * bcK)
        } else {
            chunkKeys = max(1, lk)
        }
        chunks = max(1, (lk + chunkKeys - 1) / chunkKeys)  // Lk = 0: one chunk of no keys, rows give 0
        prepack = rowBlocks > 1 && FlashPlan.packedKVBytes(bl, heads: b * hkv, lk: lk, d: d, dv: dv) <= ab.prepackLimitBytes
    }

    /// Bytes of K and V packed into `NR`-wide slivers for `heads` kv heads.
    static func packedKVBytes(_ bl: GemmBlocking, heads: Int, lk: Int, d: Int, dv: Int) -> Int {
        let nr = max(1, bl.nr)
        return heads * ((lk + nr - 1) / nr * nr * d + (dv + nr - 1) / nr * nr * lk) * 4
    }

    /// The fewest keys whose packed K and V exceed `prepackLimitBytes` (`heads` kv heads).
    static func firstUnpackedKeys(_ bl: GemmBlocking, heads: Int, d: Int, dv: Int) -> Int {
        var (lo, hi) = (1, 1 << 32)  // the byte count grows with Lk
        while lo < hi {
            let mid = (lo + hi) / 2
            if packedKVBytes(bl, heads: heads, lk: mid, d: d, dv: dv) > bl.attention.prepackLimitBytes { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }
}
