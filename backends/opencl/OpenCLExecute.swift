import Foundation
import PolychipCore

func ceilDiv(_ a: Int, _ b: Int) -> Int { (a + b - 1) / b }

extension OpenCLDevice {
    /// Whether `kernel` runs here for activation dtype `dtype`: every catalog kernel runs
    /// natively (f32 arithmetic; f16/bf16 loaded and stored by bit conversion, so no
    /// `cl_khr_fp16` is needed) when its source file is embedded. Shapes past a device
    /// limit (e.g. a head dim too large for local memory) are rejected at execution
    /// with ``PolychipError/unsupported(kernel:device:reason:)``.
    public func supports(_ kernel: OpKind, dtype: DType) -> Support {
        if kernel == .topK {
            return dtype == .f32 ? .native : .unsupported("topK takes f32 scores")
        }
        guard dtype.isFloat else { return .unsupported("activations must be f32, f16 or bf16, got \(dtype)") }
        for file in Self.files(for: kernel) + [.gemm] where OpenCLKernelSources.files[file.rawValue] == nil {
            return .unsupported("kernels/opencl/\(file.rawValue) was not embedded in this build")
        }
        return .native
    }

    /// What the kernels cannot take whatever the dtype: tensors past 32-bit indexing, and head
    /// dims or a top-k `k` whose tiles do not fit the device's local memory (answered here,
    /// before anything is launched or built).
    public func support(for call: ValidatedCall) -> Support {
        let base = supports(call.kind, dtype: call.primaryDType)
        guard base.isRunnable else { return base }
        if let t = (call.inputs + call.outputs).first(where: { $0.elementCount > Int(Int32.max) }) {
            return .unsupported("\(t) has more than 2³¹−1 elements (the kernels index with 32-bit ints)")
        }
        if let why = localMemoryRefusal(call) { return .unsupported(why) }
        return base
    }

    static func files(for kind: OpKind) -> [CLFile] {
        switch kind {
        case .matmul, .groupedMatmul: return [.gemm]
        case .int4Matmul, .int4GroupedMatmul, .quantizeInt4, .dequantizeInt4: return [.int4]
        case .rmsNorm, .addRmsNorm, .softmax, .silu, .swiglu, .rope, .add, .scale: return [.elementwise]
        case .attention, .sparseAttention: return [.attention]
        case .lightningIndexer, .topK: return [.dsa]
        case .moeRouter, .moePermute, .moeCombine: return [.moe]
        case .moeLayer: return [.gemm, .int4, .elementwise, .moe]
        }
    }

    /// Runs one catalog kernel. Data-dependent arguments (offsets, indices, ids, source
    /// maps, zero points) are checked on the host before anything is launched, so a bad
    /// call throws the reference's `invalidArgument` and leaves the outputs untouched.
    /// Returns the summed device time of the OpenCL commands (profiling events).
    public func execute(_ call: ValidatedCall, inputs: [Tensor], outputs: [Tensor]) throws -> KernelTiming {
        let op = call.op
        let ins = try inputs.map(operand)
        let outs = try outputs.map(operand)
        let sub = Submission(device: self)
        // Only the elementwise kernels may write over their inputs; any other call whose
        // output overlaps an input computes into temporaries and copies them over last.
        let inPlaceOK = [.rmsNorm, .softmax, .silu, .swiglu, .rope, .add, .scale].contains(op.kind)
        let staged = inPlaceOK ? outs : try outs.map { o in
            guard ins.contains(where: { overlaps($0, o) }) || outs.contains(where: { $0 !== o && overlaps($0, o) }) else { return o }
            let bytes = try o.desc.checkedByteCount()
            return Operand(buffer: try sub.scratch(bytes), offset: 0, desc: o.desc)
        }
        let k = KernelCall(device: self, sub: sub, op: op, ins: ins, outs: staged)
        try k.run()
        for (o, s) in zip(outs, staged) where o !== s {
            let size = max(o.desc.dtype.bitWidth / 8, 1)
            try sub.copy(s.buffer, 0, o.buffer, Int(o.offset) * size, bytes: try o.desc.checkedByteCount())
        }
        return .measured(seconds: try sub.finish())
    }
}

/// Whether two operands share bytes of one buffer.
func overlaps(_ a: Operand, _ b: Operand) -> Bool {
    guard a.buffer === b.buffer else { return false }
    let sa = Int(a.offset) * max(a.desc.dtype.bitWidth / 8, 1), sb = Int(b.offset) * max(b.desc.dtype.bitWidth / 8, 1)
    return sa < sb + b.desc.byteCount && sb < sa + a.desc.byteCount
}

/// One catalog call being dispatched.
struct KernelCall {
    let device: OpenCLDevice
    let sub: Submission
    let op: Op
    let ins: [Operand]
    let outs: [Operand]

    var t: OpenCLTuning { device.tuning }
    var name: String { op.kind.name }

    subscript(_ input: String) -> Operand { ins[op.inputNames.firstIndex(of: input)!] }
    func has(_ input: String) -> Bool { op.inputNames.contains(input) }

    func invalid(_ kind: OpKind, _ argument: String, _ reason: String) -> PolychipError {
        PolychipError.invalidArgument(kernel: kind.name, argument: argument, reason: reason)
    }

    func unsupported(_ reason: String) -> PolychipError {
        PolychipError.unsupported(kernel: name, device: device.id, reason: reason)
    }

    func run() throws {
        for (i, name) in op.zeroPointInputs { try Int4Format.checkZeroPoints(readInts(ins[i]), kernel: self.name, argument: name) }
        switch op {
        case .matmul(let tb): try matmul(tb)
        case .groupedMatmul(let tb): try groupedMatmul(tb)
        case .rmsNorm(let eps): try rmsNorm(eps)
        case .addRmsNorm(let eps): try addRmsNorm(eps)
        case .softmax: try softmax()
        case .silu, .scale, .swiglu, .add: try elementwise()
        case .rope(let p): try rope(p)
        case .attention(let p): try attention(p)
        case .lightningIndexer: try lightningIndexer()
        case .topK(let k): try topK(k)
        case .sparseAttention(let p): try sparseAttention(p)
        case .moeRouter(let p): try moeRouter(p)
        case .moePermute(let e): try moePermute(e)
        case .moeCombine: try moeCombine()
        case .moeLayer(let p): try moeLayer(p)
        case .quantizeInt4(let f): try quantize(f)
        case .dequantizeInt4(let f, let out): try dequantize(f, out)
        case .int4Matmul(let f): try int4Matmul(f)
        case .int4GroupedMatmul(let f): try int4GroupedMatmul(f)
        }
    }

    // MARK: Host-side validation (same errors as the reference backend)

    /// Offsets must start at 0, never decrease and end at `rows`.
    func checkOffsets(_ kind: OpKind, _ o: Operand, rows: Int) throws -> [Int] {
        let offsets = try device.readInt32s(Tensor(desc: o.desc, buffer: o.buffer, byteOffset: Int(o.offset) * 4))
        guard offsets.first == 0, offsets.last == rows, zip(offsets, offsets.dropFirst()).allSatisfy({ $0 <= $1 }) else {
            throw invalid(kind, "offsets", "must start at 0, never decrease and end at \(rows) rows, got \(offsets.prefix(16))")
        }
        return offsets
    }

    func readInts(_ o: Operand) throws -> [Int] {
        let size = max(o.desc.dtype.bitWidth / 8, 1)
        let t = Tensor(desc: o.desc, buffer: o.buffer, byteOffset: Int(o.offset) * size)
        return o.desc.dtype == .i8 ? try device.readInt8s(t) : try device.readInt32s(t)
    }
}
