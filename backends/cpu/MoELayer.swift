import CPolychipKernels
import PolychipCore

extension CPUKernels {
    /// One expert projection: float weights in the activation dtype or INT4.
    enum ExpertWeights {
        case float(UnsafeRawPointer, pck_dtype, n: Int, k: Int, elementBytes: Int)
        case int4(Int4Weights, n: Int)

        /// Expert `e`'s weight `[n, k]` as GEMM B (`= Wᵀ`).
        func b(_ e: Int) -> GemmB {
            switch self {
            case let .float(base, dt, n, k, es): return .strided(base + e * n * k * es, dt, rs: 1, cs: k)
            case let .int4(w, n): return .int4(w.expert(e, rows: n))
            }
        }

        var isInt4: Bool { if case .int4 = self { return true }; return false }
    }

    /// Rounds `rows × cols` f32 values (leading dim `ld`) in place to `dtype`.
    static func roundTile(_ p: UnsafeMutablePointer<Float>, rows: Int, cols: Int, ld: Int, _ dtype: DType, ws: Workspace) {
        guard dtype != .f32 else { return }
        let tmp = ws.buffer(13, cols, as: UInt16.self)
        for r in 0..<rows { roundInPlace(p + r * ld, cols, dtype, tmp: tmp) }
    }

    /// `h = round(silu(round(g)) · round(u))` over a tile: `g` in place (leading dim `ldg`).
    static func swigluTile(_ g: UnsafeMutablePointer<Float>, ldg: Int, _ u: UnsafeMutablePointer<Float>, ldu: Int,
                           rows: Int, cols: Int, _ dtype: DType, ws: Workspace) {
        roundTile(g, rows: rows, cols: cols, ld: ldg, dtype, ws: ws)
        roundTile(u, rows: rows, cols: cols, ld: ldu, dtype, ws: ws)
        for r in 0..<rows { pck_swiglu(cols, g + r * ldg, u + r * ldu, g + r * ldg) }
        roundTile(g, rows: rows, cols: cols, ld: ldg, dtype, ws: ws)
    }

    static func moeLayer(_ ctx: KernelContext, _ p: MoELayerParams, _ names: [String], _ ins: [Operand], _ y: Operand) throws {
        func arg(_ n: String) -> Operand { ins[names.firstIndex(of: n)!] }
        let x = arg("x"), rw = arg("routerWeight")
        let (t, h) = (x.shape[0], x.shape[1]), e = rw.shape[0]
        let dt = x.dtype, pdt = dt.pck, es = dt.elementBytes
        let k = p.router.topK, n = t * k
        let bl = ctx.blocking
        let sh = ctx.shared

        // 1. Router logits in f32, routing, stable expert order.
        let logits = sh.buffer(4, t * e, as: Float.self)
        Gemm.run(ctx, m: t, n: e, k: h, a: .strided(x.raw, pdt, rs: h, cs: 1), b: .strided(rw.raw, pdt, rs: 1, cs: h),
                 c: logits, ldc: e, accumulate: false)
        let weights = sh.buffer(5, n, as: Float.self), ids = sh.buffer(6, n, as: Int32.self)
        routeAll(ctx, logits: logits, t: t, e: e, bias: p.router.hasBias ? UnsafePointer(arg("bias").f32()) : nil, p.router,
                 weights: weights, ids: ids)
        let order = sh.buffer(7, n, as: Int32.self), pos = sh.buffer(8, n, as: Int32.self)
        let off = try permutation(ctx, ids: ids, count: n, experts: e, order: order, pos: pos)
        let token = sh.buffer(9, n, as: Int32.self)
        for r in 0..<n { token[r] = order[r] / Int32(k) }

        // 2. Expert weights.
        let gate: ExpertWeights, up: ExpertWeights, down: ExpertWeights
        let f: Int
        switch p.experts {
        case .float:
            f = arg("gate").shape[1]
            gate = .float(arg("gate").raw, pdt, n: f, k: h, elementBytes: es)
            up = .float(arg("up").raw, pdt, n: f, k: h, elementBytes: es)
            down = .float(arg("down").raw, pdt, n: h, k: f, elementBytes: es)
        case .int4(let fmt):
            f = arg("gate.q").shape[1]
            func w(_ name: String, _ rows: Int, _ cols: Int) -> ExpertWeights {
                let q = arg(name + ".q"), s = arg(name + ".scales")
                let z: UnsafePointer<Int8>? = fmt.symmetric ? nil : UnsafePointer(arg(name + ".zeros").i8())
                return .int4(Int4Weights(q: UnsafePointer(q.u8()), ldw: cols / 2, scales: UnsafePointer(s.f32()), lds: cols / fmt.groupSize,
                                         zeros: z, ldz: cols / fmt.groupSize, groupSize: fmt.groupSize), n: rows)
            }
            gate = w("gate", f, h); up = w("up", f, h); down = w("down", h, f)
        }

        // 3. Experts: gate/up GEMMs straight from the token rows (gathered tile by tile while
        //    packing, A packed once for both), SwiGLU on each finished column strip, then the
        //    down GEMM over the expert-ordered h.
        let hbuf = sh.buffer(10, n * f, as: Float.self)
        let dbuf = sh.buffer(11, n * h, as: Float.self)
        let xa = GemmA.gathered(x.raw, pdt, ld: h, rows: token)
        let ha = GemmA.strided(UnsafeRawPointer(hbuf), PCK_DT_F32, rs: f, cs: 1)
        let gemvRows = gate.isInt4 ? ctx.blocking.int4GemvMaxRows : 0
        /// Rows `i0 ..< i0+m` of expert `ex`, output columns `j0 ..< j0+nn`.
        struct Task { var e: Int; var i0: Int; var m: Int; var j0: Int; var nn: Int }

        // h[rows, cols] = round(silu(round(x·gateᵀ)) · round(x·upᵀ)).
        func gateUp(_ task: Task, _ ws: Workspace) {
            let g = hbuf + task.i0 * f + task.j0
            if task.m <= gemvRows, case .int4(let gw, _) = gate, case .int4(let uw, _) = up {
                let xt = ws.buffer(14, task.m * h, as: Float.self)
                for r in 0..<task.m { loadF32(x.raw + Int(token[task.i0 + r]) * h * es, dt, h, into: xt + r * h) }
                let xp = ws.buffer(15, pck_int4_xprep_size(task.m, h, gw.groupSize), as: Float.self)
                pck_int4_xprep(task.m, h, gw.groupSize, xt, h, xp)
                let ub = ws.buffer(12, task.m * f, as: Float.self)
                let ge = gw.expert(task.e, rows: f), ue = uw.expert(task.e, rows: f)
                pck_int4_gemv(task.m, h, ge.groupSize, xp, ge.q, ge.ldw, ge.scales, ge.lds, ge.zeros, ge.ldz,
                              task.j0, task.j0 + task.nn, hbuf + task.i0 * f, f, 0)
                pck_int4_gemv(task.m, h, ue.groupSize, xp, ue.q, ue.ldw, ue.scales, ue.lds, ue.zeros, ue.ldz,
                              task.j0, task.j0 + task.nn, ub, f, 0)
                swigluTile(g, ldg: f, ub + task.j0, ldu: f, rows: task.m, cols: task.nn, dt, ws: ws)
                return
            }
            let ub = ws.buffer(12, task.m * task.nn, as: Float.self)
            Gemm.serialPair(bl, m: task.m, i0: task.i0, n: task.nn, j0: task.j0, k: h, a: xa, b1: gate.b(task.e), b2: up.b(task.e),
                            c1: g, ldc1: f, c2: ub, ldc2: task.nn, ws: ws) { r0, rows, j, nn in
                swigluTile(g + r0 * f + j, ldg: f, ub + r0 * task.nn + j, ldu: task.nn, rows: rows, cols: nn, dt, ws: ws)
            }
        }
        // d[rows, cols] = round(h · downᵀ).
        func downProjection(_ task: Task, _ ws: Workspace) {
            let d = dbuf + task.i0 * h + task.j0
            if task.m <= gemvRows, case .int4(let dw, _) = down {
                let xp = ws.buffer(15, pck_int4_xprep_size(task.m, f, dw.groupSize), as: Float.self)
                pck_int4_xprep(task.m, f, dw.groupSize, hbuf + task.i0 * f, f, xp)
                let de = dw.expert(task.e, rows: h)
                pck_int4_gemv(task.m, f, de.groupSize, xp, de.q, de.ldw, de.scales, de.lds, de.zeros, de.ldz,
                              task.j0, task.j0 + task.nn, dbuf + task.i0 * h, h, 0)
            } else {
                Gemm.serial(bl, m: task.m, i0: task.i0, n: task.nn, j0: task.j0, k: f, a: ha, b: down.b(task.e),
                            c: d, ldc: h, accumulate: false, ws: ws)
            }
            roundTile(d, rows: task.m, cols: task.nn, ld: h, dt, ws: ws)
        }

        let active = (0..<e).filter { off[$0 + 1] > off[$0] }
        if active.count >= bl.moeWholeRowExperts {
            // Enough experts to share out: one task per expert, its whole FFN (the down GEMM
            // reads the expert's h rows while they are still in L2, and no barrier waits for
            // the slowest gate/up task), largest experts first so that the last tasks to
            // start are the short ones and the workers finish together.
            // Row blocks of at most mc rows, as the column chunks below take them (so both
            // schedules put the same rows on the GEMV), bound the task's scratch.
            let order = active.sorted { (off[$0 + 1] - off[$0], $1) > (off[$1 + 1] - off[$1], $0) }
            ctx.parallelFor(order.count) { ti, w in
                let ex = order[ti], rows = off[ex + 1] - off[ex]
                let ws = ctx.pool.workspaces[w]
                let mcTask = rows <= gemvRows ? rows : min(rows, bl.mc)
                let blocks = stride(from: off[ex], to: off[ex + 1], by: mcTask).map { Task(e: ex, i0: $0, m: min(mcTask, off[ex + 1] - $0), j0: 0, nn: 0) }
                for b in blocks { gateUp(Task(e: ex, i0: b.i0, m: b.m, j0: 0, nn: f), ws) }
                for b in blocks { downProjection(Task(e: ex, i0: b.i0, m: b.m, j0: 0, nn: h), ws) }
            }
        } else {
            // Few experts: column chunks of `moeColumns` (rows in blocks of at most mc), gate/up
            // for all, then down.
            func tasks(cols: Int) -> [Task] {
                let ncTask = max(bl.nr, bl.moeColumns / bl.nr * bl.nr)
                var out: [Task] = []
                for ex in active {
                    let rows = off[ex + 1] - off[ex]
                    let mcTask = rows <= gemvRows ? rows : min(rows, bl.mc)
                    for i0 in stride(from: off[ex], to: off[ex + 1], by: mcTask) {
                        for j0 in stride(from: 0, to: cols, by: ncTask) {
                            out.append(Task(e: ex, i0: i0, m: min(mcTask, off[ex + 1] - i0), j0: j0, nn: min(ncTask, cols - j0)))
                        }
                    }
                }
                return out
            }
            let phase1 = tasks(cols: f)
            ctx.parallelFor(phase1.count) { ti, w in gateUp(phase1[ti], ctx.pool.workspaces[w]) }
            let phase2 = tasks(cols: h)
            ctx.parallelFor(phase2.count) { ti, w in downProjection(phase2[ti], ctx.pool.workspaces[w]) }
        }

        // 4. Shared expert on all tokens.
        var shared: UnsafeMutablePointer<Float>? = nil
        if p.hasShared {
            let sg = arg("sharedGate"), su = arg("sharedUp"), sd = arg("sharedDown")
            let fs = sg.shape[0]
            let gs = sh.buffer(12, t * fs, as: Float.self), us = sh.buffer(13, t * fs, as: Float.self)
            let ds = sh.buffer(14, t * h, as: Float.self)
            let xs = GemmA.strided(x.raw, pdt, rs: h, cs: 1)
            Gemm.run(ctx, m: t, n: fs, k: h, a: xs, b: .strided(sg.raw, pdt, rs: 1, cs: h), c: gs, ldc: fs, accumulate: false)
            Gemm.run(ctx, m: t, n: fs, k: h, a: xs, b: .strided(su.raw, pdt, rs: 1, cs: h), c: us, ldc: fs, accumulate: false)
            forRows(ctx, rows: t, d: fs) { r0, r1, w in
                swigluTile(gs + r0 * fs, ldg: fs, us + r0 * fs, ldu: fs, rows: r1 - r0, cols: fs, dt, ws: ctx.pool.workspaces[w])
            }
            Gemm.run(ctx, m: t, n: h, k: fs, a: .strided(UnsafeRawPointer(gs), PCK_DT_F32, rs: fs, cs: 1),
                     b: .strided(sd.raw, pdt, rs: 1, cs: fs), c: ds, ldc: h, accumulate: false)
            forRows(ctx, rows: t, d: h) { r0, r1, w in
                roundTile(ds + r0 * h, rows: r1 - r0, cols: h, ld: h, dt, ws: ctx.pool.workspaces[w])
            }
            shared = ds
        }

        // 5. Combine: weighted sum over each token's slots in slot order, plus the shared expert.
        forRows(ctx, rows: t, d: h * k) { t0, t1, w in
            let acc = ctx.pool.workspaces[w].buffer(2, h, as: Float.self)
            for ti in t0..<t1 {
                acc.update(repeating: 0, count: h)
                for slot in 0..<k {
                    pck_axpy(h, weights[ti * k + slot], dbuf + Int(pos[ti * k + slot]) * h, acc)
                }
                if let shared { for c in 0..<h { acc[c] += shared[ti * h + c] } }
                storeF32(acc, h, to: y.raw + ti * h * es, dt)
            }
        }
    }
}

extension Int4Weights {
    /// Expert `e` of a stacked `[E, rows, K]` weight.
    func expert(_ e: Int, rows: Int) -> Int4Weights {
        var w = self
        w.q += e * rows * ldw
        w.scales += e * rows * lds
        if let z = zeros { w.zeros = z + e * rows * ldz }
        return w
    }
}
