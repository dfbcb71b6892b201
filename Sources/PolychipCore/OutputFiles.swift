#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// The output files of one command, written all-or-nothing.
///
/// 1. ``declare(_:label:)`` checks each target before any work is done: its directory exists,
///    no two outputs name the same file (after resolving the directory), and an existing
///    target is a regular, writable file — symbolic links, devices, FIFOs and directories are
///    refused (as root, `--output y=/dev/null` once replaced the machine's `/dev/null`), and so
///    are read-only files unless `replaceReadOnly` (`--replace-read-only`) says otherwise.
/// 2. ``stage(_:_:)`` writes the bytes to a temporary file beside the target
///    (`.NAME.polychip-PID-RANDOM.tmp`, same directory so the rename is atomic) and flushes it.
/// 3. ``commit()`` renames every staged file onto its target, only after all were staged.
///
/// Any error before the commit leaves every target as it was and removes the temporary files
/// (so does dropping the object uncommitted). Errors are `PolychipError.io` naming the path and
/// the cause (`No space left on device (ENOSPC)`, `Permission denied (EACCES)`, …).
public final class OutputFiles {
    /// Whether read-only targets may be replaced.
    public let replaceReadOnly: Bool
    private var declared: [(label: String, path: String, resolved: String)] = []
    private var staged: [(path: String, temp: String, target: String)] = []
    private var committed = false

    /// Creates an empty set.
    public init(replaceReadOnly: Bool = false) { self.replaceReadOnly = replaceReadOnly }

    deinit { if !committed { discard() } }

    /// Checks `path` as a target and reserves it for the output named `label`.
    /// - Throws: `PolychipError.io` when the directory is missing, the file is already an
    ///   output of this command, or the existing file may not be replaced.
    public func declare(_ path: String, label: String) throws {
        let resolved = try Self.check(path, replaceReadOnly: replaceReadOnly)
        if let other = declared.first(where: { $0.resolved == resolved }) {
            throw PolychipError.io(path: path, reason: other.label == label
                ? "the output \(Quoted(label)) is given twice"
                : "named by two outputs (\(Quoted(other.label)) and \(Quoted(label))); each output needs its own file")
        }
        declared.append((label, path, resolved))
    }

    /// Writes the contents of the declared output at `path` to its temporary file.
    public func stage(_ path: String, _ bytes: some DataProtocol) throws {
        guard let d = declared.first(where: { $0.path == path }) else {
            throw PolychipError.io(path: path, reason: "not declared as an output of this command")
        }
        // Checked again: the target may have changed since it was declared.
        _ = try Self.check(path, replaceReadOnly: replaceReadOnly)
        let dir = (d.resolved as NSString).deletingLastPathComponent
        let name = (d.resolved as NSString).lastPathComponent
        let temp = dir + "/." + String(name.prefix(100)) + ".polychip-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw PolychipError.io(path: path, reason: "cannot create a file in \(dir): \(Self.cause(errno))") }
        staged.append((path, temp, d.resolved))
        do {
            var st = stat()
            if lstat(d.resolved, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG { _ = fchmod(fd, st.st_mode & 0o7777) }
            try Self.writeAll(fd: fd, bytes, path: path)
            guard fsync(fd) == 0 else { throw PolychipError.io(path: path, reason: "write failed: \(Self.cause(errno))") }
        } catch {
            close(fd)
            throw error
        }
        guard close(fd) == 0 else { throw PolychipError.io(path: path, reason: "write failed: \(Self.cause(errno))") }
    }

    /// Renames every staged file onto its target. Call once, after every output was staged.
    public func commit() throws {
        let missing = declared.filter { d in !staged.contains { $0.path == d.path } }
        guard missing.isEmpty else {
            throw PolychipError.io(path: missing[0].path, reason: "the output \(Quoted(missing[0].label)) was never written")
        }
        for s in staged { _ = try Self.check(s.path, replaceReadOnly: replaceReadOnly) }
        for (i, s) in staged.enumerated() {
            guard rename(s.temp, s.target) == 0 else {
                let why = Self.cause(errno)
                for rest in staged[i...] { unlink(rest.temp) }
                committed = true
                let done = staged[..<i].map(\.path)
                throw PolychipError.io(path: s.path, reason: "cannot replace the file: \(why)"
                                       + (done.isEmpty ? "" : "; already written: \(done.joined(separator: ", "))"))
            }
        }
        committed = true
    }

    /// Removes the temporary files; the targets stay as they were.
    public func discard() {
        for s in staged { unlink(s.temp) }
        staged = []
    }

    /// Writes one file all-or-nothing (``declare(_:label:)``, ``stage(_:_:)``, ``commit()``).
    public static func write(_ bytes: some DataProtocol, to path: String, replaceReadOnly: Bool = false) throws {
        let files = OutputFiles(replaceReadOnly: replaceReadOnly)
        try files.declare(path, label: path)
        try files.stage(path, bytes)
        try files.commit()
    }

    // MARK: Checks

    /// The target with its directory resolved (symbolic links in the directory part are
    /// followed; the file itself must not be one), after checking it may be written.
    static func check(_ path: String, replaceReadOnly: Bool) throws -> String {
        guard !path.isEmpty, !path.hasSuffix("/") else { throw PolychipError.io(path: path, reason: "is a directory, not a file name") }
        let ns = path as NSString
        let dirPart = ns.deletingLastPathComponent.isEmpty ? "." : ns.deletingLastPathComponent
        let name = ns.lastPathComponent
        guard name != ".", name != ".." else { throw PolychipError.io(path: path, reason: "is a directory, not a file name") }
        guard let real = realpath(dirPart, nil) else {
            throw PolychipError.io(path: path, reason: "the directory \(Quoted(dirPart)) is not usable: \(cause(errno))")
        }
        let dir = String(cString: real)
        free(real)
        var ds = stat()
        guard stat(dir, &ds) == 0, (ds.st_mode & S_IFMT) == S_IFDIR else {
            throw PolychipError.io(path: path, reason: "\(Quoted(dirPart)) is not a directory")
        }
        let resolved = (dir == "/" ? "" : dir) + "/" + name
        var st = stat()
        if lstat(resolved, &st) != 0 {
            guard errno == ENOENT else { throw PolychipError.io(path: path, reason: "cannot inspect the file: \(cause(errno))") }
            return resolved
        }
        switch st.st_mode & S_IFMT {
        case S_IFREG:
            if st.st_mode & 0o222 == 0 && !replaceReadOnly {
                throw PolychipError.io(path: path, reason: "is read-only; not replaced (pass --replace-read-only to replace read-only outputs)")
            }
            return resolved
        case S_IFLNK:
            var buf = [CChar](repeating: 0, count: 1024)
            let n = readlink(resolved, &buf, buf.count - 1)
            let to = n > 0 ? " to \(Quoted(String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)))" : ""
            throw PolychipError.io(path: path, reason: "is a symbolic link\(to); outputs only replace regular files (give the link's target instead)")
        case S_IFDIR: throw PolychipError.io(path: path, reason: "is a directory; outputs only replace regular files")
        case S_IFCHR: throw PolychipError.io(path: path, reason: "is a character device; outputs only replace regular files")
        case S_IFBLK: throw PolychipError.io(path: path, reason: "is a block device; outputs only replace regular files")
        case S_IFIFO: throw PolychipError.io(path: path, reason: "is a FIFO; outputs only replace regular files")
        case S_IFSOCK: throw PolychipError.io(path: path, reason: "is a socket; outputs only replace regular files")
        default: throw PolychipError.io(path: path, reason: "is not a regular file; outputs only replace regular files")
        }
    }

    /// Writes every byte to `fd`, retrying short writes and EINTR.
    /// - Throws: `PolychipError.io` naming the cause (`ENOSPC`, `EFBIG`, `EDQUOT`, `EIO`, …).
    public static func writeAll(fd: Int32, _ bytes: some DataProtocol, path: String) throws {
        let data = bytes as? Data ?? Data(bytes)
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var done = 0
            while done < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + done, min(raw.count - done, 1 << 30))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw PolychipError.io(path: path, reason: "write failed after \(done) of \(raw.count) bytes: \(cause(errno))")
                }
                if n == 0 { throw PolychipError.io(path: path, reason: "write made no progress after \(done) of \(raw.count) bytes") }
                done += n
            }
        }
    }

    /// `strerror` with the symbolic name: `No space left on device (ENOSPC)`.
    public static func cause(_ code: Int32) -> String {
        let names: [Int32: String] = [
            ENOENT: "ENOENT", EACCES: "EACCES", EPERM: "EPERM", ENOSPC: "ENOSPC", EDQUOT: "EDQUOT", EFBIG: "EFBIG",
            EROFS: "EROFS", EISDIR: "EISDIR", ENOTDIR: "ENOTDIR", EEXIST: "EEXIST", EIO: "EIO", ENAMETOOLONG: "ENAMETOOLONG",
            ELOOP: "ELOOP", EMFILE: "EMFILE", ENFILE: "ENFILE", ETXTBSY: "ETXTBSY", EXDEV: "EXDEV", EBUSY: "EBUSY",
        ]
        let text = String(cString: strerror(code))
        return "\(text) (\(names[code] ?? "errno \(code)"))"
    }
}
