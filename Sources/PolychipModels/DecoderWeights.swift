// DecoderWeights.swift — the weights of an executable decoder stack: which tensors its layer
// description needs, seeded values, and loading from .safetensors or a directory of .npy files
// (INT4 from native, ggml Q4_0, GPTQ or AWQ tensors through the importers in PolychipCore).

import Foundation
import PolychipCore
import PolychipReference

/// Named tensors a stack's weights are read from.
public protocol WeightSource: Sendable {
    /// The tensor called `name`, or nil when the source has none.
    func tensor(_ name: String) throws -> HostTensor?
    /// Where the tensors come from (for errors).
    var origin: String { get }
}

/// Weights in one `.safetensors` file.
public struct SafeTensorsWeights: WeightSource {
    /// The file's tensors.
    public let contents: SafeTensorsFile.Contents
    /// The file's path.
    public let origin: String
    /// Reads `path`.
    public init(path: String) throws { contents = try SafeTensorsFile.read(path: path); origin = path }
    /// The tensor `name` of the file, converted to a host tensor.
    public func tensor(_ name: String) throws -> HostTensor? {
        contents.tensors[name] == nil ? nil : try contents.tensor(name, path: origin)
    }
}

/// Weights as `NAME.npy` files in a directory.
public struct NumPyDirectoryWeights: WeightSource {
    /// The directory.
    public let origin: String
    /// Reads from `directory`.
    public init(directory: String) { origin = directory }
    /// `DIRECTORY/NAME.npy`, if the file exists.
    public func tensor(_ name: String) throws -> HostTensor? {
        let path = URL(fileURLWithPath: origin).appendingPathComponent(name + ".npy").path
        return FileManager.default.fileExists(atPath: path) ? try NumPyFile.read(path: path) : nil
    }
}

/// How INT4 checkpoint tensors are laid out in a ``WeightSource``.
public enum Int4Checkpoint: String, Sendable, Hashable, CaseIterable {
    /// Whatever the names say: `.q`/`.scales`[/`.zeros`] native, `.q4_0` ggml blocks,
    /// `.qweight`/`.qzeros`/`.scales`[/`.g_idx`] GPTQ v1 (AutoGPTQ's default), or a float
    /// `.weight` quantized on load.
    case auto
    /// GPTQ with v2 zero points.
    case gptqV2 = "gptq-v2"
    /// AWQ's GEMM layout (`qweight [K, N/8]`).
    case awq
}

/// The weights of a decoder stack: tensors by key (`layers.<l>.<weight>.weight`,
/// `layers.<l>.<weight>.q|scales|zeros`, `layers.<l>.moe.bias`) and the INT4 format of each
/// INT4 weight (by `layers.<l>.<weight>`).
public struct DecoderWeights: Sendable {
    /// Tensors by key.
    public var tensors: [String: HostTensor]
    /// INT4 formats by weight key (without the `.q` suffix).
    public var int4: [String: Int4Format]

    /// A weight the stack needs.
    struct Need {
        var key: String
        /// The float shape (`[n, k]`, `[E, n, k]`, `[width]`).
        var desc: TensorDesc
        var role: Role
    }

    enum Role: Equatable {
        case norm, bias, absorbQ, absorbV
        case linear(WeightKind)
        case experts
    }

    /// Every weight of the stack in first-use order.
    /// The tensors a stack of `config` reads (`--weights-from`), each by key with its float
    /// shape and dtype: INT4 weights are looked up as `KEY.q`/`.scales`[/`.zeros`], `KEY.q4_0`,
    /// GPTQ/AWQ tensors, or a float `KEY.weight` quantized on load (``Int4Checkpoint``).
    public static func required(_ config: DecoderStackConfig) throws -> [(key: String, desc: TensorDesc)] {
        try plan(config).map { ($0.key, $0.desc) }
    }

    static func plan(_ c: DecoderStackConfig) throws -> [Need] {
        var needs: [Need] = []
        var seen = Set<String>()
        func add(_ n: Need) { if seen.insert(n.key).inserted { needs.append(n) } }
        for l in 0..<c.layers {
            for step in c.steps(layer: l) {
                switch step.action {
                case .kernel(let k):
                    for (arg, desc) in zip(k.args, k.inputs) where arg.hasPrefix("@") {
                        let name = String(arg.dropFirst())
                        let role: Role = name == "moe.bias" ? .bias : name == "attn.absorb_q.weight" ? .absorbQ
                            : name == "attn.absorb_v.weight" ? .absorbV : .norm
                        add(Need(key: "layers.\(l).\(name)", desc: desc, role: role))
                    }
                case .linear(let s):
                    add(Need(key: "layers.\(l).\(s.weight)", desc: TensorDesc([s.n, s.k], c.dtype), role: .linear(s.kind)))
                case .experts(let s):
                    add(Need(key: "layers.\(l).\(s.weight)", desc: TensorDesc([c.model.routedExperts, s.n, s.k], c.dtype), role: .experts))
                case .glue, .collective:
                    break
                }
            }
        }
        return needs
    }

    /// Seeded weights: linear and expert weights `N(0, 1/k)`, norm weights `1 + N(0, 0.01)`,
    /// the selection bias `N(0, 0.0025)`; INT4 ones quantized (symmetric) by the catalog's
    /// `quantizeInt4`. Every tensor's values depend only on the seed and its key.
    public static func seeded(_ c: DecoderStackConfig) throws -> DecoderWeights {
        var w = DecoderWeights(tensors: [:], int4: [:])
        for need in try plan(c) {
            var rng = SplitMix64(seed: c.seed ^ fnv1a(need.key))
            func normal(_ count: Int, _ sd: Float) -> [Float] { (0..<count).map { _ in rng.normal() * sd } }
            switch need.role {
            case .norm:
                w.tensors[need.key] = try HostTensor(need.desc.shape, need.desc.dtype, floats: normal(need.desc.elementCount, 0.1).map { 1 + $0 })
            case .bias:
                w.tensors[need.key] = try HostTensor(need.desc.shape, .f32, floats: normal(need.desc.elementCount, 0.05))
            case .absorbQ, .absorbV:
                // Both come from one kv_b_proj matrix [heads·(nope + v), kv_lora].
                let base = need.key.replacingOccurrences(of: need.role == .absorbQ ? "attn.absorb_q.weight" : "attn.absorb_v.weight", with: "attn.kv_b_proj")
                var r = SplitMix64(seed: c.seed ^ fnv1a(base))
                let m = c.model, rows = m.heads * (m.qkNopeHeadDim + m.vHeadDim)
                let sd = 1 / Float(m.kvLoraRank).squareRoot()
                let kvb = try HostTensor([rows, m.kvLoraRank], c.dtype, floats: (0..<(rows * m.kvLoraRank)).map { _ in r.normal() * sd })
                w.tensors[need.key] = try absorbed(need.role, kvb: kvb, m)
            case .linear(let kind):
                let (n, k) = (need.desc.shape[0], need.desc.shape[1])
                try w.store(need.key, floats: normal(n * k, 1 / Float(k).squareRoot()), shape: [n, k], storage: c.weights.storage(kind), c)
            case .experts:
                let s = need.desc.shape
                try w.store(need.key, floats: normal(s[0] * s[1] * s[2], 1 / Float(s[2]).squareRoot()), shape: s,
                            storage: c.weights.storage(.experts), c)
            }
        }
        return w
    }

    /// Weights read from `source`: float tensors `KEY.weight` (and `layers.<l>.moe.bias`); the
    /// absorbed MLA matrices from `layers.<l>.attn.kv_b_proj.weight` (or
    /// `attn.absorb_q.weight`/`attn.absorb_v.weight` themselves); INT4 weights as `checkpoint`
    /// says, routed experts per expert (`layers.<l>.moe.experts.<e>.gate|up|down…`, stacked,
    /// gate rows before up rows) or as one stack (`layers.<l>.moe.experts.gate_up…`). A float
    /// weight where the scheme stores INT4 is quantized on load. Missing or misshapen tensors
    /// are `invalidArgument` errors naming the tensor and the source.
    public static func load(_ c: DecoderStackConfig, from source: any WeightSource, checkpoint: Int4Checkpoint = .auto) throws -> DecoderWeights {
        var w = DecoderWeights(tensors: [:], int4: [:])
        func bad(_ name: String, _ why: String) -> PolychipError {
            .invalidArgument(kernel: "decoder-stack", argument: name, reason: "\(why) (in \(source.origin))")
        }
        func float(_ name: String, _ desc: TensorDesc) throws -> HostTensor? {
            guard let t = try source.tensor(name) else { return nil }
            guard t.desc.dtype.isFloat, t.desc.shape == desc.shape else { throw bad(name, "expected a float tensor of shape \(desc.shape), got \(t.desc)") }
            return t.desc.dtype == desc.dtype ? t : try HostTensor(t.desc.shape, desc.dtype, floats: t.floats)
        }
        for need in try plan(c) {
            switch need.role {
            case .norm, .bias:
                guard let t = try float(need.key, need.desc) else { throw bad(need.key, "missing") }
                w.tensors[need.key] = t
            case .absorbQ, .absorbV:
                if let t = try float(need.key, need.desc) { w.tensors[need.key] = t; continue }
                let base = need.key.replacingOccurrences(of: need.role == .absorbQ ? "attn.absorb_q.weight" : "attn.absorb_v.weight",
                                                         with: "attn.kv_b_proj.weight")
                let m = c.model
                guard let kvb = try float(base, TensorDesc([m.heads * (m.qkNopeHeadDim + m.vHeadDim), m.kvLoraRank], c.dtype)) else {
                    throw bad(base, "missing (or give \(need.key))")
                }
                w.tensors[need.key] = try absorbed(need.role, kvb: kvb, m)
            case .linear(let kind):
                let storage = c.weights.storage(kind)
                if storage == .int4, let q = try loadInt4(need.key, rows: need.desc.shape[0], columns: need.desc.shape[1], source, checkpoint) {
                    try w.storeInt4(need.key, [q])
                } else if let t = try float(need.key + ".weight", need.desc) {
                    try w.store(need.key, floats: t.floats, shape: need.desc.shape, storage: storage, c)
                } else {
                    throw bad(need.key + ".weight", "missing" + (storage == .int4 ? " (nor INT4 tensors \(need.key).q/.q4_0/.qweight)" : ""))
                }
            case .experts:
                try w.loadExperts(need, c, source, checkpoint, bad: bad, float: float)
            }
        }
        return w
    }

    /// Routed experts from a source: one stack, or per expert (gate and up stacked as gate_up).
    mutating func loadExperts(_ need: Need, _ c: DecoderStackConfig, _ source: any WeightSource, _ checkpoint: Int4Checkpoint,
                              bad: (String, String) -> PolychipError, float: (String, TensorDesc) throws -> HostTensor?) throws {
        let (e, n, k) = (need.desc.shape[0], need.desc.shape[1], need.desc.shape[2])
        let storage = c.weights.storage(.experts)
        if let t = try float(need.key + ".weight", need.desc) {
            return try store(need.key, floats: t.floats, shape: need.desc.shape, storage: storage, c)
        }
        // Per expert: `…experts.<e>.gate`, `.up` (gate_up) or `.down`.
        let prefix = need.key.hasSuffix("gate_up") ? String(need.key.dropLast("gate_up".count)) : String(need.key.dropLast("down".count))
        let parts = need.key.hasSuffix("gate_up") ? ["gate", "up"] : ["down"]
        let rows = n / parts.count
        var perExpert: [NativeInt4Weight] = [], floats: [Float] = []
        for ex in 0..<e {
            for p in parts {
                let name = "\(prefix)\(ex).\(p)"
                if storage == .int4, let q = try Self.loadInt4(name, rows: rows, columns: k, source, checkpoint) {
                    perExpert.append(q)
                } else if let t = try float(name + ".weight", TensorDesc([rows, k], c.dtype)) {
                    floats += t.floats
                } else {
                    throw bad(name + ".weight", "missing (nor \(need.key).weight, nor INT4 tensors)")
                }
            }
        }
        if !floats.isEmpty && !perExpert.isEmpty { throw bad(need.key, "some experts are INT4 and some float") }
        if perExpert.isEmpty { return try store(need.key, floats: floats, shape: need.desc.shape, storage: storage, c) }
        try storeInt4(need.key, perExpert, lead: [e])
    }

    /// An INT4 weight `[rows, columns]` from `name.q…` (native), `name.q4_0`, or `name.qweight…`
    /// (GPTQ v1/v2 or AWQ as `checkpoint` says); nil when the source has none of them.
    static func loadInt4(_ name: String, rows: Int, columns: Int, _ source: any WeightSource, _ checkpoint: Int4Checkpoint) throws -> NativeInt4Weight? {
        func bad(_ why: String) -> PolychipError { .invalidArgument(kernel: "decoder-stack", argument: name, reason: "\(why) (in \(source.origin))") }
        let w: NativeInt4Weight
        if let q = try source.tensor(name + ".q"), let s = try source.tensor(name + ".scales") {
            let z = try source.tensor(name + ".zeros")
            guard q.desc.dtype == .int4, s.desc.dtype == .f32, s.desc.rank == 2, s.desc.shape[1] > 0, columns % s.desc.shape[1] == 0 else {
                throw bad("native INT4 needs q (packed u8), f32 scales [N, K/G] and optional i8 zeros")
            }
            w = try NativeInt4Weight(format: Int4Format(groupSize: columns / s.desc.shape[1], symmetric: z == nil), q: q, scales: s, zeros: z)
        } else if let blocks = try source.tensor(name + ".q4_0") {
            w = try GGMLQ4_0.importTensor(blocks.bytes, rows: rows, columns: columns)
        } else if let qw = try source.tensor(name + ".qweight"), let qz = try source.tensor(name + ".qzeros"),
                  let s = try source.tensor(name + ".scales") {
            let imported: ImportedInt4
            switch checkpoint {
            case .awq: imported = try AWQ.importTensor(qweight: qw, qzeros: qz, scales: s)
            case .auto, .gptqV2:
                imported = try GPTQ.importTensor(qweight: qw, qzeros: qz, scales: s, gIdx: try source.tensor(name + ".g_idx"),
                                                 version: checkpoint == .gptqV2 ? .v2 : .v1)
            }
            if let perm = imported.inputPermutation, perm != Array(0..<perm.count) {
                throw bad("an act-order (g_idx) checkpoint permutes the input features; the stack needs them in order")
            }
            w = imported.weight
        } else {
            return nil
        }
        guard w.rows == rows, w.columns == columns else { throw bad("INT4 weight is [\(w.rows), \(w.columns)], expected [\(rows), \(columns)]") }
        return w
    }

    /// Stores a float weight as `storage` says: INT4 (symmetric, quantized by the catalog's
    /// quantizeInt4 on its `[rows, k]` matrix) or the activations' dtype.
    mutating func store(_ key: String, floats: [Float], shape: [Int], storage: WeightStorage, _ c: DecoderStackConfig) throws {
        guard storage == .int4 else {
            tensors[key + ".weight"] = try HostTensor(shape, c.dtype, floats: floats)
            return
        }
        let k = shape[shape.count - 1], rows = floats.count / max(1, k)
        let f = Int4Format(groupSize: WeightScheme.int4Group(k: k, preferred: c.groupSize), symmetric: true)
        let out = try Reference.evaluate(.quantizeInt4(f), [try HostTensor([rows, k], .f32, floats: floats)])
        let lead = Array(shape.dropLast(2)), n = shape[shape.count - 2]
        tensors[key + ".q"] = try HostTensor(TensorDesc(lead + [n, k], .int4), bytes: out[0].bytes)
        tensors[key + ".scales"] = try HostTensor(TensorDesc(lead + [n, k / f.groupSize], .f32), bytes: out[1].bytes)
        int4[key] = f
    }

    /// Stores INT4 pieces (one matrix, or per expert with gate and up stacked) as one weight.
    mutating func storeInt4(_ key: String, _ parts: [NativeInt4Weight], lead: [Int] = []) throws {
        guard let f = parts.first?.format, parts.allSatisfy({ $0.format == f && $0.columns == parts[0].columns }) else {
            throw PolychipError.invalidArgument(kernel: "decoder-stack", argument: key, reason: "its INT4 pieces have different formats or widths")
        }
        let rows = parts.reduce(0) { $0 + $1.rows } / max(1, lead.reduce(1, *)), k = parts[0].columns
        tensors[key + ".q"] = try HostTensor(TensorDesc(lead + [rows, k], .int4), bytes: parts.flatMap(\.q.bytes))
        tensors[key + ".scales"] = try HostTensor(TensorDesc(lead + [rows, k / f.groupSize], .f32), bytes: parts.flatMap(\.scales.bytes))
        if !f.symmetric {
            tensors[key + ".zeros"] = try HostTensor(TensorDesc(lead + [rows, k / f.groupSize], .i8), bytes: parts.flatMap { $0.zeros?.bytes ?? [] })
        }
        int4[key] = f
    }

    /// The absorbed MLA matrices from kv_b_proj `[heads·(nope + v), kv_lora]`: per head, the
    /// key rows as `[nope, kv_lora]` (absorb_q) and the value rows transposed, `[kv_lora, v]` (absorb_v).
    static func absorbed(_ role: Role, kvb: HostTensor, _ m: MoEModelConfig) throws -> HostTensor {
        let (hh, nope, v, r) = (m.heads, m.qkNopeHeadDim, m.vHeadDim, m.kvLoraRank)
        let x = kvb.floats
        var out: [Float] = []
        for h in 0..<hh {
            let base = h * (nope + v) * r
            if role == .absorbQ {
                out += x[base..<(base + nope * r)]
            } else {
                for i in 0..<r { for j in 0..<v { out.append(x[base + (nope + j) * r + i]) } }
            }
        }
        return try HostTensor(role == .absorbQ ? [hh, nope, r] : [hh, r, v], kvb.desc.dtype, floats: out)
    }
}

/// FNV-1a of a string (per-tensor seeds).
func fnv1a(_ s: String) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
    return h
}
