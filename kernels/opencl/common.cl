/*
 * Polychip OpenCL kernels -- common.cl
 *
 * The host prepends this file to every other .cl file of kernels/opencl before
 * clBuildProgram (see README.md). Target language: OpenCL C 1.2 (build with
 * -cl-std=CL1.2); no extension is required (cl_khr_fp64 is used by rope when
 * the device has it).
 *
 * Storage dtypes (build macro DTYPE):
 *   DTYPE=0  f32   st_t = float
 *   DTYPE=1  f16   st_t = ushort (binary16 bits; read with vload_half, written
 *                  with vstore_half_rte -- no cl_khr_fp16 needed)
 *   DTYPE=2  bf16  st_t = ushort (upper half of binary32; written with
 *                  round-to-nearest-even, NaN kept quiet)
 * All arithmetic is f32. Buffers of other element types are typed directly
 * (float / int / uchar / char).
 */

#ifndef DTYPE
#define DTYPE 0
#endif

#if DTYPE == 0
typedef float st_t;
#elif DTYPE == 1 || DTYPE == 2
typedef ushort st_t;
#else
#error "DTYPE must be 0 (f32), 1 (f16) or 2 (bf16)"
#endif

#define PC_NEG_INF (-INFINITY)

inline float pc_bf16_to_f32(ushort h) { return as_float(((uint)h) << 16); }

inline ushort pc_f32_to_bf16(float f)
{
    uint u = as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)          /* NaN: keep sign, force quiet */
        return (ushort)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);              /* round to nearest, ties to even */
    return (ushort)(u >> 16);
}

/* load element i of a storage-dtype buffer as f32 */
inline float ld(const __global st_t *p, size_t i)
{
#if DTYPE == 0
    return p[i];
#elif DTYPE == 1
    return vload_half(i, (const __global half *)p);
#else
    return pc_bf16_to_f32(p[i]);
#endif
}

/* store f32 v to element i of a storage-dtype buffer, rounding to nearest even */
inline void st(__global st_t *p, size_t i, float v)
{
#if DTYPE == 0
    p[i] = v;
#elif DTYPE == 1
    vstore_half_rte(v, i, (__global half *)p);
#else
    p[i] = pc_f32_to_bf16(v);
#endif
}

/* 4 consecutive storage-dtype elements as f32 (any alignment) */
inline float4 ld4(const __global st_t *p)
{
#if DTYPE == 0
    return vload4(0, p);
#elif DTYPE == 1
    return vload_half4(0, (const __global half *)p);
#else
    return as_float4(convert_uint4(vload4(0, p)) << (uint4)(16));
#endif
}

/* store 8 consecutive elements (any alignment), rounding to nearest even */
inline void st8(__global st_t *p, float8 v)
{
#if DTYPE == 0
    vstore8(v, 0, p);
#elif DTYPE == 1
    /* element by element: PoCL 3.1's vstore_half8_rte faults on addresses that
     * are not 16-byte aligned */
    float t[8];
    vstore8(v, 0, t);
    for (int u = 0; u < 8; u++) vstore_half_rte(t[u], u, (__global half *)p);
#else
    float t[8];
    vstore8(v, 0, t);
    for (int u = 0; u < 8; u++) p[u] = pc_f32_to_bf16(t[u]);
#endif
}

/* Horizontal reductions of a float8 in a fixed pairing order (lo+hi, then lo+hi, then
 * x+y), so every kernel that uses them sums the same way. */
inline float pc_hsum8(float8 v)
{
    const float4 a = v.lo + v.hi;
    const float2 b = a.lo + a.hi;
    return b.x + b.y;
}

inline float pc_hmax8(float8 v)
{
    const float4 a = fmax(v.lo, v.hi);
    const float2 b = fmax(a.lo, a.hi);
    return fmax(b.x, b.y);
}

inline float pc_hmin8(float8 v)
{
    const float4 a = fmin(v.lo, v.hi);
    const float2 b = fmin(a.lo, a.hi);
    return fmin(b.x, b.y);
}

/* 8 consecutive storage-dtype elements as f32 (any alignment). float8 keeps
 * to 256-bit vectors (no AVX-512 ABI issue on PoCL). */
inline float8 ld8(const __global st_t *p)
{
#if DTYPE == 0
    return vload8(0, p);
#elif DTYPE == 1
    /* two 4-wide loads: PoCL 3.1's vload_half8 faults where p is not 16-byte aligned */
    return (float8)(vload_half4(0, (const __global half *)p), vload_half4(1, (const __global half *)p));
#else
    return as_float8(convert_uint8(vload8(0, p)) << (uint8)(16));
#endif
}

inline int pc_min_i(int a, int b) { return a < b ? a : b; }
inline int pc_max_i(int a, int b) { return a > b ? a : b; }

/* ------------------------------------------------------------------------- */
/* Tiled GEMM core (used by gemm.cl and int4.cl)                              */
/*                                                                           */
/* A work-group computes a TM x TN tile of C with (TN/WPTN) x (TM/WPTM)       */
/* work-items (local size dim0 = TN/WPTN, dim1 = TM/WPTM); each work-item     */
/* owns WPTM x WPTN outputs, rows ty + i*RTSM, columns tx + j*RTSN (strided,  */
/* so global stores coalesce and local reads are conflict-free). K is walked  */
/* in TK-deep slabs staged in local memory as f32:                            */
/*   As[TK][TM+LPAD], Bs[TK][TN+LPAD].                                        */
/* GEMM_VEC=1 (GPU, default when WPTM, WPTN and both row strides are          */
/* multiples of 4): the strides are in quads -- rows 4*ty + i%4 + (i/4)*4*RTSM */
/* -- so each work-item reads its A and B values as float4 (a quarter of the  */
/* local-memory instructions per FMA). GEMM_PREFETCH=1 (GPU): the next slab   */
/* is fetched into registers while the current one is multiplied.             */
/* ------------------------------------------------------------------------- */
#ifndef TM
#define TM 64
#endif
#ifndef TN
#define TN 64
#endif
#ifndef TK
#define TK 16
#endif
#ifndef WPTM
#define WPTM 4
#endif
#ifndef WPTN
#define WPTN 4
#endif
#ifndef LPAD
#define LPAD 1
#endif

#define RTSM (TM / WPTM)
#define RTSN (TN / WPTN)
#define GEMM_NT (RTSM * RTSN)
#ifndef GEMM_CPU
#define GEMM_CPU 0
#endif
#define AS_LD (TM + LPAD)
#define BS_LD (TN + LPAD)
#define BS_SIZE (TK * BS_LD)
#if GEMM_CPU
/* CPU: A slab kept row-major As[TM][TK+LPAD] (vector copies, broadcast reads) */
#define AIDX(r, kk) ((r) * (TK + LPAD) + (kk))
#define AS_SIZE (TM * (TK + LPAD))
#else
/* GPU: A slab transposed As[TK][TM+LPAD] (conflict-free strided reads) */
#define AIDX(r, kk) ((kk) * AS_LD + (r))
#define AS_SIZE (TK * AS_LD)
#endif

#if (TM % WPTM) != 0 || (TN % WPTN) != 0
#error "TM must be a multiple of WPTM and TN a multiple of WPTN"
#endif

/* A[M,K] row-major (lda = K): rows row0.., k0.. -> As[kk][r] */
inline void gemm_load_a(__local float *As, const __global st_t *A, int M, int K,
                        int row0, int k0, int tid)
{
#if GEMM_CPU && (TK % 8) == 0
    for (int l = tid; l < TM * (TK / 8); l += GEMM_NT) {
        const int r = l / (TK / 8), kk = 8 * (l % (TK / 8));
        const int gr = row0 + r, gk = k0 + kk;
        __local float *dst = As + AIDX(r, kk);
        if (gr < M && gk + 8 <= K) {
            vstore8(ld8(A + (size_t)gr * (size_t)K + (size_t)gk), 0, dst);
        } else {
            for (int u = 0; u < 8; u++)
                dst[u] = (gr < M && gk + u < K) ? ld(A, (size_t)gr * (size_t)K + (size_t)(gk + u)) : 0.0f;
        }
    }
#else
#pragma unroll
    for (int c = 0; c < (TM * TK + GEMM_NT - 1) / GEMM_NT; c++) {
        int l = c * GEMM_NT + tid;
        if ((TM * TK) % GEMM_NT == 0 || l < TM * TK) {
            int r = l / TK, kk = l % TK;
            int gr = row0 + r, gk = k0 + kk;
            float v = 0.0f;
            if (gr < M && gk < K) v = ld(A, (size_t)gr * (size_t)K + (size_t)gk);
            As[AIDX(r, kk)] = v;
        }
    }
#endif
}

/* B[K,N] row-major: k0.., cols col0.. -> Bs[kk][n] */
inline void gemm_load_b_kn(__local float *Bs, const __global st_t *B, int N, int K,
                           int col0, int k0, int tid)
{
#if GEMM_CPU && (TN % 8) == 0
    for (int l = tid; l < TK * (TN / 8); l += GEMM_NT) {
        const int kk = l / (TN / 8), n = 8 * (l % (TN / 8));
        const int gk = k0 + kk, gn = col0 + n;
        __local float *dst = Bs + kk * BS_LD + n;
        if (gk < K && gn + 8 <= N) {
            vstore8(ld8(B + (size_t)gk * (size_t)N + (size_t)gn), 0, dst);
        } else {
            for (int u = 0; u < 8; u++)
                dst[u] = (gk < K && gn + u < N) ? ld(B, (size_t)gk * (size_t)N + (size_t)(gn + u)) : 0.0f;
        }
    }
#else
#pragma unroll
    for (int c = 0; c < (TN * TK + GEMM_NT - 1) / GEMM_NT; c++) {
        int l = c * GEMM_NT + tid;
        if ((TN * TK) % GEMM_NT == 0 || l < TN * TK) {
            int kk = l / TN, n = l % TN;
            int gk = k0 + kk, gn = col0 + n;
            float v = 0.0f;
            if (gk < K && gn < N) v = ld(B, (size_t)gk * (size_t)N + (size_t)gn);
            Bs[kk * BS_LD + n] = v;
        }
    }
#endif
}

/* B[N,K] row-major (weight layout): -> Bs[kk][n] */
inline void gemm_load_b_nk(__local float *Bs, const __global st_t *B, int N, int K,
                           int col0, int k0, int tid)
{
#if GEMM_CPU && (TK % 8) == 0
    /* vector loads along k, transposed into Bs[kk][n] */
    for (int l = tid; l < TN * (TK / 8); l += GEMM_NT) {
        const int n = l / (TK / 8), kk = 8 * (l % (TK / 8));
        const int gk = k0 + kk, gn = col0 + n;
        float8 v = (float8)(0.0f);
        if (gn < N && gk + 8 <= K) {
            v = ld8(B + (size_t)gn * (size_t)K + (size_t)gk);
        } else if (gn < N) {
            float t[8];
            for (int u = 0; u < 8; u++) t[u] = (gk + u < K) ? ld(B, (size_t)gn * (size_t)K + (size_t)(gk + u)) : 0.0f;
            v = vload8(0, t);
        }
        __local float *dst = Bs + kk * BS_LD + n;
        dst[0 * BS_LD] = v.s0; dst[1 * BS_LD] = v.s1; dst[2 * BS_LD] = v.s2; dst[3 * BS_LD] = v.s3;
        dst[4 * BS_LD] = v.s4; dst[5 * BS_LD] = v.s5; dst[6 * BS_LD] = v.s6; dst[7 * BS_LD] = v.s7;
    }
#else
#pragma unroll
    for (int c = 0; c < (TN * TK + GEMM_NT - 1) / GEMM_NT; c++) {
        int l = c * GEMM_NT + tid;
        if ((TN * TK) % GEMM_NT == 0 || l < TN * TK) {
            int n = l / TK, kk = l % TK;
            int gk = k0 + kk, gn = col0 + n;
            float v = 0.0f;
            if (gk < K && gn < N) v = ld(B, (size_t)gn * (size_t)K + (size_t)gk);
            Bs[kk * BS_LD + n] = v;
        }
    }
#endif
}

#if GEMM_CPU
/* CPU mapping (PoCL): work-item (tx, ty) owns the contiguous block rows
 * row0 + ty*WPTM + i, columns col0 + tx*WPTN + j, accumulated as float8
 * vectors (WPTN must be a multiple of 8). Same grid/local formulas. */
#if (WPTN % 8) != 0
#error "GEMM_CPU=1 needs WPTN % 8 == 0"
#endif
typedef float8 gacc_t;
#define GACC_N (WPTN / 8)
#define GEMM_ROW(ty, i) ((ty) * WPTM + (i))
#define GEMM_COL(tx, j) ((tx) * WPTN + (j))
#else
typedef float gacc_t;
#define GACC_N WPTN
#ifndef GEMM_VEC
#if (WPTM % 4) == 0 && (WPTN % 4) == 0 && (AS_LD % 4) == 0 && (BS_LD % 4) == 0
#define GEMM_VEC 1
#else
#define GEMM_VEC 0
#endif
#endif
#if GEMM_VEC
#if (WPTM % 4) != 0 || (WPTN % 4) != 0 || (AS_LD % 4) != 0 || (BS_LD % 4) != 0
#error "GEMM_VEC=1 needs WPTM, WPTN, TM+LPAD and TN+LPAD to be multiples of 4"
#endif
#define GEMM_ROW(ty, i) (((i) >> 2) * (4 * RTSM) + 4 * (ty) + ((i) & 3))
#define GEMM_COL(tx, j) (((j) >> 2) * (4 * RTSN) + 4 * (tx) + ((j) & 3))
#else
#define GEMM_ROW(ty, i) ((ty) + (i) * RTSM)
#define GEMM_COL(tx, j) ((tx) + (j) * RTSN)
#endif
#endif

inline void gemm_compute(const __local float *As, const __local float *Bs,
                         gacc_t acc_io[WPTM][GACC_N], int tx, int ty, int mrem, int nrem)
{
#if GEMM_CPU
    /* CPU mapping: a work-item whose whole row or column block lies past C's edge
     * (mrem, nrem = rows / columns of C left from the tile's origin) has nothing to
     * add -- its accumulators are never stored. PoCL runs work-items one after the
     * other, so this is a real saving for the grouped GEMMs' ragged expert tiles
     * (64 +- 8 rows in a 96-row tile). GPU mappings keep every lane busy instead. */
    if (ty * WPTM >= mrem || tx * WPTN >= nrem) return;
#endif
    /* Work on a copy: the accumulators are live across barriers, which PoCL
     * turns into per-work-item context memory; a region-local copy keeps
     * them in registers for the whole slab (a no-op for GPU compilers). */
    gacc_t acc[WPTM][GACC_N];
#pragma unroll
    for (int i = 0; i < WPTM; i++)
#pragma unroll
        for (int j = 0; j < GACC_N; j++) acc[i][j] = acc_io[i][j];
#pragma unroll
    for (int kk = 0; kk < TK; kk++) {
        gacc_t b[GACC_N];
#if GEMM_CPU
#pragma unroll
        for (int j = 0; j < GACC_N; j++) b[j] = vload8(0, Bs + kk * BS_LD + tx * WPTN + j * 8);
#pragma unroll
        for (int i = 0; i < WPTM; i++) {
            const float8 a = (float8)(As[AIDX(ty * WPTM + i, kk)]);
#pragma unroll
            for (int j = 0; j < GACC_N; j++) acc[i][j] = fma(a, b[j], acc[i][j]);
        }
#else
        float a[WPTM];
#if GEMM_VEC
        /* As/Bs rows are 16-byte aligned (AS_LD, BS_LD multiples of 4) */
#pragma unroll
        for (int i = 0; i < WPTM / 4; i++) {
            const float4 v = vload4(0, As + kk * AS_LD + i * (4 * RTSM) + 4 * ty);
            a[4 * i] = v.s0; a[4 * i + 1] = v.s1; a[4 * i + 2] = v.s2; a[4 * i + 3] = v.s3;
        }
#pragma unroll
        for (int j = 0; j < WPTN / 4; j++) {
            const float4 v = vload4(0, Bs + kk * BS_LD + j * (4 * RTSN) + 4 * tx);
            b[4 * j] = v.s0; b[4 * j + 1] = v.s1; b[4 * j + 2] = v.s2; b[4 * j + 3] = v.s3;
        }
#else
#pragma unroll
        for (int i = 0; i < WPTM; i++) a[i] = As[AIDX(ty + i * RTSM, kk)];
#pragma unroll
        for (int j = 0; j < WPTN; j++) b[j] = Bs[kk * BS_LD + tx + j * RTSN];
#endif
#pragma unroll
        for (int i = 0; i < WPTM; i++)
#pragma unroll
            for (int j = 0; j < WPTN; j++)
                acc[i][j] = fma(a[i], b[j], acc[i][j]);
#endif
    }
#pragma unroll
    for (int i = 0; i < WPTM; i++)
#pragma unroll
        for (int j = 0; j < GACC_N; j++) acc_io[i][j] = acc[i][j];
}

inline void gemm_zero(gacc_t acc[WPTM][GACC_N])
{
#pragma unroll
    for (int i = 0; i < WPTM; i++)
#pragma unroll
        for (int j = 0; j < GACC_N; j++) acc[i][j] = (gacc_t)(0.0f);
}

/* accumulator element (i, j) as a scalar, j in 0..WPTN-1 */
inline float gemm_acc(gacc_t acc[WPTM][GACC_N], int i, int j)
{
#if GEMM_CPU
    float8 v = acc[i][j / 8];
    float t[8];
    vstore8(v, 0, t);
    return t[j % 8];
#else
    return acc[i][j];
#endif
}

/* C[M,N] (ldc = N) <- acc, bounds-checked */
inline void gemm_store(__global st_t *C, int M, int N, int row0, int col0,
                       gacc_t acc[WPTM][GACC_N], int tx, int ty)
{
#pragma unroll
    for (int i = 0; i < WPTM; i++) {
        int gr = row0 + GEMM_ROW(ty, i);
        if (gr < M) {
#pragma unroll
            for (int j = 0; j < WPTN; j++) {
                int gc = col0 + GEMM_COL(tx, j);
                if (gc < N) st(C, (size_t)gr * (size_t)N + (size_t)gc, gemm_acc(acc, i, j));
            }
        }
    }
}

#ifndef GEMM_PREFETCH
#define GEMM_PREFETCH 0
#endif
#if GEMM_PREFETCH && !GEMM_CPU
/* Register staging of one slab: element l = c*GEMM_NT + tid of the TM x TK
 * (A) and TN x TK (B) slabs, in the index order of gemm_load_a/_b_*. */
#define GEMM_RA ((TM * TK + GEMM_NT - 1) / GEMM_NT)
#define GEMM_RB ((TN * TK + GEMM_NT - 1) / GEMM_NT)

inline void gemm_fetch_a(float ra[GEMM_RA], const __global st_t *A, int M, int K, int row0, int k0, int tid)
{
#if (GEMM_NT % TK) == 0 && ((TM * TK) % GEMM_NT) == 0
    if (row0 + TM <= M && k0 + TK <= K) {      /* interior slab: no bounds checks, one pointer */
        const __global st_t *p = A + (size_t)(row0 + tid / TK) * (size_t)K + (size_t)(k0 + tid % TK);
#pragma unroll
        for (int c = 0; c < GEMM_RA; c++) ra[c] = ld(p, (size_t)c * (size_t)(GEMM_NT / TK) * (size_t)K);
        return;
    }
#endif
#pragma unroll
    for (int c = 0; c < GEMM_RA; c++) {
        const int l = c * GEMM_NT + tid, r = l / TK, kk = l % TK;
        const int gr = row0 + r, gk = k0 + kk;
        ra[c] = (l < TM * TK && gr < M && gk < K) ? ld(A, (size_t)gr * (size_t)K + (size_t)gk) : 0.0f;
    }
}

inline void gemm_put_a(__local float *As, const float ra[GEMM_RA], int tid)
{
#pragma unroll
    for (int c = 0; c < GEMM_RA; c++) {
        const int l = c * GEMM_NT + tid;
        if ((TM * TK) % GEMM_NT == 0 || l < TM * TK) As[AIDX(l / TK, l % TK)] = ra[c];
    }
}

/* b_nk = 0: B[K,N] (element l -> kk = l / TN, n = l % TN); 1: B[N,K] (n = l / TK, kk = l % TK) */
inline void gemm_fetch_b(float rb[GEMM_RB], const __global st_t *B, int N, int K, int col0, int k0, int tid, int b_nk)
{
#if (GEMM_NT % TK) == 0 && (GEMM_NT % TN) == 0 && ((TN * TK) % GEMM_NT) == 0
    if (col0 + TN <= N && k0 + TK <= K) {      /* interior slab: no bounds checks, one pointer */
        if (b_nk) {
            const __global st_t *p = B + (size_t)(col0 + tid / TK) * (size_t)K + (size_t)(k0 + tid % TK);
#pragma unroll
            for (int c = 0; c < GEMM_RB; c++) rb[c] = ld(p, (size_t)c * (size_t)(GEMM_NT / TK) * (size_t)K);
        } else {
            const __global st_t *p = B + (size_t)(k0 + tid / TN) * (size_t)N + (size_t)(col0 + tid % TN);
#pragma unroll
            for (int c = 0; c < GEMM_RB; c++) rb[c] = ld(p, (size_t)c * (size_t)(GEMM_NT / TN) * (size_t)N);
        }
        return;
    }
#endif
#pragma unroll
    for (int c = 0; c < GEMM_RB; c++) {
        const int l = c * GEMM_NT + tid;
        const int kk = b_nk ? l % TK : l / TN, n = b_nk ? l / TK : l % TN;
        const int gk = k0 + kk, gn = col0 + n;
        const size_t at = b_nk ? (size_t)gn * (size_t)K + (size_t)gk : (size_t)gk * (size_t)N + (size_t)gn;
        rb[c] = (l < TN * TK && gk < K && gn < N) ? ld(B, at) : 0.0f;
    }
}

inline void gemm_put_b(__local float *Bs, const float rb[GEMM_RB], int tid, int b_nk)
{
#pragma unroll
    for (int c = 0; c < GEMM_RB; c++) {
        const int l = c * GEMM_NT + tid;
        const int kk = b_nk ? l % TK : l / TN, n = b_nk ? l / TK : l % TN;
        if ((TN * TK) % GEMM_NT == 0 || l < TN * TK) Bs[kk * BS_LD + n] = rb[c];
    }
}
#endif

/* The K loop of one TM x TN tile of C = A . B over k in [0, kend): A[M,K]
 * row-major, B[K,N] (b_nk = 0) or B[N,K] (b_nk = 1, the weight layout).
 * kend is uniform over the work-group (0 for a surplus grouped work-group). */
inline void gemm_tile(__local float *As, __local float *Bs, gacc_t acc[WPTM][GACC_N],
                      const __global st_t *A, const __global st_t *B, int M, int N, int K, int kend,
                      int row0, int col0, int b_nk)
{
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int tid = ty * RTSN + tx;
#if GEMM_PREFETCH && !GEMM_CPU
    float ra[GEMM_RA], rb[GEMM_RB];
    gemm_fetch_a(ra, A, M, K, row0, 0, tid);
    gemm_fetch_b(rb, B, N, K, col0, 0, tid, b_nk);
    for (int k0 = 0; k0 < kend; k0 += TK) {
        gemm_put_a(As, ra, tid);
        gemm_put_b(Bs, rb, tid, b_nk);
        barrier(CLK_LOCAL_MEM_FENCE);
        if (k0 + TK < kend) {
            gemm_fetch_a(ra, A, M, K, row0, k0 + TK, tid);
            gemm_fetch_b(rb, B, N, K, col0, k0 + TK, tid, b_nk);
        }
        gemm_compute(As, Bs, acc, tx, ty, M - row0, N - col0);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
#else
    for (int k0 = 0; k0 < kend; k0 += TK) {
        gemm_load_a(As, A, M, K, row0, k0, tid);
        if (b_nk) gemm_load_b_nk(Bs, B, N, K, col0, k0, tid);
        else gemm_load_b_kn(Bs, B, N, K, col0, k0, tid);
        barrier(CLK_LOCAL_MEM_FENCE);
        gemm_compute(As, Bs, acc, tx, ty, M - row0, N - col0);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
#endif
}

/*
 * Grouped-GEMM tile mapping. Work-group g along dim1 is the g-th row tile in
 * expert order: expert e owns ceil(cnt_e / TM) consecutive tiles. Returns the
 * expert (or -1 when g is past the last tile, with *seg0 = *cnt = *row0 = 0)
 * and sets *seg0 (first row of the segment), *cnt (rows in it) and *row0
 * (first row of the tile, relative to seg0). Callers never return early
 * (PoCL 3.1 miscompiles a uniform early return ahead of a barrier): a
 * surplus work-group runs zero K steps and stores nothing (cnt = 0). Offsets are clamped into [0, T] and made non-decreasing, so invalid
 * offsets can never produce an out-of-range access (they are reported by
 * check_offsets in gemm.cl).
 */
inline int grouped_tile_lookup(const __global int *offs, int E, int T, int g,
                               int *seg0, int *cnt, int *row0)
{
    int before = 0;
    int prev = 0;
    for (int e = 0; e < E; e++) {
        int a = pc_max_i(prev, pc_min_i(pc_max_i(offs[e], 0), T));
        int b = pc_max_i(a, pc_min_i(pc_max_i(offs[e + 1], 0), T));
        prev = b;
        int n = b - a;
        int tiles = (n + TM - 1) / TM;
        if (g < before + tiles) {
            *seg0 = a;
            *cnt = n;
            *row0 = (g - before) * TM;
            return e;
        }
        before += tiles;
    }
    *seg0 = 0;
    *cnt = 0;
    *row0 = 0;
    return -1;
}
