import CPolychipKernels
import Foundation
import PolychipCore

// The CPU backend's tiling as the conformance suite sees it: overrides of every block size
// (`POLYCHIP_CPU_TILING`, `cpu:tiles=small`), the report of block sizes and path
// thresholds per kernel, and the path a call takes. The sizes themselves live in
// `GemmBlocking`, which every kernel reads; nothing here is a second copy of them.

extension GemmBlocking {
    /// The override keys, each with the field it sets and the granule it is rounded down to
    /// (never below one granule).
    static func overrideKeys(mr: Int, nr: Int) -> [(key: String, granule: Int, path: WritableKeyPath<GemmBlocking, Int>)] {
        [("gemm.kc", 8, \.kc), ("gemm.mc", mr, \.mc), ("gemm.nc", nr, \.nc),
         ("gemm.serialMaxWork", 1, \.serialMaxWork), ("gemm.packBudgetBytes", 4096, \.packBudgetBytes),
         ("int4.gemvMaxRows", 1, \.int4GemvMaxRows), ("int4.gemvTaskBytes", 64, \.gemvTaskBytes),
         ("attention.rows", mr, \.attentionRows), ("attention.keys", nr, \.attentionKeys),
         ("attention.splitUnits", 1, \.splitKVUnits), ("attention.splitMinBlocks", 1, \.splitKVMinBlocks),
         ("indexer.rows", mr, \.indexerRows), ("indexer.keys", nr, \.indexerKeys), ("indexer.chunk", nr, \.indexerChunk),
         ("grouped.columns", nr, \.groupedColumns), ("moe.columns", nr, \.moeColumns),
         ("moe.wholeRowExperts", 1, \.moeWholeRowExperts),
         ("element.grain", 1, \.elementGrain), ("element.block", 1, \.elementBlock)]
    }

    /// The `small` preset: one or two tiles per block, so the multi-block, parallel, chunked
    /// and split-KV paths run at the small shapes of the conformance suite.
    static let smallPreset: [(String, Int)] = [
        ("gemm.kc", 16), ("gemm.mc", 1), ("gemm.nc", 1), ("gemm.serialMaxWork", 512), ("gemm.packBudgetBytes", 4096),
        ("int4.gemvTaskBytes", 64), ("attention.rows", 1), ("attention.keys", 1), ("attention.splitUnits", 64),
        ("attention.splitMinBlocks", 2), ("indexer.rows", 1), ("indexer.keys", 1), ("indexer.chunk", 1),
        ("grouped.columns", 1), ("moe.columns", 1), ("moe.wholeRowExperts", 3), ("element.grain", 64), ("element.block", 16),
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
    /// The CPU kernels' block sizes and path thresholds, from ``blocking`` (so overrides show).
    public var tiling: DeviceTiling {
        let bl = blocking
        let (mr, nr, kc, mc) = (bl.mr, bl.nr, bl.kc, bl.mc)
        let isa = String(cString: pck_isa_name())
        let micro = "\(isa) \(mr)×\(nr)"
        // Vector loops of the element-wise kernels: 8-lane bodies unrolled to 32 on x86, 4 and
        // 16 on NEON (vector.c); every length crosses their tails.
        let lanes = isa == "neon" ? [4, 16] : isa == "scalar" ? [1] : [8, 32]
        func vector(_ dim: String, _ ctx: [String: Int] = [:]) -> [TileBoundary] {
            lanes.map { TileBoundary(dim, $0, name: "vector.lanes\($0)", context: ctx) }
        }
        let parallelCtx: (Int, Int) -> [String: Int] = { m, k in ["M": m, "N": bl.parallelN(m: m, k: k)] }
        var kernels: [KernelTiling] = [
            KernelTiling(.matmul, [
                TileBoundary("M", mr, name: "gemm.mr"), TileBoundary("N", nr, name: "gemm.nr"),
                TileBoundary("K", kc, name: "gemm.kc (serial)"),
                TileBoundary("K", kc, name: "gemm.kc (parallel)", context: parallelCtx(2 * mr + 1, kc + 1)),
                TileBoundary("M", mc, name: "gemm.mc (parallel)", context: ["K": 16, "N": bl.parallelN(m: mc, k: 16)]),
                TileBoundary("N", bl.nc, name: "gemm.nc (panels past the pack budget)",
                             context: ["M": mr + 1, "K": max(kc + 1, bl.packBudgetBytes / 4 / max(1, bl.nc))]),
            ], variant: "packed GEMM, microkernel \(micro), KC \(kc) MC \(mc) NC \(bl.nc); serial up to M·N·K \(bl.serialMaxWork)"),
            KernelTiling(.groupedMatmul, [
                TileBoundary("N", bl.groupedColumns, name: "grouped.columns"), TileBoundary("K", kc, name: "gemm.kc"),
                TileBoundary("T", mc, name: "gemm.mc (segment rows)", context: ["E": 1]),
            ], variant: "segment tasks of MC rows × \(bl.groupedColumns) columns"),
            KernelTiling(.int4Matmul, [
                TileBoundary("M", bl.int4GemvMaxRows + 1, .threshold, name: "int4.gemvMaxRows (GEMM above)"),
                TileBoundary("M", 8, name: "int4.gemv M chunk"),
                TileBoundary("K", 64, name: "int4.k64 (K tail)"), TileBoundary("G", 64, name: "int4.g64 (g % 64 = 32 path)"),
                TileBoundary("N", 4, name: "int4.gemv rows"), TileBoundary("N", 24, name: "int4.gemv row group"),
                TileBoundary("N", bl.gemvRowsPerTask(n: 1 << 20, k: 256), name: "int4.gemvTaskRows (K 256)", context: ["K": 256]),
                TileBoundary("K", kc, name: "gemm.kc (INT4 B panels)", context: ["M": bl.int4GemvMaxRows + 1]),
            ], variant: "GEMV for M ≤ \(bl.int4GemvMaxRows) (\(pck_int4_denormals_fast() != 0 ? "denormal nibbles" : "converted nibbles")), packed GEMM above"),
            KernelTiling(.int4GroupedMatmul, [
                TileBoundary("T", bl.int4GemvMaxRows + 1, .threshold, name: "int4.gemvMaxRows (segment rows)", context: ["E": 1]),
                TileBoundary("K", 64, name: "int4.k64 (K tail)"), TileBoundary("N", bl.groupedColumns, name: "grouped.columns"),
            ]),
            KernelTiling(.attention, [
                TileBoundary("Lq", bl.attentionRows, .threshold, name: "attention.rows (per-head row blocks from here)"),
                TileBoundary("Lq", bl.attentionRows, name: "attention.rows"),
                TileBoundary("Lk", bl.attentionKeys, name: "attention.keys"),
                TileBoundary("Lk", bl.splitKVMinBlocks * bl.attentionKeys, .threshold, name: "attention.splitKV",
                             context: ["B": 1, "Hkv": 1, "Lq": 1]),
                TileBoundary("Dv", nr, name: "gemm.nr (output slivers)"), TileBoundary("Lq", mr, name: "gemm.mr (row tiles)"),
            ], variant: "flash, \(bl.attentionRows) query rows × \(bl.attentionKeys) keys per block, split-KV under \(bl.splitKVUnits) units"),
            KernelTiling(.sparseAttention, [
                TileBoundary("k", bl.attentionKeys, name: "attention.keys (selected keys)"),
                TileBoundary("H", mr, name: "gemm.mr (query heads per kv head)", context: ["Hkv": 1]),
                TileBoundary("Dv", nr, name: "gemm.nr"),
            ]),
            KernelTiling(.lightningIndexer, [
                TileBoundary("S", bl.indexerKeys, name: "indexer.keys"), TileBoundary("S", bl.indexerChunk, name: "indexer.chunk"),
                TileBoundary("T", max(1, bl.indexerRows / 4), name: "indexer.rows / Hi (tokens per tile)", context: ["Hi": 4]),
            ]),
        ]
        let rowKernels: [OpKind] = [.rmsNorm, .softmax, .quantizeInt4, .dequantizeInt4, .topK]
        for kind in rowKernels {
            let d = kind == .topK ? "S" : kind == .rmsNorm || kind == .softmax ? "D" : "K"
            let rows = kind == .topK ? "T" : kind == .rmsNorm || kind == .softmax ? "R" : "N"
            var b = [TileBoundary(rows, 2, .threshold, name: "element.grain (row chunks)", context: [d: bl.elementGrain + 1])]
            if kind == .rmsNorm || kind == .softmax { b += vector(d) }
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
            TileBoundary("E", bl.moeWholeRowExperts, .threshold, name: "moe.wholeRowExperts", context: ["T": 4 * bl.moeWholeRowExperts]),
            TileBoundary("F", bl.moeColumns, name: "moe.columns"),
            TileBoundary("T", bl.int4GemvMaxRows + 1, .threshold, name: "int4.gemvMaxRows (rows per expert)", context: ["E": 1]),
        ]))
        return DeviceTiling(kernels: kernels, overrides: "POLYCHIP_CPU_TILING=key=value,… or small; selector cpu:tiles=small")
    }

    /// The path `op` takes for these inputs, from the same ``blocking`` decisions the kernels
    /// make (`nil` for kernels with a single path).
    public func path(of op: Op, inputs: [TensorDesc]) -> String? {
        let bl = blocking
        func blocks(_ n: Int, _ b: Int) -> Int { (n + b - 1) / max(1, b) }
        switch op {
        case .matmul:
            guard inputs.count == 2, inputs[0].rank == 2 else { return nil }
            let (m, k) = (inputs[0].shape[0], inputs[0].shape[1])
            guard case .matmul(let tb) = op else { return nil }
            let n = inputs[1].shape[tb ? 0 : 1]
            if bl.isSerial(m: m, n: n, k: k) { return "gemm serial, \(blocks(k, bl.kc)) K block(s)" }
            let panel = k * blocks(n, bl.nr) * bl.nr * 4 <= max(bl.packBudgetBytes, bl.nc * bl.kc * 4) ? "whole B packed" : "B in panels"
            return "gemm parallel, \(blocks(m, bl.mc))+ A block(s), \(blocks(k, bl.kc)) K block(s), \(panel)"
        case .int4Matmul:
            guard inputs.count >= 2 else { return nil }
            let (m, k) = (inputs[0].shape[0], inputs[0].shape[1])
            let tail = k % 64 == 0 ? "" : ", K tail \(k % 64)"
            if m <= bl.int4GemvMaxRows {
                return "int4 GEMV M \(m), tasks of \(bl.gemvRowsPerTask(n: inputs[1].shape[0], k: k)) rows\(tail)"
            }
            return "int4 GEMM (INT4 B panels), \(blocks(k, bl.kc)) K block(s)\(tail)"
        case .attention:
            guard inputs.count == 3, inputs[0].rank == 4 else { return nil }
            let (b, hq, lq) = (inputs[0].shape[0], inputs[0].shape[1], inputs[0].shape[2])
            let (hkv, lk) = (inputs[1].shape[1], inputs[1].shape[2])
            let plan = FlashPlan(bl, b: b, hq: hq, hkv: hkv, lq: lq, lk: lk)
            return "attention \(plan.perHead ? "per-head" : "head-spanning") row blocks (\(plan.rowBlocks)), "
                + "\(blocks(lk, bl.attentionKeys)) key block(s)\(plan.chunks > 1 ? ", split-KV \(plan.chunks) chunks" : "")"
        case .rmsNorm, .softmax, .topK, .quantizeInt4, .dequantizeInt4:
            guard let x = inputs.first, x.rank >= 1 else { return nil }
            let d = x.shape.last!, rows = x.elementCount / max(1, d)
            return rows * d > bl.elementGrain ? "rows in chunks" : "one row chunk"
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

    init(_ bl: GemmBlocking, b: Int, hq: Int, hkv: Int, lq: Int, lk: Int) {
        let group = hq / max(1, hkv)
        br = bl.attentionRows
        let bcK = bl.attentionKeys
        perHead = lq >= br
        blocksPerHead = perHead ? (lq + br - 1) / br : 0
        rowBlocks = perHead ? group * blocksPerHead : (group * lq + br - 1) / br
        units = b * hkv * rowBlocks
        if units < bl.splitKVUnits && lk >= bl.splitKVMinBlocks * bcK {
            let want = (32 + units - 1) / max(1, units)
            chunkKeys = max(bcK, ((lk + want - 1) / want + bcK - 1) / bcK * bcK)
        } else {
            chunkKeys = max(1, lk)
        }
        chunks = max(1, (lk + chunkKeys - 1) / chunkKeys)  // Lk = 0: one chunk of no keys, rows give 0
    }
}
