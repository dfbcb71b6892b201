import PolychipCore
import PolychipConformance

/// A kernel call at a named size: what `polychip bench` times.
public struct Workload: Sendable {
    /// Catalog kernel.
    public var kind: OpKind
    /// Dimensions by name (`M`, `N`, `K`, `L`, …).
    public var dims: [String: Int]
    /// Activation dtype.
    public var dtype: DType
    /// The call.
    public var op: Op
    /// Input descriptors (meta tensors for modeled runs).
    public var inputs: [TensorDesc]

    /// `M=1 N=4096 K=14336`, in the builder's order.
    public var label: String { Workloads.order(kind).compactMap { k in dims[k].map { "\(k)=\($0)" } }.joined(separator: " ") }

    /// Seeded random inputs of this workload (never zeros).
    public func makeInputs(seed: UInt64) throws -> [HostTensor] {
        var r = SeededRandom(seed: seed)
        return try Workloads.inputs(self, &r)
    }
}

/// The default suite and the shape builders behind `--kernel` and `--shape`.
public enum Workloads {
    /// Headline kernels at realistic LLM shapes, sized so the suite finishes in minutes on two cores.
    public static func defaultSuite(dtype: DType = .f32) throws -> [Workload] {
        try [
            make(.matmul, ["M": 2048, "N": 2048, "K": 2048], dtype),
            make(.int4Matmul, ["M": 1, "N": 4096, "K": 14336, "G": 32], dtype),
            make(.attention, ["B": 1, "Hq": 32, "Hkv": 8, "Lq": 2048, "Lk": 2048, "D": 128, "causal": 1], dtype),
            make(.attention, ["B": 1, "Hq": 32, "Hkv": 8, "Lq": 1, "Lk": 8192, "D": 128, "causal": 1], dtype),
            make(.lightningIndexer, ["T": 256, "Hi": 32, "D": 64, "S": 2048], dtype),
            make(.topK, ["T": 64, "S": 8192, "k": 2048], .f32),
            make(.sparseAttention, ["T": 256, "H": 32, "Hkv": 1, "S": 8192, "D": 128, "k": 2048], dtype),
            make(.moeRouter, ["T": 4096, "E": 256, "k": 8, "groups": 8, "keep": 4], dtype),
            make(.moeLayer, ["T": 512, "H": 2048, "F": 1024, "E": 64, "k": 8, "G": 32], dtype),
            make(.rmsNorm, ["R": 4096, "D": 4096], dtype),
            make(.softmax, ["R": 4096, "D": 4096], dtype),
            make(.quantizeInt4, ["N": 4096, "K": 4096, "G": 32], dtype),
        ]
    }

    /// Default dimensions per kernel (used with `--kernel` when no `--shape` is given).
    public static func defaults(_ kind: OpKind) -> [String: Int] { kind.descriptor.benchmarkDims }

    /// A small workload of the same kernel and parameters, for verification against the reference.
    public static func reduced(_ w: Workload) throws -> Workload {
        var d = w.dims
        let caps: [String: Int] = ["M": 8, "N": 48, "K": 256, "T": 24, "L": 40, "Lq": 40, "Lk": 72, "S": 96, "R": 8, "D": 64,
                                   "H": 64, "F": 32, "Hq": 4, "Hkv": 2, "Hi": 4, "E": 8, "B": 1, "k": 8]
        for (key, cap) in caps { if let v = d[key], v > cap { d[key] = cap } }
        if let lq = w.dims["Lq"], lq == 1 { d["Lq"] = 1 }
        if w.kind == .moeRouter { d["E"] = 32; d["k"] = min(w.dims["k"] ?? 8, 8) }
        if w.kind == .moeLayer { d["E"] = 8; d["k"] = 2 }
        if w.kind == .sparseAttention { d["Hkv"] = min(d["Hkv"] ?? 1, d["H"] ?? 1) }
        if w.kind == .attention, let hq = d["Hq"], let hkv = d["Hkv"], hq % hkv != 0 { d["Hkv"] = 1 }
        return try make(w.kind, d, w.dtype)
    }

    static func order(_ kind: OpKind) -> [String] {
        ["B", "T", "M", "R", "N", "K", "H", "Hq", "Hkv", "Hi", "Lq", "Lk", "S", "D", "F", "E", "k", "groups", "keep", "G", "causal"]
    }

    /// Builds a workload from dimensions; unknown or missing dimensions are typed errors.
    public static func make(_ kind: OpKind, _ dims: [String: Int], _ dtype: DType) throws -> Workload {
        var d = defaults(kind)
        for (k, v) in dims { d[k] = v }
        for (k, x) in d.sorted(by: { $0.key < $1.key }) where x < 0 {
            throw PolychipError.invalidArgument(kernel: kind.name, argument: "shape", reason: "needs \(k) ≥ 0")
        }
        var op = try kind.descriptor.benchmarkOp(dims: d)
        if case .dequantizeInt4(let f, _) = op { op = .dequantizeInt4(f, output: dtype) }
        let ins = kind.descriptor.inputShapes(op, dims: d, dtype: dtype)
        _ = try op.validate(ins)
        return Workload(kind: kind, dims: d, dtype: dtype, op: op, inputs: ins)
    }

    /// Random inputs for a workload: data-dependent operands (offsets, ids, indices) are valid.
    static func inputs(_ w: Workload, _ r: inout SeededRandom) throws -> [HostTensor] {
        var out: [HostTensor] = []
        let names = w.op.inputNames
        var i = 0
        while i < w.inputs.count {
            let desc = w.inputs[i], name = names[i]
            switch (desc.dtype, name) {
            case (.int4, _):
                let groups = w.inputs[i + 1].shape
                let g = desc.shape.last! / groups.last!
                out += try CaseGenerator.int4Weights(Array(desc.shape.dropLast(2)), desc.shape[desc.rank - 2], desc.shape.last!,
                                                     Int4Format(groupSize: g), &r)
                i += 2
                continue
            case (.i32, "offsets"):
                out.append(try CaseGenerator.offsets(w.inputs[0].shape[0], desc.shape[0] - 1, &r))
            case (.i32, "positions"):
                out.append(try HostTensor(desc.shape, int32s: (0..<desc.elementCount).map { Int32($0 % 8192) }))
            case (.i32, "ids"):
                out.append(try HostTensor(desc.shape, int32s: CaseGenerator.distinctIDs(desc.shape[0], desc.shape[1], w.dims["E"] ?? 1, &r)))
            case (.i32, "sourceMap"):
                out.append(try HostTensor(desc.shape, int32s: Array(0..<desc.elementCount).shuffled(using: &r).map { Int32($0) }))
            case (.i32, "indices"):
                let (t, k) = (desc.shape[0], desc.shape[1])
                let s = w.inputs[1].shape[0]
                var idx: [Int32] = []
                for ti in 0..<t {
                    let visible = ti + s - t + 1
                    var chosen = Set<Int>()
                    while chosen.count < min(k, visible) { chosen.insert(r.int(0..<visible)) }
                    idx += chosen.sorted().map { Int32($0) } + [Int32](repeating: -1, count: k - chosen.count)
                }
                out.append(try HostTensor(desc.shape, int32s: idx))
            default:
                let scale: Float = name == "scores" || name == "logits" ? 4 : 1
                out.append(try HostTensor(desc.shape, desc.dtype, floats: r.floats(desc.elementCount, 0.01, scale)))
            }
            i += 1
        }
        return out
    }
}
