import Foundation
import Testing
import PolychipCore
import PolychipReference
@testable import PolychipOpenCL

/// Softmax's non-finite rules (docs/kernels.md) on both OpenCL mappings: the CPU vector
/// path (`rowVec=1`, which stores each exp once and has its own +inf count) and the scalar
/// GPU path (`rowVec=0`). Random conformance inputs never hold +inf or NaN, so these rows
/// are built by hand: a plain row, a NaN row, a row with two +inf entries, an all -inf
/// row and a partly -inf row; D = 37 runs the float8 body and the scalar tail together.
@Suite struct SoftmaxRulesTests {
    static func rows(_ d: Int) -> [Float] {
        var v: [Float] = []
        for r in 0..<5 {
            var row = (0..<d).map { Float(sin(Double($0 * 7 + r * 13 + 1))) * 6 }
            switch r {
            case 1: row[d / 2] = .nan
            case 2: row[3] = .infinity; row[d - 1] = .infinity
            case 3: row = [Float](repeating: -.infinity, count: d)
            case 4: for i in stride(from: 0, to: d, by: 3) { row[i] = -.infinity }
            default: break
            }
            v += row
        }
        return v
    }

    @Test(arguments: ["rowVec=1,rowWG=8", "rowVec=0,rowWG=16"], [37, 64])
    func specialRows(_ tuning: String, _ d: Int) throws {
        guard let entry = openCLDevice?.entry else { print("skipped: no OpenCL device"); return }
        let dev = try OpenCLDevice(entry: entry, index: 0, tuningOverrides: tuning)
        let x = try HostTensor([5, d], floats: Self.rows(d))
        let want = try Reference.evaluate(.softmax, [x])[0].floats
        let q = Queue(device: dev)
        // separate output, then in place (output buffer == input buffer)
        let tx = try dev.tensor(x), ty = try dev.allocate(x.desc)
        try q.enqueue(.softmax, inputs: [tx], outputs: [ty])
        let inPlace = try dev.tensor(x)
        try q.enqueue(.softmax, inputs: [inPlace], outputs: [inPlace])
        for got in [try dev.download(ty).floats, try dev.download(inPlace).floats] {
            for (i, (g, w)) in zip(got, want).enumerated() {
                if w.isNaN { #expect(g.isNaN, "\(tuning) D=\(d) [\(i)]: \(g), want NaN"); continue }
                #expect(abs(g - w) <= 2e-6 * max(1, abs(w)), "\(tuning) D=\(d) [\(i)]: \(g), want \(w)")
            }
        }
    }
}
