// KernelCall+INT4.swift — OpenCL launches of quantize, dequantize, INT4 GEMV/GEMM (one KernelCall extension per kernel family).

import Foundation
import PolychipCore

extension KernelCall {
    // MARK: INT4

    func zerosArgs(_ f: Int4Format, prefix: String = "") -> [KernelArg] {
        f.symmetric ? [.null, .u64(0)] : self[prefix + "zeros"].args
    }

    func quantize(_ f: Int4Format) throws {
        let x = self["x"]
        let (n, k) = (x.desc.shape[0], x.desc.shape[1])
        let p = try device.catalogProgram(.int4, dtype: x.desc.dtype)
        let z: [KernelArg] = f.symmetric ? [.null, .u64(0)] : outs[2].args
        try sub.launch(p, "int4_quantize", x.args + outs[0].args + outs[1].args + z
                       + [.int(n), .int(k), .int(f.groupSize), .int(f.symmetric ? 0 : 1)],
                       global: [quantizeWorkItems(groups: n * (k / f.groupSize))], local: [64])
    }

    /// Work-items of `int4_quantize` (a multiple of its local size 64): one per group on
    /// GPUs; on CPU devices at most 4096 per compute unit, each taking a contiguous run of
    /// groups (PoCL pays its per-work-item cost once per run).
    func quantizeWorkItems(groups: Int) -> Int {
        let one = ceilDiv(groups, 64) * 64
        return device.vendorClass == .cpu ? min(one, 64 * 64 * max(1, device.info.computeUnits)) : one
    }

    func dequantize(_ f: Int4Format, _ out: DType) throws {
        let q = self["q"], s = self["scales"]
        let (n, k) = (q.desc.shape[0], q.desc.shape[1])
        let p = try device.catalogProgram(.int4, dtype: out)
        try sub.launch(p, "int4_dequantize", q.args + s.args + zerosArgs(f) + outs[0].args
                       + [.int(n), .int(k), .int(f.groupSize), .int(f.symmetric ? 0 : 1)],
                       global: [n * k / 2], local: nil)
    }

    func int4Matmul(_ f: Int4Format) throws {
        let x = self["x"], y = outs[0]
        let (m, k) = (x.desc.shape[0], x.desc.shape[1])
        let n = y.desc.shape[1]
        try int4Gemm(x, self["q"], self["scales"], zerosArgs(f), y, m: m, n: n, k: k, f: f)
    }

    func int4Gemm(_ x: Operand, _ q: Operand, _ s: Operand, _ z: [KernelArg], _ y: Operand, m: Int, n: Int, k: Int, f: Int4Format) throws {
        let fmt: [KernelArg] = [.int(f.groupSize), .int(f.symmetric ? 0 : 1)]
        if m <= 8 {
            let gv = t.gvShape(m)
            let p = try device.catalogProgram(.int4, dtype: x.desc.dtype, [("GV_MAXM", gv.maxM), ("GV_ROWS", gv.rows)])
            try sub.launch(p, "int4_gemv", x.args + q.args + s.args + z + y.args + [.int(m), .int(n), .int(k)] + fmt,
                           global: [ceilDiv(n, gv.rows) * t.gvWG], local: [t.gvWG])
        } else {
            let p = try device.catalogProgram(.int4, dtype: x.desc.dtype)
            try sub.launch(p, "int4_gemm", x.args + q.args + s.args + z + y.args + [.int(m), .int(n), .int(k)] + fmt,
                           global: gemmGlobal(m: m, n: n), local: gemmLocal)
        }
    }

    func int4GroupedMatmul(_ f: Int4Format) throws {
        let x = self["x"], offs = self["offsets"], y = outs[0]
        let (rows, k) = (x.desc.shape[0], x.desc.shape[1])
        let n = y.desc.shape[1], e = offs.desc.shape[0] - 1
        let offsets = try checkOffsets(.int4GroupedMatmul, offs, rows: rows)
        let largest = zip(offsets, offsets.dropFirst()).map { $1 - $0 }.max() ?? 0
        try int4GroupedGemm(x, self["q"], self["scales"], zerosArgs(f), offs.args, y, rows: rows, n: n, k: k, experts: e,
                            f: f, gemvRows: largest <= 8 ? largest : nil)
    }

    func int4GroupedGemm(_ x: Operand, _ q: Operand, _ s: Operand, _ z: [KernelArg], _ offs: [KernelArg], _ y: Operand,
                         rows: Int, n: Int, k: Int, experts: Int, f: Int4Format, gemvRows: Int?) throws {
        let tail: [KernelArg] = [.int(rows), .int(n), .int(k), .int(f.groupSize), .int(f.symmetric ? 0 : 1), .int(experts)]
        if let gemvRows {
            let gv = t.gvShape(gemvRows, grouped: true)
            let p = try device.catalogProgram(.int4, dtype: x.desc.dtype, [("GV_MAXM", gv.maxM), ("GV_ROWS", gv.rows)])
            try sub.launch(p, "int4_grouped_gemv", x.args + q.args + s.args + z + offs + y.args + tail,
                           global: [ceilDiv(n, gv.rows) * t.gvWG, experts], local: [t.gvWG, 1])
        } else {
            let p = try device.catalogProgram(.int4, dtype: x.desc.dtype)
            try sub.launch(p, "int4_grouped_gemm", x.args + q.args + s.args + z + offs + y.args + tail,
                           global: groupedGlobal(rows: rows, n: n, experts: experts), local: gemmLocal)
        }
    }
}
