// KernelCall+Elementwise.swift — OpenCL launches of RMSNorm, fused add + RMSNorm, softmax, the elementwise kernels and RoPE (one KernelCall extension per kernel family).

import Foundation
import PolychipCore

extension KernelCall {
    // MARK: Elementwise

    func rmsNorm(_ eps: Double) throws {
        let x = self["x"], w = self["weight"], y = outs[0]
        let d = x.desc.shape.last!, rows = x.desc.elementCount / d
        let p = try device.catalogProgram(.elementwise, dtype: x.desc.dtype)
        try sub.launch(p, "rms_norm", x.args + w.args + y.args + [.int(rows), .int(d), .f32(Float(eps))],
                       global: [rows * t.rowWG], local: [t.rowWG])
    }

    func addRmsNorm(_ eps: Double) throws {
        let x = self["x"], r = self["residual"], w = self["weight"], y = outs[0], h = outs[1]
        let d = x.desc.shape.last!, rows = x.desc.elementCount / d
        let p = try device.catalogProgram(.elementwise, dtype: x.desc.dtype)
        try sub.launch(p, "add_rms_norm", x.args + r.args + w.args + y.args + h.args + [.int(rows), .int(d), .f32(Float(eps))],
                       global: [rows * t.rowWG], local: [t.rowWG])
    }

    func softmax() throws {
        let x = self["x"], y = outs[0]
        let d = x.desc.shape.last!, rows = x.desc.elementCount / d
        let p = try device.catalogProgram(.elementwise, dtype: x.desc.dtype)
        try sub.launch(p, "softmax", x.args + y.args + [.int(rows), .int(d)], global: [rows * t.rowWG], local: [t.rowWG])
    }

    func elementwise() throws {
        let x = ins[0], y = outs[0]
        let n = x.desc.elementCount
        let p = try device.catalogProgram(.elementwise, dtype: x.desc.dtype)
        switch op {
        case .silu: try sub.launch(p, "silu", x.args + y.args + [.int(n)], global: [n], local: nil)
        case .scale(let alpha): try sub.launch(p, "scale", x.args + y.args + [.int(n), .f32(Float(alpha))], global: [n], local: nil)
        case .swiglu: try swiglu(ins[0], ins[1], y, n: n)
        default: try sub.launch(p, "add", ins[0].args + ins[1].args + y.args + [.int(n)], global: [n], local: nil)
        }
    }

    func swiglu(_ g: Operand, _ u: Operand, _ y: Operand, n: Int) throws {
        let p = try device.catalogProgram(.elementwise, dtype: g.desc.dtype)
        try sub.launch(p, "swiglu", g.args + u.args + y.args + [.int(n)], global: [n], local: nil)
    }

    func rope(_ rp: RopeParams) throws {
        let x = self["x"], pos = self["positions"], y = outs[0]
        let (tt, h, d) = (x.desc.shape[0], x.desc.shape[1], x.desc.shape[2])
        let r = rp.rotaryDim ?? d
        let p = try device.catalogProgram(.elementwise, dtype: x.desc.dtype)
        try sub.launch(p, "rope", x.args + pos.args + y.args
                       + [.int(tt), .int(h), .int(d), .int(r), .int(rp.style == .neox ? 0 : 1), .f32(Float(rp.base))],
                       global: [d - r / 2, tt * h], local: nil)
    }
}
