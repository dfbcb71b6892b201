/*
 * elementwise.cl -- rmsNorm, addRmsNorm, softmax, silu, swiglu, rope, add, scale
 * (common.cl is prepended by the host).
 *
 * Build macros: DTYPE; WG = local size of the row kernels (rms_norm,
 * softmax), a power of two (default 256); ROW_VEC (1 = float8 rms_norm and
 * softmax for CPU devices).
 * Elementwise kernels (silu, swiglu, add, scale): one work-item per element,
 * global = (roundup(n, L)), any local size L (or NULL).
 * In-place use (output buffer == input buffer, same offset) is allowed for
 * every kernel here.
 */

#ifndef WG
#define WG 256
#endif
#ifndef ROW_VEC
#define ROW_VEC 0            /* 1: CPU vector paths of rms_norm and softmax (float8 per work-item) */
#endif
#if (WG & (WG - 1)) != 0
#error "WG must be a power of two"
#endif

/* Deterministic tree reductions over the work-group (local size WG): wg_sum and
 * wg_max over floats, wg_max2 over (value, flag) pairs for the CPU softmax. */
#define PC_WG_REDUCE(NAME, T, COMBINE)                          \
inline T NAME(T v, __local T *red)                              \
{                                                               \
    const int tid = get_local_id(0);                            \
    red[tid] = v;                                               \
    barrier(CLK_LOCAL_MEM_FENCE);                               \
    for (int s = WG / 2; s > 0; s >>= 1) {                      \
        if (tid < s) red[tid] = COMBINE(red[tid], red[tid + s]); \
        barrier(CLK_LOCAL_MEM_FENCE);                           \
    }                                                           \
    const T r = red[0];                                         \
    barrier(CLK_LOCAL_MEM_FENCE);                               \
    return r;                                                   \
}
#define PC_ADD(a, b) ((a) + (b))
PC_WG_REDUCE(wg_sum, float, PC_ADD)
PC_WG_REDUCE(wg_max, float, fmax)
PC_WG_REDUCE(wg_max2, float2, fmax)

/* y = x / sqrt(mean(x^2) + eps) * weight ; x,y [rows, D], weight [D].
 * global = (rows * WG), local = (WG); local memory 4*WG bytes. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void rms_norm(const __global st_t *X, ulong x_off,
              const __global st_t *W, ulong w_off,
              __global st_t *Y, ulong y_off,
              int rows, int D, float eps)
{
    __local float red[WG];
    X += x_off; W += w_off; Y += y_off;
    const int row = get_group_id(0);
    const int tid = get_local_id(0);
    const size_t base = (size_t)pc_min_i(row, rows - 1) * (size_t)D;
    float ss = 0.0f;
    /* ROW_VEC (CPU devices): 8 consecutive elements per step as float8; the D % 8
     * tail stays scalar */
    const int dv = ROW_VEC ? (D & ~7) : 0;
#if ROW_VEC
    {
        float8 s8 = (float8)(0.0f);
        for (int i = 8 * tid; i < dv; i += 8 * WG) {
            const float8 v = ld8(X + base + i);
            s8 = fma(v, v, s8);
        }
        const float4 s4 = s8.lo + s8.hi;
        ss = (s4.x + s4.y) + (s4.z + s4.w);
    }
#endif
    for (int i = dv + tid; i < D; i += WG) {
        const float v = ld(X, base + i);
        ss = fma(v, v, ss);
    }
    ss = wg_sum(ss, red);
    const float r = 1.0f / sqrt(ss / (float)D + eps);
    if (row < rows) {
#if ROW_VEC
        for (int i = 8 * tid; i < dv; i += 8 * WG)
            st8(Y + base + i, ld8(X + base + i) * (float8)(r) * ld8(W + i));
#endif
        for (int i = dv + tid; i < D; i += WG) st(Y, base + i, ld(X, base + i) * r * ld(W, i));
    }
}

/* Fused residual add + RMSNorm: H = X + R, stored in the activation dtype (the new
 * residual), and Y = H / sqrt(mean(H^2) + eps) * weight of that stored H, so the result
 * equals add then rms_norm. X, R, Y, H [rows, D], weight [D].
 * global = (rows * WG), local = (WG); local memory 4*WG bytes. Every work-item reads back
 * only the H elements it wrote, so no barrier separates the passes. The host stages
 * outputs that overlap an input. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void add_rms_norm(const __global st_t *X, ulong x_off,
                  const __global st_t *R, ulong r_off,
                  const __global st_t *W, ulong w_off,
                  __global st_t *Y, ulong y_off,
                  __global st_t *H, ulong h_off,
                  int rows, int D, float eps)
{
    __local float red[WG];
    X += x_off; R += r_off; W += w_off; Y += y_off; H += h_off;
    const int row = get_group_id(0);
    const int tid = get_local_id(0);
    const size_t base = (size_t)pc_min_i(row, rows - 1) * (size_t)D;
    float ss = 0.0f;
    if (row < rows) {
        for (int i = tid; i < D; i += WG) {
            st(H, base + i, ld(X, base + i) + ld(R, base + i));
            const float h = ld(H, base + i);
            ss = fma(h, h, ss);
        }
    }
    ss = wg_sum(ss, red);
    const float inv = 1.0f / sqrt(ss / (float)D + eps);
    if (row < rows)
        for (int i = tid; i < D; i += WG) st(Y, base + i, ld(H, base + i) * inv * ld(W, i));
}

/* The non-finite rows of softmax (docs/kernels.md): a NaN anywhere gives NaN (also
 * beside +inf, as the reference), +inf entries share the mass equally (cnt of them),
 * an all -inf row gives zeros. Returns false for the ordinary rows, which the caller
 * writes. Work-item tid writes elements tid, tid + WG, ... */
inline bool softmax_special_row(const __global st_t *X, __global st_t *Y, size_t base, int D,
                                float m, float nan_seen, float cnt)
{
    const int tid = get_local_id(0);
    if (nan_seen != 0.0f) {
        for (int i = tid; i < D; i += WG) st(Y, base + i, NAN);
    } else if (m == INFINITY) {
        const float share = 1.0f / cnt;
        for (int i = tid; i < D; i += WG) st(Y, base + i, (ld(X, base + i) == INFINITY) ? share : 0.0f);
    } else if (m == PC_NEG_INF) {
        for (int i = tid; i < D; i += WG) st(Y, base + i, 0.0f);
    } else {
        return false;
    }
    return true;
}

/* row-wise softmax, max-subtracted. All -inf row -> 0; a row with +inf
 * entries gives them equal shares of 1 and 0 elsewhere; NaN propagates.
 * global = (rows * WG), local = (WG); local memory 4*WG bytes. */
#if ROW_VEC
/* CPU devices (ROW_VEC): work-item tid owns 8 consecutive elements per step as
 * float8, so exp is the vector math library's 8-wide exp. Two work-group reductions
 * (max with a NaN flag, then the sum) instead of four; for f32 each exp is computed
 * once and stored, then scaled in place (the f16/bf16 rows recompute it rather than
 * round twice). The +inf count is only needed on the rare +inf path, where every
 * work-item counts the whole row itself (before the last barrier: in place, the row
 * is overwritten after it). The D % 8 tail stays scalar. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void softmax(const __global st_t *X, ulong x_off,
             __global st_t *Y, ulong y_off,
             int rows, int D)
{
    /* every barrier is reached unconditionally (PoCL 3.1 mishandles barriers
     * under uniform branches) */
    __local float red[WG];
    __local float2 red2[WG];
    X += x_off; Y += y_off;
    const int row = get_group_id(0);
    const int tid = get_local_id(0);
    const size_t base = (size_t)pc_min_i(row, rows - 1) * (size_t)D;
    const int dv = D & ~7;
    float m = PC_NEG_INF, nan_seen = 0.0f;
    {
        float8 m8 = (float8)(PC_NEG_INF);
        int8 nan8 = (int8)(0);
        for (int i = 8 * tid; i < dv; i += 8 * WG) {
            const float8 v = ld8(X + base + i);
            m8 = fmax(m8, v);
            nan8 |= isnan(v);
        }
        m = pc_hmax8(m8);
        if (any(nan8)) nan_seen = 1.0f;
    }
    for (int i = dv + tid; i < D; i += WG) {
        const float v = ld(X, base + i);
        m = fmax(m, v);
        if (isnan(v)) nan_seen = 1.0f;
    }
    const float2 mn = wg_max2((float2)(m, nan_seen), red2);
    m = mn.x;
    nan_seen = mn.y;
    /* the common case: finite max, no NaN (row < rows: padding groups write nothing) */
    const bool plain = isfinite(m) && nan_seen == 0.0f && row < rows;
    float s = 0.0f;
    if (isfinite(m)) {
        float8 s8 = (float8)(0.0f);
        for (int i = 8 * tid; i < dv; i += 8 * WG) {
            const float8 e = exp(ld8(X + base + i) - (float8)(m));
            s8 += e;
#if DTYPE == 0
            if (plain) vstore8(e, 0, Y + base + i);
#endif
        }
        const float4 s4 = s8.lo + s8.hi;
        s = (s4.x + s4.y) + (s4.z + s4.w);
        for (int i = dv + tid; i < D; i += WG) s += exp(ld(X, base + i) - m);
    }
    /* counted before the barrier below: in-place writes follow it */
    float cnt = 0.0f;
    if (m == INFINITY)
        for (int i = 0; i < D; i++) cnt += (ld(X, base + i) == INFINITY) ? 1.0f : 0.0f;
    s = wg_sum(s, red);
    if (row < rows) {
        if (!softmax_special_row(X, Y, base, D, m, nan_seen, cnt)) {
            const float inv = 1.0f / s;
            for (int i = 8 * tid; i < dv; i += 8 * WG) {
#if DTYPE == 0
                vstore8(vload8(0, Y + base + i) * (float8)(inv), 0, Y + base + i);
#else
                st8(Y + base + i, exp(ld8(X + base + i) - (float8)(m)) * (float8)(inv));
#endif
            }
            for (int i = dv + tid; i < D; i += WG) st(Y, base + i, exp(ld(X, base + i) - m) * inv);
        }
    }
}
#else
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void softmax(const __global st_t *X, ulong x_off,
             __global st_t *Y, ulong y_off,
             int rows, int D)
{
    /* every barrier is reached unconditionally (PoCL 3.1 mishandles barriers
     * under uniform branches) */
    __local float red[WG];
    X += x_off; Y += y_off;
    const int row = get_group_id(0);
    const int tid = get_local_id(0);
    const size_t base = (size_t)pc_min_i(row, rows - 1) * (size_t)D;
    float m = PC_NEG_INF;
    float nan_seen = 0.0f;
    for (int i = tid; i < D; i += WG) {
        const float v = ld(X, base + i);
        m = fmax(m, v);
        if (isnan(v)) nan_seen = 1.0f;
    }
    m = wg_max(m, red);
    nan_seen = wg_max(nan_seen, red);
    const bool finite_m = isfinite(m);
    float s = 0.0f, cnt = 0.0f;
    for (int i = tid; i < D; i += WG) {
        const float v = ld(X, base + i);
        cnt += (v == INFINITY) ? 1.0f : 0.0f;
        if (finite_m) s += exp(v - m);
    }
    s = wg_sum(s, red);
    cnt = wg_sum(cnt, red);
    if (row < rows) {
        if (!softmax_special_row(X, Y, base, D, m, nan_seen, cnt)) {
            const float inv = 1.0f / s;
            for (int i = tid; i < D; i += WG) st(Y, base + i, exp(ld(X, base + i) - m) * inv);
        }
    }
}
#endif

inline float silu_f(float x) { return x / (1.0f + exp(-x)); }

/* y = x * sigmoid(x). global = (roundup(n, L)) */
__kernel void silu(const __global st_t *X, ulong x_off, __global st_t *Y, ulong y_off, int n)
{
    const size_t i = get_global_id(0);
    if (i >= (size_t)n) return;
    X += x_off; Y += y_off;
    st(Y, i, silu_f(ld(X, i)));
}

/* y = silu(gate) * up. global = (roundup(n, L)) */
__kernel void swiglu(const __global st_t *Gt, ulong g_off, const __global st_t *U, ulong u_off,
                     __global st_t *Y, ulong y_off, int n)
{
    const size_t i = get_global_id(0);
    if (i >= (size_t)n) return;
    Gt += g_off; U += u_off; Y += y_off;
    st(Y, i, silu_f(ld(Gt, i)) * ld(U, i));
}

/* c = a + b. global = (roundup(n, L)) */
__kernel void add(const __global st_t *A, ulong a_off, const __global st_t *B, ulong b_off,
                  __global st_t *C, ulong c_off, int n)
{
    const size_t i = get_global_id(0);
    if (i >= (size_t)n) return;
    A += a_off; B += b_off; C += c_off;
    st(C, i, ld(A, i) + ld(B, i));
}

/* y = alpha * x. global = (roundup(n, L)) */
__kernel void scale(const __global st_t *X, ulong x_off, __global st_t *Y, ulong y_off,
                    int n, float alpha)
{
    const size_t i = get_global_id(0);
    if (i >= (size_t)n) return;
    X += x_off; Y += y_off;
    st(Y, i, alpha * ld(X, i));
}

/*
 * rope: x[T,H,D], positions i32 [T] -> y[T,H,D]. style 0 = neox (pairs
 * (i, i+R/2)), 1 = gptj (pairs (2i, 2i+1)); R = rotaryDim (even, <= D);
 * dims >= R pass through. Pair i rotates by pos * base^(-2i/R).
 * One work-item per (row, item): items 0..R/2-1 are pairs, R/2..D-R/2-1 copy
 * one pass-through element. global = (roundup(D - R/2, L0), T*H), local (L0, 1).
 * The angle pos * base^(-2i/R) and its cos/sin are computed in double when
 * the device has cl_khr_fp64 (PoCL and NVIDIA do): an f32 angle is off by
 * ~|angle| * 6e-8 rad, which breaks the f32 tolerance for positions beyond a
 * few hundred. Without fp64 the f32 path is used (documented limitation).
 */
#ifdef cl_khr_fp64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#define ROPE_FP64 1
#else
#define ROPE_FP64 0
#endif

__kernel void rope(const __global st_t *X, ulong x_off,
                   const __global int *POS, ulong pos_off,
                   __global st_t *Y, ulong y_off,
                   int T, int H, int D, int R, int style, float base)
{
    X += x_off; POS += pos_off; Y += y_off;
    const int it = get_global_id(0);
    const int row = get_global_id(1);
    const int half_r = R / 2;
    if (it >= D - half_r || row >= T * H) return;
    const size_t rb = (size_t)row * (size_t)D;
    if (it >= half_r) {                  /* pass-through dim */
        const int d = R + (it - half_r);
        st(Y, rb + d, ld(X, rb + d));
        return;
    }
    const int t = row / H;
    const int pos = POS[t];
    float c, s;
#if ROPE_FP64
    const double ang = (double)pos * pow((double)base, -2.0 * (double)it / (double)R);
    c = (float)cos(ang);
    s = (float)sin(ang);
#else
    const float ang = (float)pos * pow(base, -2.0f * (float)it / (float)R);
    c = cos(ang);
    s = sin(ang);
#endif
    int i0, i1;
    if (style == 0) { i0 = it; i1 = it + half_r; }
    else { i0 = 2 * it; i1 = 2 * it + 1; }
    const float a = ld(X, rb + i0), b = ld(X, rb + i1);
    st(Y, rb + i0, a * c - b * s);
    st(Y, rb + i1, a * s + b * c);
}
