import Foundation
import PolychipCore

extension Reference {
    static func rmsNorm(_ a: Args, _ eps: Double) throws -> HostTensor {
        try rmsNorm(a["x"], weight: a["weight"].doubles, eps)
    }

    static func rmsNorm(_ x: HostTensor, weight w: [Double], _ eps: Double) throws -> HostTensor {
        try rowwise(x) { row in
            let ms = row.reduce(0) { $0 + $1 * $1 } / Double(row.count)
            let inv = 1 / (ms + eps).squareRoot()
            return row.enumerated().map { $0.element * inv * w[$0.offset] }
        }
    }

    /// docs/kernels.md: the new residual `h = x + residual` is rounded to the activation dtype
    /// (it is stored there), and `y` normalizes that stored `h`: the fused kernel equals
    /// `add` followed by `rms-norm`.
    static func addRmsNorm(_ a: Args, _ eps: Double) throws -> [HostTensor] {
        let x = a["x"], r = a["residual"].doubles
        let h = try output(x.desc.shape, x.desc.dtype, zip(x.doubles, r).map { $0 + $1 })
        return [try rmsNorm(h, weight: a["weight"].doubles, eps), h]
    }

    static func rope(_ a: Args, _ p: RopeParams) throws -> HostTensor {
        let x = a["x"]
        let (t, h, d) = (x.desc.shape[0], x.desc.shape[1], x.desc.shape[2])
        let r = p.rotaryDim ?? d
        let pos = a["positions"].ints
        var v = x.doubles
        for ti in 0..<t {
            for hi in 0..<h {
                let base = (ti * h + hi) * d
                for i in 0..<(r / 2) {
                    let angle = Double(pos[ti]) * Foundation.pow(p.base, -2 * Double(i) / Double(r))
                    let (c, s) = (Foundation.cos(angle), Foundation.sin(angle))
                    let (i0, i1) = p.style == .neox ? (i, i + r / 2) : (2 * i, 2 * i + 1)
                    let (x0, x1) = (v[base + i0], v[base + i1])
                    v[base + i0] = x0 * c - x1 * s
                    v[base + i1] = x0 * s + x1 * c
                }
            }
        }
        return try output(x.desc.shape, x.desc.dtype, v)
    }
}
