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
    /// How many leading bytes of `pending` are known to hold no newline (each byte is searched once).
    private var scanned = 0
    let stderrPath: String
    private var stderrOffset: UInt64 = 0

    enum Line { case line(Data), endOfFile, timedOut, tooLong }

    /// The longest reply line read (a result is a few hundred bytes; a worker that writes more
    /// without a newline is broken, and must not grow this process's memory without bound).
    static let maxLineBytes = 16 << 20

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
            let from = scanned
            let found: Int? = pending.withUnsafeBufferPointer { b in
                guard let base = b.baseAddress, b.count > from,
                      let hit = memchr(base + from, 0x0A, b.count - from) else { return nil }
                return from + (UnsafeRawPointer(hit) - UnsafeRawPointer(base))
            }
            if let nl = found {
                let line = Data(pending[..<nl])
                pending.removeSubrange(...nl)
                scanned = 0
                return .line(line)
            }
            scanned = pending.count
            if pending.count > Self.maxLineBytes { return .tooLong }
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

    /// Kills the worker and its process group (SIGKILL) and waits a bounded time for it.
    /// Foundation sees a child end only once every process holding the child's inherited
    /// descriptors has closed them, so a helper a plugin spawned could make an unbounded wait
    /// hang the whole run; the worker leads its own group (``CaseWorker``), so killing the
    /// group ends such helpers too.
    func kill() {
        signalGroup(SIGKILL)
        _ = waitBounded(5)
    }

    /// `sig` to the worker's process group (when it leads one) and to the worker. Only while
    /// Foundation has not seen it end: until then the pid is not reaped, so it cannot have been
    /// reused by an unrelated process.
    private func signalGroup(_ sig: Int32) {
        let pid = process.processIdentifier
        guard pid > 0 else { return }
        #if canImport(Glibc)
        if getpgid(pid) == pid { _ = Glibc.kill(-pid, sig) }
        _ = Glibc.kill(pid, sig)
        #else
        if getpgid(pid) == pid { _ = Darwin.kill(-pid, sig) }
        _ = Darwin.kill(pid, sig)
        #endif
    }

    /// Waits at most `seconds` for Foundation to see the worker end; true when it did.
    private func waitBounded(_ seconds: Double) -> Bool {
        let deadline = Queue.wallClock() + seconds
        while process.isRunning && Queue.wallClock() < deadline { usleep(2000) }
        guard !process.isRunning else { return false }
        process.waitUntilExit()
        return true
    }

    /// After end of file: how the worker ended, as `(signal, exit status)`; `(nil, nil)` when
    /// it could not be told (the worker, or a helper holding its descriptors, lingered and was
    /// killed).
    func reap() -> (signal: Int32?, status: Int32?) {
        if !waitBounded(10) {
            // A worker that closed its output but lives on, or a leftover helper: end the group.
            signalGroup(SIGKILL)
            guard waitBounded(5) else { return (nil, nil) }
        }
        if process.terminationReason == .uncaughtSignal { return (process.terminationStatus, nil) }
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
