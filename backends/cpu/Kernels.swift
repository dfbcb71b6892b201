import CPolychipKernels
import PolychipCore

/// The CPU implementations of the catalog. Every kernel validates data-dependent inputs
/// (offsets, indices, ids, source maps, zero points) before it writes any output.
enum CPUKernels {
    static func run(_ op: Op, _ ctx: KernelContext, _ ins: [Operand], _ outs: [Operand]) throws {
        for (i, name) in op.zeroPointInputs {
            try Int4Format.checkZeroPoints(UnsafeBufferPointer(start: ins[i].i8(), count: ins[i].desc.elementCount), kernel: op.kind.name, argument: name)
        }
        switch op {
        case .matmul(let tb): matmul(ctx, ins[0], ins[1], outs[0], transposeB: tb)
        case .groupedMatmul(let tb): try groupedMatmul(ctx, ins[0], ins[1], ins[2], outs[0], transposeB: tb)
        case .int4Matmul(let f):
            int4Matmul(ctx, ins[0], int4(ins, from: 1, f), outs[0])
        case .int4GroupedMatmul(let f):
            try int4GroupedMatmul(ctx, ins[0], int4(ins, from: 1, f), ins[ins.count - 1], f, outs[0])
        case .rmsNorm(let eps): rmsNorm(ctx, ins[0], ins[1], Float(eps), outs[0])
        case .addRmsNorm(let eps): addRmsNorm(ctx, ins[0], ins[1], ins[2], Float(eps), y: outs[0], residualOut: outs[1])
        case .softmax: softmax(ctx, ins[0], outs[0])
        case .silu: unary(ctx, ins[0], outs[0]) { n, x, y in pck_silu(n, x, y) }
        case .scale(let alpha): unary(ctx, ins[0], outs[0]) { n, x, y in pck_scale(n, Float(alpha), x, y) }
        case .swiglu: binary(ctx, ins[0], ins[1], outs[0]) { n, a, b, y in pck_swiglu(n, a, b, y) }
        case .add: binary(ctx, ins[0], ins[1], outs[0]) { n, a, b, y in add_(n, a, b, y) }
        case .rope(let p): rope(ctx, ins[0], ins[1], p, outs[0])
        case .attention(let p): attention(ctx, ins[0], ins[1], ins[2], p, outs)
        case .lightningIndexer: lightningIndexer(ctx, ins[0], ins[1], ins[2], outs[0])
        case .topK(let k): topK(ctx, ins[0], k, outs[0], outs[1])
        case .sparseAttention(let p): try sparseAttention(ctx, ins[0], ins[1], ins[2], ins[3], p, outs)
        case .moeRouter(let p): moeRouter(ctx, ins[0], p.hasBias ? ins[1] : nil, p, outs[0], outs[1])
        case .moePermute(let e): try moePermute(ctx, ins[0], ins[1], e, outs[0], outs[1], outs[2])
        case .moeCombine: try moeCombine(ctx, ins[0], ins[1], ins[2], outs[0])
        case .moeLayer(let p): try moeLayer(ctx, p, op.inputNames, ins, outs[0])
        case .quantizeInt4(let f): quantizeInt4(ctx, ins[0], f, outs)
        case .dequantizeInt4(let f, _): try dequantizeInt4(ctx, int4(ins, from: 0, f), ins[0], f, outs[0])
        }
    }

    /// The INT4 triple starting at input `i` as GEMM weights (the last two dims are N, K).
    static func int4(_ ins: [Operand], from i: Int, _ f: Int4Format) -> Int4Weights {
        let q = ins[i], k = q.shape[q.shape.count - 1]
        return Int4Weights(q: UnsafePointer(q.u8()), ldw: k / 2, scales: UnsafePointer(ins[i + 1].f32()), lds: k / f.groupSize,
                           zeros: f.symmetric ? nil : UnsafePointer(ins[i + 2].i8()), ldz: k / f.groupSize, groupSize: f.groupSize)
    }
}
