import Foundation
import Testing
import Polychip
import PolychipConformance
import PolychipTestSupport

/// Loading plugins through the C ABI: the oneDNN plugin's device, the typed errors of every way a
/// library can fail to be a plugin, host-side validation, and the plugin's tiles reaching the
/// boundary cases.
@Suite struct PluginLoadingTests {
    /// The `PolychipError.backendFailure` detail and call of `body`'s error (nil when it is another error).
    static func failure(_ body: () throws -> Void) -> (call: String, detail: String, backend: String)? {
        do { try body() } catch PolychipError.backendFailure(let backend, let call, _, let detail) { return (call, detail, backend) } catch {
            Issue.record("expected a backendFailure, got \(error)")
        }
        return nil
    }

    @Test func oneDNNPluginListsItsDeviceAndAnswersPerCall() throws {
        let backend = try Polychip.loadPlugin(path: PluginFixtures.oneDNN().path)
        #expect(backend.name == "onednn")
        let d = try Polychip.device("onednn:0")
        #expect(d.id == "onednn:0")
        #expect(d.info.name.contains("oneDNN"))
        #expect(d.info.kind == .cpu && d.info.computeUnits >= 1 && d.info.memoryBytes > 0)
        #expect(d.info.details["isa"] != nil)
        #expect(d.supports(.matmul, dtype: .f32) == .native)
        guard case .unsupported(let why) = d.supports(.attention, dtype: .f32) else { Issue.record("attention should be unsupported"); return }
        #expect(why.contains("oneDNN"))
        let descs = [TensorDesc([5, 9], .f32), TensorDesc([7, 9], .f32)]
        #expect(d.support(for: .matmul(transposeB: true), inputs: descs) == .native)
        #expect(d.path(of: .matmul(transposeB: true), inputs: descs)?.contains("oneDNN matmul") == true)
        // Same object for the same selector: buffers stay valid across look-ups.
        #expect(try Polychip.device("onednn") === d)
        let a = try HostTensor([2, 3], .f32, floats: [1, 2, 3, 4, 5, 6])
        let b = try HostTensor([3, 2], .f32, floats: [1, 0, 0, 1, 1, 1])
        #expect(try d.run(.matmul(transposeB: false), [a, b])[0].floats == [4, 5, 10, 11])
    }

    @Test func badPluginsAreTypedErrorsNamingThePlugin() throws {
        let missing = "/nonexistent/libnothing.so"
        #expect(throws: PolychipError.io(path: missing, reason: "no plugin library at this path")) { try Polychip.loadPlugin(path: missing) }

        let notPlugin = try PluginFixtures.faulty("-noentry", defines: ["FAULTY_NO_ENTRY"])
        let f1 = Self.failure { try Polychip.loadPlugin(path: notPlugin.path) }
        #expect(f1?.detail.contains("not a Polychip backend plugin") == true)
        #expect(f1?.backend.contains(notPlugin.lastPathComponent) == true)

        let text = try TestSupport.tempDir(prefix: "polychip-plugin").appendingPathComponent("libfake.so")
        try Data("not an ELF file".utf8).write(to: text)
        #expect(Self.failure { try Polychip.loadPlugin(path: text.path) }?.call == "dlopen")

        let v99 = try PluginFixtures.faulty("-abi99", defines: ["FAULTY_ABI_VERSION=99"])
        let f2 = Self.failure { try Polychip.loadPlugin(path: v99.path) }
        #expect(f2?.call == "ABI version check")
        #expect(f2?.detail.contains("version 99") == true && f2?.detail.contains("speaks version 1") == true)

        let noExec = try PluginFixtures.faulty("-noexec", defines: ["FAULTY_NO_EXECUTE", "FAULTY_NAME=\"noexec\""])
        let f3 = Self.failure { try Polychip.loadPlugin(path: noExec.path) }
        #expect(f3?.detail == "required functions missing: execute")
        #expect(f3?.backend.contains("'noexec'") == true)

        let initFails = try PluginFixtures.faulty("-initfails", defines: ["FAULTY_INIT_FAILS", "FAULTY_NAME=\"initfails\""])
        let f4 = Self.failure { try Polychip.loadPlugin(path: initFails.path) }
        #expect(f4?.call == "init" && f4?.detail == "planted init failure: no device found")

        let builtin = try PluginFixtures.faulty("-cpu", defines: ["FAULTY_NAME=\"cpu\""])
        #expect(Self.failure { try Polychip.loadPlugin(path: builtin.path) }?.detail.contains("built-in backend") == true)

        let shadow = try PluginFixtures.faulty("-shadow")  // another file calling itself "faulty"
        _ = try Polychip.loadPlugin(path: PluginFixtures.faulty().path)
        #expect(Self.failure { try Polychip.loadPlugin(path: shadow.path) }?.detail.contains("is taken by") == true)
    }

    @Test func selectorsAndHostValidation() throws {
        try Polychip.loadPlugin(path: PluginFixtures.faulty().path)
        let d = try Polychip.device("faulty:0")
        #expect(d.info.kind == .accelerator && d.info.dtypes == [.f32, .i32])
        #expect(throws: PolychipError.self) { try Polychip.device("faulty:1") }
        #expect(throws: PolychipError.self) { try Polychip.device("faulty:profile:0") }
        // The host validates before the call crosses: a bad shape never reaches the plugin.
        let a = try d.tensor(try HostTensor([2, 3], .f32, floats: [1, 2, 3, 4, 5, 6]))
        let out = try d.allocate(TensorDesc([2, 2], .f32))
        #expect(throws: PolychipError.self) { try Queue(device: d).enqueue(.matmul(transposeB: false), inputs: [a, a], outputs: [out]) }
        // Unsupported dtypes are refused by the per-call query, with the plugin's reason.
        let h = try d.tensor(try HostTensor([2, 3], .f16, floats: [1, 2, 3, 4, 5, 6]))
        #expect(throws: PolychipError.unsupported(kernel: "silu", device: "faulty:0", reason: "the faulty device computes in f32 only")) {
            try Queue(device: d).enqueue(.silu, inputs: [h], outputs: [try d.allocate(TensorDesc([2, 3], .f16))])
        }
        // Buffer ranges are checked on the host.
        let buf = try d.allocateBuffer(byteCount: 16)
        #expect(throws: PolychipError.self) { try [UInt8](repeating: 1, count: 8).withUnsafeBytes { try d.write($0, to: buf, at: 12) } }
        // An error status comes back typed, naming the plugin, the kernel and its message.
        let s = try d.tensor(try HostTensor([1, 4], .f32, floats: [1, 2, 3, 4]))
        let lib = try PluginFixtures.faulty().resolvingSymlinksInPath().path
        #expect(throws: PolychipError.deviceFault(device: "faulty:0", kernel: "top-k", kind: "plugin",
                                                  detail: "plugin 'faulty' (\(lib)): planted device error: the top-k unit is wedged")) {
            try Queue(device: d).enqueue(.topK(k: 2), inputs: [s], outputs: [try d.allocate(TensorDesc([1, 2], .i32)), try d.allocate(TensorDesc([1, 2], .f32))])
        }
    }

    @Test func pluginTilesBecomeBoundaryCases() throws {
        try Polychip.loadPlugin(path: PluginFixtures.faulty().path)
        let d = try Polychip.device("faulty:0")
        #expect(d.tiling.boundaries(.matmul).map(\.name) == ["faulty.mb", "faulty.kb"])
        var skipped = 0
        let specs = CaseGenerator.specs(.matmul, dtype: .f32, level: .standard, tiling: d.tiling, skipped: &skipped)
        let notes = Set(specs.compactMap(\.note))
        #expect(notes.isSuperset(of: ["faulty.mb: b−1", "faulty.mb: b+1", "faulty.kb: b+1"]))
        #expect(specs.contains { $0.note == "faulty.mb: b+1" && $0.dims["M"] == 9 })
        // Kernels it reports no tiles for get the generic blocks.
        #expect(d.tiling.boundaries(.add).isEmpty)
    }

    @Test func abiValuesMatchTheCatalog() {
        // Every kernel has its own id, in the header's fixed order.
        #expect(OpKind.allCases.map(PluginABI.kernelID) == (0..<UInt32(OpKind.allCases.count)).map { $0 })
        #expect(DType.allCases.map(PluginABI.dtypeID) == [0, 1, 2, 3, 4, 5])
        let rope = PluginABI.op(.rope(RopeParams(style: .gptj, base: 500)), inputs: [TensorDesc([3, 2, 16], .f32), TensorDesc([3], .i32)])
        #expect(rope.rope.rotary_dim == 16 && rope.rope.base == 500 && rope.rope.style == 1)
        let att = PluginABI.op(.attention(AttentionParams(causal: true)), inputs: [TensorDesc([1, 2, 3, 64], .f32)])
        #expect(att.attention.scale == 0.125 && att.attention.causal == 1)
        let dq = PluginABI.op(.dequantizeInt4(Int4Format(groupSize: 64, symmetric: false), output: .bf16), inputs: [])
        #expect(dq.int4.group_size == 64 && dq.int4.symmetric == 0 && dq.int4.output_dtype == 2)
    }
}
