import PolychipCore
import PolychipReference

/// Compares a device's outputs with the reference's under docs/kernels.md's rules.
enum Comparison {
    struct Outcome { var nmse: Double?; var failure: String? }

    static func compare(_ c: ConformanceCase, expected: [HostTensor], got: [HostTensor]) -> Outcome {
        var worst: Double? = nil
        let names = c.op.outputNames
        for (i, (e, g)) in zip(expected, got).enumerated() {
            let name = names[i]
            if e.desc.dtype.isFloat {
                if case .moeRouter = c.op, name == "weights" { continue }  // compared per matched id below
                switch floatNMSE(e.floats, g.floats) {
                case .failure(let why): return Outcome(nmse: worst, failure: "\(name): \(why)")
                case .value(let v):
                    worst = max(worst ?? 0, v)
                    let tol = c.op.kind.tolerance(c.op.kind == .topK ? .f32 : c.dtype)
                    if v > tol { return Outcome(nmse: worst, failure: "\(name): NMSE \(v) > \(tol)") }
                }
            } else if let why = compareIntegers(c, name: name, expected: e, got: g) {
                return Outcome(nmse: worst, failure: "\(name): \(why)")
            }
        }
        if case .moeRouter(let p) = c.op {
            if let why = compareRouter(c, p, expected, got) { return Outcome(nmse: worst, failure: why) }
        }
        return Outcome(nmse: worst, failure: nil)
    }

    enum NMSE { case value(Double), failure(String) }

    /// NMSE = Σ(a−b)²/Σa² over finite entries; non-finite entries must match exactly.
    static func floatNMSE(_ a: [Float], _ b: [Float]) -> NMSE {
        var num = 0.0, den = 0.0
        for i in a.indices {
            let (x, y) = (a[i], b[i])
            if x.isNaN || y.isNaN {
                if x.isNaN && y.isNaN { continue }
                return .failure("element \(i) is \(y), reference \(x)")
            }
            if x.isInfinite || y.isInfinite {
                if x == y { continue }
                return .failure("element \(i) is \(y), reference \(x)")
            }
            num += Double(x - y) * Double(x - y)
            den += Double(x) * Double(x)
        }
        if num == 0 { return .value(0) }
        return .value(den > 0 ? num / den : .infinity)
    }

    static func compareIntegers(_ c: ConformanceCase, name: String, expected e: HostTensor, got g: HostTensor) -> String? {
        if e.bytes == g.bytes { return nil }
        let ev = e.ints, gv = g.ints
        guard let first = ev.indices.first(where: { ev[$0] != gv[$0] }) else { return nil }
        switch c.op {
        case .quantizeInt4(let f):
            // Nibbles may differ by one where x/s sits on a rounding tie (IEEE-division
            // differences between devices); zero points likewise for −lo/s.
            return quantizeMismatch(c, f, name: name, ev, gv)
        case .moeRouter where name == "ids":
            return nil  // checked under the tie rule in compareRouter
        default:
            return "element \(first) is \(gv[first]), reference \(ev[first]) (\(ev.indices.filter { ev[$0] != gv[$0] }.count) differ)"
        }
    }

    static func quantizeMismatch(_ c: ConformanceCase, _ f: Int4Format, name: String, _ ev: [Int], _ gv: [Int]) -> String? {
        guard name == "q" else {
            let i = ev.indices.first { ev[$0] != gv[$0] }!
            return "element \(i) is \(gv[i]), reference \(ev[i])"
        }
        let x = c.inputs[0].floats
        let k = c.inputs[0].desc.shape[1]
        let ref = (try? Reference.evaluate(c.op, c.inputs)) ?? []
        let scales = ref.count > 1 ? ref[1].floats : []
        for i in ev.indices where ev[i] != gv[i] {
            let g = (i / k) * (k / f.groupSize) + (i % k) / f.groupSize
            guard abs(ev[i] - gv[i]) == 1, g < scales.count, scales[g] > 0 else {
                return "nibble \(i) is \(gv[i]), reference \(ev[i])"
            }
            let t = Double(x[i]) / Double(scales[g])
            let frac = abs(t - t.rounded(.down) - 0.5)
            if frac > 1e-5 { return "nibble \(i) is \(gv[i]), reference \(ev[i]) (x/s = \(t), not a tie)" }
        }
        return nil
    }

    /// Router ids must match, except near ties in the reference choice scores (the device's
    /// f32 arithmetic may order them either way); exact ties follow the tie rule (lower index
    /// first), since equal inputs give equal scores on any device. Weights are compared per
    /// matched id.
    static func compareRouter(_ c: ConformanceCase, _ p: RouterParams, _ expected: [HostTensor], _ got: [HostTensor]) -> String? {
        let k = p.topK
        let (ew, eid, gw, gid) = (expected[0].floats, expected[1].ints, got[0].floats, got[1].ints)
        let logits = c.inputs[0].doubles
        let e = c.inputs[0].desc.shape[1]
        let bias = p.hasBias ? c.inputs[1].doubles : nil
        var num = 0.0, den = 0.0
        for t in 0..<(eid.count / k) {
            let choice = Reference.choiceScores(logits[(t * e)..<((t + 1) * e)], bias: bias, p)
            let span = choice.filter(\.isFinite).map(abs).max() ?? 1
            for s in 0..<k {
                let (a, b) = (eid[t * k + s], gid[t * k + s])
                if a == b { continue }
                guard b >= 0, b < e, abs(choice[a] - choice[b]) <= 1e-6 * span else {
                    return "ids: token \(t) slot \(s) chose expert \(b), reference \(a) (not a near tie)"
                }
                guard choice[a] != choice[b] else {
                    return "ids: token \(t) slot \(s) chose expert \(b), reference \(a): an exact tie, which the lower index wins"
                }
            }
            for s in 0..<k {
                guard let j = (0..<k).first(where: { gid[t * k + $0] == eid[t * k + s] }) else { continue }
                let d = Double(ew[t * k + s] - gw[t * k + j])
                num += d * d; den += Double(ew[t * k + s]) * Double(ew[t * k + s])
            }
        }
        let nmse = den > 0 ? num / den : num
        let tol = OpKind.moeRouter.tolerance(.f32)
        return nmse > tol || nmse.isNaN ? "weights: NMSE \(nmse) > \(tol)" : nil
    }
}
