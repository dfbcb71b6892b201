// RetryCLITests.swift — `--retries`, `--fallback-device` and `--spares` through the built
// binary (a subprocess per call, so the fault plans of `--set` stay in that process).

import Foundation
import Testing
import Polychip
import PolychipReference

@Suite struct RetryCLITests {
    /// `matmul` inputs in a fresh directory, with the reference output.
    private func matmulFiles() throws -> (args: [String], expected: HostTensor, dir: URL) {
        let dir = try CLITests.tempDir()
        let a = try HostTensor([2, 3], .f32, floats: [1, 2, 3, 4, 5, 6])
        let b = try HostTensor([3, 2], .f32, floats: [1, 0, 0, 1, 1, 1])
        try NumPyFile.write(a, path: dir.appendingPathComponent("a.npy").path)
        try NumPyFile.write(b, path: dir.appendingPathComponent("b.npy").path)
        let expected = try Reference.evaluate(.matmul(transposeB: false), [a, b])[0]
        return (["--input", "a=\(dir.path)/a.npy", "--input", "b=\(dir.path)/b.npy", "--output", "c=\(dir.path)/c.npy"], expected, dir)
    }

    @Test func runRetriesATransientLaunchFailure() throws {
        guard CLITests.binary != nil else { return }
        let (io, expected, dir) = try matmulFiles()
        let base = ["run", "matmul", "--device", "sim:ascend-910b"] + io + ["--set", "faults.kernelLaunchFailure.atEvent=1"]
        let failed = try CLITests.runBinary(base)
        #expect(failed.status != 0 && failed.err.contains("kernelLaunchFailure"))
        let ok = try CLITests.runBinary(base + ["--retries", "1"])
        #expect(ok.status == 0, "\(ok.err)")
        #expect(ok.out.contains("(attempt 2)") && ok.err.contains("retried on the same device"))
        #expect(try NumPyFile.read(path: dir.appendingPathComponent("c.npy").path) == expected)
    }

    @Test func runFailsOverWhenTheDeviceIsLost() throws {
        guard CLITests.binary != nil else { return }
        let (io, expected, dir) = try matmulFiles()
        let base = ["run", "matmul", "--device", "sim:ascend-910b:0"] + io
            + ["--set", "faults.deviceLost.atEvent=1", "--set", "faults.deviceLost.device=0"]
        let lost = try CLITests.runBinary(base + ["--retries", "1"])
        #expect(lost.status != 0 && lost.err.contains("deviceLost"))
        let ok = try CLITests.runBinary(base + ["--retries", "1", "--fallback-device", "sim:ascend-910b:1"])
        #expect(ok.status == 0, "\(ok.err)")
        #expect(ok.out.contains("matmul on sim:ascend-910b:1") && ok.err.contains("failed over to sim:ascend-910b:1"))
        #expect(try NumPyFile.read(path: dir.appendingPathComponent("c.npy").path) == expected)
        let bad = try CLITests.runBinary(["run", "matmul", "--retries", "-1"] + io)
        #expect(bad.status != 0)
    }

    @Test func conformExpertParallelWithFaultsNeedsRetries() throws {
        guard CLITests.binary != nil else { return }
        let args = ["conform", "--device", "sim:ascend-910b", "--kernel", "moe-layer-ep", "--expert-parallel", "4", "--dtype", "f32",
                    "--set", "faults.seed=7", "--set", "faults.kernelLaunchFailure.probability=0.01",
                    "--set", "faults.memoryError.probability=0.003",
                    "--set", "faults.deviceLost.device=2", "--set", "faults.deviceLost.atEvent=300"]
        let strict = try CLITests.runBinary(args)
        #expect(strict.status == 1 && strict.out.contains("fault on sim:ascend-910b"))
        let retried = try CLITests.runBinary(args + ["--retries", "3", "--spares", "1"])
        #expect(retried.status == 0, "\(retried.out)")
        #expect(retried.err.contains("1 failed over, 0 gave up"))
    }
}
