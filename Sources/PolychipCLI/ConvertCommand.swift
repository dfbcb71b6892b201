import ArgumentParser
import Foundation
import Polychip

/// `polychip convert`: an INT4 checkpoint tensor into the native layout, as `.npy` files or one
/// `.safetensors` file, through the library's importers (``GGUFFile``, ``GGMLQ4_0``, ``GPTQ``, ``AWQ``).
struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a GGUF Q4_0 tensor or a GPTQ/AWQ layer to the native INT4 layout (.npy or .safetensors).",
        discussion: """
        The native layout (docs/kernels.md, INT4) is what int4-matmul, int4-grouped-matmul and \
        moe-layer take: q (packed nibbles [N, K], uint8 [N, K/2] on disk), scales (f32 [N, K/G]) \
        and, for GPTQ/AWQ, zeros (int8 [N, K/G]). Conversion is lossless: the native \
        dequantization equals the format's own bit for bit.

        GGUF: --tensor is the tensor's name (blk.0.ffn_down.weight); a 3-D expert stack becomes \
        [E, N, K]. GPTQ/AWQ (.safetensors, --format gptq or awq): --tensor is the layer prefix \
        whose .qweight, .qzeros, .scales (and GPTQ's optional .g_idx) are read. An act-order GPTQ \
        layer also writes perm (i32 [K]): the input features sorted by group, so \
        x[:, perm] · Wᵀ is the layer.

        --output DIR writes DIR/q.npy, DIR/scales.npy (and zeros.npy, perm.npy); --output \
        FILE.safetensors writes one file with tensors q (U8), scales, zeros, perm. Either way \
        all-or-nothing. Example: polychip convert model.gguf --tensor blk.0.ffn_down.weight \
        --output w/ && polychip run int4-matmul --input x=x.npy --input q=w/q.npy --input scales=w/scales.npy
        """)

    @Argument(help: "The checkpoint: a .gguf file, or a .safetensors file with --format gptq|awq.")
    var source: String

    @Option(help: "GGUF: the tensor name; GPTQ/AWQ: the layer prefix (PREFIX.qweight, …).")
    var tensor: String

    @Option(help: "gguf (default for .gguf files), gptq or awq.")
    var format: String?

    @Option(name: .customLong("gptq-version"), help: "GPTQ zero-point convention: v1 (AutoGPTQ's stored zero − 1; checkpoint_format gptq) or v2.")
    var gptqVersion: String = "v1"

    @Option(help: "A directory for q.npy, scales.npy, … or a FILE.safetensors.")
    var output: String

    @OptionGroup(title: "Output files") var outputOptions: OutputOptions

    func run() throws {
        let kind = format ?? (source.hasSuffix(".gguf") ? "gguf" : "")
        let weight: NativeInt4Weight
        var perm: [Int]? = nil
        var lead: [Int] = []  // leading dimensions of an expert stack
        switch kind {
        case "gguf":
            let (w, shape) = try GGUFFile.q4_0Tensor(path: source, name: tensor)
            weight = w
            lead = Array(shape.dropLast(2))
        case "gptq", "awq":
            let st = try SafeTensorsFile.read(path: source)
            func part(_ suffix: String) throws -> HostTensor {
                let name = tensor + "." + suffix
                guard st.tensors[name] != nil else {
                    let layers = Set(st.tensors.keys.compactMap { $0.hasSuffix(".qweight") ? String($0.dropLast(8)) : nil }).sorted()
                    throw ValidationError("\(Quoted.bounded(source)) has no tensor \(Quoted(name)); its quantized layers: "
                                          + Quoted.bounded(layers.prefix(8).joined(separator: ", ") + (layers.count > 8 ? ", …" : ""), limit: 600))
                }
                return try st.tensor(name, path: source)
            }
            if kind == "gptq" {
                guard let version = GPTQ.Version(rawValue: gptqVersion) else {
                    throw ValidationError("--gptq-version must be v1 or v2, got \(Quoted(gptqVersion))")
                }
                let gIdx = st.tensors[tensor + ".g_idx"] != nil ? try part("g_idx") : nil
                let imported = try GPTQ.importTensor(qweight: part("qweight"), qzeros: part("qzeros"), scales: part("scales"), gIdx: gIdx, version: version)
                weight = imported.weight
                perm = imported.inputPermutation
            } else {
                let imported = try AWQ.importTensor(qweight: part("qweight"), qzeros: part("qzeros"), scales: part("scales"))
                weight = imported.weight
                perm = imported.inputPermutation
            }
        default:
            throw ValidationError("--format must be gguf, gptq or awq" + (format == nil ? " (the source is not a .gguf file)" : ", got \(Quoted(kind))"))
        }
        func stacked(_ t: HostTensor) throws -> HostTensor {
            guard !lead.isEmpty else { return t }
            let rows = t.desc.shape[0] / lead.reduce(1, *)
            return try HostTensor(TensorDesc(lead + [rows, t.desc.shape[1]], t.desc.dtype), bytes: t.bytes)
        }
        var tensors: [(String, HostTensor)] = [("q", try stacked(weight.q)), ("scales", try stacked(weight.scales))]
        if let z = weight.zeros { tensors.append(("zeros", try stacked(z))) }
        if let perm { tensors.append(("perm", try HostTensor([perm.count], int32s: perm.map { Int32($0) }))) }
        let files = OutputFiles(replaceReadOnly: outputOptions.replaceReadOnly)
        if output.hasSuffix(".safetensors") {
            try files.declare(output, label: "--output")
            var entries: [String: SafeTensorsFile.Entry] = [:]
            for (name, t) in tensors { entries[name] = try Self.entry(t) }
            let meta = ["format": "polychip native INT4", "groupSize": "\(weight.format.groupSize)", "symmetric": "\(weight.format.symmetric)",
                        "source": "\(kind) \(URL(fileURLWithPath: source).lastPathComponent) \(tensor)"]
            try files.stage(output, SafeTensorsFile.encode(SafeTensorsFile.Contents(tensors: entries, metadata: meta)))
        } else {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: output, isDirectory: &isDir), isDir.boolValue else {
                throw ValidationError("--output \(Quoted.bounded(output)) is neither an existing directory nor a .safetensors file")
            }
            let dir = URL(fileURLWithPath: output)
            for (name, _) in tensors { try files.declare(dir.appendingPathComponent("\(name).npy").path, label: name) }
            for (name, t) in tensors { try files.stage(dir.appendingPathComponent("\(name).npy").path, NumPyFile.encode(t)) }
        }
        try files.commit()
        let f = weight.format
        print("\(kind) \(tensor) → native INT4 \(f.symmetric ? "symmetric" : "asymmetric"), group \(f.groupSize): "
              + tensors.map { "\($0.0) \($0.1.desc)" }.joined(separator: ", ") + " → \(output)")
    }

    /// The safetensors entry of a native tensor (int4 as U8 bytes with the last dimension halved).
    static func entry(_ t: HostTensor) throws -> SafeTensorsFile.Entry {
        var shape = t.desc.shape
        let type: SafeTensorsFile.ElementType
        switch t.desc.dtype {
        case .int4: type = .U8; shape[shape.count - 1] = (shape[shape.count - 1] + 1) / 2
        case .f32: type = .F32
        case .i8: type = .I8
        case .i32: type = .I32
        default: throw PolychipError.invalidTensor(reason: "convert: no safetensors type for \(t.desc.dtype)")
        }
        return SafeTensorsFile.Entry(type: type, shape: shape, bytes: t.bytes)
    }
}
