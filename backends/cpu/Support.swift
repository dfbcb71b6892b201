import CPolychipKernels
import Foundation
import PolychipCore

/// Cache blocking of the packed GEMM, derived from the topology's cache sizes and the
/// microkernel's register tile.
public struct GemmBlocking: Sendable, Codable, Hashable {
    /// Register tile rows (microkernel MR).
    public var mr: Int
    /// Register tile columns (microkernel NR).
    public var nr: Int
    /// K depth of a packed panel: one B sliver (`kc × nr` floats) fills L1, up to 256. The A
    /// tiles stream through it from L2; a deeper block halves the C tile's loads and stores,
    /// which cost more than the sliver's L1 misses (measured on Zen 4: 14 × 32 tiles at KC 256
    /// are 5% faster than at KC 128, half of L1, and no faster at 320 or 384; AVX2 6 × 16 no
    /// faster at 512 than at 256, where Zen 3 was tuned). A multiple of 64.
    public var kc: Int
    /// K depth of a block of the bf16 pair GEMM: `2 × kc` (a pair sliver of `kc × nr`
    /// 32-bit slots is as large as an f32 one).
    public var kcPairs: Int { 2 * kc }
    /// Rows of a packed A block: `mc × kc` floats fill about half of L2.
    public var mc: Int
    /// Columns of a packed B panel: `kc × nc` floats fill about half of the workers' L3 share.
    public var nc: Int
    /// Largest packed B (bytes) a parallel GEMM packs whole; wider products go panel by panel.
    public var packBudgetBytes: Int = 64 << 20
    /// Packed INT4 weight bytes per GEMV task: half of L2, so a task's rows stream through
    /// L2 while the activations stay in L1.
    public var gemvTaskBytes: Int
    /// Largest GEMM (M·N·K) run as one serial task; larger ones take the parallel path.
    public var serialMaxWork: Int = 1 << 18
    /// Largest M served by the INT4 GEMV (weights streamed once, dequantized in registers);
    /// larger M take the packed GEMM with INT4 B panels.
    public var int4GemvMaxRows: Int = 8
    /// Grouped GEMMs: output columns per task (a multiple of NR).
    public var groupedColumns: Int = 512
    /// MoE layer: output columns per expert task when fewer than `moeWholeRowExperts`
    /// experts are active (a multiple of NR); with more, whole rows per task.
    public var moeColumns: Int = 256
    /// MoE layer: active experts from which each task takes whole output rows.
    public var moeWholeRowExperts: Int = 16
    /// Element-wise kernels: elements per task (row kernels: rows of at most this many elements).
    public var elementGrain: Int = 1 << 15
    /// Element-wise kernels on 16-bit data: elements widened to f32 per inner block.
    public var elementBlock: Int = 4096
    /// rmsNorm outputs at least this large (bytes) are written with non-temporal stores: an
    /// output larger than the last-level cache share is not read back, so fetching its lines
    /// first (a third of the traffic) is waste (4096² f32 on Zen 4, 2 threads: 12 -> 8 ms).
    /// Softmax does not stream: its exp pass, not memory, sets the pace, and streaming made
    /// the AVX2 path slower. `POLYCHIP_CPU_STREAM_BYTES` overrides it.
    public var streamStoreBytes: Int
    /// Block sizes and path thresholds of attention, sparse attention and the indexer,
    /// which run on the same tile.
    public var attention: AttentionBlocking

    /// Derives the blocking for a topology and the tile of the calling thread's kernels,
    /// using `cores` cores.
    public init(topology: HostTopology, cores: Int) {
        self.init(topology: topology, cores: cores, table: KernelTable(raw: pck_current()))
    }

    /// Derives the blocking for a topology and a kernel table's tile, using `cores` cores.
    init(topology: HostTopology, cores: Int, table: KernelTable) {
        mr = max(1, table.mr)
        nr = max(1, table.nr)
        let kcRaw = topology.l1Bytes / (nr * 4)
        // Multiples of 64: the INT4 B packing dequantizes 64 weights per row at a time
        // (a 168-deep 8 × 48 block left 40 to its scalar tail: 20% slower expert GEMMs).
        kc = min(256, max(64, kcRaw / 64 * 64))
        let mcRaw = topology.l2Bytes / 2 / (kc * 4)
        mc = max(mr, min(1024, mcRaw) / mr * mr)
        let llc = topology.llcBytesPerCore * max(1, cores)
        let ncRaw = llc / 2 / (kc * 4)
        nc = max(nr, min(8192, ncRaw) / nr * nr)
        gemvTaskBytes = max(16 << 10, topology.l2Bytes / 2)
        streamStoreBytes = max(1 << 20, llc)
        // Tuning overrides: POLYCHIP_CPU_GEMM_KC / _MC / _NC (rounded to the tile).
        let env = ProcessInfo.processInfo.environment
        if let v = env["POLYCHIP_CPU_GEMM_KC"].flatMap(Int.init), v >= 8 { kc = v / 8 * 8 }
        if let v = env["POLYCHIP_CPU_GEMM_MC"].flatMap(Int.init), v >= mr { mc = v / mr * mr }
        if let v = env["POLYCHIP_CPU_GEMM_NC"].flatMap(Int.init), v >= nr { nc = v / nr * nr }
        if let v = env["POLYCHIP_CPU_STREAM_BYTES"].flatMap(Int.init), v >= 0 { streamStoreBytes = v }
        attention = AttentionBlocking(mr: mr, nr: nr, environment: env)
    }
}

/// Block sizes and path thresholds of the flash-attention family (attention, sparse
/// attention, the lightning indexer), in rows of the GEMM tile in use. Every one is a
/// field here, none a literal in a loop, and each is reported by `CPUDevice.tiling` and
/// overridable through `POLYCHIP_CPU_TILING` (`attention.*`, `indexer.*` keys; the `small`
/// preset makes them tiny). `POLYCHIP_CPU_ATTN_BR` / `_BC` override the two block sizes for
/// tuning.
public struct AttentionBlocking: Sendable, Codable, Hashable {
    /// Query rows per task block (a multiple of MR): about 96.
    public var br: Int
    /// Keys per block (a multiple of NR, so blocks start on packed sliver boundaries): about
    /// 384. P·V's depth is the block: deeper blocks load and store the O tile less often
    /// (causal B1 H32/8 L2048 D128, one Zen 4 core: 362 ms at 128 keys, 354 at 256, 351 at
    /// 384 and 512; decode and sparse attention flat).
    public var bc: Int
    /// K and V are packed once per kv head (shared by all row blocks) up to this many bytes.
    public var prepackLimitBytes: Int = 512 << 20
    /// Keys per packing task of that pre-pack (a multiple of NR): about 256.
    public var prepackKeys: Int
    /// Split-KV (decode-like shapes) is used when there are fewer (batch, kv head, row
    /// block) units than this and at least `splitKVMinKeys` keys.
    public var splitKVMaxUnits: Int = 16
    /// Fewest keys a split-KV call has.
    public var splitKVMinKeys: Int = 512
    /// Split-KV cuts the keys into chunks so that there are about this many tasks.
    public var splitKVTasks: Int = 32
    /// Indexer: query rows (tokens × heads) per tile, about 96 (a multiple of MR).
    public var indexerRows: Int
    /// Indexer: keys per score block (a multiple of NR), about 128.
    public var indexerKeys: Int
    /// Indexer: keys per task (a multiple of NR), about 2048.
    public var indexerTaskKeys: Int
    /// Indexer: keys per packing task (a multiple of NR), about 512.
    public var indexerPackKeys: Int

    init(mr: Int, nr: Int, environment env: [String: String] = [:]) {
        func rows(_ target: Int) -> Int { max(mr, target / mr * mr) }
        func keys(_ target: Int) -> Int { max(nr, target / nr * nr) }
        br = rows(96)
        bc = keys(384)
        prepackKeys = keys(256)
        indexerRows = rows(96)
        indexerKeys = keys(128)
        indexerTaskKeys = keys(2048)
        indexerPackKeys = keys(512)
        if let v = env["POLYCHIP_CPU_ATTN_BR"].flatMap(Int.init), v >= mr { br = v / mr * mr }
        if let v = env["POLYCHIP_CPU_ATTN_BC"].flatMap(Int.init), v >= nr { bc = v / nr * nr }
    }
}

extension DType {
    /// The C kernels' storage type for a float dtype.
    @inlinable
    var pck: pck_dtype {
        switch self {
        case .f16: return PCK_DT_F16
        case .bf16: return PCK_DT_BF16
        default: return PCK_DT_F32
        }
    }

    /// Bytes per element of a byte-addressable dtype (int4 counts as 1: callers use K/2).
    @inlinable
    var elementBytes: Int { max(1, bitWidth / 8) }
}

/// Widens `n` elements of a float tensor in `dtype` to f32.
@inlinable
func loadF32(_ src: UnsafeRawPointer, _ dtype: DType, _ n: Int, into dst: UnsafeMutablePointer<Float>) {
    guard n > 0 else { return }
    switch dtype {
    case .f16: pck_f16_to_f32(n, src.assumingMemoryBound(to: UInt16.self), dst)
    case .bf16: pck_bf16_to_f32(n, src.assumingMemoryBound(to: UInt16.self), dst)
    default: if UnsafeRawPointer(dst) != src { dst.update(from: src.assumingMemoryBound(to: Float.self), count: n) }
    }
}

/// Rounds `n` f32 values once to `dtype` and stores them.
@inlinable
func storeF32(_ src: UnsafePointer<Float>, _ n: Int, to dst: UnsafeMutableRawPointer, _ dtype: DType) {
    guard n > 0 else { return }
    switch dtype {
    case .f16: pck_f32_to_f16(n, src, dst.assumingMemoryBound(to: UInt16.self))
    case .bf16: pck_f32_to_bf16(n, src, dst.assumingMemoryBound(to: UInt16.self))
    default: if UnsafeRawPointer(dst) != UnsafeRawPointer(src) { dst.assumingMemoryBound(to: Float.self).update(from: src, count: n) }
    }
}

/// Rounds f32 values in place to the precision of `dtype` (no-op for f32), using `tmp`
/// (at least `n` 16-bit slots).
@inlinable
func roundInPlace(_ p: UnsafeMutablePointer<Float>, _ n: Int, _ dtype: DType, tmp: UnsafeMutablePointer<UInt16>) {
    switch dtype {
    case .f16: pck_f32_to_f16(n, p, tmp); pck_f16_to_f32(n, tmp, p)
    case .bf16: pck_f32_to_bf16(n, p, tmp); pck_bf16_to_f32(n, tmp, p)
    default: break
    }
}

/// A host-memory operand of a kernel call: its address and descriptor.
struct Operand {
    let raw: UnsafeMutableRawPointer
    let desc: TensorDesc
    var shape: [Int] { desc.shape }
    var dtype: DType { desc.dtype }
    var count: Int { desc.elementCount }
    /// Typed view for f32 / i32 / i8 / u8 data.
    @inlinable func f32() -> UnsafeMutablePointer<Float> { raw.assumingMemoryBound(to: Float.self) }
    @inlinable func i32() -> UnsafeMutablePointer<Int32> { raw.assumingMemoryBound(to: Int32.self) }
    @inlinable func i8() -> UnsafeMutablePointer<Int8> { raw.assumingMemoryBound(to: Int8.self) }
    @inlinable func u8() -> UnsafeMutablePointer<UInt8> { raw.assumingMemoryBound(to: UInt8.self) }
    /// Address of element `i` (byte-addressable dtypes).
    @inlinable func at(_ i: Int) -> UnsafeMutableRawPointer { raw + i * desc.dtype.elementBytes }
}

/// Everything a kernel needs besides its operands.
struct KernelContext {
    let pool: CPUThreadPool
    let blocking: GemmBlocking
    /// The device's kernels: every task runs them (set per task, since pool threads and
    /// the submitting thread may serve devices with other tables).
    let table: KernelTable
    /// Scratch owned by the submitting thread (shared buffers such as packed B panels).
    let shared: Workspace
    /// The catalog name, for errors.
    let kernel: String

    var workers: Int { pool.workerCount }

    /// Splits `total` items into tasks of at least `grain` items and at most `maxTasks`
    /// tasks; returns the chunk size. Depends only on the sizes (not the thread count), so
    /// task boundaries (and any per-task reduction order) are the same run to run.
    func chunk(_ total: Int, grain: Int, maxTasks: Int = 64) -> Int {
        guard total > 0 else { return 1 }
        let tasks = max(1, min(maxTasks, total / max(1, grain)))
        return (total + tasks - 1) / tasks
    }

    /// Runs `body(task, worker)` for `0..<count` on the pool with the device's kernels.
    func parallelFor(_ count: Int, _ body: (Int, Int) -> Void) {
        let raw = table.raw
        pool.parallelFor(count) { t, w in
            pck_use(raw)
            body(t, w)
        }
    }

    /// Runs `body(start, end, worker)` over `0..<total` in chunks of `chunk` items.
    func forRanges(_ total: Int, chunk: Int, _ body: (Int, Int, Int) -> Void) {
        guard total > 0 else { return }
        let c = max(1, chunk)
        let tasks = (total + c - 1) / c
        parallelFor(tasks) { t, w in body(t * c, min(total, (t + 1) * c), w) }
    }
}
