import Foundation
import Testing
import Polychip
import PolychipTestSupport

/// Issue 14 through the binary: past the edge the input checks already covered. Every run has
/// a timeout (a hang fails the test instead of hanging CI) and must end with an exit status,
/// never a signal.
@Suite struct PastTheEdgeCLITests {
    static func run(_ args: [String], wrapper: String? = nil, environment: [String: String]? = nil,
                    timeout: Double = 120) throws -> TestSupport.Run {
        let r = try TestSupport.run(args, environment: environment, wrapper: wrapper, timeout: timeout)
        #expect(!r.timedOut, "polychip \(args.map { String($0.prefix(60)) }) ran past \(timeout) s")
        #expect(r.exited, "polychip \(args.map { String($0.prefix(60)) }) died from a signal: \(r.err.suffix(400))")
        return r
    }

    static func write(_ t: HostTensor, _ dir: URL, _ name: String) throws -> String {
        let p = dir.appendingPathComponent(name).path
        try NumPyFile.write(t, path: p)
        return p
    }

    // MARK: 1. Integers from the user

    @Test func userIntegersGiveTypedErrors() throws {
        let dir = try CLITests.tempDir()
        let x = try Self.write(try HostTensor([2, 64], .f32, floats: (0..<128).map { Float($0) / 7 }), dir, "x.npy")
        var poisoned = (0..<128).map { Float($0) / 7 }
        poisoned[3] = .nan; poisoned[70] = .infinity; poisoned[100] = -.infinity
        let nanX = try Self.write(try HostTensor([2, 64], .f32, floats: poisoned), dir, "nan.npy")
        let max = "9223372036854775807", big = "4294967296"
        let cases: [([String], String)] = [
            (["simulate", "--model", "glm5", "--profile", "ascend-910b", "--devices", "0"], "--devices"),
            (["simulate", "--batch", max], "--batch"),
            (["simulate", "--batch", "-1"], "--batch"),
            (["simulate", "--phase", "prefill", "--context", max], "--context"),
            (["simulate", "--devices", big, "--nodes", big], "--devices"),
            (["simulate", "--nodes", max], "--nodes"),
            (["simulate", "--tp", big], "--tp"),
            (["simulate", "--tp", "2", "--dp", max], "--dp"),
            (["simulate", "--pp", max], "--pp"),
            (["simulate", "--group-size", max], "--group-size"),
            (["simulate", "--phase", "prefill", "--batch", "1048576", "--context", "16777216"], "--batch"),
            (["simulate", "--sweep", "tp=\(max)"], "--sweep"),
            (["simulate", "--sweep", "tp=1,2,3,4,5,6,7,8", "--sweep", "dp=1,2,3,4,5,6,7,8", "--sweep", "ep=1,2,3,4,5,6,7,8",
              "--sweep", "pp=1,2,3,4,5,6,7,8,9"], "plans"),
            (["run", "softmax", "--input", "x=\(x)", "--retries", max], "--retries"),
            (["run", "softmax", "--input", "x=\(x)", "--retries", "-1"], "--retries"),
            (["conform", "--device", "sim:ascend-910b", "--kernel", "moe-layer-ep", "--expert-parallel", max], "--expert-parallel"),
            (["conform", "--device", "sim:ascend-910b", "--kernel", "moe-layer-ep", "--expert-parallel", "2000"], "--expert-parallel"),
            (["conform", "--device", "sim:ascend-910b", "--kernel", "moe-layer-ep", "--expert-parallel", "2", "--spares", max], "--spares"),
            (["conform", "--kernel", "add", "--retries", max], "--retries"),
            (["run", "top-k", "--input", "scores=\(x)", "--k", max], "overflows"),
            (["run", "moe-router", "--input", "logits=\(x)", "--top-k", max], "topK"),
            (["run", "quantize-int4", "--input", "x=\(x)", "--group-size", max], "group"),
            (["diff", "--device", "cpu", "--layers", max], "--layers"),
            (["diff", "--device", "cpu", "--layers", "0"], "--layers"),
            (["diff", "--device", "cpu", "--tokens", big], "--tokens"),
            (["diff", "--device", "cpu", "--group-size", max], "--group-size"),
            (["diff", "--device", "cpu", "--max-runs", "-1"], "--max-runs"),
            (["diff", "--device", "cpu", "--seed", "-1"], "--seed"),
            (["bench", "--kernel", "matmul", "--shape", "M=\(max),N=\(max),K=1", "--device", "cpu", "--min-time", "0.01"], "overflow"),
        ]
        for (args, fragment) in cases {
            let r = try Self.run(args)
            #expect(r.status != 0 || (r.out + r.err).contains(fragment), "polychip \(args) succeeded")
            #expect((r.out + r.err).contains(fragment), "polychip \(args): expected '\(fragment)' in: \(r.err.suffix(300))")
        }
        // quantize-int4 on NaN/Inf: an unspecified but in-range encoding on every device, no trap.
        for device in ["reference", "cpu", "sim:ascend-910b"] {
            let r = try Self.run(["run", "quantize-int4", "--asymmetric", "--input", "x=\(nanX)", "--device", device])
            #expect(r.status == 0, "\(device): \(r.err.suffix(300))")
        }
    }

    // MARK: 2. Resources: threads, skewed routing, host memory

    /// Thread creation fails in a child whose process limit is lowered (RLIMIT_NPROC = 1; as
    /// root, which the limit does not bind, the child first drops to `nobody`): the command
    /// ends with the typed error instead of spinning forever.
    @Test func threadCreationFailureIsATypedError() throws {
        let root = geteuid() == 0
        let tools = ["/usr/bin/prlimit"] + (root ? ["/usr/bin/setpriv"] : [])
        guard tools.allSatisfy({ FileManager.default.isExecutableFile(atPath: $0) }) else {
            print("skipped: \(tools.joined(separator: " and ")) (util-linux) not found"); return
        }
        let drop = root ? "setpriv --reuid=65534 --regid=65534 --clear-groups " : ""
        let wrapper = "exec \(drop)prlimit --nproc=1:1 -- \"$0\" \"$@\""
        for (args, label) in [(["conform", "--device", "cpu:threads=4", "--kernel", "add"], "cpu"),
                              (["conform", "--device", "sim:ascend-910b", "--kernel", "top-k"], "sim")] {
            // detect_leaks=0: under scripts/sanitizers.sh, LeakSanitizer's exit-time check needs a
            // thread of its own, which this child may not create (it then dies before stdout is flushed).
            let r = try Self.run(args, wrapper: wrapper, environment: ["PATH": "/usr/bin:/bin", "HOME": "/tmp", "ASAN_OPTIONS": "detect_leaks=0"],
                                 timeout: 60)
            #expect(r.status != 0, "\(label): succeeded without threads")
            #expect(r.err.contains("out of threads") || r.out.contains("out of threads"), "\(label): \(r.err.suffix(400)) \(r.out.suffix(400))")
            #expect((r.err + r.out).contains("EAGAIN"), "\(label): the cause is not named")
        }
    }

    @Test func environmentThreadCountsAreChecked() throws {
        for v in ["0", "-1", "abc", "999999", "4097"] {
            let r = try Self.run(["conform", "--device", "cpu", "--kernel", "add"],
                                 environment: ProcessInfo.processInfo.environment.merging(["POLYCHIP_CPU_THREADS": v]) { $1 })
            #expect(r.status != 0 && r.err.contains("POLYCHIP_CPU_THREADS"), "POLYCHIP_CPU_THREADS=\(v): \(r.err.suffix(200))")
        }
    }

    @Test func skewedRoutingFinishes() throws {
        for routing in ["zipf:8", "zipf:1000"] {
            let r = try Self.run(["simulate", "--routing", routing], timeout: 120)
            #expect(r.status == 0, "\(routing): \(r.err.suffix(300))")
        }
    }

    @Test func hostMemoryIsCheckedBeforeAllocating() throws {
        let dir = try CLITests.tempDir()
        let col = try Self.write(try HostTensor([200_000, 1], .f32, floats: [Float](repeating: 1, count: 200_000)), dir, "col.npy")
        let row = try Self.write(try HostTensor([1, 200_000], .f32, floats: [Float](repeating: 1, count: 200_000)), dir, "row.npy")
        let r = try Self.run(["run", "matmul", "--device", "cpu", "--input", "a=\(col)", "--input", "b=\(row)"])
        #expect(r.status != 0 && r.err.contains("out of memory"), "\(r.err)")
        let b = try Self.run(["bench", "--device", "cpu", "--kernel", "matmul", "--shape", "M=200000,N=200000,K=200000", "--no-verify",
                              "--min-time", "0.01"])
        #expect((b.out + b.err).contains("out of memory"), "\(b.err.suffix(300))")
    }

    // MARK: 3. Outputs: all-or-nothing, refused targets, causes

    @Test func outputsAreAllOrNothing() throws {
        let dir = try CLITests.tempDir()
        let x = try Self.write(try HostTensor([4, 64], .f32, floats: (0..<256).map { sin(Float($0)) }), dir, "x.npy")
        let keep = dir.appendingPathComponent("keep.npy").path
        try Data("keep".utf8).write(to: URL(fileURLWithPath: keep))
        func untouched(_ why: String) throws {
            #expect(try String(contentsOfFile: keep, encoding: .utf8) == "keep", "\(why): keep.npy was overwritten")
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".tmp") }
            #expect(leftovers.isEmpty, "\(why): temporary files left: \(leftovers)")
        }
        let link = dir.appendingPathComponent("link.npy").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: keep)
        let ro = dir.appendingPathComponent("ro.npy").path
        try Data("ro".utf8).write(to: URL(fileURLWithPath: ro))
        try FileManager.default.setAttributes([.posixPermissions: 0o444], ofItemAtPath: ro)
        let fifo = dir.appendingPathComponent("fifo.npy").path
        #expect(mkfifo(fifo, 0o644) == 0)
        let q = ["run", "quantize-int4", "--input", "x=\(x)"]
        let cases: [([String], String)] = [
            (q + ["--output", "q=\(keep)", "--output", "scales=/nonexistent-dir/s.npy"], "No such file or directory (ENOENT)"),
            (q + ["--output", "q=\(keep)", "--output", "scales=\(keep)"], "named by two outputs"),
            (q + ["--output", "q=\(keep)", "--output", "q=\(dir.path)/other.npy"], "given twice"),
            (q + ["--output", "q=\(keep)", "--output", "scales=\(link)"], "symbolic link"),
            (q + ["--output", "q=\(keep)", "--output", "scales=/dev/null"], "character device"),
            (q + ["--output", "q=\(keep)", "--output", "scales=\(fifo)"], "FIFO"),
            (q + ["--output", "q=\(keep)", "--output", "scales=\(dir.path)"], "directory"),
            (q + ["--output", "q=\(keep)", "--output", "scales=\(ro)"], "read-only"),
            (["conform", "--kernel", "add", "--json", keep, "--junit", "/dev/null"], "character device"),
            (["simulate", "--plot", keep, "--trace", link], "symbolic link"),
        ]
        for (args, fragment) in cases {
            let r = try Self.run(args)
            #expect(r.status != 0, "polychip \(args) succeeded")
            #expect(r.err.contains(fragment), "polychip \(args): expected '\(fragment)' in \(r.err.suffix(300))")
            try untouched("\(args.suffix(2))")
        }
        var st = stat()
        #expect(stat("/dev/null", &st) == 0 && (st.st_mode & S_IFMT) == S_IFCHR, "/dev/null is no longer a device")
        // With --replace-read-only the read-only file is replaced (and stays read-only).
        let r = try Self.run(q + ["--output", "q=\(ro)", "--replace-read-only"])
        #expect(r.status == 0, "\(r.err)")
        #expect(try NumPyFile.read(path: ro).desc.shape == [4, 64])
    }

    /// A full disk, made unprivileged: a file-size limit (`ulimit -f`) fails the write with
    /// EFBIG part-way through the second output; the first target is untouched and nothing
    /// is left behind. Where a tiny tmpfs can be mounted (root, or an unprivileged user
    /// namespace), the real ENOSPC is checked the same way.
    @Test func aFullDiskLeavesEveryTargetAsItWas() throws {
        let dir = try CLITests.tempDir()
        let x = try Self.write(try HostTensor([512, 1024], .f32, floats: (0..<(512 * 1024)).map { Float($0 % 97) - 48 }), dir, "x.npy")
        let keep = dir.appendingPathComponent("keep.npy").path
        try Data("keep".utf8).write(to: URL(fileURLWithPath: keep))
        // Group size 2: q is 256 KiB, scales 1 MiB; 768 blocks is 384 KiB (dash) or 768 KiB
        // (bash), so q is staged and scales fails.
        let quantize = ["run", "quantize-int4", "--group-size", "2", "--input", "x=\(x)"]
        let r = try Self.run(quantize + ["--output", "q=\(keep)", "--output", "scales=\(dir.path)/s.npy"],
                             wrapper: "ulimit -f 768 && exec \"$0\" \"$@\"")
        #expect(r.status != 0)
        #expect(r.err.contains("File too large (EFBIG)"), "\(r.err.suffix(300))")
        #expect(try String(contentsOfFile: keep, encoding: .utf8) == "keep")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["keep.npy", "x.npy"])

        // ENOSPC on a 512 KiB tmpfs in a private mount namespace, when the system allows one.
        let mnt = dir.appendingPathComponent("small").path
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        let user = geteuid() == 0 ? "" : "--map-root-user "
        let wrapper = "exec unshare \(user)--mount sh -c 'mount -t tmpfs -o size=512k tmpfs \"$1\" || exit 77; "
            + "echo keep > \"$1/keep.npy\"; shift; \"$@\"; s=$?; cat \"$0/keep.npy\" >&2; ls -a \"$0\" >&2; exit $s' \"\(mnt)\" \"\(mnt)\" \"$0\" \"$@\""
        let t = try Self.run(quantize + ["--output", "q=\(mnt)/keep.npy", "--output", "scales=\(mnt)/s.npy"], wrapper: wrapper)
        if t.status == 77 || t.err.contains("unshare:") {
            print("skipped the tmpfs variant: no mount namespace here (\(t.err.prefix(120)))")
            return
        }
        #expect(t.err.contains("No space left on device (ENOSPC)"), "\(t.err.suffix(400))")
        #expect(t.err.contains("keep\n"), "the target was replaced: \(t.err.suffix(300))")
        #expect(!t.err.contains(".tmp"), "temporary files left: \(t.err.suffix(300))")
    }

    // MARK: 5–9. Answers, messages and friction

    @Test func longInputsAreQuotedByAPrefix() throws {
        let long = String(repeating: "a", count: 100_000)
        for args in [["conform", "--device", "sim:" + long], ["conform", "--device", long], ["simulate", "--profile", long],
                     ["simulate", "--set", long + "=1"], ["simulate", "--set", "memory.bandwidth=" + long], ["conform", "--seed", long],
                     ["run", "add", "--input", "a=" + long], ["simulate", "--model", long], ["run", long],
                     ["conform", "--device", "cpu:threads=" + long], ["calibrate", "--name", long]] {
            let r = try Self.run(args)
            #expect(r.status != 0)
            #expect(r.err.count < 3000, "polychip \(args[0]) \(args[1]) \(args[2].prefix(20))…: \(r.err.count) characters of error")
        }
    }

    @Test func frictionPoints() throws {
        let dir = try CLITests.tempDir()
        func npy(_ name: String, _ descr: String, _ shape: [Int], _ body: [UInt8]) throws -> String {
            var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': (\(shape.map(String.init).joined(separator: ", "))\(shape.count == 1 ? "," : "")), }"
            header += String(repeating: " ", count: (64 - (11 + header.utf8.count) % 64) % 64) + "\n"
            let bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)] + Array(header.utf8) + body
            let p = dir.appendingPathComponent(name).path
            try Data(bytes).write(to: URL(fileURLWithPath: p))
            return p
        }
        func f64(_ v: [Double]) -> [UInt8] { v.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) } }
        // numpy's float64 and int64 defaults.
        let logits = try npy("l.npy", "<f8", [2, 8], f64((0..<16).map { Double($0) / 5 }))
        let r1 = try Self.run(["run", "moe-router", "--input", "logits=\(logits)", "--top-k", "2", "--routed-scale", "-1"])
        #expect(r1.status == 0, "\(r1.err)")
        #expect(r1.out.contains("weights: f32[2, 2] [-"), "\(r1.out)")
        let pos = try npy("p.npy", "<i8", [3], (0..<3).flatMap { withUnsafeBytes(of: Int64($0).littleEndian, Array.init) })
        let x = try Self.write(try HostTensor([3, 2, 4], .f32, floats: (0..<24).map { Float($0) }), dir, "x.npy")
        #expect(try Self.run(["run", "rope", "--input", "x=\(x)", "--input", "positions=\(pos)"]).status == 0)
        // A flag the kernel does not read is reported.
        let r2 = try Self.run(["run", "rope", "--input", "x=\(x)", "--input", "positions=\(pos)", "--k", "3", "--alpha", "-2"])
        #expect(r2.status == 0 && r2.err.contains("--k does not apply to rope") && r2.err.contains("--alpha does not apply"), "\(r2.err)")
        // uint8 zero points.
        let w = try Self.write(try HostTensor([4, 64], .f32, floats: (0..<256).map { sin(Float($0)) }), dir, "w.npy")
        let qz = try Self.run(["run", "quantize-int4", "--asymmetric", "--input", "x=\(w)", "--output", "q=\(dir.path)/q.npy",
                               "--output", "scales=\(dir.path)/s.npy"])
        #expect(qz.status == 0, "\(qz.err)")
        let z8 = try npy("z.npy", "|u1", [4, 2], [UInt8](repeating: 8, count: 8))
        let r3 = try Self.run(["run", "dequantize-int4", "--input", "q=\(dir.path)/q.npy", "--input", "scales=\(dir.path)/s.npy", "--input", "zeros=\(z8)"])
        #expect(r3.status == 0, "\(r3.err)")
        let z20 = try npy("z20.npy", "|u1", [4, 2], [UInt8](repeating: 20, count: 8))
        for kernel in ["dequantize-int4", "int4-matmul"] {
            var args = ["run", kernel, "--input", "q=\(dir.path)/q.npy", "--input", "scales=\(dir.path)/s.npy", "--input", "zeros=\(z20)"]
            if kernel == "int4-matmul" { args += ["--input", "x=\(w)"] }
            let r = try Self.run(args)
            #expect(r.status != 0 && r.err.contains("zero point 20"), "\(kernel): \(r.err.suffix(300))")
        }
        // --device sim names several devices.
        let r4 = try Self.run(["run", "add", "--device", "sim", "--input", "a=\(x)", "--input", "b=\(x)"])
        #expect(r4.status != 0 && r4.err.contains("names \(SimulatedBackend.bundledProfileNames().count)") && r4.err.contains("sim:ascend-910b:0"), "\(r4.err)")
        // An extra header key whose text holds 'shape': (8, 4) is not the shape.
        let sneaky = try npy("s.npy", "<f4', 'note': \"'shape': (8, 4)\", 'x': '", [2], [UInt8](repeating: 0, count: 8))
        let r5 = try Self.run(["run", "softmax", "--input", "x=\(sneaky)"])
        #expect(r5.status != 0 && r5.err.contains("not a .npy header key"), "\(r5.err)")
        // A bandwidth that would make every time infinite.
        let r6 = try Self.run(["simulate", "--set", "memory.bandwidth=1e-300"])
        #expect(r6.status != 0 && r6.err.contains("memory.bandwidth") && !r6.out.contains("nan"), "\(r6.err)")
    }
}
