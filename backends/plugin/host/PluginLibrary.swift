import CPolychipPluginABI
import Foundation
import PolychipCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One loaded plugin library: its function table, its state and the lock every call into it
/// takes (the ABI promises a plugin one caller at a time).
///
/// Loading checks, in order: the file exists, `dlopen` succeeds, the library exports
/// `polychip_backend_get_api`, the table it returns speaks this host's ABI version and is large
/// enough, its name is a valid selector prefix, every required function is present, and `init`
/// succeeds. Each failure is a ``PolychipError`` naming the plugin file and what was wrong.
/// A loaded library is never closed: buffers and devices may outlive any one owner.
public final class PluginLibrary: @unchecked Sendable {
    // @unchecked: `api` and `state` are set once in `init` and never change; every call through
    // them happens inside `lock.withLock`, so the plugin is never entered concurrently.

    /// The file it was loaded from (as given, made absolute).
    public let path: String
    /// The selector prefix of its devices (`polychip_backend_api.name`).
    public let name: String
    /// The plugin's free-form version string.
    public let version: String
    let api: polychip_backend_api
    let state: OpaquePointer?
    private let lock = Locked(())

    /// Size of the messages the host offers a plugin.
    static let messageCapacity = 2048

    /// How errors name it: `plugin 'onednn' (/path/libPolychipOneDNN.so)`.
    public var label: String { "plugin '\(name)' (\(path))" }

    /// Loads and initializes the library at `path`. `reserved` holds names the plugin may not
    /// take (the built-in backends').
    init(path: String, reserved: Set<String>) throws {
        self.path = path
        let who = "plugin \(path)"
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue else {
            throw PolychipError.io(path: path, reason: "no plugin library at this path")
        }
        _ = dlerror()
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            throw PolychipError.backendFailure(backend: who, call: "dlopen", code: 0, detail: Self.dlError() ?? "cannot load the library")
        }
        guard let sym = dlsym(handle, POLYCHIP_BACKEND_ENTRY_SYMBOL) else {
            throw PolychipError.backendFailure(backend: who, call: "dlsym(\(POLYCHIP_BACKEND_ENTRY_SYMBOL))", code: 0,
                                               detail: "not a Polychip backend plugin: it does not export \(POLYCHIP_BACKEND_ENTRY_SYMBOL)")
        }
        let entry = unsafeBitCast(sym, to: polychip_backend_get_api_fn.self)
        guard let table = entry(PluginABI.version) else {
            throw PolychipError.backendFailure(backend: who, call: POLYCHIP_BACKEND_ENTRY_SYMBOL, code: 0,
                                               detail: "the plugin returned no function table for host ABI version \(PluginABI.version)")
        }
        // Read the fixed header first: a table from another ABI version may be shorter.
        let header = UnsafeRawPointer(table).loadUnaligned(as: (UInt32, UInt32).self)
        guard header.1 == PluginABI.version else {
            throw PolychipError.backendFailure(backend: who, call: "ABI version check", code: Int(header.1),
                                               detail: "the plugin was built for Polychip backend ABI version \(header.1); this host speaks version \(PluginABI.version) (rebuild it against backends/plugin/abi/include/polychip_backend.h)")
        }
        let required = MemoryLayout<polychip_backend_api>.offset(of: \polychip_backend_api.kernel_tiling) ?? MemoryLayout<polychip_backend_api>.size
        guard Int(header.0) >= required else {
            throw PolychipError.backendFailure(backend: who, call: "ABI version check", code: Int(header.0),
                                               detail: "the function table is \(header.0) bytes; ABI version \(PluginABI.version) needs at least \(required)")
        }
        // Copy what the plugin's table covers; optional entries past its end stay NULL.
        var api = polychip_backend_api()
        withUnsafeMutableBytes(of: &api) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(start: UnsafeRawPointer(table), count: min(Int(header.0), dst.count)))
        }
        self.api = api
        let name = api.name.map { String(cString: $0) } ?? ""
        guard (1...32).contains(name.count), name.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" }) else {
            throw PolychipError.backendFailure(backend: who, call: "name", code: 0,
                                               detail: "the plugin's name '\(name.prefix(40))' is not 1–32 characters of [a-z0-9_-]")
        }
        guard !reserved.contains(name) else {
            throw PolychipError.backendFailure(backend: who, call: "name", code: 0,
                                               detail: "the plugin calls itself '\(name)', the name of a built-in backend")
        }
        self.name = name
        self.version = api.version.map { String(cString: $0) } ?? ""
        var missing: [String] = []
        if api.`init` == nil { missing.append("init") }
        if api.device_count == nil { missing.append("device_count") }
        if api.device_info == nil { missing.append("device_info") }
        if api.buffer_alloc == nil { missing.append("buffer_alloc") }
        if api.buffer_free == nil { missing.append("buffer_free") }
        if api.buffer_write == nil { missing.append("buffer_write") }
        if api.buffer_read == nil { missing.append("buffer_read") }
        if api.support == nil { missing.append("support") }
        if api.query == nil { missing.append("query") }
        if api.execute == nil { missing.append("execute") }
        if api.synchronize == nil { missing.append("synchronize") }
        guard missing.isEmpty, let initialize = api.`init` else {
            throw PolychipError.backendFailure(backend: "plugin '\(name)' (\(path))", call: "function table", code: 0,
                                               detail: "required functions missing: \(missing.joined(separator: ", "))")
        }
        var state: OpaquePointer? = nil
        var message = [CChar](repeating: 0, count: Self.messageCapacity)
        let status = initialize(&state, &message, message.count)
        guard status == Int32(POLYCHIP_OK.rawValue) else {
            throw PolychipError.backendFailure(backend: "plugin '\(name)' (\(path))", call: "init", code: Int(status),
                                               detail: Self.text(message, or: "init failed with no message"))
        }
        self.state = state
    }

    static func dlError() -> String? { dlerror().map { String(cString: $0) } }

    static func text(_ message: [CChar], or fallback: String) -> String {
        let s = message.withUnsafeBufferPointer { p -> String in
            guard let base = p.baseAddress else { return "" }
            // The plugin may have filled the buffer without a NUL: never read past it.
            let n = (0..<p.count).first { p[$0] == 0 } ?? p.count
            return String(decoding: UnsafeRawBufferPointer(start: base, count: n), as: UTF8.self)
        }
        return s.isEmpty ? fallback : s
    }

    /// Runs `body` under the plugin's lock with a zeroed message buffer; a status other than
    /// `POLYCHIP_OK` becomes the error `failure` makes of it.
    func call(_ body: (polychip_backend_api, OpaquePointer?, UnsafeMutablePointer<CChar>, Int) -> Int32,
              failure: (Int32, String) -> PolychipError) throws {
        var message = [CChar](repeating: 0, count: Self.messageCapacity)
        let status = lock.withLock { _ in
            message.withUnsafeMutableBufferPointer { body(api, state, $0.baseAddress!, $0.count - 1) }
        }
        guard status == Int32(POLYCHIP_OK.rawValue) else { throw failure(status, Self.text(message, or: "no message")) }
    }

    /// Runs `body` under the plugin's lock (calls that cannot fail).
    func locked<T>(_ body: (polychip_backend_api, OpaquePointer?) -> T) -> T {
        lock.withLock { _ in body(api, state) }
    }

    /// The typed error for a failed call: unsupported, out of memory and device faults keep
    /// their meaning; anything else is a backend failure naming the plugin, the call and the
    /// kernel.
    func error(_ status: Int32, _ message: String, call: String, kernel: String?, device: String, requested: Int = 0) -> PolychipError {
        let what = kernel.map { "\(call) \($0)" } ?? call
        switch UInt32(bitPattern: status) {
        case POLYCHIP_ERROR_UNSUPPORTED.rawValue:
            return .unsupported(kernel: kernel ?? call, device: device, reason: "\(label): \(message)")
        case POLYCHIP_ERROR_OUT_OF_MEMORY.rawValue:
            return .outOfMemory(device: device, requested: requested, available: 0)
        case POLYCHIP_ERROR_INVALID_ARGUMENT.rawValue:
            return .invalidArgument(kernel: kernel ?? call, argument: "\(label) \(call)", reason: message)
        case POLYCHIP_ERROR_DEVICE.rawValue:
            return .deviceFault(device: device, kernel: kernel ?? call, kind: "plugin", detail: "\(label): \(message)")
        default:
            return .backendFailure(backend: label, call: what, code: Int(status), detail: message)
        }
    }
}
