/*
 * moe.cl -- moeRouter, moePermute (on-device counts + prefix sums),
 * moeCombine, and the pieces moeLayer chains on device
 * (common.cl is prepended by the host).
 *
 * Build macros: DTYPE;
 *   WG    local size of moe_router / moe_router_f32 / moe_perm_scan (power of two, default 256)
 *   PB    pairs per permute block = local size of moe_perm_hist / moe_perm_scatter (default 256)
 *   EMAX  largest number of experts E supported (default 512)
 */

#ifndef WG
#define WG 256
#endif
#ifndef PB
#define PB 256
#endif
#ifndef EMAX
#define EMAX 512
#endif
#if (WG & (WG - 1)) != 0
#error "WG must be a power of two"
#endif

inline float moe_wg_reduce(float v, __local float *red, int is_max)
{
    const int tid = get_local_id(0);
    red[tid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = WG / 2; s > 0; s >>= 1) {
        if (tid < s) red[tid] = is_max ? fmax(red[tid], red[tid + s]) : red[tid] + red[tid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float r = red[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

/* a ranks ahead of b: larger value first, equal values lower index first */
inline bool moe_ahead(float va, int ia, float vb, int ib)
{
    return va > vb || (va == vb && ia < ib);
}

/*
 * Router for one token per work-group (local size WG).
 * scoring 0 = softmax, 1 = sigmoid. bias may be NULL. n_group <= 1 disables
 * group limiting. Local memory: 4*(3*EMAX + WG + 1) + 4*EMAX bytes.
 */
inline void moe_router_row(const __global st_t *Ls, const __global float *Lf,
                           const __global float *bias, __global float *Wout, __global int *Iout,
                           int E, int k, int scoring, int n_group, int topk_group,
                           int renorm, float routed_scale,
                           __local float *s_l, __local float *c_l, __local float *gs_l,
                           __local int *sel, __local float *red)
{
    const int tid = get_local_id(0);
    /* Every barrier below is reached unconditionally (PoCL 3.1 mishandles
     * barriers under uniform branches). */
    /* 1. scores in f32, with docs/kernels.md's softmax rules: a NaN makes every score NaN,
     * +inf logits share the mass equally, an all -inf row scores 0 */
    float m = PC_NEG_INF, nans = 0.0f, pinfs = 0.0f;
    for (int e = tid; e < E; e += WG) {
        const float x = Lf ? Lf[e] : ld(Ls, e);
        s_l[e] = x;
        m = fmax(m, x);
        nans += isnan(x) ? 1.0f : 0.0f;
        pinfs += (x == INFINITY) ? 1.0f : 0.0f;
    }
    m = moe_wg_reduce(m, red, 1);
    nans = moe_wg_reduce(nans, red, 0);
    pinfs = moe_wg_reduce(pinfs, red, 0);
    float sum = 0.0f;
    if (scoring == 0 && nans == 0.0f && pinfs == 0.0f && m != PC_NEG_INF)
        for (int e = tid; e < E; e += WG) sum += exp(s_l[e] - m);
    sum = moe_wg_reduce(sum, red, 0);
    for (int e = tid; e < E; e += WG) {
        const float x = s_l[e];
        float sc;
        if (scoring != 0) sc = 1.0f / (1.0f + exp(-x));
        else if (nans > 0.0f) sc = NAN;
        else if (pinfs > 0.0f) sc = (x == INFINITY) ? 1.0f / pinfs : 0.0f;
        else if (m == PC_NEG_INF) sc = 0.0f;
        else sc = exp(x - m) / sum;
        s_l[e] = sc;
        const float c = sc + (bias ? bias[e] : 0.0f);
        c_l[e] = isnan(c) ? PC_NEG_INF : c;
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    /* 2. group limiting (n_group > 1): a group scores the sum of its top-2 choice scores
     * with a selection bias, its maximum without one (DeepSeek's Gate) */
    const int grouped = n_group > 1;
    const int gsz = grouped ? E / n_group : E;
    if (grouped) {
        for (int g = tid; g < n_group; g += WG) {
            float t1 = PC_NEG_INF, t2 = PC_NEG_INF;   /* top-2 values of the group */
            for (int e = g * gsz; e < (g + 1) * gsz; e++) {
                const float v = c_l[e];
                if (v > t1) { t2 = t1; t1 = v; }
                else if (v > t2) t2 = v;
            }
            gs_l[g] = (bias && gsz >= 2) ? t1 + t2 : t1;
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (grouped) {
        for (int g = tid; g < n_group; g += WG) {
            int rank = 0;
            const float v = gs_l[g];
            for (int h = 0; h < n_group; h++) rank += moe_ahead(gs_l[h], h, v, g) ? 1 : 0;
            sel[g] = rank < topk_group;            /* sel[] reused as the keep flags */
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (grouped) {
        for (int e = tid; e < E; e += WG)
            if (!sel[pc_min_i(e / gsz, n_group - 1)]) c_l[e] = PC_NEG_INF;
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    /* 3. top-k by rank (exact tie rule). Only whether rank < k matters, so the
     * count stops at k: most experts are out after a few dozen comparisons
     * instead of E (about 6x fewer at E = 256, k = 8). */
    for (int e = tid; e < E; e += WG) {
        const float v = c_l[e];
        int rank = 0;
        for (int f = 0; f < E && rank < k; f++) rank += moe_ahead(c_l[f], f, v, e) ? 1 : 0;
        s_l[EMAX + e] = (float)rank;               /* stash the rank (exact as float; k when out) */
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int e = tid; e < E; e += WG) {
        const int rank = (int)s_l[EMAX + e];
        if (rank < k) sel[rank] = e;
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    /* 4. weights: unbiased scores, optional renormalisation, routed scale */
    if (tid == 0) {
        float sum = 0.0f;
        for (int r = 0; r < k; r++) sum += s_l[sel[r]];
        red[0] = renorm ? 1.0f / (sum + 1e-20f) : 1.0f;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int r = tid; r < k; r += WG) {
        const int e = sel[r];
        Iout[r] = e;
        Wout[r] = renorm ? s_l[e] * red[0] * routed_scale : s_l[e] * routed_scale;
    }
}

/* Router over logits in the storage dtype: logits[T,E] -> weights f32 [T,k], ids i32 [T,k].
 * global = (T*WG), local = (WG). Needs E <= EMAX, k <= E, E % n_group == 0. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void moe_router(const __global st_t *L, ulong l_off,
                const __global float *BIAS, ulong bias_off,
                __global float *W, ulong w_off,
                __global int *IDS, ulong ids_off,
                int T, int E, int k, int scoring, int n_group, int topk_group,
                int renorm, float routed_scale)
{
    __local float s_l[2 * EMAX], c_l[EMAX], gs_l[EMAX], red[WG];
    __local int sel[EMAX];
    const int t = pc_min_i((int)get_group_id(0), T - 1);
    moe_router_row(L + l_off + (size_t)t * E, 0, BIAS ? BIAS + bias_off : 0,
                   W + w_off + (size_t)t * k, IDS + ids_off + (size_t)t * k,
                   E, k, scoring, n_group, topk_group, renorm, routed_scale,
                   s_l, c_l, gs_l, sel, red);
}

/* Same with f32 logits (moeLayer: logits = x . routerWeight^T from matmul_nt_f32out). */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void moe_router_f32(const __global float *L, ulong l_off,
                    const __global float *BIAS, ulong bias_off,
                    __global float *W, ulong w_off,
                    __global int *IDS, ulong ids_off,
                    int T, int E, int k, int scoring, int n_group, int topk_group,
                    int renorm, float routed_scale)
{
    __local float s_l[2 * EMAX], c_l[EMAX], gs_l[EMAX], red[WG];
    __local int sel[EMAX];
    const int t = pc_min_i((int)get_group_id(0), T - 1);
    moe_router_row(0, L + l_off + (size_t)t * E, BIAS ? BIAS + bias_off : 0,
                   W + w_off + (size_t)t * k, IDS + ids_off + (size_t)t * k,
                   E, k, scoring, n_group, topk_group, renorm, routed_scale,
                   s_l, c_l, gs_l, sel, red);
}

/*
 * moePermute, step 1: per-block expert histogram.
 * P = T*k pairs, nblk = ceil(P/PB); BC: int scratch [nblk, E].
 * ids outside 0..E-1 are skipped everywhere and set err[0] |= 1 (ERR may be NULL).
 * global = (nblk*PB), local = (PB); local memory 4*EMAX bytes.
 */
__kernel __attribute__((reqd_work_group_size(PB, 1, 1)))
void moe_perm_hist(const __global int *IDS, ulong ids_off, __global int *BC,
                   int P, int E, __global int *ERR, ulong err_off)
{
    __local int hist[EMAX];
    IDS += ids_off;
    const int tid = get_local_id(0), b = get_group_id(0);
    for (int e = tid; e < E; e += PB) hist[e] = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    const int p = b * PB + tid;
    if (p < P) {
        const int e = IDS[p];
        if (e >= 0 && e < E) atomic_inc(&hist[e]);
        else if (ERR) atomic_or(ERR + err_off, 1);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int e = tid; e < E; e += PB) BC[(size_t)b * E + e] = hist[e];
}

/*
 * Step 2 (one work-group, local size WG): BC[b,e] <- exclusive prefix over
 * blocks of expert e; OFFS[e] = exclusive prefix over experts of the totals,
 * OFFS[E] = number of valid pairs. global = (WG), local = (WG).
 */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void moe_perm_scan(__global int *BC, __global int *OFFS, ulong offs_off, int nblk, int E)
{
    __local int tot[EMAX];
    OFFS += offs_off;
    const int tid = get_local_id(0);
    for (int e = tid; e < E; e += WG) {
        int run = 0;
        for (int b = 0; b < nblk; b++) {
            const int c = BC[(size_t)b * E + e];
            BC[(size_t)b * E + e] = run;
            run += c;
        }
        tot[e] = run;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (tid == 0) {
        int run = 0;
        for (int e = 0; e < E; e++) {
            OFFS[e] = run;
            run += tot[e];
        }
        OFFS[E] = run;
    }
}

/*
 * Step 3: stable placement. Pair p (flat t*k + slot) of expert e goes to
 * dest = OFFS[e] + BC[b,e] + (number of earlier pairs of e in its block).
 * SMAP[dest] = p; INV[p] = dest when INV != NULL (used by moe_combine).
 * global = (nblk*PB), local = (PB); local memory 4*PB bytes.
 */
__kernel __attribute__((reqd_work_group_size(PB, 1, 1)))
void moe_perm_scatter(const __global int *IDS, ulong ids_off, const __global int *BC,
                      const __global int *OFFS, ulong offs_off,
                      __global int *SMAP, ulong smap_off,
                      __global int *INV, ulong inv_off, int P, int E)
{
    __local int ids_l[PB];
    IDS += ids_off; OFFS += offs_off; SMAP += smap_off;
    const int tid = get_local_id(0), b = get_group_id(0);
    const int p = b * PB + tid;
    int e = (p < P) ? IDS[p] : -1;
    if (e >= E) e = -1;
    ids_l[tid] = e;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (e >= 0) {
        int rank = 0;
        for (int q = 0; q < tid; q++) rank += (ids_l[q] == e) ? 1 : 0;
        const int dest = OFFS[e] + BC[(size_t)b * E + e] + rank;
        SMAP[dest] = p;
        if (INV) INV[inv_off + p] = dest;
    }
}

/*
 * Step 4: rows[r, :] = x[SMAP[r] / k, :] (bit copy, exact for every dtype).
 * global = (roundup(H, L0), P), local = (L0, 1).
 */
__kernel void moe_gather_rows(const __global st_t *X, ulong x_off,
                              const __global int *SMAP, ulong smap_off,
                              __global st_t *ROWS, ulong rows_off, int P, int k, int H)
{
    const int h = get_global_id(0), r = get_global_id(1);
    if (h >= H || r >= P) return;
    const int src = SMAP[smap_off + r];
    if (src < 0 || src >= P) return;
    ROWS[rows_off + (size_t)r * H + h] = X[x_off + (size_t)(src / k) * H + h];
}

/* INV[SMAP[r]] = r (for moeCombine given only sourceMap). global = (roundup(P, L)). */
__kernel void moe_invert_map(const __global int *SMAP, ulong smap_off,
                             __global int *INV, ulong inv_off, int P)
{
    const int r = get_global_id(0);
    if (r >= P) return;
    const int src = SMAP[smap_off + r];
    if (src >= 0 && src < P) INV[inv_off + src] = r;
}

/*
 * moeCombine: out[t,h] = sum_{slot=0..k-1} w[t,slot] * y[INV[t*k+slot], h]
 * (slot order, f32), then + ADD[t,h] when ADD != NULL (moeLayer's shared
 * expert output), rounded once. global = (roundup(H, L0), T), local (L0, 1).
 */
__kernel void moe_combine(const __global st_t *Y, ulong y_off,
                          const __global int *INV, ulong inv_off,
                          const __global float *WTS, ulong w_off,
                          const __global st_t *ADD, ulong add_off,
                          __global st_t *OUT, ulong out_off, int T, int k, int H)
{
    const int h = get_global_id(0), t = get_global_id(1);
    if (h >= H || t >= T) return;
    Y += y_off; INV += inv_off; WTS += w_off; OUT += out_off;
    const int P = T * k;
    float acc = 0.0f;
    for (int s = 0; s < k; s++) {
        const int r = INV[(size_t)t * k + s];
        if (r >= 0 && r < P) acc = fma(WTS[(size_t)t * k + s], ld(Y, (size_t)r * H + h), acc);
    }
    if (ADD) acc += ld(ADD + add_off, (size_t)t * H + h);
    st(OUT, (size_t)t * H + h, acc);
}
