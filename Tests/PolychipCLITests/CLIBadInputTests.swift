import Foundation
import Testing
import Polychip

/// Malformed CLI invocations: each exits non-zero with a message naming the problem, and
/// none kills the process with a signal (checked inside `runBinary`).
@Suite struct CLIBadInputTests {
    static func files() throws -> URL {
        let dir = try CLITests.tempDir()
        try NumPyFile.write(try HostTensor([2, 3], .f32, floats: [1, 2, 3, 4, 5, 6]), path: dir.appendingPathComponent("a.npy").path)
        try NumPyFile.write(try HostTensor([3], int32s: [0, 1, 5]), path: dir.appendingPathComponent("i.npy").path)
        try Data("not numpy".utf8).write(to: dir.appendingPathComponent("bad.npy"))
        try Data("{\"name\": ".utf8).write(to: dir.appendingPathComponent("bad.json"))
        return dir
    }

    @Test func malformedInvocations() throws {
        let d = try Self.files().path
        let cases: [([String], String)] = [
            (["nosuch"], "Unexpected argument"),
            (["run"], "Missing expected argument"),
            (["run", "nosuch-kernel"], "unknown kernel"),
            (["run", "softmax"], "needs input 'x'"),
            (["run", "softmax", "--input", "x"], "NAME=FILE.npy"),
            (["run", "softmax", "--input", "=\(d)/a.npy"], "NAME=FILE.npy"),
            (["run", "softmax", "--input", "x=\(d)/missing.npy"], "cannot read file"),
            (["run", "softmax", "--input", "x=\(d)/bad.npy"], "magic"),
            (["run", "softmax", "--input", "x=\(d)/a.npy", "--input", "x=\(d)/a.npy"], "given twice"),
            (["run", "softmax", "--input", "y=\(d)/a.npy"], "unexpected: y"),
            (["run", "softmax", "--input", "x=\(d)/i.npy"], "dtype of 'x'"),
            (["run", "matmul", "--input", "a=\(d)/a.npy", "--input", "b=\(d)/a.npy"], "shape of 'b'"),
            (["run", "softmax", "--input", "x=\(d)/a.npy", "--output", "nosuch=\(d)/o.npy"], "no 'nosuch'"),
            (["run", "softmax", "--input", "x=\(d)/a.npy", "--device", "nosuch"], "unknown backend"),
            (["run", "softmax", "--input", "x=\(d)/a.npy", "--device", "reference:7"], "one device"),
            (["run", "softmax", "--input", "x=\(d)/a.npy", "--dtype", "f64"], "--dtype"),
            (["run", "top-k", "--input", "scores=\(d)/a.npy", "--k", "0"], "'k'"),
            (["run", "rope", "--input", "x=\(d)/a.npy", "--input", "positions=\(d)/i.npy", "--style", "spiral"], "--style"),
            (["run", "moe-router", "--input", "logits=\(d)/a.npy", "--scoring", "tanh"], "--scoring"),
            (["run", "moe-permute", "--input", "x=\(d)/a.npy", "--input", "ids=\(d)/i.npy"], "--num-experts"),
            (["run", "dequantize-int4", "--output-dtype", "i8"], "--output-dtype"),
            (["conform", "--device", "sim:no-such-chip"], "no-such-chip"),
            (["conform", "--device", "sim:\(d)/bad.json"], "bad.json"),
            (["conform", "--device", "a:b:c"], "too many"),
            (["conform", "--kernel", "nosuch"], "unknown kernel"),
            (["conform", "--dtype", "f64"], "unknown dtype"),
            (["conform", "--seed", "-1"], "seed"),
            (["bench", "--shape", "M=1"], "--shape needs --kernel"),
            (["bench", "--kernel", "matmul", "--shape", "Q=1"], "no dimension 'Q'"),
            (["bench", "--kernel", "matmul", "--shape", "M=x"], "NAME=VALUE"),
            (["bench", "--json", "--csv"], "choose one"),
            (["bench", "--min-time", "0"], "--min-time"),
            (["bench", "--dtype", "i32"], "--dtype"),
            (["bench", "--device", "nosuch"], "unknown backend"),
        ]
        for (args, fragment) in cases {
            let r = try CLITests.runBinary(args)
            #expect(r.status != 0, "polychip \(args) succeeded")
            #expect((r.err + r.out).contains(fragment), "polychip \(args): expected '\(fragment)' in: \(r.err.prefix(300))")
        }
    }
}
