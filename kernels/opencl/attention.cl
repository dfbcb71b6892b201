/*
 * attention.cl -- attention (flash-style, GQA, causal bottom-right, LSE,
 * split-KV decode + combine) and DSA sparseAttention (common.cl prepended).
 *
 * Build macros:
 *   HD, HDV   head dims of q/k and of v (exact values, required)
 *   BQ        query rows per work-group           (default 32)
 *   BK        keys per block                       (default 32)
 *   RQ        query rows per work-item             (default 2)
 *   TC        work-items sharing a row             (default 16)
 *   ATT_CPU   1 = CPU mapping (float8 dot products along d, contiguous output
 *             dims per work-item); 0 = GPU mapping (default)
 *   ATT_ROWS  1 = build only the row-private CPU prefill kernel
 *             attention_fwd_rows (macros BQ BK RQ KC DC, see there) and the combine
 *   Local size NT = (BQ/RQ)*TC (required exactly); needs BQ % RQ == 0,
 *   BK % TC == 0, TC >= RQ.
 *   Local memory (bytes) = 4*(BQ*HD + BK*max(KLD,HDV) + TC*ceil(HDV/TC)
 *   + BQ*(BK+1) + 4*BQ + BK), KLD = HD+1 (GPU) or HD (ATT_CPU=1).
 *
 * Work-group rows: the query rows of one kv head's GQA group are contiguous
 * in q ([B,Hq,Lq,D] with h = kvh*G + hl, G = Hq/Hkv), so a work-group takes
 * BQ consecutive rows of the (G*Lq)-row block of kv head (b, kvh) and reads
 * each K/V block once for all of them (no K/V copies for GQA).
 * Scores are kept in base 2 (q pre-multiplied by scale*log2(e)); the online
 * softmax state per row (m, l) lives in local memory, the output accumulators
 * in registers. No score matrix is written to global memory.
 */

#ifndef HD
#error "attention.cl needs -DHD=<head dim of q/k>"
#endif
#ifndef HDV
#define HDV HD
#endif
#ifndef BQ
#define BQ 32
#endif
#ifndef BK
#define BK 32
#endif
#ifndef RQ
#define RQ 2
#endif
#ifndef TC
#define TC 16
#endif

#ifndef ATT_CPU
#define ATT_CPU 0
#endif
#ifndef ATT_ROWS
#define ATT_ROWS 0                    /* 1: build attention_fwd_rows (and the combine) only */
#endif

#define ATT_NT ((BQ / RQ) * TC)
#define NRB (BQ / RQ)
#if ATT_CPU
#define KLD HD                        /* CPU: unpadded rows for vector loads */
#else
#define KLD (HD + 1)                  /* GPU: odd stride, conflict-free column reads */
#endif
#define PLD (BK + 1)
#define NKC (BK / TC)
#define NDC ((HDV + TC - 1) / TC)
#define KV_ELEMS ((BK * KLD > BK * HDV ? BK * KLD : BK * HDV) + TC * NDC)
/* output dim c of work-item tx: strided on GPUs (coalesced, conflict-free),
 * a contiguous block on CPUs (vectorisable) */
#if ATT_CPU
#define ATT_DIM(tx, c) ((tx) * NDC + (c))
#else
#define ATT_DIM(tx, c) ((tx) + (c) * TC)
#endif

#if !ATT_ROWS && ((BQ % RQ) != 0 || (BK % TC) != 0 || TC < RQ)
#error "attention tiling needs BQ % RQ == 0, BK % TC == 0, TC >= RQ"
#endif

#define LOG2E_F 1.4426950408889634f
#define LN2_F 0.6931471805599453f

/* the arguments of attention_fwd and attention_fwd_rows */
#define ATT_FWD_PARAMS                                                          \
    const __global st_t *Q, ulong q_off, const __global st_t *K, ulong k_off,   \
    const __global st_t *V, ulong v_off, __global st_t *O, ulong o_off,         \
    __global float *LSE, ulong lse_off, __global float *OP, ulong op_off,       \
    __global float *LP, ulong lp_off, int B, int Hq, int Hkv, int Lq, int Lk,   \
    float scale, int causal, int nsplit, int split_len

/* the work-group's rows (BQ from R0 of the G*Lq rows of kv head bk, nrows
 * valid; output rows from row_base) and keys [ks, ke) of split sp */
#define ATT_FWD_SETUP                                                           \
    Q += q_off; K += k_off; V += v_off;                                         \
    const int G = Hq / Hkv;                                                     \
    const int R0 = get_group_id(0) * BQ;                                        \
    const int bk = get_group_id(1);                                             \
    const int sp = get_group_id(2);                                             \
    const int nrows = pc_max_i(0, pc_min_i(BQ, G * Lq - R0));                   \
    const size_t row_base = (size_t)bk * (size_t)G * (size_t)Lq + (size_t)R0;   \
    const int partial = nsplit > 1;                                             \
    const int diag = Lk - Lq;                                                   \
    const int ks = sp * split_len;                                              \
    const int ke = att_key_end(ks, split_len, Lk, Lq, R0, nrows, causal);

/* end of the keys a work-group of nrows rows from R0 needs in the split that
 * starts at ks (causal row i sees keys <= i + Lk - Lq); an empty work-group
 * gets ks: it runs zero key blocks (no early return before barriers on PoCL) */
inline int att_key_end(int ks, int split_len, int Lk, int Lq, int R0, int nrows, int causal)
{
    int ke = pc_min_i(Lk, ks + split_len);
    if (nrows == 0) ke = ks;
    if (causal && nrows > 0) {
        const int last = R0 + nrows - 1;
        const int max_i = (R0 / Lq != last / Lq) ? Lq - 1 : last % Lq;
        ke = pc_min_i(ke, max_i + Lk - Lq + 1);
    }
    return ke;
}

#if !ATT_ROWS   /* the flash core and its entry points (the ATT_ROWS build has its own) */
/*
 * The flash core for one work-group.
 *  Qg      first q row of the work-group (rows contiguous, stride HD); nrows valid
 *  Kb, Vb  key/value base; key number `key` is at Kb + key*kstride (resp. Vb, vstride)
 *  idx     sparse mode: key list (position p -> key idx[p]; -1 skipped); NULL in dense mode
 *  ks..ke  key positions processed (dense: key numbers; sparse: list positions)
 *  causal/diag/R0/Lq  dense causal: row r (global row R0 + r, i = (R0+r) % Lq)
 *          sees key j iff j <= i + diag
 *  Output: partial == 0: O (st_t, row stride HDV) and L (lse, stride 1, may be NULL)
 *          partial == 1: OP (f32, row stride ops) and L (stride ls)
 */
inline void flash_core(const __global st_t *Qg, int nrows,
                       const __global st_t *Kb, const __global st_t *Vb,
                       size_t kstride, size_t vstride,
                       const __global int *idx, int S, __global int *err,
                       int ks, int ke, int causal, int diag, int R0, int Lq,
                       float qscale, int partial,
                       __global st_t *O, __global float *OP, size_t ops,
                       __global float *L, size_t ls,
                       __local float *Qs, __local float *KVs, __local float *Ps,
                       __local float *m_s, __local float *l_s, __local float *mu_s,
                       __local float *al_s, __local int *keyid)
{
    const int tid = get_local_id(0);
    const int ty = tid / TC, tx = tid % TC;
    const bool sparse = (idx != 0);

    for (int l = tid; l < BQ * HD; l += ATT_NT) {
        const int r = l / HD, d = l % HD;
        Qs[l] = (r < nrows) ? ld(Qg, (size_t)r * HD + d) * qscale : 0.0f;
    }
    if (tid < BQ) {
        m_s[tid] = PC_NEG_INF;
        l_s[tid] = 0.0f;
    }
    int lim[RQ];
#pragma unroll
    for (int i = 0; i < RQ; i++) {
        const int r = ty + i * NRB;
        lim[i] = causal ? ((R0 + r) % Lq) + diag : INT_MAX;
    }
    float o[RQ][NDC];
#pragma unroll
    for (int i = 0; i < RQ; i++)
#pragma unroll
        for (int c = 0; c < NDC; c++) o[i][c] = 0.0f;
    barrier(CLK_LOCAL_MEM_FENCE);

    for (int j0 = ks; j0 < ke; j0 += BK) {
        /* keys of this block: keyid[jj] = key number or -1 */
        for (int jk = tid; jk < BK; jk += ATT_NT) {
            const int p = j0 + jk;
            int key = -1;
            if (p < ke) {
                if (sparse) {
                    key = idx[p];
                    if (key < -1 || key >= S) {
                        if (err) atomic_or(err, 1);
                        key = -1;
                    }
                } else {
                    key = p;
                }
            }
            keyid[jk] = key;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
#if ATT_CPU && (HD % 8) == 0
        for (int l = tid; l < BK * (HD / 8); l += ATT_NT) {
            const int jj = l / (HD / 8), d = 8 * (l % (HD / 8));
            const int key = keyid[jj];
            vstore8((key >= 0) ? ld8(Kb + (size_t)key * kstride + d) : (float8)(0.0f), 0, KVs + jj * KLD + d);
        }
#else
        for (int l = tid; l < BK * HD; l += ATT_NT) {
            const int jj = l / HD, d = l % HD;
            const int key = keyid[jj];
            KVs[jj * KLD + d] = (key >= 0) ? ld(Kb, (size_t)key * kstride + d) : 0.0f;
        }
#endif
        barrier(CLK_LOCAL_MEM_FENCE);

        /* S = Q K^T for rows ty + i*NRB, keys tx + c*TC */
        float sc[RQ][NKC];
#pragma unroll
        for (int i = 0; i < RQ; i++)
#pragma unroll
            for (int c = 0; c < NKC; c++) sc[i][c] = 0.0f;
#if ATT_CPU && (HD % 8) == 0
        {
            /* CPU: dot products along d with float8 vectors */
            float8 s8[RQ][NKC];
#pragma unroll
            for (int i = 0; i < RQ; i++)
#pragma unroll
                for (int c = 0; c < NKC; c++) s8[i][c] = (float8)(0.0f);
            for (int d = 0; d < HD; d += 8) {
                float8 q8[RQ];
#pragma unroll
                for (int i = 0; i < RQ; i++) q8[i] = vload8(0, Qs + (ty + i * NRB) * HD + d);
#pragma unroll
                for (int c = 0; c < NKC; c++) {
                    const float8 k8 = vload8(0, KVs + (tx + c * TC) * KLD + d);
#pragma unroll
                    for (int i = 0; i < RQ; i++) s8[i][c] = fma(q8[i], k8, s8[i][c]);
                }
            }
#pragma unroll
            for (int i = 0; i < RQ; i++)
#pragma unroll
                for (int c = 0; c < NKC; c++) sc[i][c] = pc_hsum8(s8[i][c]);
        }
#else
        for (int d = 0; d < HD; d++) {
            float qv[RQ], kv[NKC];
#pragma unroll
            for (int i = 0; i < RQ; i++) qv[i] = Qs[(ty + i * NRB) * HD + d];
#pragma unroll
            for (int c = 0; c < NKC; c++) kv[c] = KVs[(tx + c * TC) * KLD + d];
#pragma unroll
            for (int i = 0; i < RQ; i++)
#pragma unroll
                for (int c = 0; c < NKC; c++) sc[i][c] = fma(qv[i], kv[c], sc[i][c]);
        }
#endif
#pragma unroll
        for (int i = 0; i < RQ; i++) {
            const int r = ty + i * NRB;
#pragma unroll
            for (int c = 0; c < NKC; c++) {
                const int jj = tx + c * TC;
                const int key = keyid[jj];
                const bool vis = (key >= 0) && (key <= lim[i]);
                Ps[r * PLD + jj] = vis ? sc[i][c] : PC_NEG_INF;
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);

        /* online softmax statistics, one work-item per row */
        if (tid < BQ) {
            float mx = PC_NEG_INF;
            for (int jj = 0; jj < BK; jj++) mx = fmax(mx, Ps[tid * PLD + jj]);
            const float mold = m_s[tid];
            const float mnew = fmax(mold, mx);
            const float mu = (mnew == PC_NEG_INF) ? 0.0f : mnew;
            al_s[tid] = exp2(mold - mu);
            m_s[tid] = mnew;
            mu_s[tid] = mu;
        }
        barrier(CLK_LOCAL_MEM_FENCE);

        /* P = exp2(S - m) and V block into the K buffer */
        for (int l = tid; l < BQ * BK; l += ATT_NT) {
            const int r = l / BK, jj = l % BK;
            Ps[r * PLD + jj] = exp2(Ps[r * PLD + jj] - mu_s[r]);
        }
#if ATT_CPU && (HDV % 8) == 0
        for (int l = tid; l < BK * (HDV / 8); l += ATT_NT) {
            const int jj = l / (HDV / 8), d = 8 * (l % (HDV / 8));
            const int key = keyid[jj];
            vstore8((key >= 0) ? ld8(Vb + (size_t)key * vstride + d) : (float8)(0.0f), 0, KVs + jj * HDV + d);
        }
#else
        for (int l = tid; l < BK * HDV; l += ATT_NT) {
            const int jj = l / HDV, d = l % HDV;
            const int key = keyid[jj];
            KVs[jj * HDV + d] = (key >= 0) ? ld(Vb, (size_t)key * vstride + d) : 0.0f;
        }
#endif
        barrier(CLK_LOCAL_MEM_FENCE);

        if (tid < BQ) {
            float s = 0.0f;
            for (int jj = 0; jj < BK; jj++) s += Ps[tid * PLD + jj];
            l_s[tid] = al_s[tid] * l_s[tid] + s;
        }
        {
            /* region-local copy of the accumulators (PoCL keeps values that
             * live across barriers in memory; a no-op on GPUs) */
            float ol[RQ][NDC];
#pragma unroll
            for (int i = 0; i < RQ; i++) {
                const float a = al_s[ty + i * NRB];
#pragma unroll
                for (int c = 0; c < NDC; c++) ol[i][c] = o[i][c] * a;
            }
            for (int jj = 0; jj < BK; jj++) {
                float pr[RQ];
#pragma unroll
                for (int i = 0; i < RQ; i++) pr[i] = Ps[(ty + i * NRB) * PLD + jj];
#pragma unroll
                for (int c = 0; c < NDC; c++) {
                    const float vv = KVs[jj * HDV + ATT_DIM(tx, c)];
#pragma unroll
                    for (int i = 0; i < RQ; i++) ol[i][c] = fma(pr[i], vv, ol[i][c]);
                }
            }
#pragma unroll
            for (int i = 0; i < RQ; i++)
#pragma unroll
                for (int c = 0; c < NDC; c++) o[i][c] = ol[i][c];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    /* epilogue: o / l, lse = (m + log2 l) * ln2; rows with no visible key -> 0, -inf */
#pragma unroll
    for (int i = 0; i < RQ; i++) {
        const int r = ty + i * NRB;
        if (r < nrows) {
            const float lsum = l_s[r];
            const float inv = !(lsum <= 0.0f) ? 1.0f / lsum : 0.0f;
#pragma unroll
            for (int c = 0; c < NDC; c++) {
                const int d = ATT_DIM(tx, c);
                if (d < HDV) {
                    const float v = o[i][c] * inv;
                    if (partial) OP[(size_t)r * ops + d] = v;
                    else st(O, (size_t)r * HDV + d, v);
                }
            }
            if (tx == 0 && L) {
                const float lse = !(lsum <= 0.0f) ? (m_s[r] + log2(lsum)) * LN2_F : PC_NEG_INF;
                L[(size_t)r * ls] = lse;
            }
        }
    }
}

#define ATT_LOCALS                                   \
    __local float Qs[BQ * HD];                       \
    __local float KVs[KV_ELEMS];                     \
    __local float Ps[BQ * PLD];                      \
    __local float m_s[BQ], l_s[BQ], mu_s[BQ], al_s[BQ]; \
    __local int keyid[BK];

/*
 * attention: q[B,Hq,Lq,HD], k[B,Hkv,Lk,HD], v[B,Hkv,Lk,HDV] -> o[B,Hq,Lq,HDV]
 * [, lse f32 [B,Hq,Lq]].
 * global = (ceil(G*Lq/BQ) * NT, B*Hkv, nsplit), local = (NT, 1, 1), G = Hq/Hkv.
 * nsplit == 1: writes o (and lse when LSE != NULL); OP/LP unused (NULL ok).
 * nsplit  > 1: split-KV. Split s covers keys [s*split_len, (s+1)*split_len)
 *   (split_len >= 1, nsplit*split_len >= Lk) and writes the f32 partials
 *   OP [B*Hq*Lq, nsplit, HDV] and LP [B*Hq*Lq, nsplit]; then attention_combine
 *   produces o and lse. O/LSE unused here.
 */
__kernel __attribute__((reqd_work_group_size(ATT_NT, 1, 1)))
void attention_fwd(ATT_FWD_PARAMS)
{
    ATT_LOCALS
    ATT_FWD_SETUP
    __global st_t *Ob = 0;
    __global float *OPb = 0, *Lb = 0;
    size_t ls = 1;
    if (partial) {
        OPb = OP + op_off + (row_base * (size_t)nsplit + (size_t)sp) * HDV;
        Lb = LP + lp_off + row_base * (size_t)nsplit + (size_t)sp;
        ls = (size_t)nsplit;
    } else {
        Ob = O + o_off + row_base * HDV;
        if (LSE) Lb = LSE + lse_off + row_base;
    }
    flash_core(Q + row_base * HD, nrows,
               K + (size_t)bk * (size_t)Lk * HD, V + (size_t)bk * (size_t)Lk * HDV,
               HD, HDV, 0, Lk, 0, ks, ke, causal, diag, R0, Lq,
               scale * LOG2E_F, partial, Ob, OPb, (size_t)nsplit * HDV, Lb, ls,
               Qs, KVs, Ps, m_s, l_s, mu_s, al_s, keyid);
}

#endif /* !ATT_ROWS */

/* ------------------------------------------------------------------------- */
/* Row-private attention for CPU devices (ATT_ROWS=1; dense, any split).      */
/*                                                                           */
/* PoCL runs a work-group as a loop over work-items per barrier region, so    */
/* each work-item owns RQ consecutive query rows end to end (its own online   */
/* softmax in private arrays) and the work-group only shares the staged K/V   */
/* block: two barriers per BK keys. K is staged transposed (Kt[d][BK]) so     */
/* scores are float8 over keys with q[i][d] broadcast (RQ x KC float8         */
/* accumulators); O += P V is float8 over output dims in chunks of DC float8  */
/* (RQ x DC accumulators), O itself in private memory. Causal: blocks past a  */
/* row group's horizon are skipped, only the diagonal block is masked.        */
/* Same numerics as flash_core: base-2 scores, fmax maxima.                   */
/* Macros: BQ (rows per work-group), BK, RQ, KC, DC; local size BQ/RQ.        */
/* Needs BQ % RQ == 0, BK % (8*KC) == 0.                                      */
/* ------------------------------------------------------------------------- */
#if ATT_ROWS
#ifndef KC
#define KC 2
#endif
#ifndef DC
#define DC 2
#endif
#if (BQ % RQ) != 0 || (BK % (8 * KC)) != 0
#error "row-private attention needs BQ % RQ == 0 and BK % (8*KC) == 0"
#endif
#define AR_NT (BQ / RQ)
#define AR_DVP (((HDV + 8 * DC - 1) / (8 * DC)) * (8 * DC))   /* V rows padded to whole dim chunks */

/* same arguments, grid and outputs as attention_fwd, local size (BQ/RQ, 1, 1) */
__kernel __attribute__((reqd_work_group_size(AR_NT, 1, 1)))
void attention_fwd_rows(ATT_FWD_PARAMS)
{
    __local float Qs[BQ * HD] __attribute__((aligned(32)));
    __local float Kt[HD * BK] __attribute__((aligned(32)));
    __local float Vs[BK * AR_DVP] __attribute__((aligned(32)));
    ATT_FWD_SETUP
    const int tid = get_local_id(0);
    const __global st_t *Qg = Q + row_base * HD;
    const __global st_t *Kg = K + (size_t)bk * (size_t)Lk * HD;
    const __global st_t *Vg = V + (size_t)bk * (size_t)Lk * HDV;
    const float qscale = scale * LOG2E_F;

#if (HD % 8) == 0
    for (int l = tid; l < BQ * (HD / 8); l += AR_NT) {
        const int r = l / (HD / 8), d = 8 * (l % (HD / 8));
        vstore8((r < nrows) ? ld8(Qg + (size_t)r * HD + d) * qscale : (float8)(0.0f), 0, Qs + r * HD + d);
    }
#else
    for (int l = tid; l < BQ * HD; l += AR_NT) {
        const int r = l / HD;
        Qs[l] = (r < nrows) ? ld(Qg, (size_t)l) * qscale : 0.0f;
    }
#endif

    /* this work-item's rows r0 .. r0+RQ-1: row i sees keys <= lim[i] (-1: none,
     * rows past nrows); lo/hi bound the block range that needs masking / work */
    const int r0 = tid * RQ;
    int lim[RQ];
    int lo = INT_MAX, hi = -1;
#pragma unroll
    for (int i = 0; i < RQ; i++) {
        const int r = r0 + i;
        lim[i] = (r >= nrows) ? -1 : causal ? ((R0 + r) % Lq) + diag : INT_MAX;
        lo = pc_min_i(lo, lim[i]);
        hi = pc_max_i(hi, lim[i]);
    }
    float o[RQ][AR_DVP], m[RQ], l[RQ];
#pragma unroll
    for (int i = 0; i < RQ; i++) {
        m[i] = PC_NEG_INF;
        l[i] = 0.0f;
        for (int d = 0; d < AR_DVP; d += 8) vstore8((float8)(0.0f), 0, o[i] + d);
    }

    for (int j0 = ks; j0 < ke; j0 += BK) {
        barrier(CLK_LOCAL_MEM_FENCE);
        /* stage K transposed and V (keys past ke as 0: masked, and 0 * V stays finite) */
#if (HD % 8) == 0
        /* 8 keys x 8 dims per step, transposed in registers: vector stores
         * instead of scalar ones (PoCL 0.55 -> 0.49 s at the bench shape) */
        for (int t = tid; t < (BK / 8) * (HD / 8); t += AR_NT) {
            const int jb = 8 * (t % (BK / 8)), d = 8 * (t / (BK / 8));
            float8 r[8];
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const int key = j0 + jb + u;
                r[u] = (key < ke) ? ld8(Kg + (size_t)key * HD + d) : (float8)(0.0f);
            }
#define AR_COL(u) (float8)(r[0].s##u, r[1].s##u, r[2].s##u, r[3].s##u, r[4].s##u, r[5].s##u, r[6].s##u, r[7].s##u)
            vstore8(AR_COL(0), 0, Kt + (d + 0) * BK + jb);
            vstore8(AR_COL(1), 0, Kt + (d + 1) * BK + jb);
            vstore8(AR_COL(2), 0, Kt + (d + 2) * BK + jb);
            vstore8(AR_COL(3), 0, Kt + (d + 3) * BK + jb);
            vstore8(AR_COL(4), 0, Kt + (d + 4) * BK + jb);
            vstore8(AR_COL(5), 0, Kt + (d + 5) * BK + jb);
            vstore8(AR_COL(6), 0, Kt + (d + 6) * BK + jb);
            vstore8(AR_COL(7), 0, Kt + (d + 7) * BK + jb);
#undef AR_COL
        }
#else
        for (int t = tid; t < BK * HD; t += AR_NT) {
            const int jj = t % BK, d = t / BK, key = j0 + jj;
            Kt[d * BK + jj] = (key < ke) ? ld(Kg, (size_t)key * HD + d) : 0.0f;
        }
#endif
#if (HDV % 8) == 0
        for (int t = tid; t < BK * (AR_DVP / 8); t += AR_NT) {
            const int jj = t / (AR_DVP / 8), d = 8 * (t % (AR_DVP / 8)), key = j0 + jj;
            vstore8((key < ke && d < HDV) ? ld8(Vg + (size_t)key * HDV + d) : (float8)(0.0f), 0, Vs + jj * AR_DVP + d);
        }
#else
        for (int t = tid; t < BK * AR_DVP; t += AR_NT) {
            const int jj = t / AR_DVP, d = t % AR_DVP, key = j0 + jj;
            Vs[t] = (key < ke && d < HDV) ? ld(Vg, (size_t)key * HDV + d) : 0.0f;
        }
#endif
        barrier(CLK_LOCAL_MEM_FENCE);

        /* keys this work-item needs: nk (0 = block past all its rows) */
        int nk = pc_min_i(BK, ke - j0);
        if (hi - j0 < nk) nk = pc_max_i(0, hi - j0 + 1);   /* hi may be INT_MAX */
        const int nkc = (nk + 8 * KC - 1) / (8 * KC);
        float s[RQ][BK];
        /* S = Q Kt over key chunks of 8*KC */
        for (int kc = 0; kc < nkc; kc++) {
            float8 acc[RQ][KC];
#pragma unroll
            for (int i = 0; i < RQ; i++)
#pragma unroll
                for (int c = 0; c < KC; c++) acc[i][c] = (float8)(0.0f);
            const __local float *kp = Kt + kc * 8 * KC;
            const __local float *qp = Qs + r0 * HD;
            for (int d = 0; d < HD; d++) {
                float8 kv[KC];
#pragma unroll
                for (int c = 0; c < KC; c++) kv[c] = vload8(c, kp + d * BK);
#pragma unroll
                for (int i = 0; i < RQ; i++) {
                    const float8 qv = (float8)(qp[i * HD + d]);
#pragma unroll
                    for (int c = 0; c < KC; c++) acc[i][c] = fma(qv, kv[c], acc[i][c]);
                }
            }
#pragma unroll
            for (int i = 0; i < RQ; i++)
#pragma unroll
                for (int c = 0; c < KC; c++) vstore8(acc[i][c], kc * KC + c, s[i]);
        }
        /* online softmax per row; mask only where the block crosses a row's horizon */
        const int n8 = nkc * KC;
        const bool masked = (j0 + n8 * 8 - 1 > lo) || (j0 + n8 * 8 > ke);
        float alpha[RQ];
#pragma unroll
        for (int i = 0; i < RQ; i++) {
            if (masked) {
                const int8 lane = (int8)(0, 1, 2, 3, 4, 5, 6, 7);
                for (int c = 0; c < n8; c++) {
                    const int8 key = lane + (int8)(j0 + 8 * c);
                    const int8 vis = (key <= (int8)(lim[i])) & (key < (int8)(ke));
                    vstore8(select((float8)(PC_NEG_INF), vload8(c, s[i]), vis), c, s[i]);
                }
            }
            float8 mx8 = (float8)(PC_NEG_INF);
            for (int c = 0; c < n8; c++) mx8 = fmax(mx8, vload8(c, s[i]));
            const float mnew = fmax(m[i], pc_hmax8(mx8));
            const float mu = (mnew == PC_NEG_INF) ? 0.0f : mnew;
            alpha[i] = (nk > 0) ? exp2(m[i] - mu) : 1.0f;
            m[i] = mnew;
            float8 sum8 = (float8)(0.0f);
            for (int c = 0; c < n8; c++) {
                const float8 p = exp2(vload8(c, s[i]) - (float8)(mu));
                vstore8(p, c, s[i]);
                sum8 += p;
            }
            l[i] = alpha[i] * l[i] + pc_hsum8(sum8);
        }
        /* O = alpha O + P V over dim chunks of 8*DC */
        for (int d0 = 0; d0 < AR_DVP && nk > 0; d0 += 8 * DC) {
            float8 acc[RQ][DC];
#pragma unroll
            for (int i = 0; i < RQ; i++)
#pragma unroll
                for (int c = 0; c < DC; c++) acc[i][c] = vload8(0, o[i] + d0 + 8 * c) * alpha[i];
            for (int jj = 0; jj < nk; jj++) {
                float8 vv[DC];
#pragma unroll
                for (int c = 0; c < DC; c++) vv[c] = vload8(0, Vs + jj * AR_DVP + d0 + 8 * c);
#pragma unroll
                for (int i = 0; i < RQ; i++) {
                    const float8 p = (float8)(s[i][jj]);
#pragma unroll
                    for (int c = 0; c < DC; c++) acc[i][c] = fma(p, vv[c], acc[i][c]);
                }
            }
#pragma unroll
            for (int i = 0; i < RQ; i++)
#pragma unroll
                for (int c = 0; c < DC; c++) vstore8(acc[i][c], 0, o[i] + d0 + 8 * c);
        }
    }

    /* epilogue: o / l, lse = (m + log2 l) * ln2; rows with no visible key -> 0, -inf */
#pragma unroll
    for (int i = 0; i < RQ; i++) {
        const int r = r0 + i;
        if (r < nrows) {
            const float inv = !(l[i] <= 0.0f) ? 1.0f / l[i] : 0.0f;
            const float lse = !(l[i] <= 0.0f) ? (m[i] + log2(l[i])) * LN2_F : PC_NEG_INF;
            if (partial) {
                __global float *op = OP + op_off + ((row_base + r) * (size_t)nsplit + (size_t)sp) * HDV;
                for (int d = 0; d < HDV; d++) op[d] = o[i][d] * inv;
                LP[lp_off + (row_base + r) * (size_t)nsplit + (size_t)sp] = lse;
            } else {
                __global st_t *orow = O + o_off + (row_base + r) * HDV;
#if (HDV % 8) == 0
                for (int d = 0; d < HDV; d += 8) st8(orow + d, vload8(0, o[i] + d) * inv);
#else
                for (int d = 0; d < HDV; d++) st(orow, d, o[i][d] * inv);
#endif
                if (LSE) LSE[lse_off + row_base + r] = lse;
            }
        }
    }
}
#endif

/* ------------------------------------------------------------------------- */
/* Register-tiled attention for GPUs (dense prefill, no split).               */
/*                                                                           */
/* A work-group of 256 work-items (tx, ty in 0..15) takes AT_BQ = 64 query    */
/* rows and walks the keys in blocks of AT_BK = 64. S = Q K^T is a 64x64x HD  */
/* GEMM over d-chunks of 32 staged in local memory: work-item (tx, ty) owns    */
/* rows ty + 16i and keys tx + 16j (i, j < 4) and reads float4s. Row maxima   */
/* go through local memory; P = exp2(S - m) is written to local memory and    */
/* O += P V runs over V chunks of 32 keys with the work-item owning rows      */
/* ty + 16i and dims 4tx + 64c + (0..3). The row sums l are accumulated in    */
/* the P V loop from the same P values (every work-item of a row keeps the    */
/* same m and l). Same numerics as flash_core: base-2 scores, fmax maxima.    */
/* Needs HD % 32 == 0 and HDV in {64, 128}; local memory ~36 KB.             */
/* ------------------------------------------------------------------------- */
#if !ATT_CPU && !ATT_ROWS && (HD % 32) == 0 && (HDV == 64 || HDV == 128)
#define AT_BQ 64
#define AT_BK 64
#define AT_DC 32
#define AT_CLD (AT_DC + 4)              /* Q/K chunk row stride: 16-byte rows, 2-wavefront float4 reads */
#define AT_VC 32                        /* keys per V chunk */
#define AT_VLD (HDV + 4)
#define AT_PLD (AT_BK + 4)
#define AT_NC (HDV / 64)                /* float4 output groups per work-item */
#define AT_CBUF ((2 * AT_BQ * AT_CLD) > (AT_VC * AT_VLD) ? (2 * AT_BQ * AT_CLD) : (AT_VC * AT_VLD))

__kernel __attribute__((reqd_work_group_size(256, 1, 1)))
void attention_fwd_tiled(const __global st_t *Q, ulong q_off,
                         const __global st_t *K, ulong k_off,
                         const __global st_t *V, ulong v_off,
                         __global st_t *O, ulong o_off,
                         __global float *LSE, ulong lse_off,
                         int B, int Hq, int Hkv, int Lq, int Lk,
                         float scale, int causal)
{
    __local float cbuf[AT_CBUF] __attribute__((aligned(16)));
    __local float Ps[AT_BQ * AT_PLD] __attribute__((aligned(16)));
    __local float red[AT_BQ * 16] __attribute__((aligned(16)));
    Q += q_off; K += k_off; V += v_off; O += o_off;
    const int tid = get_local_id(0), tx = tid % 16, ty = tid / 16;
    const int G = Hq / Hkv;
    const int ntiles = (G * Lq + AT_BQ - 1) / AT_BQ;
    /* heaviest causal tiles (last rows) first */
    const int R0 = (ntiles - 1 - (int)get_group_id(0)) * AT_BQ;
    const int bk = get_group_id(1);
    const int nrows = pc_max_i(0, pc_min_i(AT_BQ, G * Lq - R0));
    const size_t row_base = (size_t)bk * (size_t)G * (size_t)Lq + (size_t)R0;
    const __global st_t *Qg = Q + row_base * HD;
    const __global st_t *Kg = K + (size_t)bk * (size_t)Lk * HD;
    const __global st_t *Vg = V + (size_t)bk * (size_t)Lk * HDV;
    const float qscale = scale * LOG2E_F;
    const int diag = Lk - Lq;
    int ke = (nrows == 0) ? 0 : Lk;
    if (causal && nrows > 0) {
        const int last = R0 + nrows - 1;
        const int max_i = (R0 / Lq != last / Lq) ? Lq - 1 : last % Lq;
        ke = pc_max_i(0, pc_min_i(ke, max_i + diag + 1));
    }
    int lim[4];
#pragma unroll
    for (int i = 0; i < 4; i++) lim[i] = causal ? ((R0 + ty + 16 * i) % Lq) + diag : INT_MAX;
    float o[4][4 * AT_NC], m[4], l[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        m[i] = PC_NEG_INF;
        l[i] = 0.0f;
#pragma unroll
        for (int c = 0; c < 4 * AT_NC; c++) o[i][c] = 0.0f;
    }
    __local float *Qc = cbuf, *Kc = cbuf + AT_BQ * AT_CLD, *Vc = cbuf;

    for (int j0 = 0; j0 < ke; j0 += AT_BK) {
        float sc[4][4];
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) sc[i][j] = 0.0f;
        for (int d0 = 0; d0 < HD; d0 += AT_DC) {
            barrier(CLK_LOCAL_MEM_FENCE);
            /* 64 rows x 8 float4 each of Q and K */
#pragma unroll
            for (int u = 0; u < 2; u++) {
                const int f = tid + 256 * u, r = f / 8, dq = 4 * (f % 8);
                const float4 qv = (r < nrows) ? ld4(Qg + (size_t)r * HD + d0 + dq) * qscale : (float4)(0.0f);
                vstore4(qv, 0, Qc + r * AT_CLD + dq);
                const int key = j0 + r;
                const float4 kv = (key < ke) ? ld4(Kg + (size_t)key * HD + d0 + dq) : (float4)(0.0f);
                vstore4(kv, 0, Kc + r * AT_CLD + dq);
            }
            barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll
            for (int dd = 0; dd < AT_DC; dd += 4) {
                float4 q4[4], k4[4];
#pragma unroll
                for (int i = 0; i < 4; i++) q4[i] = vload4(0, Qc + (ty + 16 * i) * AT_CLD + dd);
#pragma unroll
                for (int j = 0; j < 4; j++) k4[j] = vload4(0, Kc + (tx + 16 * j) * AT_CLD + dd);
#pragma unroll
                for (int i = 0; i < 4; i++)
#pragma unroll
                    for (int j = 0; j < 4; j++) {
                        sc[i][j] = fma(q4[i].x, k4[j].x, sc[i][j]);
                        sc[i][j] = fma(q4[i].y, k4[j].y, sc[i][j]);
                        sc[i][j] = fma(q4[i].z, k4[j].z, sc[i][j]);
                        sc[i][j] = fma(q4[i].w, k4[j].w, sc[i][j]);
                    }
            }
        }
        /* mask, row maxima over the block (16 partials per row via local memory) */
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float mx = PC_NEG_INF;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int key = j0 + tx + 16 * j;
                if (!(key < ke && key <= lim[i])) sc[i][j] = PC_NEG_INF;
                mx = fmax(mx, sc[i][j]);
            }
            red[(ty + 16 * i) * 16 + tx] = mx;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int r = ty + 16 * i;
            float mx = m[i];
#pragma unroll
            for (int q = 0; q < 4; q++) {
                const float4 v = vload4(q, red + r * 16);
                mx = fmax(mx, fmax(fmax(v.x, v.y), fmax(v.z, v.w)));
            }
            const float mu = (mx == PC_NEG_INF) ? 0.0f : mx;
            const float alpha = exp2(m[i] - mu);
            m[i] = mx;
            l[i] *= alpha;
#pragma unroll
            for (int c = 0; c < 4 * AT_NC; c++) o[i][c] *= alpha;
#pragma unroll
            for (int j = 0; j < 4; j++) Ps[r * AT_PLD + tx + 16 * j] = exp2(sc[i][j] - mu);
        }
        /* O += P V over chunks of AT_VC keys (keys past ke load as 0: P is 0 there, V may be anything) */
        for (int v0 = 0; v0 < AT_BK; v0 += AT_VC) {
            barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll
            for (int u = 0; u < AT_VC * HDV / 4 / 256; u++) {
                const int f = tid + 256 * u, jj = f / (HDV / 4), dq = 4 * (f % (HDV / 4));
                const int key = j0 + v0 + jj;
                const float4 vv = (key < ke) ? ld4(Vg + (size_t)key * HDV + dq) : (float4)(0.0f);
                vstore4(vv, 0, Vc + jj * AT_VLD + dq);
            }
            barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll 2
            for (int jj = 0; jj < AT_VC; jj += 4) {
                float4 p4[4];
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    p4[i] = vload4(0, Ps + (ty + 16 * i) * AT_PLD + v0 + jj);
                    l[i] += (p4[i].x + p4[i].y) + (p4[i].z + p4[i].w);
                }
#pragma unroll
                for (int kk = 0; kk < 4; kk++) {
#pragma unroll
                    for (int c = 0; c < AT_NC; c++) {
                        const float4 v4 = vload4(0, Vc + (jj + kk) * AT_VLD + 64 * c + 4 * tx);
#pragma unroll
                        for (int i = 0; i < 4; i++) {
                            const float p = kk == 0 ? p4[i].x : kk == 1 ? p4[i].y : kk == 2 ? p4[i].z : p4[i].w;
                            o[i][4 * c] = fma(p, v4.x, o[i][4 * c]);
                            o[i][4 * c + 1] = fma(p, v4.y, o[i][4 * c + 1]);
                            o[i][4 * c + 2] = fma(p, v4.z, o[i][4 * c + 2]);
                            o[i][4 * c + 3] = fma(p, v4.w, o[i][4 * c + 3]);
                        }
                    }
                }
            }
        }
    }
    /* epilogue: o / l, lse = (m + log2 l) * ln2; rows with no visible key -> 0, -inf */
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int r = ty + 16 * i;
        if (r < nrows) {
            const float inv = !(l[i] <= 0.0f) ? 1.0f / l[i] : 0.0f;
            __global st_t *orow = O + (row_base + (size_t)r) * HDV;
#pragma unroll
            for (int c = 0; c < AT_NC; c++)
#pragma unroll
                for (int e = 0; e < 4; e++) st(orow, 64 * c + 4 * tx + e, o[i][4 * c + e] * inv);
            if (tx == 0 && LSE)
                LSE[lse_off + row_base + (size_t)r] = !(l[i] <= 0.0f) ? (m[i] + log2(l[i])) * LN2_F : PC_NEG_INF;
        }
    }
}
#endif

/*
 * Split-KV combine: rows = number of (b,h,i) rows (B*Hq*Lq or T*H).
 * o[row,d] = sum_s exp(lp_s - M) op_s[d] / sum_s exp(lp_s - M), lse = M + log(sum);
 * all splits empty -> o = 0, lse = -inf. LSE may be NULL.
 * global = (roundup(HDV, L0), rows), local = (L0, 1), any L0.
 */
__kernel void attention_combine(const __global float *OP, ulong op_off,
                                const __global float *LP, ulong lp_off,
                                __global st_t *O, ulong o_off,
                                __global float *LSE, ulong lse_off,
                                int rows, int nsplit)
{
    OP += op_off; LP += lp_off; O += o_off;
    const int d = get_global_id(0);
    const int row = get_global_id(1);
    if (d >= HDV || row >= rows) return;
    const __global float *lp = LP + (size_t)row * nsplit;
    float M = PC_NEG_INF;
    int nan_split = 0;
    for (int s = 0; s < nsplit; s++) { M = fmax(M, lp[s]); nan_split |= isnan(lp[s]); }
    float o = 0.0f, lse = PC_NEG_INF;
    if (nan_split) {
        o = NAN; lse = NAN;   /* a NaN logit makes the row NaN (docs/kernels.md) */
    } else if (M != PC_NEG_INF) {
        float wsum = 0.0f, acc = 0.0f;
        for (int s = 0; s < nsplit; s++) {
            const float w = exp(lp[s] - M);
            wsum += w;
            acc = fma(w, OP[((size_t)row * nsplit + s) * HDV + d], acc);
        }
        o = acc / wsum;
        lse = M + log(wsum);
    }
    st(O, (size_t)row * HDV + d, o);
    if (d == 0 && LSE) LSE[lse_off + row] = lse;
}

#if !ATT_ROWS
/*
 * DSA sparseAttention: q[T,H,HD], k[S,Hkv,HD], v[S,Hkv,HDV],
 * indices i32 [T,KSEL] (shared by the heads of a token; -1 skipped; any
 * other value outside 0..S-1 is skipped and sets err[0] |= 1 when ERR is
 * not NULL) -> o[T,H,HDV] [, lse f32 [T,H]].
 * global = (ceil(G/BQ) * NT, T*Hkv, nsplit), local = (NT, 1, 1), G = H/Hkv.
 * nsplit > 1 splits the index list into chunks of split_len and writes
 * OP [T*H, nsplit, HDV], LP [T*H, nsplit]; finish with attention_combine
 * (rows = T*H).
 */
__kernel __attribute__((reqd_work_group_size(ATT_NT, 1, 1)))
void sparse_attention_fwd(const __global st_t *Q, ulong q_off,
                          const __global st_t *K, ulong k_off,
                          const __global st_t *V, ulong v_off,
                          const __global int *IDX, ulong idx_off,
                          __global st_t *O, ulong o_off,
                          __global float *LSE, ulong lse_off,
                          __global float *OP, ulong op_off,
                          __global float *LP, ulong lp_off,
                          __global int *ERR, ulong err_off,
                          int T, int H, int Hkv, int S, int KSEL,
                          float scale, int nsplit, int split_len)
{
    ATT_LOCALS
    Q += q_off; K += k_off; V += v_off; IDX += idx_off;
    if (ERR) ERR += err_off;
    const int G = H / Hkv;
    const int R0 = get_group_id(0) * BQ;
    const int bt = get_group_id(1);
    const int t = bt / Hkv, kvh = bt % Hkv;
    const int sp = get_group_id(2);
    const int nrows = pc_max_i(0, pc_min_i(BQ, G - R0));   /* no early return (PoCL) */
    const size_t row_base = (size_t)t * H + (size_t)kvh * G + (size_t)R0;
    const int partial = nsplit > 1;
    const int ks = sp * split_len;
    const int ke = (nrows == 0) ? ks : pc_min_i(KSEL, ks + split_len);
    __global st_t *Ob = 0;
    __global float *OPb = 0, *Lb = 0;
    size_t ls = 1;
    if (partial) {
        OPb = OP + op_off + (row_base * (size_t)nsplit + (size_t)sp) * HDV;
        Lb = LP + lp_off + row_base * (size_t)nsplit + (size_t)sp;
        ls = (size_t)nsplit;
    } else {
        Ob = O + o_off + row_base * HDV;
        if (LSE) Lb = LSE + lse_off + row_base;
    }
    flash_core(Q + row_base * HD, nrows,
               K + (size_t)kvh * HD, V + (size_t)kvh * HDV,
               (size_t)Hkv * HD, (size_t)Hkv * HDV,
               IDX + (size_t)t * KSEL, S, ERR, ks, ke, 0, 0, 0, 1,
               scale * LOG2E_F, partial, Ob, OPb, (size_t)nsplit * HDV, Lb, ls,
               Qs, KVs, Ps, m_s, l_s, mu_s, al_s, keyid);
}
#endif /* !ATT_ROWS */
