/*
 * int4.cl -- quantizeInt4, dequantizeInt4, int4Matmul (W4A16 GEMV + GEMM),
 * int4GroupedMatmul (common.cl is prepended by the host).
 *
 * Native layout (docs/kernels.md): q: uchar [N, K/2] (byte j of a row holds
 * k = 2j in the low nibble, k = 2j+1 in the high nibble, unsigned 0..15),
 * scales: f32 [N, K/G], zeros: i8 [N, K/G] (asymmetric only; symmetric z = 8).
 * w[n,k] = s[n,k/G] * (u[n,k] - z[n,k/G]). Expert stacks add a leading E.
 * q offsets are in BYTES; the zeros pointer may be NULL when asym == 0.
 *
 * Build macros: DTYPE; GEMM tile macros TM TN TK WPTM WPTN (TK even) for the
 * *_gemm kernels; GV_WG, GV_ROWS, GV_MAXM, GV_VEC (1 = CPU vector path),
 * GV_WIDE (GPU path: 1 = 16-byte weight loads per row, 0 = 4-byte) for the
 * *_gemv kernels.
 * Build option: -cl-fp32-correctly-rounded-divide-sqrt (quantize needs IEEE
 * division; the host adds it when the device reports
 * CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT).
 */

#if (TK % 2) != 0
#error "int4 GEMM needs an even TK"
#endif

#ifndef GV_WG
#define GV_WG 128
#endif
#ifndef GV_ROWS
#define GV_ROWS 4
#endif
#ifndef GV_MAXM
#define GV_MAXM 8
#endif
#ifndef GV_VEC
#define GV_VEC 0
#endif
#ifndef GV_WIDE
#define GV_WIDE 1
#endif
#ifndef GV_PAIR
#define GV_PAIR 1
#endif
/* GEMV reduction segments per lane (a power of two dividing GV_WG) */
#define GV_RP (GV_WG < 8 ? GV_WG : 8)



/* ------------------------------------------------------------------------- */
/* quantize / dequantize                                                      */
/* ------------------------------------------------------------------------- */

/* Group gid = (row n, group g) of x[N,K]. */
inline void int4_quantize_group(const __global st_t *X, __global uchar *Q, __global float *S,
                                __global char *Z, int K, int G, int asym, size_t gid)
{
    const int ng = K / G;
    const size_t n = gid / (size_t)ng;
    const int g = (int)(gid % (size_t)ng);
    const __global st_t *x = X + n * (size_t)K + (size_t)g * (size_t)G;
    __global uchar *q = Q + n * (size_t)(K / 2) + (size_t)(g * G / 2);

#if GV_VEC
    /* CPU devices: the same per-element arithmetic 8 lanes at a time (max/min are
     * exact in any order, so results equal the scalar path bit for bit). */
    if ((G & 15) == 0) {
        float8 lo8 = (float8)(0.0f), hi8 = (float8)(0.0f);
        for (int i = 0; i < G; i += 8) {
            const float8 v = ld8(x + i);
            if (asym) { lo8 = fmin(lo8, v); hi8 = fmax(hi8, v); }
            else hi8 = fmax(hi8, fabs(v));
        }
        const float mn = pc_hmin8(lo8), mx = pc_hmax8(hi8);
        float s;
        int z = 0;
        if (!asym) s = mx / 7.0f;
        else if (mx == mn) s = 0.0f;                        /* all-zero group: s = 0, z = 0, u = 0 */
        else { s = (mx - mn) / 15.0f; z = (int)clamp(round(-mn / s), 0.0f, 15.0f); }
        for (int i = 0; i < G; i += 16) {
            int8 u[2];
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const float8 v = ld8(x + i + 8 * h);
                if (!asym) u[h] = (s != 0.0f) ? convert_int8(clamp(round(v / (float8)(s)), -8.0f, 7.0f)) + (int8)(8) : (int8)(8);
                else u[h] = (s != 0.0f) ? clamp(convert_int8(round(v / (float8)(s))) + (int8)(z), 0, 15) : (int8)(0);
            }
            vstore4(convert_uchar4(u[0].even | (u[0].odd << 4)), 0, q + i / 2);
            vstore4(convert_uchar4(u[1].even | (u[1].odd << 4)), 0, q + i / 2 + 4);
        }
        S[gid] = s;
        if (asym) Z[gid] = (char)z;
        return;
    }
#endif
    if (!asym) {
        float amax = 0.0f;
        for (int i = 0; i < G; i++) amax = fmax(amax, fabs(ld(x, i)));
        const float s = amax / 7.0f;
        S[gid] = s;
        for (int i = 0; i < G; i += 2) {
            int u0 = 8, u1 = 8;
            if (s != 0.0f) {
                u0 = (int)clamp(round(ld(x, i) / s), -8.0f, 7.0f) + 8;
                u1 = (int)clamp(round(ld(x, i + 1) / s), -8.0f, 7.0f) + 8;
            }
            q[i / 2] = (uchar)(u0 | (u1 << 4));
        }
    } else {
        /* docs/kernels.md: the range always holds 0 (lo = min(min(x), 0),
         * hi = max(max(x), 0)), so the zero point fits; only an all-zero group
         * has lo == hi, and it stores s = 0, z = 0, u = 0. */
        float mn = 0.0f, mx = 0.0f;
        for (int i = 0; i < G; i++) {
            const float v = ld(x, i);
            mn = fmin(mn, v);
            mx = fmax(mx, v);
        }
        float s;
        int z;
        if (mx == mn) {                      /* all-zero group */
            s = 0.0f;
            z = 0;
            for (int i = 0; i < G; i += 2) q[i / 2] = (uchar)0;
        } else {
            s = (mx - mn) / 15.0f;
            z = (int)clamp(round(-mn / s), 0.0f, 15.0f);
            for (int i = 0; i < G; i += 2) {
                const int u0 = clamp((int)round(ld(x, i) / s) + z, 0, 15);
                const int u1 = clamp((int)round(ld(x, i + 1) / s) + z, 0, 15);
                q[i / 2] = (uchar)(u0 | (u1 << 4));
            }
        }
        S[gid] = s;
        Z[gid] = (char)z;
    }
}

/* x[N,K] float (DTYPE) -> q uchar[N,K/2], scales f32[N,K/G], zeros i8[N,K/G].
 * Each work-item takes a contiguous run of the N*(K/G) groups: global = (any
 * size), any L -- one group per work-item on GPUs, dozens per work-item on CPU
 * devices (PoCL's per-work-item cost is then paid once per run). */
__kernel void int4_quantize(const __global st_t *X, ulong x_off,
                            __global uchar *Q, ulong q_off,
                            __global float *S, ulong s_off,
                            __global char *Z, ulong z_off,
                            int N, int K, int G, int asym)
{
    X += x_off; Q += q_off; S += s_off;
    if (asym) Z += z_off;
    const size_t total = (size_t)N * (size_t)(K / G);
    const size_t per = (total + get_global_size(0) - 1) / get_global_size(0);   /* contiguous runs */
    const size_t g0 = get_global_id(0) * per, g1 = min(total, g0 + per);
    for (size_t gid = g0; gid < g1; gid++) int4_quantize_group(X, Q, S, Z, K, G, asym, gid);
}

/* One work-item per packed byte (2 outputs). global = (roundup(N*K/2, L)), any L.
 * The output dtype is the program's DTYPE. */
__kernel void int4_dequantize(const __global uchar *Q, ulong q_off,
                              const __global float *S, ulong s_off,
                              const __global char *Z, ulong z_off,
                              __global st_t *Y, ulong y_off,
                              int N, int K, int G, int asym)
{
    Q += q_off; S += s_off; Y += y_off;
    if (asym) Z += z_off;
    const size_t gid = get_global_id(0);
    const size_t kb = (size_t)(K / 2);
    if (gid >= (size_t)N * kb) return;
    const size_t n = gid / kb;
    const int k = 2 * (int)(gid % kb);
    const size_t gi = n * (size_t)(K / G) + (size_t)(k / G);
    const float s = S[gi];
    const float z = asym ? (float)Z[gi] : 8.0f;
    const uchar b = Q[gid];
    st(Y, 2 * gid, s * ((float)(b & 15) - z));
    st(Y, 2 * gid + 1, s * ((float)(b >> 4) - z));
}

/* ------------------------------------------------------------------------- */
/* W4A16 GEMV (M <= GV_MAXM): a work-group owns GV_ROWS output rows n; its     */
/* GV_WG work-items stride over K in 8-element (4-byte) chunks, so each packed */
/* weight byte is read exactly once; the activation chunk (M x 8) is loaded   */
/* once per work-item and reused for all GV_ROWS rows. Partial sums are        */
/* reduced in local memory (fixed tree: deterministic).                        */
/* ------------------------------------------------------------------------- */

inline void int4_gemv_block(const __global st_t *X, int M,
                            const __global uchar *Q, const __global float *S,
                            const __global char *Z, int asym,
                            __global st_t *Y, int N, int K, int G, int n0,
                            __local float *red)
{
    const int tid = get_local_id(0);
    const int KB = K / 2;
    const int NG = K / G;
    const int nchunks = (K + 7) / 8;
    const bool g8 = (G % 8) == 0;      /* every 8-element chunk lies in one group */
    float acc[GV_MAXM][GV_ROWS];
#pragma unroll
    for (int m = 0; m < GV_MAXM; m++)
#pragma unroll
        for (int r = 0; r < GV_ROWS; r++) acc[m][r] = 0.0f;

    int c_start = 0;
#if GV_VEC
    /* CPU path: 32-element (16-byte) chunks; needs every chunk inside one group
     * (G % 32 == 0); the K % 32 tail (and G % 32 != 0) falls through to the
     * 8-element loop. Chunk-outer: each activation chunk is loaded and split into
     * its even/odd halves once, then reused by all GV_ROWS rows, and the zero
     * point leaves the inner loop through the chunk's activation sum:
     * s * sum((u - z) x) = s * (sum(u x) - z * sum(x)). */
    if ((G & 31) == 0) {
        const int nvec = K / 32;
        c_start = nvec * 4;
        float8 av[GV_MAXM][GV_ROWS];
#pragma unroll
        for (int m = 0; m < GV_MAXM; m++)
#pragma unroll
            for (int r = 0; r < GV_ROWS; r++) av[m][r] = (float8)(0.0f);
        /* each work-item a contiguous run of chunks: PoCL runs the work-items one
         * after the other, so interleaved chunks would sweep every row GV_WG times */
        const int per = (nvec + GV_WG - 1) / GV_WG;
        const int c_hi = pc_min_i(nvec, (tid + 1) * per);
        for (int c = tid * per; c < c_hi; c++) {
            const int k0 = 32 * c;
            const int g = k0 / G;
            float8 xe0[GV_MAXM], xo0[GV_MAXM], xe1[GV_MAXM], xo1[GV_MAXM], xs[GV_MAXM];
#pragma unroll
            for (int m = 0; m < GV_MAXM; m++) {
                if (m < M) {
                    const __global st_t *xr = X + (size_t)m * (size_t)K + (size_t)k0;
                    const float8 x0 = ld8(xr), x1 = ld8(xr + 8), x2 = ld8(xr + 16), x3 = ld8(xr + 24);
                    xe0[m] = (float8)(x0.even, x1.even);
                    xo0[m] = (float8)(x0.odd, x1.odd);
                    xe1[m] = (float8)(x2.even, x3.even);
                    xo1[m] = (float8)(x2.odd, x3.odd);
                    xs[m] = (xe0[m] + xo0[m]) + (xe1[m] + xo1[m]);
                }
            }
#pragma unroll
            for (int r = 0; r < GV_ROWS; r++) {
                const int n = pc_min_i(n0 + r, N - 1);     /* rows past N: read row N-1, never stored */
                const uchar16 q = vload16(0, Q + (size_t)n * (size_t)KB + (size_t)(k0 / 2));
                const size_t si = (size_t)n * (size_t)NG + (size_t)g;
                const float8 z8 = (float8)(asym ? (float)Z[si] : 8.0f);
                const float8 s8 = (float8)(S[si]);
                /* bytes 0..7 -> elements 0..15 (low nibble even, high odd), bytes 8..15 -> 16..31 */
                const float16 lo = convert_float16(q & (uchar16)(15));
                const float16 hi = convert_float16(q >> (uchar16)(4));
#pragma unroll
                for (int m = 0; m < GV_MAXM; m++) {
                    if (m < M) {
                        float8 pr = lo.lo * xe0[m];
                        pr = fma(hi.lo, xo0[m], pr);
                        pr = fma(lo.hi, xe1[m], pr);
                        pr = fma(hi.hi, xo1[m], pr);
                        av[m][r] = fma(s8, fma(-z8, xs[m], pr), av[m][r]);
                    }
                }
            }
        }
#pragma unroll
        for (int m = 0; m < GV_MAXM; m++)
#pragma unroll
            for (int r = 0; r < GV_ROWS; r++) acc[m][r] = pc_hsum8(av[m][r]);
    }
#else
    /* GPU path: 32-element chunks -- one 16-byte load of packed weights per
     * row, one scale per chunk (G % 32 == 0), rows 16-byte aligned. Nibbles
     * become floats by the exponent trick, as_float(0x4B000000 | u) = 2^23 + u,
     * so (u - z) is one full-rate subtraction instead of a quarter-rate
     * int-to-float conversion. The K % 32 tail falls through. */
    if (GV_WIDE && (G & 31) == 0 && (KB & 15) == 0 && ((size_t)Q & 15) == 0) {
        /* x rows 16-byte aligned too: plain float4 loads (vload4 cannot assume it) */
        const bool xal = DTYPE == 0 && (K & 3) == 0 && ((size_t)X & 15) == 0;
        const int nvec = K / 32;
        c_start = nvec * 4;
        /* GV_PAIR chunks per step: their loads are all in flight before the math */
        for (int c = tid; c < nvec; c += GV_PAIR * GV_WG) {
            uint4 qv[GV_PAIR][GV_ROWS];
            float sv[GV_PAIR][GV_ROWS], zv[GV_PAIR][GV_ROWS];
#pragma unroll
            for (int h = 0; h < GV_PAIR; h++) {
                const int k0 = 32 * pc_min_i(c + h * GV_WG, nvec - 1);   /* past the end: re-read, not used */
                const int g = k0 / G;
#pragma unroll
                for (int r = 0; r < GV_ROWS; r++) {
                    const int n = pc_min_i(n0 + r, N - 1);    /* rows past N: read row N-1, never stored */
                    qv[h][r] = *(const __global uint4 *)(Q + (size_t)n * (size_t)KB + (size_t)(k0 / 2));
                    const size_t si = (size_t)n * (size_t)NG + (size_t)g;
                    sv[h][r] = S[si];
                    zv[h][r] = 8388608.0f + (asym ? (float)Z[si] : 8.0f);
                }
            }
#pragma unroll
            for (int h = 0; h < GV_PAIR; h++) {
              if (c + h * GV_WG < nvec) {
                const int k0 = 32 * (c + h * GV_WG);
#pragma unroll
                for (int w = 0; w < 4; w++) {
#pragma unroll
                    for (int m = 0; m < GV_MAXM; m++) {
                        if (m < M) {
                            const __global st_t *xp = X + (size_t)m * (size_t)K + (size_t)(k0 + 8 * w);
                            float8 x8;
#if DTYPE == 0
                            if (xal) x8 = (float8)(*(const __global float4 *)xp, *(const __global float4 *)(xp + 4));
                            else
#endif
                                x8 = ld8(xp);
                            const float xs[8] = {x8.s0, x8.s1, x8.s2, x8.s3, x8.s4, x8.s5, x8.s6, x8.s7};
#pragma unroll
                            for (int r = 0; r < GV_ROWS; r++) {
                                const uint4 q4 = qv[h][r];
                                const uint bits = w == 0 ? q4.x : w == 1 ? q4.y : w == 2 ? q4.z : q4.w;
                                float d = 0.0f;
#pragma unroll
                                for (int i = 0; i < 8; i++)
                                    d = fma(as_float(((bits >> (4 * i)) & 15u) | 0x4B000000u) - zv[h][r], xs[i], d);
                                acc[m][r] = fma(sv[h][r], d, acc[m][r]);
                            }
                        }
                    }
                }
              }
            }
        }
    }
#endif
    for (int c = c_start + tid; c < nchunks; c += GV_WG) {
        const int k0 = 8 * c;
        const bool full = (k0 + 8 <= K);
        float xv[GV_MAXM][8];
#pragma unroll
        for (int m = 0; m < GV_MAXM; m++) {
            if (m < M) {
                const __global st_t *xr = X + (size_t)m * (size_t)K + (size_t)k0;
#pragma unroll
                for (int i = 0; i < 8; i++) xv[m][i] = (full || k0 + i < K) ? ld(xr, i) : 0.0f;
            }
        }
#pragma unroll
        for (int r = 0; r < GV_ROWS; r++) {
            const int n = n0 + r;
            if (n < N) {
                const __global uchar *qr = Q + (size_t)n * (size_t)KB + (size_t)(k0 / 2);
                uint bits;
                if (full && (((size_t)qr & 3) == 0)) {
                    bits = *(const __global uint *)qr;
                } else {
                    bits = 0;
                    for (int b = 0; b < 4; b++)
                        if (k0 + 2 * b < K) bits |= ((uint)qr[b]) << (8 * b);
                }
                const size_t srow = (size_t)n * (size_t)NG;
                if (g8 || (k0 / G) == (pc_min_i(k0 + 7, K - 1) / G)) {
                    const int g = k0 / G;
                    const float s = S[srow + g];
                    const float z = asym ? (float)Z[srow + g] : 8.0f;
                    float w[8];
#pragma unroll
                    for (int i = 0; i < 8; i++) w[i] = as_float(((bits >> (4 * i)) & 15u) | 0x4B000000u) - (8388608.0f + z);
#pragma unroll
                    for (int m = 0; m < GV_MAXM; m++) {
                        if (m < M) {
                            float d = 0.0f;
#pragma unroll
                            for (int i = 0; i < 8; i++) d = fma(w[i], xv[m][i], d);
                            acc[m][r] = fma(s, d, acc[m][r]);
                        }
                    }
                } else {                    /* chunk straddles groups (G % 8 != 0) */
                    float w[8];
#pragma unroll
                    for (int i = 0; i < 8; i++) {
                        const int k = pc_min_i(k0 + i, K - 1);
                        const int g = k / G;
                        const float s = S[srow + g];
                        const float z = asym ? (float)Z[srow + g] : 8.0f;
                        w[i] = s * ((float)((bits >> (4 * i)) & 15u) - z);
                    }
#pragma unroll
                    for (int m = 0; m < GV_MAXM; m++) {
                        if (m < M) {
                            float d = 0.0f;
#pragma unroll
                            for (int i = 0; i < 8; i++) d = fma(w[i], xv[m][i], d);
                            acc[m][r] += d;
                        }
                    }
                }
            }
        }
    }

    /* reduction: red[(m*GV_ROWS + r) * GV_WG + tid]. No barrier before this
     * point, so acc never lives across one (PoCL would keep it in memory);
     * the trailing barrier below protects red for the next call. */
#pragma unroll
    for (int m = 0; m < GV_MAXM; m++)
        if (m < M)
#pragma unroll
            for (int r = 0; r < GV_ROWS; r++) red[(m * GV_ROWS + r) * GV_WG + tid] = acc[m][r];
    barrier(CLK_LOCAL_MEM_FENCE);
    /* two fixed-order stages (3 barriers instead of log2(GV_WG) + 2): each lane's GV_WG
     * partials in GV_RP segments summed in place into the segment's first slot, then
     * the GV_RP segment sums. */
    const int lanes = M * GV_ROWS;
    for (int j = tid; j < lanes * GV_RP; j += GV_WG) {
        __local float *seg = red + (j / GV_RP) * GV_WG + (j % GV_RP) * (GV_WG / GV_RP);
        float sum = seg[0];
        for (int i = 1; i < GV_WG / GV_RP; i++) sum += seg[i];
        seg[0] = sum;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int l = tid; l < lanes; l += GV_WG) {
        float sum = 0.0f;
        for (int p = 0; p < GV_RP; p++) sum += red[l * GV_WG + p * (GV_WG / GV_RP)];
        const int m = l / GV_ROWS, r = l % GV_ROWS;
        const int n = n0 + r;
        if (n < N) st(Y, (size_t)m * (size_t)N + (size_t)n, sum);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
}

#if (GV_WG & (GV_WG - 1)) != 0
#error "GV_WG must be a power of two"
#endif

/* y[M,N] = x[M,K] . W^T, M <= GV_MAXM.
 * global = (ceil(N/GV_ROWS) * GV_WG), local = (GV_WG).
 * local memory: 4 * GV_MAXM * GV_ROWS * GV_WG bytes. */
__kernel __attribute__((reqd_work_group_size(GV_WG, 1, 1)))
void int4_gemv(const __global st_t *X, ulong x_off,
               const __global uchar *Q, ulong q_off,
               const __global float *S, ulong s_off,
               const __global char *Z, ulong z_off,
               __global st_t *Y, ulong y_off,
               int M, int N, int K, int G, int asym)
{
    __local float red[GV_MAXM * GV_ROWS * GV_WG];
    X += x_off; Q += q_off; S += s_off; Y += y_off;
    if (asym) Z += z_off;
    const int n0 = get_group_id(0) * GV_ROWS;
    for (int m0 = 0; m0 < M; m0 += GV_MAXM)  /* M > GV_MAXM still correct (re-reads W) */
        int4_gemv_block(X + (size_t)m0 * (size_t)K, pc_min_i(GV_MAXM, M - m0), Q, S, Z, asym,
                        Y + (size_t)m0 * (size_t)N, N, K, G, n0, red);
}

/* grouped W4A16 GEMV: q[E,N,K/2], scales/zeros [E,N,K/G], rows of expert e
 * are offs[e]..offs[e+1] of x[T,K] / y[T,N]; each segment is processed in
 * chunks of GV_MAXM rows (weights re-read per chunk). Best when the rows per
 * expert are few (decode).
 * global = (ceil(N/GV_ROWS) * GV_WG, E), local = (GV_WG, 1). */
__kernel __attribute__((reqd_work_group_size(GV_WG, 1, 1)))
void int4_grouped_gemv(const __global st_t *X, ulong x_off,
                       const __global uchar *Q, ulong q_off,
                       const __global float *S, ulong s_off,
                       const __global char *Z, ulong z_off,
                       const __global int *offs, ulong offs_off,
                       __global st_t *Y, ulong y_off,
                       int T, int N, int K, int G, int asym, int E)
{
    __local float red[GV_MAXM * GV_ROWS * GV_WG];
    X += x_off; Q += q_off; S += s_off; Y += y_off; offs += offs_off;
    if (asym) Z += z_off;
    const int e = get_group_id(1);
    /* clamp like grouped_tile_lookup: never touch rows outside [0, T) */
    int prev = 0, a = 0, b = 0;
    for (int i = 0; i <= e; i++) {
        a = pc_max_i(prev, pc_min_i(pc_max_i(offs[i], 0), T));
        b = pc_max_i(a, pc_min_i(pc_max_i(offs[i + 1], 0), T));
        prev = b;
    }
    const size_t qe = (size_t)e * (size_t)N * (size_t)(K / 2);
    const size_t se = (size_t)e * (size_t)N * (size_t)(K / G);
    const int n0 = get_group_id(0) * GV_ROWS;
    for (int m0 = a; m0 < b; m0 += GV_MAXM)
        int4_gemv_block(X + (size_t)m0 * (size_t)K, pc_min_i(GV_MAXM, b - m0),
                        Q + qe, S + se, asym ? Z + se : Z, asym,
                        Y + (size_t)m0 * (size_t)N, N, K, G, n0, red);
}

/* ------------------------------------------------------------------------- */
/* W4A16 GEMM (large M): the tiled GEMM of common.cl with the B slab          */
/* dequantized into local memory (each packed byte read once per tile).       */
/* ------------------------------------------------------------------------- */

inline void gemm_load_b_int4(__local float *Bs, const __global uchar *Q,
                             const __global float *S, const __global char *Z, int asym,
                             int N, int K, int G, int col0, int k0, int tid)
{
#if GEMM_CPU && (TK % 16) == 0
    /* CPU devices: 16 weights (8 bytes) of one row per step, dequantized as two
     * float8 (one scale and zero: G % 16 == 0), stored transposed; the scalar loop
     * below does a byte at a time with its own scale and zero loads. */
    if ((G & 15) == 0 && (K & 15) == 0) {
        for (int l = tid; l < TN * (TK / 16); l += GEMM_NT) {
            const int n = l / (TK / 16), c = l % (TK / 16);
            const int gn = col0 + n, gk = k0 + 16 * c;
            float8 lo = (float8)(0.0f), hi = (float8)(0.0f);
            if (gn < N && gk < K) {
                const uchar8 b = vload8(0, Q + (size_t)gn * (size_t)(K / 2) + (size_t)(gk / 2));
                const size_t gi = (size_t)gn * (size_t)(K / G) + (size_t)(gk / G);
                const float8 sv = (float8)(S[gi]);
                const float8 zv = (float8)(asym ? (float)Z[gi] : 8.0f);
                lo = (convert_float8(b & (uchar8)(15)) - zv) * sv;    /* k = gk + 2i */
                hi = (convert_float8(b >> (uchar8)(4)) - zv) * sv;    /* k = gk + 2i + 1 */
            }
            __local float *dst = Bs + (16 * c) * BS_LD + n;
            dst[0 * BS_LD] = lo.s0;  dst[1 * BS_LD] = hi.s0;  dst[2 * BS_LD] = lo.s1;  dst[3 * BS_LD] = hi.s1;
            dst[4 * BS_LD] = lo.s2;  dst[5 * BS_LD] = hi.s2;  dst[6 * BS_LD] = lo.s3;  dst[7 * BS_LD] = hi.s3;
            dst[8 * BS_LD] = lo.s4;  dst[9 * BS_LD] = hi.s4;  dst[10 * BS_LD] = lo.s5; dst[11 * BS_LD] = hi.s5;
            dst[12 * BS_LD] = lo.s6; dst[13 * BS_LD] = hi.s6; dst[14 * BS_LD] = lo.s7; dst[15 * BS_LD] = hi.s7;
        }
        return;
    }
#endif
#define KBT (TK / 2)
#pragma unroll
    for (int c = 0; c < (TN * KBT + GEMM_NT - 1) / GEMM_NT; c++) {
        int l = c * GEMM_NT + tid;
        if ((TN * KBT) % GEMM_NT == 0 || l < TN * KBT) {
            int n = l / KBT, kb = l % KBT;
            int gn = col0 + n, gk = k0 + 2 * kb;
            float w0 = 0.0f, w1 = 0.0f;
            if (gn < N && gk < K) {
                const uchar b = Q[(size_t)gn * (size_t)(K / 2) + (size_t)(gk / 2)];
                const size_t gi = (size_t)gn * (size_t)(K / G) + (size_t)(gk / G);
                const float s = S[gi];
                const float z = asym ? (float)Z[gi] : 8.0f;
                w0 = s * ((float)(b & 15) - z);
                w1 = s * ((float)(b >> 4) - z);
            }
            Bs[(2 * kb) * BS_LD + n] = w0;
            Bs[(2 * kb + 1) * BS_LD + n] = w1;
        }
    }
#undef KBT
}

#define GEMM_ATTR __attribute__((reqd_work_group_size(RTSN, RTSM, 1)))

/* y[M,N] = x[M,K] . W^T. global = (ceil(N/TN)*RTSN, ceil(M/TM)*RTSM), local (RTSN, RTSM). */
__kernel GEMM_ATTR void int4_gemm(const __global st_t *X, ulong x_off,
                                  const __global uchar *Q, ulong q_off,
                                  const __global float *S, ulong s_off,
                                  const __global char *Z, ulong z_off,
                                  __global st_t *Y, ulong y_off,
                                  int M, int N, int K, int G, int asym)
{
    __local float As[AS_SIZE] __attribute__((aligned(16)));
    __local float Bs[BS_SIZE] __attribute__((aligned(16)));
    X += x_off; Q += q_off; S += s_off; Y += y_off;
    if (asym) Z += z_off;
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int tid = ty * RTSN + tx;
    const int col0 = get_group_id(0) * TN, row0 = get_group_id(1) * TM;
    gacc_t acc[WPTM][GACC_N];
    gemm_zero(acc);
    for (int k0 = 0; k0 < K; k0 += TK) {
        gemm_load_a(As, X, M, K, row0, k0, tid);
        gemm_load_b_int4(Bs, Q, S, Z, asym, N, K, G, col0, k0, tid);
        barrier(CLK_LOCAL_MEM_FENCE);
        gemm_compute(As, Bs, acc, tx, ty, M - row0, N - col0);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    gemm_store(Y, M, N, row0, col0, acc, tx, ty);
}

/* grouped: global = (ceil(N/TN)*RTSN, (ceil(T/TM) + E)*RTSM), local (RTSN, RTSM). */
__kernel GEMM_ATTR void int4_grouped_gemm(const __global st_t *X, ulong x_off,
                                          const __global uchar *Q, ulong q_off,
                                          const __global float *S, ulong s_off,
                                          const __global char *Z, ulong z_off,
                                          const __global int *offs, ulong offs_off,
                                          __global st_t *Y, ulong y_off,
                                          int T, int N, int K, int G, int asym, int E)
{
    __local float As[AS_SIZE] __attribute__((aligned(16)));
    __local float Bs[BS_SIZE] __attribute__((aligned(16)));
    X += x_off; Q += q_off; S += s_off; Y += y_off; offs += offs_off;
    if (asym) Z += z_off;
    int seg0, cnt, row0;
    const int e0 = grouped_tile_lookup(offs, E, T, get_group_id(1), &seg0, &cnt, &row0);
    const int e = pc_max_i(e0, 0);
    const int kend = (e0 < 0) ? 0 : K;       /* surplus work-group: no K steps, no stores */
    const size_t qe = (size_t)e * (size_t)N * (size_t)(K / 2);
    const size_t se = (size_t)e * (size_t)N * (size_t)(K / G);
    const __global st_t *A = X + (size_t)seg0 * (size_t)K;
    __global st_t *C = Y + (size_t)seg0 * (size_t)N;
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int tid = ty * RTSN + tx;
    const int col0 = get_group_id(0) * TN;
    gacc_t acc[WPTM][GACC_N];
    gemm_zero(acc);
    for (int k0 = 0; k0 < kend; k0 += TK) {
        gemm_load_a(As, A, cnt, K, row0, k0, tid);
        gemm_load_b_int4(Bs, Q + qe, S + se, asym ? Z + se : Z, asym, N, K, G, col0, k0, tid);
        barrier(CLK_LOCAL_MEM_FENCE);
        gemm_compute(As, Bs, acc, tx, ty, cnt - row0, N - col0);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    gemm_store(C, cnt, N, row0, col0, acc, tx, ty);
}
