import COpenCL
import Foundation
import PolychipCore

/// The in-memory cache key of a program: its name, source hash and build options.
struct ProgramKey: Hashable, Sendable {
    var name: String
    var sourceHash: String
    var options: String
}

/// A built OpenCL program on one device, with its kernel objects.
public final class OpenCLProgram: @unchecked Sendable {
    // @unchecked: the kernel table is behind a lock (`Locked`); cl_program is thread-safe.
    /// The program's name (a kernels/opencl file, or the name given to ``OpenCLDevice/buildProgram(name:source:options:)``).
    public let name: String
    /// The build options it was built with.
    public let options: String
    /// Where the executable came from.
    public let origin: Origin
    let program: CLProgram
    /// Idle kernel objects by name: a launch checks one out, sets its arguments and
    /// enqueues it, then returns it (clSetKernelArg is not thread-safe per object).
    private let pool = Locked([String: [CLKernel]]())

    /// How a program's executable was obtained.
    public enum Origin: String, Sendable {
        /// Compiled from source in this process.
        case source
        /// Loaded from the on-disk binary cache.
        case diskCache
    }

    init(name: String, options: String, origin: Origin, program: CLProgram) {
        self.name = name; self.options = options; self.origin = origin; self.program = program
    }

    /// The names of the kernels the program defines.
    public var kernelNames: [String] {
        var size = 0
        guard clGetProgramInfo(program.raw, cl_program_info(CL_PROGRAM_KERNEL_NAMES), 0, nil, &size) == CL_SUCCESS, size > 0 else { return [] }
        var bytes = [CChar](repeating: 0, count: size + 1)
        guard clGetProgramInfo(program.raw, cl_program_info(CL_PROGRAM_KERNEL_NAMES), size, &bytes, nil) == CL_SUCCESS else { return [] }
        let end = bytes.firstIndex(of: 0) ?? bytes.count
        return String(decoding: bytes[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self).split(separator: ";").map(String.init)
    }

    /// An idle kernel object for `name` (created when none is idle); give it back with ``checkIn(_:_:)``.
    func checkOut(_ name: String) throws -> CLKernel {
        if let k = pool.withLock({ $0[name]?.popLast() }) { return k }
        var st: cl_int = CL_SUCCESS
        guard let k = clCreateKernel(program.raw, name, &st), st == CL_SUCCESS else {
            throw CLStatus.failure("clCreateKernel", st, "kernel '\(name)' of program '\(self.name)'")
        }
        return CLKernel(k)
    }

    /// Returns a kernel object to the idle pool.
    func checkIn(_ name: String, _ kernel: CLKernel) {
        pool.withLock { $0[name, default: []].append(kernel) }
    }
}

/// The build of one program key, done once; later requests find it here.
final class BuildSlot: Sendable {
    let program = Locked<OpenCLProgram?>(nil)
}

extension OpenCLDevice {
    /// The on-disk program cache: `$POLYCHIP_CACHE_DIR`, else `~/.cache/polychip/opencl`.
    public static var cacheDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["POLYCHIP_CACHE_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir, isDirectory: true)
        }
        return FileManager.default.homeDirectoryForCurrentUser
            .appendingPathComponent(".cache/polychip/opencl", isDirectory: true)
    }

    /// Builds (or fetches from the in-memory cache, else the on-disk cache) a program from
    /// arbitrary OpenCL C `source` with `options`. A compile error throws
    /// ``PolychipError/buildFailure(device:program:log:)`` carrying the full build log.
    public func buildProgram(name: String, source: String, options: String = "") throws -> OpenCLProgram {
        let key = ProgramKey(name: name, sourceHash: SHA256.hex(Array(source.utf8)), options: options)
        // One slot per key: concurrent requests for the same program wait for one build,
        // different programs build in parallel.
        let slot = buildSlots.withLock { slots in
            if let s = slots[key] { return s }
            let s = BuildSlot()
            slots[key] = s
            return s
        }
        return try slot.program.withLock { built in
            if let p = built {
                stats.withLock { $0.memoryHits += 1 }
                return p
            }
            let p = try buildUncached(key, source: source)
            built = p
            return p
        }
    }

    /// Drops a program from the in-memory cache (tests use it to exercise the disk cache);
    /// returns its key.
    @discardableResult
    func forgetProgram(name: String, source: String, options: String = "") -> ProgramKey {
        let key = ProgramKey(name: name, sourceHash: SHA256.hex(Array(source.utf8)), options: options)
        _ = buildSlots.withLock { $0.removeValue(forKey: key) }
        return key
    }

    /// The key text stored in a cache file's header and hashed into its name.
    ///
    /// A v2 entry is this key, then `length=N\nsha256=HEX\n`, then the N bytes of the binary;
    /// an entry whose length or checksum does not match (a truncated or bit-flipped file) is
    /// deleted and rebuilt from source, never handed to the driver (issue 14: PoCL dies on a
    /// damaged binary, and did so again on every later run).
    private func diskKey(_ key: ProgramKey) -> String {
        "polychip-opencl-binary v2\n\(cacheIdentity)\noptions=\(key.options)\nsource=\(key.sourceHash)\n"
    }

    /// A cache entry's bytes for `binary`.
    static func cacheEntry(header: [UInt8], binary: [UInt8]) -> [UInt8] {
        header + Array("length=\(binary.count)\nsha256=\(SHA256.hex(binary))\n".utf8) + binary
    }

    /// The binary of a cache entry whose header is `header`, or why the entry is unusable.
    static func verifiedBinary(_ data: [UInt8], header: [UInt8]) -> Result<[UInt8], CacheEntryDamage> {
        guard data.count >= header.count, Array(data.prefix(header.count)) == header else { return .failure(.otherKey) }
        // Two text lines follow the header: length=N and sha256=HEX.
        var lines: [String] = []
        var i = header.count
        while lines.count < 2 {
            guard let nl = data[i...].prefix(96).firstIndex(of: 0x0A) else { return .failure(.damaged("no length/checksum line")) }
            lines.append(String(decoding: data[i..<nl], as: UTF8.self))
            i = nl + 1
        }
        guard lines[0].hasPrefix("length="), let n = Int(lines[0].dropFirst(7)), n > 0 else { return .failure(.damaged("bad length line")) }
        guard data.count - i == n else { return .failure(.damaged("\(data.count - i) bytes of binary, the entry says \(n)")) }
        let binary = Array(data[i...])
        guard lines[1] == "sha256=" + SHA256.hex(binary) else { return .failure(.damaged("checksum mismatch")) }
        return .success(binary)
    }

    /// Why a cache file was not used.
    enum CacheEntryDamage: Error, Equatable {
        /// The file belongs to another key or format version (a hash collision on the name, or v1).
        case otherKey
        /// Length or checksum wrong: the file was cut short, extended or changed.
        case damaged(String)
    }

    func cacheFile(_ key: ProgramKey) -> URL {
        let safe = String(key.name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" }.prefix(40))
        let digest = SHA256.hex(Array(diskKey(key).utf8)).prefix(32)
        return Self.cacheDirectory.appendingPathComponent("\(safe)-\(digest).bin")
    }

    private func buildUncached(_ key: ProgramKey, source: String) throws -> OpenCLProgram {
        let file = cacheFile(key)
        let header = Array(diskKey(key).utf8)
        if let data = try? Data(contentsOf: file) {
            switch Self.verifiedBinary([UInt8](data), header: header) {
            case .success(let binary):
                if let program = try? programFromBinary(binary, options: key.options) {
                    stats.withLock { $0.diskHits += 1 }
                    return OpenCLProgram(name: key.name, options: key.options, origin: .diskCache, program: program)
                }
                stats.withLock { $0.rejectedBinaries += 1 }
            case .failure(.damaged):
                stats.withLock { $0.damagedEntries += 1 }
                try? FileManager.default.removeItem(at: file)
            case .failure(.otherKey):
                break
            }
        }
        let program = try programFromSource(source, name: key.name, options: key.options)
        stats.withLock { $0.sourceBuilds += 1 }
        if let binary = binary(of: program) { store(Self.cacheEntry(header: header, binary: binary), at: file) }
        return OpenCLProgram(name: key.name, options: key.options, origin: .source, program: program)
    }

    private func programFromSource(_ source: String, name: String, options: String) throws -> CLProgram {
        var st: cl_int = CL_SUCCESS
        let raw: cl_program? = source.withCString { ptr in
            var p: UnsafePointer<CChar>? = ptr
            var len = strlen(ptr)
            return clCreateProgramWithSource(context.raw, 1, &p, &len, &st)
        }
        guard st == CL_SUCCESS, let raw else { throw CLStatus.failure("clCreateProgramWithSource", st, "program '\(name)'") }
        let program = CLProgram(raw)
        var dev: cl_device_id? = entry.device
        let bst = clBuildProgram(raw, 1, &dev, options, nil, nil)
        if bst != CL_SUCCESS {
            let log = buildLog(raw)
            let text = log.isEmpty ? "\(CLStatus.name(bst)) (the driver gave no build log; options: \(options))"
                                   : "\(CLStatus.name(bst)); options: \(options)\n\(log)"
            throw PolychipError.buildFailure(device: "\(id) (\(info.name))", program: name, log: text)
        }
        // Tuning aid: the compiler's log of a successful build (e.g. register use with
        // POLYCHIP_OPENCL_OPTIONS=-cl-nv-verbose on NVIDIA).
        if ProcessInfo.processInfo.environment["POLYCHIP_OPENCL_BUILD_LOG"] == "1" {
            let log = buildLog(raw)
            FileHandle.standardError.write(Data("[\(id)] built \(name) (\(options)):\n\(log)\n".utf8))
        }
        return program
    }

    private func programFromBinary(_ binary: [UInt8], options: String) throws -> CLProgram {
        var st: cl_int = CL_SUCCESS
        var binStatus: cl_int = CL_SUCCESS
        var dev: cl_device_id? = entry.device
        let raw: cl_program? = binary.withUnsafeBufferPointer { buf in
            var len = buf.count
            var ptr: UnsafePointer<UInt8>? = buf.baseAddress
            return clCreateProgramWithBinary(context.raw, 1, &dev, &len, &ptr, &binStatus, &st)
        }
        guard st == CL_SUCCESS, binStatus == CL_SUCCESS, let raw else { throw CLStatus.failure("clCreateProgramWithBinary", st) }
        let program = CLProgram(raw)
        try CLStatus.check(clBuildProgram(raw, 1, &dev, options, nil, nil), "clBuildProgram", "cached binary")
        return program
    }

    private func buildLog(_ program: cl_program) -> String {
        var size = 0
        guard clGetProgramBuildInfo(program, entry.device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), 0, nil, &size) == CL_SUCCESS,
              size > 0 else { return "" }
        var bytes = [CChar](repeating: 0, count: size + 1)
        guard clGetProgramBuildInfo(program, entry.device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), size, &bytes, nil) == CL_SUCCESS else { return "" }
        let end = bytes.firstIndex(of: 0) ?? bytes.count
        return String(decoding: bytes[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The device binary of a built single-device program (nil when the driver gives none).
    private func binary(of program: CLProgram) -> [UInt8]? {
        var size = 0
        guard clGetProgramInfo(program.raw, cl_program_info(CL_PROGRAM_BINARY_SIZES), MemoryLayout<Int>.size, &size, nil) == CL_SUCCESS,
              size > 0 else { return nil }
        var bytes = [UInt8](repeating: 0, count: size)
        let st: cl_int = bytes.withUnsafeMutableBufferPointer { buf in
            var ptr: UnsafeMutablePointer<UInt8>? = buf.baseAddress
            return clGetProgramInfo(program.raw, cl_program_info(CL_PROGRAM_BINARIES), MemoryLayout<UnsafeMutablePointer<UInt8>?>.size, &ptr, nil)
        }
        return st == CL_SUCCESS ? bytes : nil
    }

    /// Writes a cache file atomically; a cache that cannot be written is not an error.
    private func store(_ bytes: [UInt8], at file: URL) {
        let fm = FileManager.default
        do {
            try fm.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            let tmp = file.deletingLastPathComponent().appendingPathComponent(".\(file.lastPathComponent).\(getpid()).\(UUID().uuidString).tmp")
            try Data(bytes).write(to: tmp)
            if rename(tmp.path, file.path) != 0 { try? fm.removeItem(at: tmp) }
        } catch {
            return
        }
    }
}
