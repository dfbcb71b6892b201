import CNuma
import Foundation
import PolychipCore

/// Where the CPU backend puts buffer memory.
public enum MemoryPlacement: String, Sendable, Codable, Hashable {
    /// libnuma `numa_alloc_onnode` on the one NUMA node all workers sit on.
    case numaNode = "numa-node"
    /// libnuma `numa_alloc_interleaved` across the nodes of the workers.
    case numaInterleaved = "numa-interleaved"
    /// No libnuma: pages land where the workers first touch them (zeroed by the pool).
    case firstTouch = "first-touch"
}

/// Allocates host buffers NUMA-aware: small buffers from the Swift allocator, large ones
/// from libnuma on the workers' node(s), or first-touched by the workers when libnuma is
/// unavailable (`numa_available() < 0`).
struct NUMAAllocator: Sendable {
    /// Buffers below this size come from the ordinary allocator (one mmap each is too dear).
    static let numaThreshold = 1 << 20

    /// Buffers from this size get huge pages advised, on `hugePageAlignment` boundaries.
    static let hugePageMinBytes = 4 << 20
    static let hugePageAlignment = 2 << 20

    /// Asks for transparent huge pages on a fresh (untouched) large buffer, as numpy does for
    /// its arrays of 4 MiB and more: a 2048² f32 operand then spans 8 TLB entries instead of
    /// 4096, which a GEMM walking rows 8 KiB apart notices (1–1.5% of one core's time at
    /// 2048³ in a C replica of our GEMM). Only advice: with THP off, or for the parts of the
    /// range that are not 2 MiB aligned, pages stay 4 KiB.
    static func adviseHugePages(_ p: UnsafeMutableRawPointer, _ byteCount: Int) {
        guard byteCount >= hugePageMinBytes else { return }
        let page = 4096
        let start = (Int(bitPattern: p) + page - 1) / page * page
        let end = (Int(bitPattern: p) + byteCount) / page * page
        guard end > start, let s = UnsafeMutableRawPointer(bitPattern: start) else { return }
        _ = madvise(s, end - start, MADV_HUGEPAGE)
    }

    let placement: MemoryPlacement
    let node: Int32

    init(workerNodes: [Int], numaDisabled: Bool) {
        let nodes = Array(Set(workerNodes)).sorted()
        if !numaDisabled && numa_available() >= 0 {
            if nodes.count <= 1 {
                placement = .numaNode
                node = Int32(nodes.first ?? 0)
            } else {
                placement = .numaInterleaved
                node = -1
            }
        } else {
            placement = .firstTouch
            node = -1
        }
    }

    /// A zero-filled buffer of `byteCount` bytes owned by `deviceID`.
    func allocate(byteCount: Int, deviceID: String, pool: CPUThreadPool) -> HostBuffer? {
        let n = max(byteCount, 1)
        if n >= Self.numaThreshold {
            switch placement {
            case .numaNode:
                if let p = numa_alloc_onnode(n, node) {  // fresh mmap pages read as zero
                    Self.adviseHugePages(p, n)
                    return HostBuffer(adopting: p, byteCount: byteCount, deviceID: deviceID) { p, _ in numa_free(p, n) }
                }
            case .numaInterleaved:
                if let p = numa_alloc_interleaved(n) {
                    Self.adviseHugePages(p, n)
                    return HostBuffer(adopting: p, byteCount: byteCount, deviceID: deviceID) { p, _ in numa_free(p, n) }
                }
            case .firstTouch:
                break
            }
            // First touch: each worker zeroes (and so places) its share of the pages.
            var raw: UnsafeMutableRawPointer? = nil
            let alignment = n >= Self.hugePageMinBytes ? Self.hugePageAlignment : 4096
            guard posix_memalign(&raw, alignment, n) == 0, let p = raw else { return nil }
            Self.adviseHugePages(p, n)
            let chunk = 1 << 20
            let tasks = (n + chunk - 1) / chunk
            pool.parallelFor(tasks) { t, _ in
                let start = t * chunk
                memset(p + start, 0, min(chunk, n - start))
            }
            return HostBuffer(adopting: p, byteCount: byteCount, deviceID: deviceID) { p, _ in free(p) }
        }
        return HostBuffer(byteCount: byteCount, deviceID: deviceID)
    }
}
