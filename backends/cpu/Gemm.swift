import CPolychipKernels
import Foundation
import PolychipCore
import Synchronization

/// The A operand of a packed GEMM (`M × K`).
enum GemmA {
    /// Element `(i, k)` at `base[i·rs + k·cs]` in a float dtype.
    case strided(UnsafeRawPointer, pck_dtype, rs: Int, cs: Int)
    /// Row `i` is row `rows[i]` of a row-major matrix with leading dimension `ld`
    /// (gathered while packing, tile by tile; the gathered matrix never exists whole).
    case gathered(UnsafeRawPointer, pck_dtype, ld: Int, rows: UnsafePointer<Int32>)

    var dtype: pck_dtype {
        switch self {
        case let .strided(_, dt, _, _), let .gathered(_, dt, _, _): return dt
        }
    }

    /// Packs rows `i0 ..< i0+mc`, depths `k0 ..< k0+kc` into `out` (MR slivers; bf16 pairs
    /// when `pairs`).
    @inline(__always)
    func pack(_ i0: Int, _ mc: Int, _ k0: Int, _ kc: Int, into out: UnsafeMutablePointer<Float>, ws: Workspace, pairs: Bool = false) {
        func packA(_ src: UnsafeRawPointer, _ dt: pck_dtype, _ rs: Int, _ cs: Int) {
            if pairs {
                pck_bgemm_pack_a(mc, kc, src.assumingMemoryBound(to: UInt16.self), rs, cs, UnsafeMutableRawPointer(out).assumingMemoryBound(to: UInt32.self))
            } else {
                pck_sgemm_pack_a(dt, mc, kc, src, rs, cs, out)
            }
        }
        switch self {
        case let .strided(base, dt, rs, cs):
            let es = dt == PCK_DT_F32 ? 4 : 2
            packA(base + (i0 * rs + k0 * cs) * es, dt, rs, cs)
        case let .gathered(base, dt, ld, rows):
            let es = dt == PCK_DT_F32 ? 4 : 2
            let tile = ws.buffer(7, mc * kc * es, as: UInt8.self)
            for i in 0..<mc {
                let src = base + (Int(rows[i0 + i]) * ld + k0) * es
                (UnsafeMutableRawPointer(tile) + i * kc * es).copyMemory(from: src, byteCount: kc * es)
            }
            packA(tile, dt, kc, 1)
        }
    }
}

/// Native INT4 weights `W[N, K]` used as `B = Wᵀ`.
struct Int4Weights {
    var q: UnsafePointer<UInt8>
    var ldw: Int
    var scales: UnsafePointer<Float>
    var lds: Int
    var zeros: UnsafePointer<Int8>?
    var ldz: Int
    var groupSize: Int
}

/// The B operand of a packed GEMM (`K × N`).
enum GemmB {
    /// Element `(k, j)` at `base[k·rs + j·cs]` in a float dtype (`[K,N]`: rs = N, cs = 1;
    /// weight `[N,K]`: rs = 1, cs = K).
    case strided(UnsafeRawPointer, pck_dtype, rs: Int, cs: Int)
    /// INT4 weights, dequantized while packing.
    case int4(Int4Weights)

    /// Whether the operand is bf16 storage (a bf16 pair GEMM needs both operands so).
    var isBF16: Bool {
        if case let .strided(_, dt, _, _) = self { return dt == PCK_DT_BF16 }
        return false
    }

    /// Packs depths `k0 ..< k0+kc`, columns `j0 ..< j0+nc` into `out` (NR slivers; bf16
    /// pairs when `pairs`).
    @inline(__always)
    func pack(_ k0: Int, _ kc: Int, _ j0: Int, _ nc: Int, into out: UnsafeMutablePointer<Float>, pairs: Bool = false) {
        switch self {
        case let .strided(base, dt, rs, cs):
            let es = dt == PCK_DT_F32 ? 4 : 2
            let src = base + (k0 * rs + j0 * cs) * es
            if pairs {
                pck_bgemm_pack_b(kc, nc, src.assumingMemoryBound(to: UInt16.self), rs, cs, UnsafeMutableRawPointer(out).assumingMemoryBound(to: UInt32.self))
            } else {
                pck_sgemm_pack_b(dt, kc, nc, src, rs, cs, out)
            }
        case let .int4(w):
            pck_int4_pack_b(kc, nc, k0, j0, w.groupSize, w.q, w.ldw, w.scales, w.lds, w.zeros, w.ldz, out)
        }
    }
}

extension GemmB {
    /// Prefetches part `part` of `parts` of what `pack(k0, kc, j0, nc)` will read, where that
    /// pays: INT4 weights, read once per expert from memory in short runs per row (float B
    /// needs none). The callers spread the next sliver's rows over the current sliver's
    /// tiles, one part before each: issued at once, its ~50 prefetches overflow the core's
    /// miss buffers and some are dropped (a C replica of an expert GEMM with 64 experts'
    /// weights in memory, Zen 4: 94 → 97 GFLOP/s; 100 with one expert's weights in cache).
    @inline(__always)
    func prefetch(_ k0: Int, _ kc: Int, _ j0: Int, _ nc: Int, part: Int = 0, of parts: Int = 1) {
        if case let .int4(w) = self, nc > 0 {
            let per = (nc + parts - 1) / parts, r0 = part * per
            guard r0 < nc else { return }
            pck_int4_prefetch(kc, min(per, nc - r0), k0, j0 + r0, w.groupSize, w.q, w.ldw, w.scales, w.lds)
        }
    }
}

/// How a GEMM multiplies: f32 slivers on the f32 tile, or (bf16 × bf16 on a table with the
/// pair kernel) bf16 pairs on `vdpbf16ps`, whose packed depth is half the K depth and whose
/// K blocks are twice as deep (the same bytes per sliver).
struct GemmArithmetic {
    /// bf16 pairs.
    let pairs: Bool
    /// K depth of a block.
    let kc: Int

    init(_ bl: GemmBlocking, a: GemmA, b: GemmB) {
        pairs = a.dtype == PCK_DT_BF16 && b.isBF16 && pck_bgemm_available() != 0
        kc = pairs ? bl.kcPairs : bl.kc
    }

    /// Packed 32-bit slots per row or column for `kcur` depths.
    @inline(__always) func depth(_ kcur: Int) -> Int { pairs ? (kcur + 1) / 2 : kcur }

    /// One tile: `C (+)= A·B` over `kcur` depths (see `pck_sgemm_kernel_pf`).
    @inline(__always)
    func tile(_ kcur: Int, _ ap: UnsafePointer<Float>, _ bp: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, _ ldc: Int,
              _ m: Int, _ n: Int, _ acc: Int32, prefetch: UnsafePointer<Float>? = nil) {
        if pairs {
            func u(_ p: UnsafePointer<Float>) -> UnsafePointer<UInt32> { UnsafeRawPointer(p).assumingMemoryBound(to: UInt32.self) }
            pck_bgemm_kernel(kcur, u(ap), u(bp), c, ldc, m, n, acc, prefetch.map(u))
        } else {
            pck_sgemm_kernel_pf(kcur, ap, bp, c, ldc, m, n, acc, prefetch)
        }
    }
}

enum Gemm {
    /// `C[M,N] (+)= A·B` in f32 on the pool: B packed once (all K blocks of an nc-wide
    /// panel, each sliver by the first task that needs it) and shared, A blocks packed per
    /// task, the microkernel over MR × NR tiles. Every C element
    /// accumulates over K in the same order whatever the task split, so results are
    /// deterministic and independent of the thread count.
    static func run(_ ctx: KernelContext, m: Int, n: Int, k: Int, a: GemmA, b: GemmB,
                    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
        guard m > 0, n > 0 else { return }
        guard k > 0 else {
            if !accumulate { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
            return
        }
        let bl = ctx.blocking
        let (mr, nr) = (bl.mr, bl.nr)
        let ar = GemmArithmetic(bl, a: a, b: b)
        // Small problems: one task, no shared panel.
        if m * n * k <= bl.serialMaxWork {
            ctx.parallelFor(1) { _, w in
                serial(bl, m: m, i0: 0, n: n, j0: 0, k: k, a: a, b: b, c: c, ldc: ldc, accumulate: accumulate, ws: ctx.pool.workspaces[w])
            }
            return
        }
        // A blocks of about mc rows, as many as a multiple of the workers, with the MR-row
        // tiles spread evenly over them: equal tasks, so no worker waits for a last short one.
        let workers = ctx.pool.workerCount
        let tiles = (m + mr - 1) / mr
        let mBlocks = min(tiles, ((m + bl.mc - 1) / bl.mc + workers - 1) / workers * workers)
        let kBlocks = (k + ar.kc - 1) / ar.kc
        // Pack all of B (every K block) when it fits the budget (64 MiB), otherwise per column
        // panel of at most nc columns that fits it.
        let kdAll = kBlocks * ar.depth(ar.kc)  // packed slots per column, all K blocks
        let budget = max(bl.packBudgetBytes, bl.nc * ar.depth(ar.kc) * 4)
        let panelCols = kdAll * ((n + nr - 1) / nr * nr) * 4 <= budget ? n : max(nr, min(bl.nc, budget / (kdAll * 4) / nr * nr))
        // Column parts per A block when there are too few A blocks for about four tasks per
        // worker (each part packs the A block again, so no more than that).
        let jPartsWanted = max(1, (4 * workers + mBlocks - 1) / mBlocks)
        for jc in stride(from: 0, to: n, by: panelCols) {
            let ncur = min(panelCols, n - jc)
            let slivers = (ncur + nr - 1) / nr
            // B panel: kBlocks blocks of (slivers × nr × kcur) floats, packed sliver by sliver
            // by whichever task needs it first (state 0 unpacked, 1 being packed, 2 ready), so
            // that packing overlaps the other workers' tiles instead of being a phase of its own.
            let panelStride = slivers * nr * ar.depth(ar.kc)
            let bp = ctx.shared.buffer(0, panelStride * kBlocks, as: Float.self)
            let states = kBlocks * slivers
            let state = UnsafeMutablePointer<Atomic<Int32>>.allocate(capacity: states)
            for i in 0..<states { (state + i).initialize(to: Atomic<Int32>(0)) }
            defer { state.deinitialize(count: states); state.deallocate() }
            let jParts = max(1, min(slivers / 2, jPartsWanted))
            let slPerPart = (slivers + jParts - 1) / jParts
            ctx.parallelFor(mBlocks * jParts) { t, w in
                let ib = t / jParts, jp = t % jParts
                let i0 = tiles * ib / mBlocks * mr, mcur = min(m, tiles * (ib + 1) / mBlocks * mr) - i0
                let s0 = jp * slPerPart, s1 = min(slivers, s0 + slPerPart)
                guard s0 < s1, mcur > 0 else { return }
                let ws = ctx.pool.workspaces[w]
                let skipped = ws.buffer(2, s1 - s0, as: Bool.self)
                for pb in 0..<kBlocks {
                    let pc = pb * ar.kc, kcur = min(ar.kc, k - pc), kd = ar.depth(kcur)
                    let ap = ws.buffer(0, (mcur + mr - 1) / mr * mr * kd, as: Float.self)
                    a.pack(i0, mcur, pc, kcur, into: ap, ws: ws, pairs: ar.pairs)
                    let acc: Int32 = accumulate || pb > 0 ? 1 : 0
                    let panel = bp + pb * panelStride
                    // The tiles of sliver s; the last four also prefetch `next` into L1 (a
                    // quarter of the sliver each).
                    func sliverTiles(_ s: Int, next: UnsafePointer<Float>?) {
                        let j = s * nr, nn = min(nr, ncur - j)
                        let bs = panel + s * nr * kd
                        let pfFrom = (mcur + mr - 1) / mr - 4
                        var ir = 0, tile = 0
                        while ir < mcur {
                            let pf = tile >= pfFrom ? next.map { $0 + (tile - pfFrom) * kd * nr / 4 } : nil
                            ar.tile(kcur, ap + ir * kd, bs, c + (i0 + ir) * ldc + jc + j, ldc, min(mr, mcur - ir), nn, acc, prefetch: pf)
                            ir += mr
                            tile += 1
                        }
                    }
                    // Slivers another task is packing are done after the rest (same results:
                    // each C tile still sums its K blocks in order). Tasks start at different
                    // slivers (A block ib at part ib mod workers) so that the first tasks, which
                    // pack B, share that work instead of one packing ahead of the other.
                    let count = s1 - s0, first = ib % workers * count / workers
                    var deferred = 0
                    for q in 0..<count {
                        let s = s0 + (q + first) % count
                        skipped[s - s0] = false
                        let st = state + pb * slivers + s
                        if st.pointee.load(ordering: .acquiring) != 2 {
                            if st.pointee.compareExchange(expected: 0, desired: 1, ordering: .relaxed).exchanged {
                                let j = s * nr
                                b.pack(pc, kcur, jc + j, min(nr, ncur - j), into: panel + s * nr * kd, pairs: ar.pairs)
                                st.pointee.store(2, ordering: .releasing)
                            } else if st.pointee.load(ordering: .acquiring) != 2 {
                                skipped[s - s0] = true
                                deferred += 1
                                continue
                            }
                        }
                        let next: UnsafePointer<Float>? = q + 1 < count ? UnsafePointer(panel + (s0 + (q + 1 + first) % count) * nr * kd)
                            : pb + 1 < kBlocks ? UnsafePointer(bp + (pb + 1) * panelStride + (s0 + first) * nr * ar.depth(min(ar.kc, k - pc - kcur))) : nil
                        sliverTiles(s, next: next)
                    }
                    if deferred > 0 {
                        for s in s0..<s1 where skipped[s - s0] {
                            let st = state + pb * slivers + s
                            var spins = 0
                            while st.pointee.load(ordering: .acquiring) != 2 {
                                spins += 1
                                if spins > 1000 { sched_yield() }
                            }
                            sliverTiles(s, next: nil)
                        }
                    }
                }
            }
        }
    }

    /// Two GEMMs with one A on the calling thread (an MoE expert's gate and up projections):
    /// `C1 = A[i0..<i0+m, :] · B1[:, j0..<j0+n]` and `C2 = A · B2` over the same columns,
    /// each with the same bits as `serial` gives it. Each A block is packed once per K block
    /// for both products (not once per product), the two B slivers of the same columns are
    /// dequantized/packed one after the other, and once a column strip of both is complete
    /// (after the last K block) `strip(r0, rows, j, nn)` runs on it — rows `r0 ..< r0+rows`,
    /// columns `j ..< j+nn` relative to the tiles — while it is still in cache.
    static func serialPair(_ bl: GemmBlocking, m: Int, i0: Int, n: Int, j0: Int, k: Int, a: GemmA, b1: GemmB, b2: GemmB,
                           c1: UnsafeMutablePointer<Float>, ldc1: Int, c2: UnsafeMutablePointer<Float>, ldc2: Int, ws: Workspace,
                           strip: (_ r0: Int, _ rows: Int, _ j: Int, _ nn: Int) -> Void) {
        guard m > 0, n > 0 else { return }
        guard k > 0 else {
            for i in 0..<m {
                (c1 + i * ldc1).update(repeating: 0, count: n)
                (c2 + i * ldc2).update(repeating: 0, count: n)
            }
            strip(0, m, 0, n)
            return
        }
        let (mr, nr) = (bl.mr, bl.nr)
        let ar = GemmArithmetic(bl, a: a, b: b1)
        let mc = max(mr, bl.mc / mr * mr)
        let slivers = (n + nr - 1) / nr
        // Row blocks of at most mc rows (an expert segment usually fits one), K blocks in
        // order inside each: every C element sums its K blocks in the order `serial` does.
        for ic in stride(from: 0, to: m, by: mc) {
            let mcur = min(mc, m - ic)
            for pc in stride(from: 0, to: k, by: ar.kc) {
                let kcur = min(ar.kc, k - pc), kd = ar.depth(kcur)
                let acc: Int32 = pc > 0 ? 1 : 0
                let ap = ws.buffer(0, (mcur + mr - 1) / mr * mr * kd, as: Float.self)
                a.pack(i0 + ic, mcur, pc, kcur, into: ap, ws: ws, pairs: ar.pairs)
                let bs = ws.buffer(1, nr * kd, as: Float.self)
                // One sliver of `b` through the A block's tiles; `next` (and its first column)
                // is the sliver packed after it, whose source is prefetched meanwhile.
                func sliver(_ b: GemmB, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ j: Int, _ nn: Int, next: GemmB, at jn: Int) {
                    b.pack(pc, kcur, j0 + j, nn, into: bs, pairs: ar.pairs)
                    let tiles = (mcur + mr - 1) / mr
                    for t in 0..<tiles {
                        next.prefetch(pc, kcur, j0 + jn, min(nr, n - jn), part: t, of: tiles)
                        let ir = t * mr
                        ar.tile(kcur, ap + ir * kd, bs, c + (ic + ir) * ldc + j, ldc, min(mr, mcur - ir), nn, acc)
                    }
                }
                for s in 0..<slivers {
                    let j = s * nr, nn = min(nr, n - j)
                    sliver(b1, c1, ldc1, j, nn, next: b2, at: j)
                    sliver(b2, c2, ldc2, j, nn, next: b1, at: j + nr)
                    if pc + kcur == k { strip(ic, mcur, j, nn) }
                }
            }
        }
    }

    /// The same GEMM on the calling thread (used inside tasks: grouped and MoE GEMMs):
    /// `C[0..<m, 0..<n] (+)= A[i0..<i0+m, :] · B[:, j0..<j0+n]`, with `c` pointing at the
    /// tile's element `(0, 0)`.
    static func serial(_ bl: GemmBlocking, m: Int, i0: Int, n: Int, j0: Int, k: Int, a: GemmA, b: GemmB,
                       c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool, ws: Workspace) {
        guard m > 0, n > 0 else { return }
        guard k > 0 else {
            if !accumulate { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
            return
        }
        let (mr, nr) = (bl.mr, bl.nr)
        let ar = GemmArithmetic(bl, a: a, b: b)
        let mc = min(bl.mc, (m + mr - 1) / mr * mr)
        if m <= mc {
            // One A block: pack it per K block, then dequantize/pack B one sliver at a
            // time right before its tiles (the sliver never leaves L1).
            let slivers = (n + nr - 1) / nr
            for pc in stride(from: 0, to: k, by: ar.kc) {
                let kcur = min(ar.kc, k - pc), kd = ar.depth(kcur)
                let acc: Int32 = accumulate || pc > 0 ? 1 : 0
                let ap = ws.buffer(0, (m + mr - 1) / mr * mr * kd, as: Float.self)
                a.pack(i0, m, pc, kcur, into: ap, ws: ws, pairs: ar.pairs)
                let bs = ws.buffer(1, nr * kd, as: Float.self)
                for s in 0..<slivers {
                    let j = s * nr, nn = min(nr, n - j)
                    b.pack(pc, kcur, j0 + j, nn, into: bs, pairs: ar.pairs)
                    let tiles = (m + mr - 1) / mr
                    for t in 0..<tiles {
                        b.prefetch(pc, kcur, j0 + j + nr, min(nr, n - j - nr), part: t, of: tiles)  // the next sliver's source
                        let ir = t * mr
                        ar.tile(kcur, ap + ir * kd, bs, c + ir * ldc + j, ldc, min(mr, m - ir), nn, acc)
                    }
                }
            }
            return
        }
        let ncMax = min(bl.nc, (n + nr - 1) / nr * nr)
        for jc in stride(from: 0, to: n, by: ncMax) {
            let ncur = min(ncMax, n - jc)
            let slivers = (ncur + nr - 1) / nr
            for pc in stride(from: 0, to: k, by: ar.kc) {
                let kcur = min(ar.kc, k - pc), kd = ar.depth(kcur)
                let bp = ws.buffer(1, slivers * nr * kd, as: Float.self)
                b.pack(pc, kcur, j0 + jc, ncur, into: bp, pairs: ar.pairs)
                let acc: Int32 = accumulate || pc > 0 ? 1 : 0
                for ic in stride(from: 0, to: m, by: mc) {
                    let mcur = min(mc, m - ic)
                    let ap = ws.buffer(0, (mcur + mr - 1) / mr * mr * kd, as: Float.self)
                    a.pack(i0 + ic, mcur, pc, kcur, into: ap, ws: ws, pairs: ar.pairs)
                    for s in 0..<slivers {
                        let j = s * nr, nn = min(nr, ncur - j)
                        let bs = bp + s * nr * kd
                        var ir = 0
                        while ir < mcur {
                            ar.tile(kcur, ap + ir * kd, bs, c + (ic + ir) * ldc + jc + j, ldc, min(mr, mcur - ir), nn, acc)
                            ir += mr
                        }
                    }
                }
            }
        }
    }
}
