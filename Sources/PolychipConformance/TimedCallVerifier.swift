import PolychipCore
import PolychipReference

/// The result of checking one real call's outputs (the call a benchmark timed, or one
/// `polychip run --verify` made) against the reference, at its full size.
public struct CallCheck: Sendable, Codable, Hashable {
    /// How: `full`, `Freivalds ×2`, `32 sampled rows`.
    public var method: String
    /// Whether the outputs are within the kernel's conformance tolerance.
    public var passed: Bool
    /// The measured error and the threshold, or what failed.
    public var detail: String
    /// What the check left out and why (MoE tokens routed by a near tie), if anything.
    public var note: String? = nil

    /// `yes (method)`, `yes (method; note)` or `FAIL (method): detail`.
    public var summary: String { passed ? "yes (\(method)\(note.map { "; " + $0 } ?? ""))" : "FAIL (\(method)): \(detail)" }
}

/// Checks a call's outputs far more cheaply than recomputing them (docs/conformance.md,
/// "Verifying the timed call"), with the conformance tolerances of the kernel:
///
/// - GEMMs (matmul, grouped, INT4 and grouped INT4): Freivalds' check. For random ±1 vectors
///   `x`, `C·x` is compared with `A·(B·x)` in f64 (INT4 weights decoded on the fly). With `x`
///   of independent signs, `E‖ΔC·x‖² = ‖ΔC‖²_F` and `E‖C·x‖² = ‖C‖²_F`, so the ratio of the two
///   estimates the NMSE of the whole output; it must stay under 4× the kernel's threshold.
///   Cost `O(MK + KN + MN)` instead of `O(MNK)`.
/// - Row-separable kernels (attention, sparse attention, the indexer, the router, the MoE
///   layer): sampled rows (query rows, tokens) are cut out as sub-problems the reference
///   solves (a query row of causal attention sees a key prefix), and compared with the same
///   rules as a conformance case.
/// - The other kernels are cheap: the reference recomputes them whole.
public enum TimedCallVerifier {
    /// Checks `outputs` of `op` on `inputs`; `samples` rows for the sampled kernels.
    public static func verify(_ op: Op, inputs: [HostTensor], outputs: [HostTensor], samples: Int = 32, seed: UInt64 = 0x7E51) -> CallCheck {
        var r = SeededRandom(seed: seed)
        do {
            switch op {
            case .matmul(let tb):
                let (a, b) = (inputs[0], inputs[1])
                let (k, n) = (a.desc.shape[1], outputs[0].desc.shape[1])
                let bv = b.doubles
                return freivalds(op, a: a, c: outputs[0], k: k, &r, segments: [(0, a.desc.shape[0], { x in
                    gemv(bv, rows: tb ? n : k, cols: tb ? k : n, x, transposed: tb)
                })])
            case .groupedMatmul(let tb):
                let (x, w) = (inputs[0], inputs[1])
                let (k, n) = (x.desc.shape[1], outputs[0].desc.shape[1])
                let wv = w.doubles
                let offsets = inputs[2].ints
                let segs = (0..<(offsets.count - 1)).map { e -> (Int, Int, ([Double]) -> [Double]) in
                    let base = Array(wv[(e * k * n)..<((e + 1) * k * n)])
                    return (offsets[e], offsets[e + 1], { v in gemv(base, rows: tb ? n : k, cols: tb ? k : n, v, transposed: tb) })
                }
                return freivalds(op, a: x, c: outputs[0], k: k, &r, segments: segs)
            case .int4Matmul(let f):
                let x = inputs[0]
                let w = Int4Operand(inputs, from: 1, f)
                return freivalds(op, a: x, c: outputs[0], k: x.desc.shape[1], &r, segments: [(0, x.desc.shape[0], { v in w.transposedTimes(v, expert: 0) })])
            case .int4GroupedMatmul(let f):
                let x = inputs[0]
                let w = Int4Operand(inputs, from: 1, f)
                let offsets = inputs[inputs.count - 1].ints
                let segs = (0..<(offsets.count - 1)).map { e -> (Int, Int, ([Double]) -> [Double]) in
                    (offsets[e], offsets[e + 1], { v in w.transposedTimes(v, expert: e) })
                }
                return freivalds(op, a: x, c: outputs[0], k: x.desc.shape[1], &r, segments: segs)
            case .attention(let p):
                return try sampledAttention(p, inputs, outputs, samples, &r)
            case .sparseAttention, .lightningIndexer, .moeRouter, .moeLayer:
                return try sampledTokens(op, inputs, outputs, samples, &r)
            default:
                let expected = try Reference.evaluate(op, inputs)
                return judge(op, inputs, expected, outputs, method: "full")
            }
        } catch {
            return CallCheck(method: "reference", passed: false, detail: "\(error)")
        }
    }

    /// Compares `got` with `expected` under the conformance rules for `op` on `inputs`.
    static func judge(_ op: Op, _ inputs: [HostTensor], _ expected: [HostTensor], _ got: [HostTensor], method: String) -> CallCheck {
        let dtype = op.primaryDType(inputs.map(\.desc))
        let c = ConformanceCase(op: op, inputs: inputs, dtype: dtype, label: method, seed: 0)
        let outcome = Comparison.compare(c, expected: expected, got: got)
        let tol = Comparison.tolerance(c)
        if let failure = outcome.failure { return CallCheck(method: method, passed: false, detail: failure) }
        return CallCheck(method: method, passed: true, detail: "NMSE \(outcome.nmse.map { "\($0)" } ?? "0") ≤ \(tol)", note: outcome.note)
    }

    // MARK: Freivalds

    /// `y = M·x` (or `Mᵀ·x` when `transposed`) for a row-major `rows × cols` matrix.
    static func gemv(_ m: [Double], rows: Int, cols: Int, _ x: [Double], transposed: Bool) -> [Double] {
        if transposed {
            var y = [Double](repeating: 0, count: cols)
            for i in 0..<rows where x[i] != 0 { for j in 0..<cols { y[j] += m[i * cols + j] * x[i] } }
            return y
        }
        return (0..<rows).map { i in
            var s = 0.0
            for j in 0..<cols { s += m[i * cols + j] * x[j] }
            return s
        }
    }

    /// Freivalds over row segments `[start, end)` of `C = A · B_segment` (`k` = A's width):
    /// each segment's `bTimes(x)` returns `B·x` (a K-vector) for an N-vector `x`.
    static func freivalds(_ op: Op, a: HostTensor, c: HostTensor, k: Int, _ r: inout SeededRandom,
                          segments: [(Int, Int, ([Double]) -> [Double])], vectors: Int = 2) -> CallCheck {
        let method = "Freivalds ×\(vectors)"
        let n = c.desc.shape[1]
        let av = a.doubles, cv = c.doubles
        if let i = cv.firstIndex(where: { !$0.isFinite }), av.allSatisfy(\.isFinite) {
            return CallCheck(method: method, passed: false, detail: "output element \(i) is \(cv[i]) for finite inputs")
        }
        var num = 0.0, den = 0.0
        for _ in 0..<vectors {
            let x = (0..<n).map { _ in r.int(0..<2) == 0 ? -1.0 : 1.0 }
            for (start, end, bTimes) in segments where end > start {
                let bx = bTimes(x)
                for i in start..<end {
                    var z = 0.0, w = 0.0
                    for t in 0..<k { z += av[i * k + t] * bx[t] }
                    for j in 0..<n { w += cv[i * n + j] * x[j] }
                    num += (w - z) * (w - z); den += z * z
                }
            }
        }
        let nmse = den > 0 ? num / den : num
        let limit = 4 * op.kind.tolerance(op.primaryDType([a.desc]))
        guard nmse <= limit else {
            return CallCheck(method: method, passed: false, detail: "‖C·x − A·(B·x)‖²/‖A·(B·x)‖² = \(nmse) > \(limit) (4× the NMSE threshold)")
        }
        return CallCheck(method: method, passed: true, detail: "estimated NMSE \(nmse) ≤ \(limit)")
    }

    /// INT4 weights `[E?, N, K]` decoded on the fly (never materialized in f64).
    struct Int4Operand {
        let q: [UInt8], scales: [Double], zeros: [Int]?, n: Int, k: Int, groups: Int

        init(_ inputs: [HostTensor], from i: Int, _ f: Int4Format) {
            let qt = inputs[i]
            q = qt.bytes
            n = qt.desc.shape[qt.desc.rank - 2]; k = qt.desc.shape[qt.desc.rank - 1]
            groups = k / f.groupSize
            scales = inputs[i + 1].doubles
            zeros = f.symmetric ? nil : inputs[i + 2].ints
        }

        /// `Wᵀ·x` of expert `e` (`W [N, K]`, `x` an N-vector): the K-vector `B·x` for `B = Wᵀ`.
        func transposedTimes(_ x: [Double], expert e: Int) -> [Double] {
            var y = [Double](repeating: 0, count: k)
            let g = k / groups
            for row in 0..<n where x[row] != 0 {
                let base = (e * n + row) * k
                for gi in 0..<groups {
                    let sg = (e * n + row) * groups + gi
                    let s = scales[sg] * x[row], z = Double(zeros?[sg] ?? 8)
                    for c in (gi * g)..<((gi + 1) * g) {
                        let byte = q[(base + c) >> 1]
                        let u = Double((base + c) & 1 == 0 ? byte & 0x0F : byte >> 4)
                        y[c] += s * (u - z)
                    }
                }
            }
            return y
        }
    }

    // MARK: Sampled rows

    /// `count` elements of `t` starting at element `start`, as a tensor of `shape`.
    static func slice(_ t: HostTensor, start: Int, count: Int, shape: [Int]) throws -> HostTensor {
        let bits = t.desc.dtype.bitWidth
        let (b0, b1) = (start * bits / 8, (start + count) * bits / 8)
        return try HostTensor(TensorDesc(shape, t.desc.dtype), bytes: Array(t.bytes[b0..<b1]))
    }

    /// Rows `rows` (each `width` elements) of `t`, stacked as `[rows.count] + rest`.
    static func gather(_ t: HostTensor, rows: [Int], width: Int, rest: [Int]) throws -> HostTensor {
        let es = t.desc.dtype.bitWidth / 8
        var bytes: [UInt8] = []
        bytes.reserveCapacity(rows.count * width * es)
        for row in rows { bytes += t.bytes[(row * width * es)..<((row + 1) * width * es)] }
        return try HostTensor(TensorDesc([rows.count] + rest, t.desc.dtype), bytes: bytes)
    }

    static func sampleRows(_ total: Int, _ samples: Int, _ r: inout SeededRandom) -> [Int] {
        guard total > samples else { return Array(0..<total) }
        // The first and last rows (block edges) and random ones in between.
        var set: Set<Int> = [0, total - 1]
        while set.count < samples { set.insert(r.int(0..<total)) }
        return set.sorted()
    }

    /// Attention rows: query row `i` of head `h` sees keys `0 ..< min(Lk, i + Lk − Lq + 1)`
    /// (causal) or all; that prefix is a non-causal sub-problem with one query.
    static func sampledAttention(_ p: AttentionParams, _ ins: [HostTensor], _ outs: [HostTensor], _ samples: Int,
                                 _ r: inout SeededRandom) throws -> CallCheck {
        let (q, k, v) = (ins[0], ins[1], ins[2])
        let (b, hq, lq, d) = (q.desc.shape[0], q.desc.shape[1], q.desc.shape[2], q.desc.shape[3])
        let (hkv, lk, dv) = (k.desc.shape[1], k.desc.shape[2], v.desc.shape[3])
        let rows = sampleRows(b * hq * lq, samples, &r)
        var expected: [[Float]] = [[], []], got: [[Float]] = [[], []]
        let sub = Op.attention(AttentionParams(causal: false, scale: p.scale ?? 1 / Double(d).squareRoot(), returnLSE: p.returnLSE))
        for row in rows {
            let (bh, i) = (row / lq, row % lq)
            let (bi, h) = (bh / hq, bh % hq)
            let kvHead = bi * hkv + h / (hq / hkv)
            let seen = p.causal ? max(0, min(lk, i + lk - lq + 1)) : lk
            let subIns = [try slice(q, start: row * d, count: d, shape: [1, 1, 1, d]),
                          try slice(k, start: kvHead * lk * d, count: seen * d, shape: [1, 1, seen, d]),
                          try slice(v, start: kvHead * lk * dv, count: seen * dv, shape: [1, 1, seen, dv])]
            let e = try Reference.evaluate(sub, subIns)
            expected[0] += e[0].floats
            got[0] += try slice(outs[0], start: row * dv, count: dv, shape: [dv]).floats
            if p.returnLSE {
                expected[1] += e[1].floats
                got[1] += try slice(outs[1], start: row, count: 1, shape: [1]).floats
            }
        }
        let dt = q.desc.dtype
        let exp = [try HostTensor([expected[0].count], dt, floats: expected[0])] + (p.returnLSE ? [try HostTensor([expected[1].count], .f32, floats: expected[1])] : [])
        let gotT = [try HostTensor([got[0].count], dt, floats: got[0])] + (p.returnLSE ? [try HostTensor([got[1].count], .f32, floats: got[1])] : [])
        return judge(.attention(p), ins, exp, gotT, method: "\(rows.count) sampled query rows")
    }

    /// Token-separable kernels: the sampled tokens' rows form a smaller call of the same kernel
    /// (the indexer's token t sees the key prefix `0 ..< t + S − T + 1`).
    static func sampledTokens(_ op: Op, _ ins: [HostTensor], _ outs: [HostTensor], _ samples: Int, _ r: inout SeededRandom) throws -> CallCheck {
        let t = ins[0].desc.shape[0]
        var tokens = sampleRows(t, samples, &r)
        var method = "\(tokens.count) sampled tokens"
        if case .moeLayer(let p) = op {
            // Sample among the tokens whose expert set no near tie decides: at wide H and many
            // experts most of a random sample can be near ties, which the comparison leaves out.
            let whole = ConformanceCase(op: op, inputs: ins, dtype: ins[0].desc.dtype, label: "", seed: 0)
            let ties = Comparison.moeNearTieTokens(whole, p.router)
            if !ties.isEmpty {
                let clear = (0..<t).filter { !ties.contains($0) }
                tokens = sampleRows(clear.count, samples, &r).map { clear[$0] }
                method = "\(tokens.count) sampled tokens of \(clear.count) not routed by a near tie"
            }
        }
        func rowsOf(_ x: HostTensor) throws -> HostTensor {
            let width = x.desc.elementCount / max(1, x.desc.shape[0])
            return try gather(x, rows: tokens, width: width, rest: Array(x.desc.shape.dropFirst()))
        }
        switch op {
        case .lightningIndexer:
            // One token at a time: its visible key prefix; the masked tail must be −inf.
            let (q, k, w) = (ins[0], ins[1], ins[2])
            let (hi, d, s) = (q.desc.shape[1], q.desc.shape[2], k.desc.shape[0])
            var exp: [Float] = [], got: [Float] = []
            for ti in tokens {
                let seen = ti + s - t + 1
                let e = try Reference.evaluate(.lightningIndexer, [
                    try slice(q, start: ti * hi * d, count: hi * d, shape: [1, hi, d]),
                    try slice(k, start: 0, count: seen * d, shape: [seen, d]),
                    try slice(w, start: ti * hi, count: hi, shape: [1, hi])])
                exp += e[0].floats + [Float](repeating: -.infinity, count: s - seen)
                got += try slice(outs[0], start: ti * s, count: s, shape: [s]).floats
            }
            return judge(op, ins, [try HostTensor([exp.count], .f32, floats: exp)], [try HostTensor([got.count], .f32, floats: got)], method: method)
        case .moeRouter(let p):
            let subIns = [try rowsOf(ins[0])] + (p.hasBias ? [ins[1]] : [])
            return judge(op, subIns, try Reference.evaluate(op, subIns), try outs.map(rowsOf), method: method)
        case .sparseAttention:
            let subIns = [try rowsOf(ins[0]), ins[1], ins[2], try rowsOf(ins[3])]
            return judge(op, subIns, try Reference.evaluate(op, subIns), try outs.map(rowsOf), method: method)
        default:
            // The MoE layer: routing, experts and the shared expert act per token.
            var subIns = ins
            subIns[0] = try rowsOf(ins[0])
            return judge(op, subIns, try Reference.evaluate(op, subIns), try outs.map(rowsOf), method: method)
        }
    }
}
