import Foundation
import Polychip

/// Temporary files and the built `polychip` binary for the bench tests.
enum TestSupport {
    static func tempDir() throws -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("polychip-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }

    /// The built `polychip` binary next to the test bundle.
    static var binary: URL? {
        var dir = Bundle.main.bundleURL
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("polychip")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    /// Runs the binary; returns its status, stdout and stderr.
    static func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        guard let bin = binary else { throw PolychipError.io(path: "polychip", reason: "binary not built") }
        let p = Process()
        p.executableURL = bin
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        // Read stderr concurrently so a chatty child cannot fill the pipe and block.
        let errData = ErrBox()
        let t = Thread { errData.set(err.fileHandleForReading.readDataToEndOfFile()) }
        t.start()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        while !errData.done { usleep(1000) }
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: errData.data, as: UTF8.self))
    }
}

/// Stderr collected on another thread.
final class ErrBox: Sendable {
    private let state = Locked((data: Data(), done: false))
    func set(_ d: Data) { state.withLock { $0 = (d, true) } }
    var done: Bool { state.withLock { $0.done } }
    var data: Data { state.withLock { $0.data } }
}
