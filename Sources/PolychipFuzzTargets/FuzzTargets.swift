import Foundation
import Polychip

/// The bodies of the libFuzzer targets in Fuzz/, shared with the regression tests that replay
/// every saved crasher. Each must return normally for any input: a malformed input is a
/// typed error that is swallowed here, never a trap.
public enum FuzzTargets {
    /// `.npy` bytes: decode, and re-encode what decodes.
    public static func numPy(_ bytes: [UInt8]) {
        if let t = try? NumPyFile.decode(bytes) { _ = NumPyFile.encode(t) }
    }

    /// Checkpoint bytes: a GGUF file (header, metadata, tensor infos, then every Q4_0 tensor
    /// imported into the native layout), else a safetensors file (every tensor read).
    public static func checkpoint(_ bytes: [UInt8]) {
        if bytes.starts(with: Array("GGUF".utf8)) {
            guard let c = try? GGUFFile.decode(bytes) else { return }
            for t in c.tensors.prefix(8) where t.type == GGUFFile.q4_0 { _ = try? GGUFFile.q4_0Tensor(bytes, name: t.name) }
        } else if let c = try? SafeTensorsFile.decode(bytes) {
            for name in c.tensors.keys.sorted().prefix(8) { _ = try? c.tensor(name) }
        }
    }

    /// Text as a device selector, resolved against the registry (sim profiles by name only).
    public static func selector(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        _ = try? DeviceSelector(parsing: text)
        if !text.contains("/") && !text.contains(".json") { _ = try? Polychip.registry.resolve(text) }
    }

    /// Bytes as a profile file; its first lines as `--set` overrides; then a modeled GEMM.
    public static func profile(_ bytes: [UInt8]) {
        let d = Data(bytes)
        guard let p = try? DeviceProfile.decode(data: d, origin: "fuzz") else { return }
        let settings = String(decoding: d.prefix(200), as: UTF8.self).split(separator: "\n").map(String.init)
        if let q = try? p.applying(settings: settings) {
            _ = try? TimeModel(profile: q).kernelTime(KernelCostQuery.gemm(m: 64, n: 64, k: 64, dtype: .f16))
        }
    }

    /// Bytes drive a kernel, its parameters and input descriptors: validate and cost must
    /// accept or throw, never trap or overflow.
    public static func validation(_ raw: [UInt8]) {
        var bytes = raw[...]
        func next() -> Int { bytes.isEmpty ? 0 : Int(bytes.removeFirst()) }
        func dim() -> Int {
            switch next() % 8 {
            case 0: return 0
            case 1: return -next()
            case 2: return Int.max / (next() + 1)
            default: return next() % 40 + 1
            }
        }
        let dtypes = DType.allCases
        let fmt = Int4Format(groupSize: next() % 66 - 1, symmetric: next() % 2 == 0)
        let router = RouterParams(scoring: next() % 2 == 0 ? .softmax : .sigmoid, topK: next() % 10 - 1, nGroup: next() % 5,
                                  topkGroup: next() % 5, renormalize: true, routedScale: 1, hasBias: next() % 2 == 0)
        let ops: [Op] = [.matmul(transposeB: next() % 2 == 0), .groupedMatmul(transposeB: false), .rmsNorm(eps: 1e-6), .softmax, .silu,
                         .swiglu, .rope(RopeParams(rotaryDim: next() % 10)), .add, .scale(alpha: 2),
                         .attention(AttentionParams(causal: true, returnLSE: true)), .lightningIndexer, .topK(k: next() - 3),
                         .sparseAttention(SparseAttentionParams()), .moeRouter(router), .moePermute(numExperts: next() - 2), .moeCombine,
                         .moeLayer(MoELayerParams(router: router, experts: next() % 2 == 0 ? .float : .int4(fmt), hasShared: next() % 2 == 0)),
                         .quantizeInt4(fmt), .dequantizeInt4(fmt, output: dtypes[next() % dtypes.count]), .int4Matmul(fmt), .int4GroupedMatmul(fmt)]
        let op = ops[next() % ops.count]
        let count = op.inputNames.count + next() % 3 - 1
        let inputs = (0..<max(0, count)).map { _ in TensorDesc((0..<(next() % 5)).map { _ in dim() }, dtypes[next() % dtypes.count]) }
        if (try? op.validate(inputs)) != nil { _ = op.cost(inputs) }
    }
}
