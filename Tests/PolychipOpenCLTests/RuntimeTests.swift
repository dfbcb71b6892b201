import Foundation
import Testing
import PolychipCore
@testable import PolychipOpenCL

/// The first OpenCL device, or nil (tests then skip with a message).
let openCLDevice: OpenCLDevice? = OpenCLBackend().openCLDevices().first

@Suite struct RuntimeTests {
    @Test func enumerationNeverThrows() throws {
        let backend = OpenCLBackend()
        #expect(!backend.status.isEmpty)
        let devices = try backend.devices()
        for (i, d) in devices.enumerated() {
            #expect(d.id == "opencl:\(i)")
            #expect(d.info.memoryBytes > 0)
        }
        if devices.isEmpty {
            #expect(throws: PolychipError.self) { try backend.device(profile: nil, index: 0) }
        } else {
            // The same object for the same id, so buffers stay valid across look-ups.
            #expect(try backend.device(profile: nil, index: 0) === devices[0])
        }
        #expect(throws: PolychipError.self) { try backend.device(profile: nil, index: devices.count) }
    }

    @Test func statusNames() {
        #expect(CLStatus.name(-5) == "CL_OUT_OF_RESOURCES")
        #expect(CLStatus.name(-1001) == "CL_PLATFORM_NOT_FOUND_KHR")
        #expect(CLStatus.name(-9999) == "CL_UNKNOWN(-9999)")
    }

    @Test func sha256() {
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    /// The plugin embeds exactly the .cl files of the source tree, byte for byte.
    @Test func embeddedSourcesMatchTheTree() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../kernels/opencl").standardizedFileURL
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".cl") }.sorted()
        #expect(names == OpenCLKernelSources.files.keys.sorted())
        for n in names {
            #expect(try String(contentsOf: dir.appendingPathComponent(n), encoding: .utf8) == OpenCLKernelSources.files[n], "\(n)")
        }
        for file in CLFile.allCases { #expect(OpenCLKernelSources.files[file.rawValue] != nil, "\(file.rawValue)") }
    }

    /// Every enqueue is timed by its OpenCL profiling events.
    @Test func recordsAreMeasuredFromEvents() throws {
        guard let d = openCLDevice else { print("skipped: no OpenCL device (\(OpenCLBackend().status))"); return }
        let a = try HostTensor([16, 16], floats: (0..<256).map { Float($0 % 7) })
        let q = Queue(device: d)
        let ta = try d.tensor(a), out = try d.allocate(a.desc)
        let r = try q.enqueue(.matmul(transposeB: true), inputs: [ta, ta], outputs: [out])
        #expect(r.source == .measured)
        #expect(r.seconds > 0 && r.seconds < 10)
        #expect(r.device == d.id)
    }

    @Test func roundTripAndOutOfRange() throws {
        guard let d = openCLDevice else { print("skipped: no OpenCL device (\(OpenCLBackend().status))"); return }
        let b = try d.allocateBuffer(byteCount: 64)
        let src = (0..<64).map { UInt8($0) }
        try src.withUnsafeBytes { try d.write($0, to: b, at: 0) }
        var back = [UInt8](repeating: 0, count: 16)
        try back.withUnsafeMutableBytes { try d.read(from: b, at: 8, into: $0) }
        #expect(back == Array(8..<24).map(UInt8.init))
        #expect(throws: PolychipError.self) { try back.withUnsafeMutableBytes { try d.read(from: b, at: 60, into: $0) } }
    }

    @Test func absurdAllocationIsOutOfMemory() throws {
        guard let d = openCLDevice else { print("skipped: no OpenCL device (\(OpenCLBackend().status))"); return }
        for size in [Int.max / 2, d.limits.maxAllocBytes + 1, d.limits.globalMemBytes * 4] {
            do {
                _ = try d.allocateBuffer(byteCount: size)
                Issue.record("allocation of \(size) bytes succeeded")
            } catch let PolychipError.outOfMemory(device, requested, _) {
                #expect(device == d.id)
                #expect(requested == size)
            }
        }
        // A tensor too large for the device: typed error, nothing traps.
        #expect(throws: PolychipError.self) { try d.allocate(TensorDesc([1 << 20, 1 << 20], .f32)) }
    }

    @Test func brokenSourceGivesBuildFailureWithLog() throws {
        guard let d = openCLDevice else { print("skipped: no OpenCL device (\(OpenCLBackend().status))"); return }
        let source = """
        __kernel void broken(__global float *x) {
            x[get_global_id(0)] = polychip_undeclared_identifier * 2.0f;
        }
        """
        do {
            _ = try d.buildProgram(name: "broken", source: source, options: "-cl-std=CL1.2")
            Issue.record("a broken source built")
        } catch let PolychipError.buildFailure(device, program, log) {
            #expect(device.hasPrefix(d.id))
            #expect(program == "broken")
            #expect(log.contains("polychip_undeclared_identifier"), "log: \(log)")
        }
    }

    @Test func secondBuildHitsTheCaches() throws {
        guard let d = openCLDevice else { print("skipped: no OpenCL device (\(OpenCLBackend().status))"); return }
        // A source no earlier run has built, so the first build must compile.
        let token = UUID().uuidString.replacingOccurrences(of: "-", with: "_")
        let source = "__kernel void twice_\(token)(__global float *x) { x[get_global_id(0)] *= 2.0f; }"
        let before = d.buildStatistics
        let first = try d.buildProgram(name: "cache-test", source: source)
        #expect(first.origin == .source)
        #expect(first.kernelNames == ["twice_\(token)"])
        let second = try d.buildProgram(name: "cache-test", source: source)
        #expect(second === first)
        #expect(d.buildStatistics.memoryHits >= before.memoryHits + 1)
        // A fresh process (simulated by dropping the in-memory entry) loads the disk binary.
        let key = d.forgetProgram(name: "cache-test", source: source)
        let third = try d.buildProgram(name: "cache-test", source: source)
        #expect(third.origin == .diskCache)
        #expect(d.buildStatistics.diskHits >= before.diskHits + 1)
        // The cached program runs.
        let buf = try d.allocate(bytes: 16)
        let ones: [Float] = [1, 2, 3, 4]
        try ones.withUnsafeBytes { try d.write($0, to: buf, at: 0) }
        let sub = Submission(device: d)
        try sub.launch(third, "twice_\(token)", [.buffer(buf)], global: [4], local: nil)
        #expect(try sub.finish() >= 0)
        var out = [Float](repeating: 0, count: 4)
        try out.withUnsafeMutableBytes { try d.read(from: buf, at: 0, into: $0) }
        #expect(out == [2, 4, 6, 8])
        try? FileManager.default.removeItem(at: d.cacheFile(key))
    }
}
