import Foundation
import Polychip
import PolychipTestSupport

/// Plugin libraries the tests load: the oneDNN plugin (SwiftPM's build of it beside the test
/// bundle, else compiled here), and the misbehaving test plugin in its variants, compiled here
/// with the system C compiler.
enum PluginFixtures {
    /// The package root (this file is Tests/PolychipPluginTests/PluginFixtures.swift).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let header = root.appendingPathComponent("backends/plugin/abi/include")
    private static let built = LockedBox([String: URL]())
    private static let dir: URL = (try? TestSupport.tempDir(prefix: "polychip-plugins")) ?? FileManager.default.temporaryDirectory

    struct BuildError: Error, CustomStringConvertible { var description: String }

    /// A C compiler: `CC`, else cc, clang or gcc on PATH.
    static func compiler() throws -> String {
        if let cc = ProcessInfo.processInfo.environment["CC"], !cc.isEmpty { return cc }
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        for name in ["cc", "clang", "gcc"] {
            for d in path where FileManager.default.isExecutableFile(atPath: "\(d)/\(name)") { return "\(d)/\(name)" }
        }
        throw BuildError(description: "no C compiler (cc, clang or gcc) on PATH")
    }

    /// Compiles `source` into a shared library named `name` with `defines`, once per process
    /// (under the lock: tests run in parallel and must not write one file twice).
    static func build(_ name: String, source: URL, defines: [String] = [], libraries: [String] = []) throws -> URL {
        try built.withLock { cache in
            if let u = cache[name] { return u }
            let out = dir.appendingPathComponent("lib\(name).so")
            let p = Process()
            p.executableURL = URL(fileURLWithPath: try compiler())
            var args: [String] = ["-std=c11", "-O1", "-shared", "-fPIC", "-I", header.path]
            args += defines.map { "-D" + $0 }
            args += [source.path, "-o", out.path]
            args += libraries.map { "-l" + $0 }
            p.arguments = args + ["-lm"]
            let err = Pipe()
            p.standardError = err
            try p.run()
            let msg = err.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else {
                throw BuildError(description: "cc \(name) failed: \(String(decoding: msg, as: UTF8.self))")
            }
            cache[name] = out
            return out
        }
    }

    static let faultySource = root.appendingPathComponent("Tests/PolychipPluginTests/Fixtures/faulty_plugin.c")

    /// The misbehaving plugin (`faulty:0`), or a broken variant of it.
    static func faulty(_ variant: String = "", defines: [String] = []) throws -> URL {
        try build("faulty\(variant)", source: faultySource, defines: defines)
    }

    /// The oneDNN plugin: `libPolychipOneDNN.so` as SwiftPM built it (`swift build` and
    /// `swift test` build every product), else compiled from its source against libdnnl.
    static func oneDNN() throws -> URL {
        if let bin = TestSupport.binary {
            let candidate = bin.deletingLastPathComponent().appendingPathComponent("libPolychipOneDNN.so")
            if FileManager.default.fileExists(atPath: candidate.path) { return candidate }
        }
        return try build("PolychipOneDNN-cc", source: root.appendingPathComponent("backends/plugin/onednn/polychip_onednn.c"),
                         libraries: ["dnnl"])
    }
}

/// A lock-protected value for the fixtures' caches.
final class LockedBox<Value>: @unchecked Sendable {
    // @unchecked: `value` is only touched inside `lock`.
    private var value: Value
    private let lock = NSLock()
    init(_ v: Value) { value = v }
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock(); defer { lock.unlock() }
        return try body(&value)
    }
}
