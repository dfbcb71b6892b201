import PolychipCore

/// The executable form of docs/kernels.md: plain loops, f64 accumulation, deterministic,
/// single-threaded. It is the oracle every other backend is checked against, so it is
/// written to be obviously right rather than fast.
public enum Reference {
    /// Validates `inputs` for `op` and computes its outputs.
    public static func evaluate(_ op: Op, _ inputs: [HostTensor]) throws -> [HostTensor] {
        try compute(try op.validated(inputs.map(\.desc)), inputs)
    }

    /// Computes a validated call's outputs from `inputs` (whose descriptors are the call's).
    static func compute(_ call: ValidatedCall, _ inputs: [HostTensor]) throws -> [HostTensor] {
        let op = call.op, outs = call.outputs
        for (i, name) in op.zeroPointInputs { try Int4Format.checkZeroPoints(inputs[i].ints, kernel: op.kind.name, argument: name) }
        let a = Args(op: op, values: inputs)
        switch op {
        case .matmul(let tb): return [try matmul(a, tb, outs[0])]
        case .groupedMatmul(let tb): return [try groupedMatmul(a, tb, outs[0])]
        case .int4Matmul(let f): return [try int4Matmul(a, f, outs[0])]
        case .int4GroupedMatmul(let f): return [try int4GroupedMatmul(a, f, outs[0])]
        case .rmsNorm(let eps): return [try rmsNorm(a, eps)]
        case .addRmsNorm(let eps): return try addRmsNorm(a, eps)
        case .softmax: return [try rowwise(a["x"]) { softmaxRow($0) }]
        case .silu: return [try map(a["x"]) { silu($0) }]
        case .scale(let alpha): return [try map(a["x"]) { alpha * $0 }]
        case .swiglu: return [try zipMap(a["gate"], a["up"]) { silu($0) * $1 }]
        case .add: return [try zipMap(a["a"], a["b"]) { $0 + $1 }]
        case .rope(let p): return [try rope(a, p)]
        case .attention(let p): return try attention(a, p, outs)
        case .lightningIndexer: return [try lightningIndexer(a)]
        case .topK(let k): return try topK(a["scores"], k)
        case .sparseAttention(let p): return try sparseAttention(a, p, outs)
        case .moeRouter(let p): return try moeRouter(a, p)
        case .moePermute(let e): return try moePermute(a, e, outs)
        case .moeCombine: return [try moeCombine(a, outs[0])]
        case .moeLayer(let p): return [try moeLayer(a, p)]
        case .quantizeInt4(let f): return try quantizeInt4(a["x"], f)
        case .dequantizeInt4(let f, let out): return [try dequantizeInt4(a, f, out)]
        }
    }

    /// Named access to the inputs of one call.
    struct Args {
        let op: Op
        let values: [HostTensor]
        subscript(_ name: String) -> HostTensor { values[op.inputNames.firstIndex(of: name)!] }
        func has(_ name: String) -> Bool { op.inputNames.contains(name) }
    }

    /// Rounds f64 results once to the output dtype (via f32 for 16-bit types).
    static func output(_ shape: [Int], _ dtype: DType, _ values: [Double]) throws -> HostTensor {
        // Rounded once from f64 to the output dtype (docs/kernels.md), not via f32.
        try HostTensor(shape, dtype, floats: values.map { FloatBits.round($0, to: dtype) })
    }

    static func map(_ x: HostTensor, _ f: (Double) -> Double) throws -> HostTensor {
        try output(x.desc.shape, x.desc.dtype, x.doubles.map(f))
    }

    static func zipMap(_ x: HostTensor, _ y: HostTensor, _ f: (Double, Double) -> Double) throws -> HostTensor {
        try output(x.desc.shape, x.desc.dtype, zip(x.doubles, y.doubles).map(f))
    }

    static func rowwise(_ x: HostTensor, _ f: (ArraySlice<Double>) -> [Double]) throws -> HostTensor {
        let d = x.desc.shape.last!
        let v = x.doubles
        var out: [Double] = []
        out.reserveCapacity(v.count)
        for r in 0..<(v.count / d) { out += f(v[(r * d)..<((r + 1) * d)]) }
        return try output(x.desc.shape, x.desc.dtype, out)
    }

    static func silu(_ x: Double) -> Double { x / (1 + Foundation.exp(-x)) }

    static func sigmoid(_ x: Double) -> Double { 1 / (1 + Foundation.exp(-x)) }

    /// Softmax of one row under the contract's rules for NaN, +inf and all −inf.
    static func softmaxRow(_ row: ArraySlice<Double>) -> [Double] {
        if row.contains(where: \.isNaN) { return row.map { _ in .nan } }
        let posInf = row.filter { $0 == .infinity }.count
        if posInf > 0 { return row.map { $0 == .infinity ? 1 / Double(posInf) : 0 } }
        let m = row.max() ?? -.infinity
        if m == -.infinity { return row.map { _ in 0 } }
        let e = row.map { Foundation.exp($0 - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }
}

import Foundation
