// KernelCall+LinearAlgebra.swift — OpenCL launches of GEMM, grouped GEMM (one KernelCall extension per kernel family).

import Foundation
import PolychipCore

extension KernelCall {
    // MARK: Linear algebra

    var gemmLocal: [Int] { t.gemmLocal }

    func gemmGlobal(m: Int, n: Int) -> [Int] {
        [ceilDiv(n, t.tn) * gemmLocal[0], ceilDiv(m, t.tm) * gemmLocal[1]]
    }

    func groupedGlobal(rows: Int, n: Int, experts: Int) -> [Int] {
        [ceilDiv(n, t.tn) * gemmLocal[0], (ceilDiv(rows, t.tm) + experts) * gemmLocal[1]]
    }

    func matmul(_ tb: Bool) throws {
        let a = self["a"], b = self["b"], c = outs[0]
        let (m, k) = (a.desc.shape[0], a.desc.shape[1])
        let n = c.desc.shape[1]
        try gemm(a, b, c, m: m, n: n, k: k, transposed: tb)
    }

    func gemm(_ a: Operand, _ b: Operand, _ c: Operand, m: Int, n: Int, k: Int, transposed: Bool, f32Out: Bool = false) throws {
        let p = try device.catalogProgram(.gemm, dtype: a.desc.dtype)
        let kernel = f32Out ? "matmul_nt_f32out" : transposed ? "matmul_nt" : "matmul_nn"
        try sub.launch(p, kernel, a.args + b.args + c.args + [.int(m), .int(n), .int(k)],
                       global: gemmGlobal(m: m, n: n), local: gemmLocal)
    }

    func groupedMatmul(_ tb: Bool) throws {
        let x = self["x"], w = self["w"], offs = self["offsets"], y = outs[0]
        let rows = x.desc.shape[0], k = x.desc.shape[1], n = y.desc.shape[1]
        _ = try checkOffsets(.groupedMatmul, offs, rows: rows)
        try groupedGemm(x, w, offs, y, rows: rows, n: n, k: k, experts: w.desc.shape[0], transposed: tb)
    }

    func groupedGemm(_ x: Operand, _ w: Operand, _ offs: Operand, _ y: Operand, rows: Int, n: Int, k: Int, experts: Int, transposed: Bool) throws {
        let p = try device.catalogProgram(.gemm, dtype: x.desc.dtype)
        try sub.launch(p, transposed ? "grouped_matmul_nt" : "grouped_matmul_nn",
                       x.args + w.args + offs.args + y.args + [.int(rows), .int(n), .int(k), .int(experts)],
                       global: groupedGlobal(rows: rows, n: n, experts: experts), local: gemmLocal)
    }
}
