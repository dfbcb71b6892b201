import Foundation
import PolychipCore

extension Reference {
    /// Router scores `s` of one token (softmax or sigmoid of the logits).
    public static func routerScores(_ logits: ArraySlice<Double>, _ p: RouterParams) -> [Double] {
        p.scoring == .softmax ? softmaxRow(logits) : logits.map(sigmoid)
    }

    /// Choice scores `c = s + bias` of one token after group masking (masked groups −∞).
    public static func choiceScores(_ logits: ArraySlice<Double>, bias: [Double]?, _ p: RouterParams) -> [Double] {
        let e = logits.count
        var c = routerScores(logits, p).enumerated().map { $0.element + (bias?[$0.offset] ?? 0) }
        if p.nGroup > 1 {
            let size = e / p.nGroup
            let kept = Set(topKRow(groupScores(c, p)[...], p.topkGroup))
            for g in 0..<p.nGroup where !kept.contains(g) {
                for i in (g * size)..<((g + 1) * size) { c[i] = -.infinity }
            }
        }
        return c
    }

    /// The group scores of one token's (unmasked) choice scores: DeepSeek's Gate takes, with a
    /// selection bias, the sum of each group's top-2 choice scores, without one its maximum
    /// (docs/kernels.md, moeRouter step 2).
    public static func groupScores(_ c: [Double], _ p: RouterParams) -> [Double] {
        let size = c.count / max(1, p.nGroup)
        return (0..<p.nGroup).map { g in
            c[(g * size)..<((g + 1) * size)].sorted(by: >).prefix(p.hasBias ? min(2, size) : 1).reduce(0, +)
        }
    }

    /// Routes one token: returns (weights, ids) per the contract's four steps.
    static func route(_ logits: ArraySlice<Double>, bias: [Double]?, _ p: RouterParams) -> (weights: [Double], ids: [Int]) {
        let s = routerScores(logits, p)
        let c = choiceScores(logits, bias: bias, p)
        // Selection by choice score; ties → lower id. Validation guarantees enough unmasked experts.
        let ids = Array(c.indices.sorted { c[$0] != c[$1] ? c[$0] > c[$1] : $0 < $1 }.prefix(p.topK))
        var w = ids.map { s[$0] }
        if p.renormalize {
            let sum = w.reduce(0, +) + 1e-20
            w = w.map { $0 / sum }
        }
        return (w.map { $0 * p.routedScale }, ids)
    }

    static func moeRouter(_ a: Args, _ p: RouterParams) throws -> [HostTensor] {
        let l = a["logits"]
        let (t, e) = (l.desc.shape[0], l.desc.shape[1])
        let v = l.doubles
        let bias = p.hasBias ? a["bias"].doubles : nil
        var w: [Double] = [], ids: [Int32] = []
        for r in 0..<t {
            let route = route(v[(r * e)..<((r + 1) * e)], bias: bias, p)
            w += route.weights
            ids += route.ids.map { Int32($0) }
        }
        return [try output([t, p.topK], .f32, w), try HostTensor([t, p.topK], int32s: ids)]
    }

    /// The stable expert order of (token, slot) pairs: flat indices grouped by expert.
    static func permutation(_ ids: [Int], experts: Int) throws -> (order: [Int], offsets: [Int]) {
        if let bad = ids.first(where: { $0 < 0 || $0 >= experts }) {
            throw PolychipError.invalidArgument(kernel: OpKind.moePermute.name, argument: "ids",
                                                reason: "expert id \(bad) is outside 0..<\(experts)")
        }
        var order: [Int] = [], offsets = [0]
        for ex in 0..<experts {
            order += ids.indices.filter { ids[$0] == ex }
            offsets.append(order.count)
        }
        return (order, offsets)
    }

    static func moePermute(_ a: Args, _ e: Int, _ outs: [TensorDesc]) throws -> [HostTensor] {
        let x = a["x"]
        let k = a["ids"].desc.shape[1]
        let (order, offsets) = try permutation(a["ids"].ints, experts: e)
        let rowBytes = x.desc.shape[1] * x.desc.dtype.bitWidth / 8
        var rows: [UInt8] = []
        rows.reserveCapacity(order.count * rowBytes)
        for flat in order { rows += x.bytes[((flat / k) * rowBytes)..<((flat / k + 1) * rowBytes)] }
        return [try HostTensor(outs[0], bytes: rows),
                try HostTensor([e + 1], int32s: offsets.map { Int32($0) }),
                try HostTensor([order.count], int32s: order.map { Int32($0) })]
    }

    /// Inverse of a source map; throws unless it is a permutation of 0..<n.
    static func inverse(_ sourceMap: [Int]) throws -> [Int] {
        var pos = [Int](repeating: -1, count: sourceMap.count)
        for (row, flat) in sourceMap.enumerated() {
            guard flat >= 0, flat < sourceMap.count, pos[flat] == -1 else {
                throw PolychipError.invalidArgument(kernel: OpKind.moeCombine.name, argument: "sourceMap",
                                                    reason: "must be a permutation of 0..<\(sourceMap.count); entry \(row) is \(flat)")
            }
            pos[flat] = row
        }
        return pos
    }

    static func moeCombine(_ a: Args, _ out: TensorDesc) throws -> HostTensor {
        let y = a["y"].doubles, w = a["weights"].doubles
        let (t, k) = (a["weights"].desc.shape[0], a["weights"].desc.shape[1])
        let h = a["y"].desc.shape[1]
        let pos = try inverse(a["sourceMap"].ints)
        var o = [Double](repeating: 0, count: t * h)
        for ti in 0..<t {
            for slot in 0..<k {
                let row = pos[ti * k + slot]
                for c in 0..<h { o[ti * h + c] += w[ti * k + slot] * y[row * h + c] }
            }
        }
        return try output(out.shape, out.dtype, o)
    }

    /// `x[rows, in] · wᵀ` with `w[out, in]`, rounded to `dtype` as stored.
    static func linear(_ x: [Double], rows: Int, _ w: [Double], out: Int, in inDim: Int, _ dtype: DType) -> [Double] {
        var y = [Double](repeating: 0, count: rows * out)
        for i in 0..<rows {
            for j in 0..<out {
                var acc = 0.0
                for p in 0..<inDim { acc += x[i * inDim + p] * w[j * inDim + p] }
                y[i * out + j] = Double(FloatBits.round(acc, to: dtype))
            }
        }
        return y
    }

    static func swigluRounded(_ g: [Double], _ u: [Double], _ dtype: DType) -> [Double] {
        zip(g, u).map { Double(FloatBits.round(silu($0) * $1, to: dtype)) }
    }

    static func moeLayer(_ a: Args, _ p: MoELayerParams) throws -> HostTensor {
        let x = a["x"]
        let dt = x.desc.dtype
        let (t, h) = (x.desc.shape[0], x.desc.shape[1])
        let e = a["routerWeight"].desc.shape[0]
        let xv = x.doubles
        // Router logits in f32.
        let logits = linear(xv, rows: t, a["routerWeight"].doubles, out: e, in: h, .f32)
        let bias = p.router.hasBias ? a["bias"].doubles : nil
        let f: Int
        func expert(_ name: String, _ ex: Int) -> [Double] {
            switch p.experts {
            case .float:
                let w = a[name]
                let per = w.desc.shape[1] * w.desc.shape[2]
                return Array(w.doubles[(ex * per)..<((ex + 1) * per)])
            case .int4(let fmt):
                return dequantized(a[name + ".q"], a[name + ".scales"], a.has(name + ".zeros") ? a[name + ".zeros"] : nil, fmt, expert: ex)
            }
        }
        switch p.experts {
        case .float: f = a["gate"].desc.shape[1]
        case .int4: f = a["gate.q"].desc.shape[1]
        }
        var y = [Double](repeating: 0, count: t * h)
        for ti in 0..<t {
            let route = route(logits[(ti * e)..<((ti + 1) * e)], bias: bias, p.router)
            let xt = Array(xv[(ti * h)..<((ti + 1) * h)])
            for (w, ex) in zip(route.weights, route.ids) {
                let g = linear(xt, rows: 1, expert("gate", ex), out: f, in: h, dt)
                let u = linear(xt, rows: 1, expert("up", ex), out: f, in: h, dt)
                let d = linear(swigluRounded(g, u, dt), rows: 1, expert("down", ex), out: h, in: f, dt)
                for c in 0..<h { y[ti * h + c] += Double(Float(w)) * d[c] }
            }
        }
        if p.hasShared {
            let fs = a["sharedGate"].desc.shape[0]
            let g = linear(xv, rows: t, a["sharedGate"].doubles, out: fs, in: h, dt)
            let u = linear(xv, rows: t, a["sharedUp"].doubles, out: fs, in: h, dt)
            let d = linear(swigluRounded(g, u, dt), rows: t, a["sharedDown"].doubles, out: h, in: fs, dt)
            for i in 0..<(t * h) { y[i] += d[i] }
        }
        return try output([t, h], dt, y)
    }
}
