import Foundation
import PolychipCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A running worker process: requests on its standard input, reply lines on its standard
/// output (read with a deadline), standard error into a file so a crash can quote it.
final class WorkerProcess {
    private let process = Process()
    private let input = Pipe(), output = Pipe()
    private var pending: [UInt8] = []
    let stderrPath: String
    private var stderrOffset: UInt64 = 0

    enum Line { case line(Data), endOfFile, timedOut }

    init(executable: URL, arguments: [String], stderrPath: String) throws {
        self.stderrPath = stderrPath
        guard FileManager.default.createFile(atPath: stderrPath, contents: nil),
              let err = FileHandle(forWritingAtPath: stderrPath) else {
            throw PolychipError.io(path: stderrPath, reason: "cannot create the worker's stderr file")
        }
        process.executableURL = executable
        process.arguments = arguments
        // A crash should end the worker at once: the Swift runtime's backtracer takes seconds
        // per crash and its report is about the worker, not the plugin.
        var env = ProcessInfo.processInfo.environment
        env["SWIFT_BACKTRACE"] = "enable=no"
        process.environment = env
        process.standardInput = input
        process.standardOutput = output
        process.standardError = err
        do { try process.run() } catch {
            throw PolychipError.io(path: executable.path, reason: "cannot start a conform worker: \(error)")
        }
        try? err.close()
    }

    var pid: Int32 { process.processIdentifier }

    /// Writes one line; false when the worker is gone (EPIPE: SIGPIPE is ignored while
    /// workers run, see ``IsolatedConformance``).
    func send(_ line: Data) -> Bool {
        stderrOffset = (try? FileManager.default.attributesOfItem(atPath: stderrPath)[.size] as? UInt64) ?? 0
        var data = line
        data.append(0x0A)
        let fd = input.fileHandleForWriting.fileDescriptor
        return data.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                done += n
            }
            return true
        }
    }

    /// The next reply line, waiting at most `timeout` seconds.
    func readLine(timeout: Double) -> Line {
        let fd = output.fileHandleForReading.fileDescriptor
        let deadline = Queue.wallClock() + timeout
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            if let nl = pending.firstIndex(of: 0x0A) {
                let line = Data(pending[..<nl])
                pending.removeSubrange(...nl)
                return .line(line)
            }
            let left = deadline - Queue.wallClock()
            if left <= 0 { return .timedOut }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&p, 1, Int32(min(left * 1000 + 1, 60_000)))
            if r < 0 { if errno == EINTR { continue }; return .endOfFile }
            if r == 0 { continue }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return .endOfFile }
            pending += buffer[0..<n]
        }
    }

    /// Kills the worker (SIGKILL) and reaps it.
    func kill() {
        #if canImport(Glibc)
        _ = Glibc.kill(process.processIdentifier, SIGKILL)
        #else
        _ = Darwin.kill(process.processIdentifier, SIGKILL)
        #endif
        process.waitUntilExit()
    }

    /// After end of file: how the worker ended, as `(signal, exit status)`.
    func reap() -> (signal: Int32?, status: Int32) {
        process.waitUntilExit()
        if process.terminationReason == .uncaughtSignal { return (process.terminationStatus, 0) }
        return (nil, process.terminationStatus)
    }

    /// What the worker wrote to standard error since the last request (its last lines).
    func stderrTail(maxBytes: Int = 600) -> String {
        guard let h = FileHandle(forReadingAtPath: stderrPath) else { return "" }
        defer { try? h.close() }
        try? h.seek(toOffset: stderrOffset)
        let data = (try? h.readToEnd()) ?? Data()
        let text = String(decoding: data.suffix(maxBytes), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.split(separator: "\n").suffix(4).joined(separator: " | ")
    }

    /// Closes its input so it exits, waits up to `timeout` seconds, then kills it.
    func finish(timeout: Double = 10) {
        try? input.fileHandleForWriting.close()
        let deadline = Queue.wallClock() + timeout
        while process.isRunning && Queue.wallClock() < deadline { usleep(2000) }
        if process.isRunning { kill() } else { process.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: stderrPath)
    }
}
