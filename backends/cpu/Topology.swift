import CHwloc
import Foundation

/// The host's processor and memory layout as hwloc reports it: packages, cores, the
/// processing units (hardware threads) of each core, cache sizes and NUMA nodes.
///
/// It is a plain value (`Codable`, so `polychip devices --json` can print it); the CPU
/// backend derives its thread count, worker pinning and GEMM cache blocking from it.
public struct HostTopology: Sendable, Codable, Hashable {
    /// One physical core.
    public struct Core: Sendable, Codable, Hashable {
        /// Logical index of the core (0-based, hwloc order).
        public var index: Int
        /// Logical index of the package (socket) holding it.
        public var package: Int
        /// OS index of its NUMA node (0 when unknown).
        public var numaNode: Int
        /// OS indices of its processing units (hardware threads).
        public var processingUnits: [Int]

        /// Creates a core description.
        public init(index: Int, package: Int, numaNode: Int, processingUnits: [Int]) {
            self.index = index; self.package = package; self.numaNode = numaNode; self.processingUnits = processingUnits
        }
    }

    /// One level of data cache.
    public struct Cache: Sendable, Codable, Hashable {
        /// Cache level (1, 2, 3).
        public var level: Int
        /// Size of one instance in bytes.
        public var sizeBytes: Int
        /// Line size in bytes (64 when unknown).
        public var lineBytes: Int
        /// Number of instances on the machine.
        public var instances: Int
        /// Cores sharing one instance.
        public var coresPerInstance: Int

        /// Creates a cache description.
        public init(level: Int, sizeBytes: Int, lineBytes: Int, instances: Int, coresPerInstance: Int) {
            self.level = level; self.sizeBytes = sizeBytes; self.lineBytes = lineBytes
            self.instances = instances; self.coresPerInstance = coresPerInstance
        }
    }

    /// One NUMA node.
    public struct NUMANode: Sendable, Codable, Hashable {
        /// OS index (what libnuma calls the node).
        public var osIndex: Int
        /// Local memory in bytes (0 when unknown).
        public var memoryBytes: Int
        /// Logical indices of the cores attached to it.
        public var cores: [Int]

        /// Creates a NUMA node description.
        public init(osIndex: Int, memoryBytes: Int, cores: [Int]) {
            self.osIndex = osIndex; self.memoryBytes = memoryBytes; self.cores = cores
        }
    }

    /// Number of packages (sockets).
    public var packages: Int
    /// Every core, in hwloc's logical order.
    public var cores: [Core]
    /// Data caches, innermost first (L1d, L2, L3 where present).
    public var caches: [Cache]
    /// NUMA nodes (one entry on a uniform-memory machine).
    public var numaNodes: [NUMANode]
    /// CPU model string where hwloc knows it.
    public var cpuModel: String
    /// CPU vendor string where hwloc knows it.
    public var cpuVendor: String
    /// Where the facts came from: `"hwloc 2.x"`, or `"fallback"` when hwloc failed.
    public var source: String

    /// Creates a topology value (tests and simulated hosts build their own).
    public init(packages: Int, cores: [Core], caches: [Cache], numaNodes: [NUMANode],
                cpuModel: String, cpuVendor: String, source: String) {
        self.packages = packages; self.cores = cores; self.caches = caches; self.numaNodes = numaNodes
        self.cpuModel = cpuModel; self.cpuVendor = cpuVendor; self.source = source
    }

    /// Total processing units (hardware threads).
    public var processingUnitCount: Int { cores.reduce(0) { $0 + $1.processingUnits.count } }

    /// Size in bytes of one instance of cache `level`, or `fallback` when hwloc did not report it.
    public func cacheBytes(level: Int, fallback: Int) -> Int {
        caches.first { $0.level == level && $0.sizeBytes > 0 }?.sizeBytes ?? fallback
    }

    /// L1 data cache per core in bytes (32 KiB when unknown).
    public var l1Bytes: Int { cacheBytes(level: 1, fallback: 32 << 10) }
    /// L2 cache per instance in bytes (512 KiB when unknown).
    public var l2Bytes: Int { cacheBytes(level: 2, fallback: 512 << 10) }
    /// Last-level cache share per core in bytes (L3 / cores sharing it; falls back to L2).
    public var llcBytesPerCore: Int {
        if let l3 = caches.first(where: { $0.level == 3 && $0.sizeBytes > 0 }) {
            return l3.sizeBytes / max(1, l3.coresPerInstance)
        }
        return l2Bytes
    }

    /// The topology of this machine (discovered once, then cached).
    public static var current: HostTopology { Hwloc.shared.topology }

    /// A topology built from `sysconf` alone, for hosts where hwloc fails.
    static func fallback() -> HostTopology {
        let n = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let cores = (0..<n).map { Core(index: $0, package: 0, numaNode: 0, processingUnits: [$0]) }
        return HostTopology(packages: 1, cores: cores,
                            caches: [Cache(level: 1, sizeBytes: 32 << 10, lineBytes: 64, instances: n, coresPerInstance: 1),
                                     Cache(level: 2, sizeBytes: 512 << 10, lineBytes: 64, instances: n, coresPerInstance: 1)],
                            numaNodes: [NUMANode(osIndex: 0, memoryBytes: Int(ProcessInfo.processInfo.physicalMemory), cores: Array(0..<n))],
                            cpuModel: "unknown", cpuVendor: "unknown", source: "fallback")
    }
}

/// The process-wide hwloc topology handle: discovery and thread binding.
final class Hwloc: @unchecked Sendable {
    // @unchecked: `handle` is written once in init; hwloc's topology is safe for concurrent
    // read-only queries and binding calls (hwloc documentation, "Thread safety").
    static let shared = Hwloc()

    private let handle: hwloc_topology_t?
    let topology: HostTopology

    private init() {
        var topo: hwloc_topology_t? = nil
        guard hwloc_topology_init(&topo) == 0, let t = topo else {
            handle = nil
            topology = .fallback()
            return
        }
        guard hwloc_topology_load(t) == 0 else {
            hwloc_topology_destroy(t)
            handle = nil
            topology = .fallback()
            return
        }
        handle = t
        topology = Hwloc.discover(t) ?? .fallback()
    }

    deinit { if let handle { hwloc_topology_destroy(handle) } }

    private static func objects(_ t: hwloc_topology_t, _ type: hwloc_obj_type_t) -> [hwloc_obj_t] {
        let n = hwloc_get_nbobjs_by_type(t, type)
        guard n > 0 else { return [] }
        return (0..<UInt32(n)).compactMap { hwloc_get_obj_by_type(t, type, $0) }
    }

    private static func bits(_ set: hwloc_const_bitmap_t?) -> [Int] {
        guard let set else { return [] }
        var out: [Int] = []
        var i = hwloc_bitmap_first(set)
        while i >= 0 {
            out.append(Int(i))
            i = hwloc_bitmap_next(set, i)
        }
        return out
    }

    private static func discover(_ t: hwloc_topology_t) -> HostTopology? {
        let packages = objects(t, HWLOC_OBJ_PACKAGE)
        let coreObjs = objects(t, HWLOC_OBJ_CORE)
        guard !coreObjs.isEmpty else { return nil }
        var cores: [HostTopology.Core] = []
        for (i, c) in coreObjs.enumerated() {
            let pus = bits(c.pointee.cpuset)
            let node = bits(c.pointee.nodeset).first ?? 0
            var pkg = 0
            var p = c.pointee.parent
            while let obj = p {
                if obj.pointee.type == HWLOC_OBJ_PACKAGE { pkg = Int(obj.pointee.logical_index); break }
                p = obj.pointee.parent
            }
            cores.append(.init(index: i, package: pkg, numaNode: node, processingUnits: pus))
        }
        var caches: [HostTopology.Cache] = []
        for (level, type) in [(1, HWLOC_OBJ_L1CACHE), (2, HWLOC_OBJ_L2CACHE), (3, HWLOC_OBJ_L3CACHE)] {
            let objs = objects(t, type)
            guard let first = objs.first, let attr = first.pointee.attr else { continue }
            let size = Int(attr.pointee.cache.size)
            let line = Int(attr.pointee.cache.linesize)
            let puSet = Set(bits(first.pointee.cpuset))
            let sharing = cores.filter { !Set($0.processingUnits).isDisjoint(with: puSet) }.count
            caches.append(.init(level: level, sizeBytes: size, lineBytes: line > 0 ? line : 64,
                                instances: objs.count, coresPerInstance: max(1, sharing)))
        }
        var nodes: [HostTopology.NUMANode] = []
        for n in objects(t, HWLOC_OBJ_NUMANODE) {
            let os = Int(n.pointee.os_index)
            let mem = Int(n.pointee.attr?.pointee.numanode.local_memory ?? 0)
            nodes.append(.init(osIndex: os, memoryBytes: mem, cores: cores.filter { $0.numaNode == os }.map(\.index)))
        }
        if nodes.isEmpty {
            nodes = [.init(osIndex: 0, memoryBytes: Int(ProcessInfo.processInfo.physicalMemory), cores: cores.map(\.index))]
        }
        func info(_ name: String) -> String? {
            for p in packages {
                if let v = hwloc_obj_get_info_by_name(p, name) { return String(cString: v) }
            }
            return nil
        }
        let version = hwloc_get_api_version()
        let versionText = "\(version >> 16).\((version >> 8) & 0xFF).\(version & 0xFF)"
        return HostTopology(packages: max(1, packages.count), cores: cores, caches: caches, numaNodes: nodes,
                            cpuModel: info("CPUModel") ?? "unknown", cpuVendor: info("CPUVendor") ?? "unknown",
                            source: "hwloc \(versionText)")
    }

    /// Binds the calling thread to the given OS processing units. Returns whether it worked.
    @discardableResult
    func bindCurrentThread(to pus: [Int]) -> Bool {
        guard let handle, !pus.isEmpty, let set = hwloc_bitmap_alloc() else { return false }
        defer { hwloc_bitmap_free(set) }
        for pu in pus { hwloc_bitmap_set(set, UInt32(pu)) }
        return hwloc_set_cpubind(handle, set, Int32(HWLOC_CPUBIND_THREAD.rawValue)) == 0
    }
}
