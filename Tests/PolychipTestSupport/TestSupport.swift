import Foundation
import PolychipCore

/// What the test targets that drive the built `polychip` binary share: temporary
/// directories, finding the binary, and running it.
public enum TestSupport {
    /// A fresh directory under the system's temporary directory, named `PREFIX-UUID`.
    public static func tempDir(prefix: String) throws -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }

    /// The built `polychip` binary next to the test bundle.
    public static var binary: URL? {
        var dir = Bundle.main.bundleURL
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("polychip")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    /// The outcome of one run of the binary.
    public struct Run: Sendable {
        /// Exit status (or the signal number when `exited` is false).
        public var status: Int32
        /// Standard output and standard error, decoded as UTF-8.
        public var out: String, err: String
        /// False when the process died from a signal.
        public var exited: Bool
    }

    /// Runs the binary with `args` (and `environment` when given, replacing the parent's).
    public static func run(_ args: [String], environment: [String: String]? = nil) throws -> Run {
        guard let bin = binary else { throw PolychipError.io(path: "polychip", reason: "binary not built") }
        let p = Process()
        p.executableURL = bin
        p.arguments = args
        if let environment { p.environment = environment }
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
        return Run(status: p.terminationStatus, out: String(decoding: o, as: UTF8.self),
                   err: String(decoding: errData.data, as: UTF8.self), exited: p.terminationReason == .exit)
    }
}

/// Stderr collected on another thread.
final class ErrBox: Sendable {
    private let state = Locked((data: Data(), done: false))
    func set(_ d: Data) { state.withLock { $0 = (d, true) } }
    var done: Bool { state.withLock { $0.done } }
    var data: Data { state.withLock { $0.data } }
}
