/* SGEMM: panel packing (f32/f16/bf16 sources) and the MR x NR register-blocked tiles of
 * the scalar, AVX2 and NEON tables. */
#include "pck_internal.h"

#if PCK_X86
#include <immintrin.h>
#endif
#if PCK_ARM64
#include <arm_neon.h>
#endif

PCK_INLINE float load_elem(pck_dtype dt, const void *p, ptrdiff_t i) {
    switch (dt) {
    case PCK_DT_F16: return pck__f16_to_f32_1(((const uint16_t *)p)[i]);
    case PCK_DT_BF16: return pck__bf16_to_f32_1(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

PCK_INLINE const void *elem_ptr(pck_dtype dt, const void *p, ptrdiff_t i) {
    return (const char *)p + i * (dt == PCK_DT_F32 ? 4 : 2);
}

/* One sliver (width R, `rows` <= R valid) element by element; rows past `rows` are 0. */
static void pack_sliver_generic(pck_dtype dt, ptrdiff_t R, ptrdiff_t rows, ptrdiff_t kc,
                                const void *src, ptrdiff_t sr, ptrdiff_t sk, float *o) {
    for (ptrdiff_t k = 0; k < kc; k++)
        for (ptrdiff_t r = 0; r < R; r++)
            o[k * R + r] = r < rows ? load_elem(dt, src, r * sr + k * sk) : 0.0f;
}

/* ================================================================ scalar */

#define SMR 4
#define SNR 8

void pck__pack_scalar(pck_dtype dt, ptrdiff_t R, ptrdiff_t count, ptrdiff_t kc,
                      const void *src, ptrdiff_t sr, ptrdiff_t sk, float *out) {
    for (ptrdiff_t r0 = 0; r0 < count; r0 += R) {
        ptrdiff_t rows = count - r0 < R ? count - r0 : R;
        pack_sliver_generic(dt, R, rows, kc, elem_ptr(dt, src, r0 * sr), sr, sk,
                            out + (r0 / R) * kc * R);
    }
}

void pck__sgemm_kernel_scalar(ptrdiff_t kc, const float *ap, const float *bp, float *c,
                              ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n, int accumulate,
                              const float *pf) {
    (void)pf;
    float t[SMR][SNR] = {{0}};
    for (ptrdiff_t k = 0; k < kc; k++) {
        for (int i = 0; i < SMR; i++) {
            float a = ap[k * SMR + i];
            for (int j = 0; j < SNR; j++) t[i][j] += a * bp[k * SNR + j];
        }
    }
    for (ptrdiff_t i = 0; i < m; i++)
        for (ptrdiff_t j = 0; j < n; j++)
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + t[i][j] : t[i][j];
}

/* ================================================================ AVX2 (AVX-512: gemm_avx512.c) */
#if PCK_X86

PCK_INLINE PCK_AVX2 __m256 load8(pck_dtype dt, const void *p) {
    switch (dt) {
    case PCK_DT_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    case PCK_DT_BF16:
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
    default: return _mm256_loadu_ps((const float *)p);
    }
}

/* Store the first n (1..8) lanes of v. */
PCK_INLINE PCK_AVX2 void store_first(float *p, __m256 v, ptrdiff_t n) {
    if (n == 8) {
        _mm256_storeu_ps(p, v);
        return;
    }
    __m128 lo = _mm256_castps256_ps128(v);
    if (n >= 4) {
        _mm_storeu_ps(p, lo);
        p += 4;
        n -= 4;
        lo = _mm256_extractf128_ps(v, 1);
    }
    if (n >= 2) {
        _mm_storel_pi((__m64 *)p, lo);
        p += 2;
        n -= 2;
        lo = _mm_movehl_ps(lo, lo);
    }
    if (n) _mm_store_ss(p, lo);
}

/* Full sliver, source contiguous along r (B row-major / A column-major). */
PCK_INLINE PCK_AVX2 void pack_rows_contig(pck_dtype dt, ptrdiff_t R, ptrdiff_t kc,
                                          const void *src, ptrdiff_t sk, float *o) {
    for (ptrdiff_t k = 0; k < kc; k++) {
        const void *row = elem_ptr(dt, src, k * sk);
        ptrdiff_t r = 0;
        for (; r + 8 <= R; r += 8) _mm256_storeu_ps(o + k * R + r, load8(dt, elem_ptr(dt, row, r)));
        for (; r < R; r++) o[k * R + r] = load_elem(dt, row, r);
    }
}

/* Full sliver, source contiguous along k (A row-major / B weight layout): 8x8 transposes. */
PCK_INLINE PCK_AVX2 void pack_rows_transpose(pck_dtype dt, ptrdiff_t R, ptrdiff_t kc,
                                             const void *src, ptrdiff_t sr, float *o) {
    ptrdiff_t k = 0;
    for (; k + 8 <= kc; k += 8) {
        for (ptrdiff_t r0 = 0; r0 < R; r0 += 8) {
            ptrdiff_t nrow = R - r0 < 8 ? R - r0 : 8;
            __m256 v[8];
            for (int i = 0; i < 8; i++)
                v[i] = i < nrow ? load8(dt, elem_ptr(dt, src, (r0 + i) * sr + k))
                                : _mm256_setzero_ps();
            pck__transpose8(v);
            for (int i = 0; i < 8; i++) store_first(o + (k + i) * R + r0, v[i], nrow);
        }
    }
    for (; k < kc; k++)
        for (ptrdiff_t r = 0; r < R; r++) o[k * R + r] = load_elem(dt, src, r * sr + k);
}

PCK_INLINE PCK_AVX2 void pack_avx2_dt(pck_dtype dt, ptrdiff_t R, ptrdiff_t count, ptrdiff_t kc,
                                      const void *src, ptrdiff_t sr, ptrdiff_t sk, float *out) {
    for (ptrdiff_t r0 = 0; r0 < count; r0 += R) {
        ptrdiff_t rows = count - r0 < R ? count - r0 : R;
        const void *s = elem_ptr(dt, src, r0 * sr);
        float *o = out + (r0 / R) * kc * R;
        if (rows == R && sr == 1)
            pack_rows_contig(dt, R, kc, s, sk, o);
        else if (rows == R && sk == 1)
            pack_rows_transpose(dt, R, kc, s, sr, o);
        else
            pack_sliver_generic(dt, R, rows, kc, s, sr, sk, o);
    }
}

PCK_AVX2 void pck__pack_avx2(pck_dtype dt, ptrdiff_t R, ptrdiff_t count, ptrdiff_t kc,
                             const void *src, ptrdiff_t sr, ptrdiff_t sk, float *out) {
    switch (dt) { /* constant dt per copy so the loads specialise */
    case PCK_DT_F16: pack_avx2_dt(PCK_DT_F16, R, count, kc, src, sr, sk, out); break;
    case PCK_DT_BF16: pack_avx2_dt(PCK_DT_BF16, R, count, kc, src, sr, sk, out); break;
    default: pack_avx2_dt(PCK_DT_F32, R, count, kc, src, sr, sk, out); break;
    }
}

/* 6x16: 12 accumulators + 2 B vectors + 1 broadcast = 15 of 16 ymm registers; two FMA
 * pipes with 4-cycle latency need >= 8 independent chains. */
#define AMR 6
#define ANR 16

/* R <= AMR rows of the tile (the A sliver keeps its AMR stride): a tile of at most 4 rows runs
 * 8 FMA chains instead of 12, 4 cycles per k instead of 6 (a chain's latency bounds it), which
 * MoE experts' row counts (~64 +- 8) leave in one tile in two. Every C element is the same
 * sequence of FMAs over k in either, so the bits do not depend on the tile's height. */
PCK_INLINE PCK_AVX2 void sgemm_avx2_rows(const int R, ptrdiff_t kc, const float *ap,
                                         const float *bp, float *c, ptrdiff_t ldc, ptrdiff_t m,
                                         ptrdiff_t n, int accumulate, const float *pf) {
    if (!pf) pf = bp; /* re-touching the current sliver costs a load, no branch in the loop */
    __m256 acc[AMR][2];
    for (int i = 0; i < R; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int i = 0; i < R && i < m; i++) _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);

#define PCK_AVX2_STEP(kk)                                                                 \
    do {                                                                                  \
        __m256 b0 = _mm256_loadu_ps(bp + (kk) * ANR), b1 = _mm256_loadu_ps(bp + (kk) * ANR + 8); \
        for (int i = 0; i < R; i++) {                                                     \
            __m256 a = _mm256_broadcast_ss(ap + (kk) * AMR + i);                          \
            acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);                                \
            acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);                                \
        }                                                                                 \
    } while (0)

    ptrdiff_t k = 0;
    for (; k + 4 <= kc; k += 4) {
        _mm_prefetch((const char *)(ap + 64), _MM_HINT_T0);
        _mm_prefetch((const char *)pf, _MM_HINT_T0); /* one line of the next B sliver */
        pf += 16;
        PCK_AVX2_STEP(0);
        PCK_AVX2_STEP(1);
        PCK_AVX2_STEP(2);
        PCK_AVX2_STEP(3);
        ap += 4 * AMR;
        bp += 4 * ANR;
    }
    for (; k < kc; k++) {
        PCK_AVX2_STEP(0);
        ap += AMR;
        bp += ANR;
    }
#undef PCK_AVX2_STEP

    if (m == R && n == ANR) {
        for (int i = 0; i < R; i++) {
            float *ci = c + i * ldc;
            __m256 r0 = acc[i][0], r1 = acc[i][1];
            if (accumulate) {
                r0 = _mm256_add_ps(_mm256_loadu_ps(ci), r0);
                r1 = _mm256_add_ps(_mm256_loadu_ps(ci + 8), r1);
            }
            _mm256_storeu_ps(ci, r0);
            _mm256_storeu_ps(ci + 8, r1);
        }
        return;
    }
    float t[AMR][ANR];
    for (int i = 0; i < R; i++) {
        _mm256_storeu_ps(t[i], acc[i][0]);
        _mm256_storeu_ps(t[i] + 8, acc[i][1]);
    }
    for (ptrdiff_t i = 0; i < m; i++)
        for (ptrdiff_t j = 0; j < n; j++)
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + t[i][j] : t[i][j];
}

PCK_AVX2 void pck__sgemm_kernel_avx2(ptrdiff_t kc, const float *ap, const float *bp, float *c,
                                     ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n, int accumulate,
                                     const float *pf) {
    if (m <= 4) sgemm_avx2_rows(4, kc, ap, bp, c, ldc, m, n, accumulate, pf);
    else sgemm_avx2_rows(AMR, kc, ap, bp, c, ldc, m, n, accumulate, pf);
}

#endif /* PCK_X86 */

/* ================================================================ NEON */
#if PCK_ARM64

PCK_INLINE float32x4_t nload4(pck_dtype dt, const void *p) {
    switch (dt) {
    case PCK_DT_F16: return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)p)));
    case PCK_DT_BF16:
        return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)p), 16));
    default: return vld1q_f32((const float *)p);
    }
}

PCK_INLINE void pack_neon_dt(pck_dtype dt, ptrdiff_t R, ptrdiff_t count, ptrdiff_t kc,
                             const void *src, ptrdiff_t sr, ptrdiff_t sk, float *out) {
    for (ptrdiff_t r0 = 0; r0 < count; r0 += R) {
        ptrdiff_t rows = count - r0 < R ? count - r0 : R;
        const void *s = elem_ptr(dt, src, r0 * sr);
        float *o = out + (r0 / R) * kc * R;
        if (rows == R && sr == 1 && R % 4 == 0) {
            for (ptrdiff_t k = 0; k < kc; k++)
                for (ptrdiff_t r = 0; r < R; r += 4)
                    vst1q_f32(o + k * R + r, nload4(dt, elem_ptr(dt, s, k * sk + r)));
        } else if (rows == R && sk == 1 && R % 4 == 0) {
            ptrdiff_t k = 0;
            for (; k + 4 <= kc; k += 4) {
                for (ptrdiff_t r = 0; r < R; r += 4) {
                    float32x4x4_t v;
                    v.val[0] = nload4(dt, elem_ptr(dt, s, (r + 0) * sr + k));
                    v.val[1] = nload4(dt, elem_ptr(dt, s, (r + 1) * sr + k));
                    v.val[2] = nload4(dt, elem_ptr(dt, s, (r + 2) * sr + k));
                    v.val[3] = nload4(dt, elem_ptr(dt, s, (r + 3) * sr + k));
                    /* 4x4 transpose: lane k of row r -> o[(k)*R + r] */
                    float32x4_t t0 = vtrn1q_f32(v.val[0], v.val[1]);
                    float32x4_t t1 = vtrn2q_f32(v.val[0], v.val[1]);
                    float32x4_t t2 = vtrn1q_f32(v.val[2], v.val[3]);
                    float32x4_t t3 = vtrn2q_f32(v.val[2], v.val[3]);
                    float64x2_t d0 = vreinterpretq_f64_f32(t0), d1 = vreinterpretq_f64_f32(t1);
                    float64x2_t d2 = vreinterpretq_f64_f32(t2), d3 = vreinterpretq_f64_f32(t3);
                    vst1q_f32(o + (k + 0) * R + r, vreinterpretq_f32_f64(vtrn1q_f64(d0, d2)));
                    vst1q_f32(o + (k + 1) * R + r, vreinterpretq_f32_f64(vtrn1q_f64(d1, d3)));
                    vst1q_f32(o + (k + 2) * R + r, vreinterpretq_f32_f64(vtrn2q_f64(d0, d2)));
                    vst1q_f32(o + (k + 3) * R + r, vreinterpretq_f32_f64(vtrn2q_f64(d1, d3)));
                }
            }
            for (; k < kc; k++)
                for (ptrdiff_t r = 0; r < R; r++) o[k * R + r] = load_elem(dt, s, r * sr + k);
        } else {
            pack_sliver_generic(dt, R, rows, kc, s, sr, sk, o);
        }
    }
}

void pck__pack_neon(pck_dtype dt, ptrdiff_t R, ptrdiff_t count, ptrdiff_t kc, const void *src,
                    ptrdiff_t sr, ptrdiff_t sk, float *out) {
    switch (dt) {
    case PCK_DT_F16: pack_neon_dt(PCK_DT_F16, R, count, kc, src, sr, sk, out); break;
    case PCK_DT_BF16: pack_neon_dt(PCK_DT_BF16, R, count, kc, src, sr, sk, out); break;
    default: pack_neon_dt(PCK_DT_F32, R, count, kc, src, sr, sk, out); break;
    }
}

/* 8x12: 24 q-register accumulators + 3 B + 2 A = 29 of 32; FMA by lane of A. */
#define NMR 8
#define NNR 12

void pck__sgemm_kernel_neon(ptrdiff_t kc, const float *ap, const float *bp, float *c,
                            ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n, int accumulate,
                            const float *pf) {
    (void)pf;
    float32x4_t acc[NMR][3];
    for (int i = 0; i < NMR; i++) acc[i][0] = acc[i][1] = acc[i][2] = vdupq_n_f32(0.0f);
    for (ptrdiff_t k = 0; k < kc; k++) {
        float32x4_t b0 = vld1q_f32(bp), b1 = vld1q_f32(bp + 4), b2 = vld1q_f32(bp + 8);
        float32x4_t a0 = vld1q_f32(ap), a1 = vld1q_f32(ap + 4);
#define PCK_NEON_ROW(i, av, lane)                                                         \
    acc[i][0] = vfmaq_laneq_f32(acc[i][0], b0, av, lane);                                 \
    acc[i][1] = vfmaq_laneq_f32(acc[i][1], b1, av, lane);                                 \
    acc[i][2] = vfmaq_laneq_f32(acc[i][2], b2, av, lane);
        PCK_NEON_ROW(0, a0, 0)
        PCK_NEON_ROW(1, a0, 1)
        PCK_NEON_ROW(2, a0, 2)
        PCK_NEON_ROW(3, a0, 3)
        PCK_NEON_ROW(4, a1, 0)
        PCK_NEON_ROW(5, a1, 1)
        PCK_NEON_ROW(6, a1, 2)
        PCK_NEON_ROW(7, a1, 3)
#undef PCK_NEON_ROW
        ap += NMR;
        bp += NNR;
    }
    if (m == NMR && n == NNR) {
        for (int i = 0; i < NMR; i++) {
            float *ci = c + i * ldc;
            for (int v = 0; v < 3; v++) {
                float32x4_t r = acc[i][v];
                if (accumulate) r = vaddq_f32(vld1q_f32(ci + 4 * v), r);
                vst1q_f32(ci + 4 * v, r);
            }
        }
        return;
    }
    float t[NMR][NNR];
    for (int i = 0; i < NMR; i++)
        for (int v = 0; v < 3; v++) vst1q_f32(t[i] + 4 * v, acc[i][v]);
    for (ptrdiff_t i = 0; i < m; i++)
        for (ptrdiff_t j = 0; j < n; j++)
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + t[i][j] : t[i][j];
}

#endif /* PCK_ARM64 */
