/*
 * dsa.cl -- DeepSeek Sparse Attention: lightningIndexer and topK
 * (sparseAttention is sparse_attention_fwd in attention.cl, which shares the
 * flash core). common.cl is prepended by the host.
 *
 * Build macros:
 *   DTYPE
 *   HD        indexer head dim D (required for lightning_indexer; default 64)
 *   IT, IS    tokens x keys per work-group of the indexer (default 16 x 32)
 *   RT, RS    tokens x keys per work-item (default 2 x 2)
 *             indexer local size = (IS/RS, IT/RT), required exactly
 *   IX_CPU    1 = CPU mapping of the indexer (keys staged transposed, each
 *             work-item owns RS contiguous keys as float8 lanes; RS % 8 == 0)
 *   SORT_MAX  top-k local sort capacity, power of two (default 2048)
 *   TWG       top-k local size, power of two (default 256)
 */

#ifndef HD
#define HD 64
#endif
#ifndef IT
#define IT 16
#endif
#ifndef IS
#define IS 32
#endif
#ifndef RT
#define RT 2
#endif
#ifndef RS
#define RS 2
#endif
#ifndef IX_CPU
#define IX_CPU 0
#endif
#ifndef SORT_MAX
#define SORT_MAX 2048
#endif
#ifndef TWG
#define TWG 256
#endif

#if (IT % RT) != 0 || (IS % RS) != 0
#error "indexer tiling needs IT % RT == 0 and IS % RS == 0"
#endif
#if IX_CPU && (RS % 8) != 0
#error "the CPU indexer mapping needs RS % 8 == 0"
#endif
#if (SORT_MAX & (SORT_MAX - 1)) != 0 || (TWG & (TWG - 1)) != 0
#error "SORT_MAX and TWG must be powers of two"
#endif

#define IX_NX (IS / RS)
#define IX_NY (IT / RT)
#define IX_NT (IX_NX * IX_NY)
#define IX_KLD (HD + 1)

/*
 * scores[t,s] = sum_j w[t,j] * ReLU(q[t,j,:] . k[s,:]) for s <= t + S - T,
 * else -inf. q[T,Hi,HD], k[S,HD], w[T,Hi] (storage dtype), scores f32 [T,S].
 * global = (ceil(S/IS) * IX_NX, ceil(T/IT) * IX_NY), local = (IX_NX, IX_NY).
 * Local memory: 4*(IS*(HD+1) + IT*HD + IT) bytes. Heads are summed in order.
 */
/* Two mappings of the same sums (d ascending, heads ascending per (t, s)):
 * GPUs (IX_CPU=0): keys strided across work-items (key tx + j*IX_NX), K rows
 * padded to HD+1 in local memory for conflict-free column reads.
 * CPU devices (IX_CPU=1): PoCL runs a work-group as loops over its work-items, so
 * the vector width has to come from inside one work-item: keys staged transposed,
 * Kt[d][IS], and work-item tx owns the RS contiguous keys tx*RS.. as RS/8 float8
 * lanes -- per d, RT broadcast q values times RS/8 key vectors. */
/* ReLU that keeps NaN (fmax(NaN, 0) would give 0; the reference's max gives NaN). */
#if IX_CPU
typedef float8 ix_t;
#define ix_relu(x) select((x), (float8)(0.0f), (x) <= (float8)(0.0f))
#define IX_NV (RS / 8)
#define IX_KSIZE (HD * IS)
#define IX_KI(si, d) ((d) * IS + (si))
#else
typedef float ix_t;
#define ix_relu(x) (((x) <= 0.0f) ? 0.0f : (x))
#define IX_NV RS
#define IX_KSIZE (IS * IX_KLD)
#define IX_KI(si, d) ((si) * IX_KLD + (d))
#endif

__kernel __attribute__((reqd_work_group_size(IX_NX, IX_NY, 1)))
void lightning_indexer(const __global st_t *Q, ulong q_off,
                       const __global st_t *K, ulong k_off,
                       const __global st_t *W, ulong w_off,
                       __global float *SC, ulong sc_off,
                       int T, int Hi, int S)
{
    __local float Ks[IX_KSIZE];
    __local float Qs[IT * HD];
    __local float Ws[IT];
    Q += q_off; K += k_off; W += w_off; SC += sc_off;
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int tid = ty * IX_NX + tx;
    const int s0 = get_group_id(0) * IS, t0 = get_group_id(1) * IT;
    const int diag = S - T;
    /* a tile whose first key is past the last token's horizon is all -inf:
     * run zero heads (no early return: PoCL) */
    const int last_t = pc_min_i(t0 + IT, T) - 1;
    const int nheads = (s0 > last_t + diag) ? 0 : Hi;

    for (int l = tid; l < IS * HD; l += IX_NT) {
        const int si = l / HD, d = l % HD;                 /* global reads along d */
        const int s = s0 + si;
        Ks[IX_KI(si, d)] = (s < S && nheads > 0) ? ld(K, (size_t)s * HD + d) : 0.0f;
    }
    ix_t acc[RT][IX_NV];
#pragma unroll
    for (int i = 0; i < RT; i++)
#pragma unroll
        for (int j = 0; j < IX_NV; j++) acc[i][j] = (ix_t)(0.0f);

    for (int h = 0; h < nheads; h++) {
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int l = tid; l < IT * HD; l += IX_NT) {
            const int ti = l / HD, d = l % HD;
            const int t = t0 + ti;
            Qs[l] = (t < T) ? ld(Q, ((size_t)t * Hi + h) * HD + d) : 0.0f;
        }
        for (int ti = tid; ti < IT; ti += IX_NT) {
            const int t = t0 + ti;
            Ws[ti] = (t < T) ? ld(W, (size_t)t * Hi + h) : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        ix_t dot[RT][IX_NV];
#pragma unroll
        for (int i = 0; i < RT; i++)
#pragma unroll
            for (int j = 0; j < IX_NV; j++) dot[i][j] = (ix_t)(0.0f);
        for (int d = 0; d < HD; d++) {
            ix_t kv[IX_NV];
#pragma unroll
            for (int j = 0; j < IX_NV; j++)
#if IX_CPU
                kv[j] = vload8(0, Ks + d * IS + tx * RS + 8 * j);
#else
                kv[j] = Ks[(tx + j * IX_NX) * IX_KLD + d];
#endif
#pragma unroll
            for (int i = 0; i < RT; i++) {
                const ix_t q = (ix_t)(Qs[(ty + i * IX_NY) * HD + d]);
#pragma unroll
                for (int j = 0; j < IX_NV; j++) dot[i][j] = fma(q, kv[j], dot[i][j]);
            }
        }
#pragma unroll
        for (int i = 0; i < RT; i++) {
            const ix_t w = (ix_t)(Ws[ty + i * IX_NY]);
#pragma unroll
            for (int j = 0; j < IX_NV; j++) acc[i][j] = fma(w, ix_relu(dot[i][j]), acc[i][j]);
        }
    }

#pragma unroll
    for (int i = 0; i < RT; i++) {
        const int t = t0 + ty + i * IX_NY;
        if (t < T) {
#pragma unroll
            for (int j = 0; j < IX_NV; j++) {
#if IX_CPU
                float a[8];
                vstore8(acc[i][j], 0, a);
                for (int u = 0; u < 8; u++) {
                    const int s = s0 + tx * RS + 8 * j + u;
                    if (s < S) SC[(size_t)t * S + s] = (s <= t + diag) ? a[u] : PC_NEG_INF;
                }
#else
                const int s = s0 + tx + j * IX_NX;
                if (s < S) SC[(size_t)t * S + s] = (s <= t + diag) ? acc[i][j] : PC_NEG_INF;
#endif
            }
        }
    }
}

/* ------------------------------------------------------------------------- */
/* topK                                                                       */
/* ------------------------------------------------------------------------- */

/* order-preserving key: larger float -> larger key; -inf and NaN -> 0
 * (never selected); -0 and +0 map to the same key (they are equal values). */
inline uint topk_key(float f)
{
    if (isnan(f) || f == PC_NEG_INF) return 0u;
    const uint u = (f == 0.0f) ? 0u : as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* (key desc, index asc) as one descending 64-bit word; 0 = empty */
inline ulong topk_item(uint key, int i)
{
    return key ? (((ulong)key << 32) | (ulong)(0xffffffffu - (uint)i)) : 0ul;
}

/* descending bitonic sort of keys[0..n) (n a power of two), local size TWG */
inline void topk_bitonic(__local ulong *keys, int n)
{
    const int tid = get_local_id(0);
    for (int size = 2; size <= n; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int i = tid; i < (n >> 1); i += TWG) {
                const int pos = 2 * i - (i & (stride - 1));
                const int par = pos + stride;
                const bool desc = (pos & size) == 0;
                const ulong a = keys[pos], b = keys[par];
                if ((a < b) == desc) {
                    keys[pos] = b;
                    keys[par] = a;
                }
            }
            barrier(CLK_LOCAL_MEM_FENCE);
        }
    }
}

inline int topk_pow2(int n)
{
    int p = 2;
    while (p < n) p <<= 1;
    return p;
}

/*
 * scores f32 [T,S] -> indices i32 [T,k], values f32 [T,k]; per row the k
 * largest in descending order, equal values lower index first; -inf and NaN
 * never selected; short rows padded with (-1, -inf).
 * One work-group per row: global = (T*TWG), local = (TWG).
 * S <= SORT_MAX: the whole row is bitonic-sorted in local memory.
 * S >  SORT_MAX: exact 4-pass radix select (8 bits per pass) of the k-th
 *   largest key, then the > threshold entries plus the lowest-index
 *   == threshold entries are collected and sorted. Needs k <= SORT_MAX.
 * Local memory: 8*SORT_MAX + 4*(256 + TWG + 8) bytes.
 *
 * PoCL 3.1 on AVX-512 hosts (Zen 4) vectorizes these work-item loops with
 * AVX-512 gathers/scatters and the select path crashed (a scatter with a
 * miscounted trip count) or hung. Found by the conformance case at S = SORT_MAX
 * + 1. Three shapes together avoid it, none alone did: a constant radix pass
 * count, row loads through a clamped index, and the zero-fill loop counted from
 * tid rather than from used + tid. Keep them.
 */
__kernel __attribute__((reqd_work_group_size(TWG, 1, 1)))
void topk(const __global float *SC, ulong sc_off,
          __global int *IDX, ulong idx_off,
          __global float *VAL, ulong val_off,
          int T, int S, int k)
{
    __local ulong keys[SORT_MAX];
    __local uint hist[256];
    __local int flags[TWG];
    __local int sh[8];
    const int tid = get_local_id(0);
    const int t = pc_min_i((int)get_group_id(0), T - 1);
    const __global float *row = SC + sc_off + (size_t)t * S;
    /* Both paths run one barrier-uniform flow: loops whose trip counts are
     * uniform and zero for the path not taken (PoCL 3.1 mishandles barriers
     * under uniform if/else). */
    const int direct = (S <= SORT_MAX);
    int nsorted = direct ? topk_pow2(S) : 0;
    for (int i = tid; i < nsorted; i += TWG)
        keys[i] = (i < S) ? topk_item(topk_key(row[pc_min_i(i, S - 1)]), i) : 0ul;

    /* radix select (S > SORT_MAX): thr = k-th largest valid key, need = how
     * many entries equal to thr are taken (lowest indices first) */
    uint prefix = 0u, mask = 0u;
    int krem = k;
    int all = direct;
    /* Four passes always; a pass after `all` does nothing (see the PoCL note above). */
    for (int pass = 0; pass < 4; pass++) {
        const int active = !all;                       /* uniform */
        const int shift = 24 - 8 * pass;
        for (int d = tid; d < 256; d += TWG) hist[d] = 0u;
        barrier(CLK_LOCAL_MEM_FENCE);
        const int scan = active ? S : 0;
        for (int i = tid; i < scan; i += TWG) {
            const uint key = topk_key(row[i]);
            if (key != 0u && (key & mask) == prefix) atomic_inc(&hist[(key >> shift) & 255u]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (tid == 0 && active) {
            int allv = 0;
            if (pass == 0) {
                uint tot = 0;
                for (int d = 0; d < 256; d++) tot += hist[d];
                allv = (tot <= (uint)krem);
            }
            uint p = prefix;
            int kr = krem;
            if (allv) {
                p = 0u;                                  /* take every valid key */
                kr = 0;
            } else {
                uint cum = 0;
                for (int d = 255; d >= 0; d--) {
                    if (cum + hist[d] >= (uint)kr) {
                        p |= ((uint)d) << shift;
                        kr -= (int)cum;
                        break;
                    }
                    cum += hist[d];
                }
            }
            sh[0] = (int)p;
            sh[1] = kr;
            sh[2] = allv;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (active) {
            prefix = (uint)sh[0];
            krem = sh[1];
            all = sh[2];
            mask |= 0xffu << shift;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const uint thr = prefix;
    const int need = krem;
    if (tid == 0) {
        sh[3] = 0;                                       /* slots used */
        sh[4] = 0;                                       /* == thr taken */
        sh[5] = 0;                                       /* == thr seen in this chunk */
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    const int scan_end = direct ? 0 : S;
    for (int base = 0; base < scan_end; base += TWG) {
        const int i = base + tid;
        const uint key = (i < S) ? topk_key(row[pc_min_i(i, S - 1)]) : 0u;
        const int eq = (need > 0 && key != 0u && key == thr) ? 1 : 0;
        flags[tid] = eq;
        if (key > thr) {
            const int slot = atomic_inc(&sh[3]);
            if (slot < SORT_MAX) keys[slot] = topk_item(key, i);
        }
        if (eq) atomic_inc(&sh[5]);
        barrier(CLK_LOCAL_MEM_FENCE);
        if (tid == 0 && sh[5] > 0) {
            for (int j = 0; j < TWG && sh[4] < need; j++) {
                if (flags[j]) {
                    const int slot = sh[3]++;
                    if (slot < SORT_MAX) keys[slot] = topk_item(thr, base + j);
                    sh[4]++;
                }
            }
            sh[5] = 0;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (!direct) {
        const int used = pc_min_i(sh[3], SORT_MAX);
        nsorted = topk_pow2(pc_min_i(pc_max_i(used, k), SORT_MAX));
        for (int i = tid; i < nsorted; i += TWG)
            if (i >= used) keys[i] = 0ul;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    topk_bitonic(keys, nsorted);

    if ((int)get_group_id(0) < T) {
        for (int p = tid; p < k; p += TWG) {
            const ulong it = (p < nsorted) ? keys[p] : 0ul;
            int ix = -1;
            float v = PC_NEG_INF;
            if (it != 0ul) {
                ix = (int)(0xffffffffu - (uint)(it & 0xffffffffu));
                v = row[ix];
            }
            IDX[idx_off + (size_t)t * k + p] = ix;
            VAL[val_off + (size_t)t * k + p] = v;
        }
    }
}
