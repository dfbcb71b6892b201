import PolychipCore

/// Cases built to break what random inputs rarely reach (docs/conformance.md): GQA ratios
/// 1–16 and MLA's head dims, the row maximum in a later key block, causal masks across blocks
/// with Lq < Lk and Lq > Lk, every INT4 combination of K remainder × zero points × group size
/// × M, ties exactly at the top-k and group cuts, sparse top-k crossing key blocks, and
/// inputs read through offset views. Sizes follow the device's tiling where it reports one.
public enum AdversarialCases {
    /// The adversarial specs of `kind` for a device with `tiling` in `dtype`. At `standard`
    /// the INT4 combinations run in full in f32 and on a subset in 16-bit dtypes; at
    /// `thorough` everything runs in every dtype.
    public static func specs(_ kind: OpKind, tiling: DeviceTiling, level: ConformanceLevel, dtype: DType) -> [CaseSpec] {
        guard level != .quick else { return [] }
        let full = level == .thorough || dtype == .f32
        var out: [CaseSpec] = []
        // Every kernel reads its inputs through views at odd element offsets once.
        if var first = CaseGenerator.quickSpecs(kind).dropFirst().first ?? CaseGenerator.quickSpecs(kind).first {
            first.offsetViews = true
            out.append(first)
        }
        switch kind {
        case .attention:
            let bc = block(tiling, kind, "Lk", default: 64), br = block(tiling, kind, "Lq", default: 32)
            let lse = AttentionParams(causal: true, returnLSE: true)
            // GQA ratios 1, 3, 4, 8, 16 (MQA) over several key blocks.
            for (hq, hkv) in [(3, 3), (6, 2), (8, 2), (16, 2), (16, 1)] {
                out.append(CaseSpec(.attention(lse), ["B": 1, "Hq": hq, "Hkv": hkv, "Lq": 5, "Lk": 2 * bc + 3, "D": 16, "Dv": 16],
                                    note: "GQA \(hq / hkv):1"))
            }
            // MLA (DeepSeek-V3 / GLM-5): MQA over the 512-dim latent plus 64 RoPE dims.
            out.append(CaseSpec(.attention(lse), ["B": 1, "Hq": 16, "Hkv": 1, "Lq": 3, "Lk": 40, "D": 576, "Dv": 512], note: "MLA D576/Dv512"))
            out.append(CaseSpec(.attention(lse), ["B": 1, "Hq": 16, "Hkv": 1, "Lq": 1, "Lk": 2 * bc + 3, "D": 576, "Dv": 512],
                                note: "MLA decode"))
            // The row maximum in a later key block (and, as a control, in the first).
            for causal in [true, false] {
                let p = AttentionParams(causal: causal, returnLSE: true)
                out.append(CaseSpec(.attention(p), ["B": 1, "Hq": 4, "Hkv": 2, "Lq": br + 3, "Lk": 3 * bc + 5, "D": 16, "Dv": 16],
                                    pattern: .risingLogits, note: "row max in the last key block"))
                out.append(CaseSpec(.attention(p), ["B": 1, "Hq": 2, "Hkv": 1, "Lq": 1, "Lk": 3 * bc + 5, "D": 16, "Dv": 16],
                                    pattern: .risingLogits, note: "decode, row max in the last key block"))
            }
            out.append(CaseSpec(.attention(lse), ["B": 1, "Hq": 4, "Hkv": 2, "Lq": br + 3, "Lk": 3 * bc + 5, "D": 16, "Dv": 16],
                                pattern: .fallingLogits, note: "row max in the first key block"))
            // Causal across blocks: Lq < Lk (every row sees a prefix past the diagonal) and
            // Lq > Lk (the first Lq − Lk rows see nothing and give 0).
            out.append(CaseSpec(.attention(lse), ["B": 2, "Hq": 4, "Hkv": 2, "Lq": br + 1, "Lk": 2 * bc + 3, "D": 16, "Dv": 16],
                                note: "causal Lq < Lk across blocks"))
            out.append(CaseSpec(.attention(lse), ["B": 1, "Hq": 4, "Hkv": 2, "Lq": 2 * br + 5, "Lk": br + 2, "D": 16, "Dv": 16],
                                note: "causal Lq > Lk across blocks"))
        case .sparseAttention:
            let bc = block(tiling, kind, "k", default: 32)
            for k in [bc - 1, bc + 1, 2 * bc + 3] where k >= 1 {
                out.append(CaseSpec(.sparseAttention(SparseAttentionParams(returnLSE: true)),
                                    ["T": 3, "H": 4, "Hkv": 2, "S": k + 10, "D": 16, "Dv": 16, "k": k], note: "top-k across key blocks"))
            }
            out.append(CaseSpec(.sparseAttention(SparseAttentionParams(returnLSE: true)),
                                ["T": 2, "H": 16, "Hkv": 1, "S": 2 * bc + 9, "D": 16, "Dv": 16, "k": 2 * bc + 3], note: "MQA 16:1"))
        case .int4Matmul, .int4GroupedMatmul:
            // K remainder × zero points × group size × M: g32/g96 leave K % 64 = 32 (the
            // SIMD paths' tail), g64/g128 do not; M covers every GEMV variant and the GEMM.
            // g10: 8-weight chunks straddle two groups (the paths that assume G % 8 = 0).
            let groups: [(g: Int, k: Int)] = [(32, 160), (32, 128), (64, 192), (96, 288), (128, 256), (10, 70)]
            let ms = full ? Array(1...9) + [17] : [1, 3, 9]
            for sym in [false, true] {
                for (g, k) in groups {
                    let f = Int4Format(groupSize: g, symmetric: sym)
                    for m in ms {
                        if kind == .int4Matmul {
                            out.append(CaseSpec(.int4Matmul(f), ["M": m, "N": 27, "K": k], note: "K%64=\(k % 64) M\(m)"))
                        } else {
                            out.append(CaseSpec(.int4GroupedMatmul(f), ["T": m, "N": 27, "K": k, "E": 1], note: "K%64=\(k % 64) rows\(m)"))
                        }
                    }
                }
            }
        case .quantizeInt4, .dequantizeInt4:
            // g6/g10/g2: groups that are not a multiple of the SIMD width (the scalar path).
            for sym in [false, true] {
                for (g, k) in [(32, 160), (64, 192), (96, 288), (16, 48), (6, 42), (10, 70), (2, 14)] {
                    let f = Int4Format(groupSize: g, symmetric: sym)
                    let op: Op = kind == .quantizeInt4 ? .quantizeInt4(f) : .dequantizeInt4(f, output: .f32)
                    out.append(CaseSpec(op, ["N": 5, "K": k], note: "K%64=\(k % 64)"))
                }
            }
        case .rmsNorm, .addRmsNorm:
            for d in [64, 203] {
                let op: Op = kind == .rmsNorm ? .rmsNorm(eps: 1e-5) : .addRmsNorm(eps: 1e-5)
                out.append(CaseSpec(op, ["R": 4, "D": d], pattern: .smallRows, note: "mean square near eps"))
            }
        case .add, .scale:
            // Correct rounding: ties and near-ties of the dtype, compared bit for bit.
            for (op, d) in [(Op.add, 203), (.scale(alpha: 1.5), 203), (.scale(alpha: 0.75), 37)] where op.kind == kind {
                out.append(CaseSpec(op, ["R": 3, "D": d], pattern: .roundingTies, note: "ties to even"))
            }
        case .topK:
            out.append(CaseSpec(.topK(k: 8), ["T": 4, "S": 40, "k": 8], pattern: .ties, note: "tie at the k cut"))
            out.append(CaseSpec(.topK(k: 16), ["T": 2, "S": 64, "k": 16], pattern: .allEqual, note: "all equal"))
            out.append(CaseSpec(.topK(k: 40), ["T": 3, "S": 40, "k": 40], pattern: .ties, note: "k = S"))
            out.append(CaseSpec(.topK(k: 45), ["T": 3, "S": 40, "k": 45], note: "k > S: −1 padding"))
            out.append(CaseSpec(.topK(k: 12), ["T": 3, "S": 50, "k": 12], pattern: .signedZeros, note: "+0 and −0 tie"))
            // The same past the device's sort size (the radix-select path).
            let sortMax = tiling.boundaries(.topK).first { $0.dim == "S" && $0.role == .threshold }?.size ?? 0
            if sortMax > 0 && sortMax < 5000 {
                out.append(CaseSpec(.topK(k: 12), ["T": 2, "S": sortMax + 9, "k": 12], pattern: .signedZeros, note: "+0 and −0 tie past the sort size"))
            }
        case .moeRouter:
            let configs: [(Int, Int, RouterParams)] = [
                (6, 16, RouterParams(scoring: .sigmoid, topK: 4, nGroup: 4, topkGroup: 2, renormalize: true, routedScale: 2.5, hasBias: true)),
                (4, 64, RouterParams(scoring: .sigmoid, topK: 8, nGroup: 8, topkGroup: 4, renormalize: true, routedScale: 2.5, hasBias: true)),
                (6, 8, RouterParams(scoring: .softmax, topK: 2, renormalize: true)),
                (5, 12, RouterParams(scoring: .sigmoid, topK: 3, nGroup: 4, topkGroup: 2, renormalize: false, routedScale: 1.5, hasBias: false)),
            ]
            for (t, e, p) in configs {
                out.append(CaseSpec(.moeRouter(p), ["T": t, "E": e], pattern: .ties, note: "ties at the k and group cuts"))
            }
        case .moeLayer:
            // INT4 experts with K % 64 = 32 on the GEMV (few rows per expert) and GEMM paths.
            let router = RouterParams(scoring: .sigmoid, topK: 2, nGroup: 2, topkGroup: 1, renormalize: true, routedScale: 2.5, hasBias: true)
            for t in [3, 40] {
                out.append(CaseSpec(.moeLayer(MoELayerParams(router: router, experts: .int4(Int4Format(groupSize: 32, symmetric: false)),
                                                             hasShared: true)), ["T": t, "H": 96, "F": 32, "E": 2], note: "INT4 K%64=32"))
            }
        default:
            break
        }
        return out
    }

    /// The largest block a device reports along `dim` of `kind` (else `default`).
    static func block(_ tiling: DeviceTiling, _ kind: OpKind, _ dim: String, default d: Int) -> Int {
        tiling.boundaries(kind).filter { $0.dim == dim && $0.role == .block && $0.context.isEmpty }.map(\.size).max() ?? d
    }
}
