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
        /// True when it ran past the timeout and was killed.
        public var timedOut = false
    }

    /// Runs the binary with `args` (and `environment` when given, replacing the parent's).
    /// With `wrapper`, runs `/bin/sh -c WRAPPER BINARY ARGS…` instead, where the script
    /// starts the binary as `"$0" "$@"` (after `ulimit`, `setpriv`, …). A run longer than
    /// `timeout` seconds is killed (SIGKILL) and reported with `timedOut`.
    public static func run(_ args: [String], environment: [String: String]? = nil, wrapper: String? = nil,
                           timeout: Double? = nil) throws -> Run {
        guard let bin = binary else { throw PolychipError.io(path: "polychip", reason: "binary not built") }
        let p = Process()
        if let wrapper {
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", wrapper, bin.path] + args
        } else {
            p.executableURL = bin
            p.arguments = args
        }
        if let environment { p.environment = environment }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        // Read stderr concurrently so a chatty child cannot fill the pipe and block.
        let errData = ErrBox()
        let t = Thread { errData.set(err.fileHandleForReading.readDataToEndOfFile()) }
        t.start()
        let killed = Locked(false)
        if let timeout {
            let pid = p.processIdentifier
            let watchdog = Thread {
                let end = Date().addingTimeInterval(timeout)
                while Date() < end { if !p.isRunning { return }; usleep(20_000) }
                if p.isRunning { killed.withLock { $0 = true }; kill(pid, SIGKILL) }
            }
            watchdog.start()
        }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        while !errData.done { usleep(1000) }
        var r = Run(status: p.terminationStatus, out: String(decoding: o, as: UTF8.self),
                    err: String(decoding: errData.data, as: UTF8.self), exited: p.terminationReason == .exit)
        r.timedOut = killed.withLock { $0 }
        return r
    }
}

/// Stderr collected on another thread.
final class ErrBox: Sendable {
    private let state = Locked((data: Data(), done: false))
    func set(_ d: Data) { state.withLock { $0 = (d, true) } }
    var done: Bool { state.withLock { $0.done } }
    var data: Data { state.withLock { $0.data } }
}
