/* Row primitives for softmax, attention and norms, and a vectorised expf (constants in
 * pck_internal.h; the AVX-512 versions of the exp-bound ones: vector_avx512.c).
 *
 * exp: x = n*ln2 + r, |r| <= ln2/2 (Cody-Waite, two-part ln2), exp(r) by a degree-6
 * polynomial fitted for relative error (3e-9 before rounding), then 2^n applied as two
 * exact power-of-two factors so n = 128 (x up to 88.72) and subnormal results work.
 * Measured over every float in [-104, 89]: <= 2 ulp (see the header). Inputs are clamped
 * to [-104, 89] first: exp(-104) rounds to 0 and exp(89) overflows to inf. */
#include "pck_internal.h"

#if PCK_X86
#include <immintrin.h>
#endif
#if PCK_ARM64
#include <arm_neon.h>
#endif

/* ================================================================ streaming stores */

void pck_scale_mul_stream(ptrdiff_t n, float a, const float *x, const float *w, float *y) {
    ptrdiff_t i = 0;
#if PCK_X86
    /* SSE2 (every x86-64): (x * a) * w per element, as every scale_mul computes it, so the
     * bits are the table's; dst aligned to 16 bytes, then non-temporal 16-byte stores */
    while (i < n && ((uintptr_t)(y + i) & 15) != 0) {
        y[i] = w ? (x[i] * a) * w[i] : x[i] * a;
        i++;
    }
    if (((uintptr_t)(y + i) & 15) == 0) {
        __m128 av = _mm_set1_ps(a);
        if (w)
            for (; i + 4 <= n; i += 4)
                _mm_stream_ps(y + i, _mm_mul_ps(_mm_mul_ps(_mm_loadu_ps(x + i), av), _mm_loadu_ps(w + i)));
        else
            for (; i + 4 <= n; i += 4) _mm_stream_ps(y + i, _mm_mul_ps(_mm_loadu_ps(x + i), av));
        _mm_sfence(); /* order them before the pool's release of the task */
    }
#endif
    for (; i < n; i++) y[i] = w ? (x[i] * a) * w[i] : x[i] * a;
}

/* ================================================================ scalar */

float pck__exp1(float x) {
    if (x != x) return x;
    x = x < PCK_EXP_LO ? PCK_EXP_LO : (x > PCK_EXP_HI ? PCK_EXP_HI : x);
    float n = (x * PCK_LOG2E + PCK_ROUND_MAGIC) - PCK_ROUND_MAGIC;
    float r = (x - n * PCK_LN2_HI) - n * PCK_LN2_LO;
    float p = PCK_EXP_C6;
    p = p * r + PCK_EXP_C5;
    p = p * r + PCK_EXP_C4;
    p = p * r + PCK_EXP_C3;
    p = p * r + PCK_EXP_C2;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t ni = (int32_t)n, n1 = ni / 2, n2 = ni - n1;
    return p * pck__bits_f32((uint32_t)(n1 + 127) << 23) * pck__bits_f32((uint32_t)(n2 + 127) << 23);
}

/* The scalar reductions keep 8 partial sums (element i in sum i % 8), added pairwise at the
 * end, like the SIMD paths' lanes: one serial chain over a 32K-long softmax row is off by
 * NMSE 8e-10, past the conformance tolerance of 1e-10. */
PCK_INLINE float pck__sum8(const float s[8]) {
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

float pck__dot_scalar(ptrdiff_t n, const float *x, const float *y) {
    float s[8] = {0};
    for (ptrdiff_t i = 0; i < n; i++) s[i & 7] += x[i] * y[i];
    return pck__sum8(s);
}

void pck__axpy_scalar(ptrdiff_t n, float a, const float *x, float *y) {
    for (ptrdiff_t i = 0; i < n; i++) y[i] += a * x[i];
}

void pck__scale_mul_scalar(ptrdiff_t n, float a, const float *x, const float *w, float *y) {
    if (w)
        for (ptrdiff_t i = 0; i < n; i++) y[i] = (x[i] * a) * w[i];
    else
        for (ptrdiff_t i = 0; i < n; i++) y[i] = x[i] * a;
}

float pck__max_scalar(ptrdiff_t n, const float *x) {
    float m = -__builtin_inff();
    for (ptrdiff_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

float pck__sum_scalar(ptrdiff_t n, const float *x) {
    float s[8] = {0};
    for (ptrdiff_t i = 0; i < n; i++) s[i & 7] += x[i];
    return pck__sum8(s);
}

void pck__exp_scalar(ptrdiff_t n, const float *x, float *y) {
    for (ptrdiff_t i = 0; i < n; i++) y[i] = pck__exp1(x[i]);
}

float pck__exp_sub_sum_scalar(ptrdiff_t n, const float *x, float m, float *y) {
    float s[8] = {0};
    for (ptrdiff_t i = 0; i < n; i++) {
        y[i] = pck__exp1(x[i] - m);
        s[i & 7] += y[i];
    }
    return pck__sum8(s);
}

void pck__silu_scalar(ptrdiff_t n, const float *x, float *y) {
    for (ptrdiff_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + pck__exp1(-x[i]));
}

void pck__swiglu_scalar(ptrdiff_t n, const float *gate, const float *up, float *y) {
    for (ptrdiff_t i = 0; i < n; i++) y[i] = gate[i] / (1.0f + pck__exp1(-gate[i])) * up[i];
}

/* ================================================================ AVX2 */
#if PCK_X86

PCK_INLINE PCK_AVX2 __m256 exp8(__m256 x) {
    /* max/min return the second operand when one is NaN, so NaN passes through */
    x = _mm256_min_ps(_mm256_set1_ps(PCK_EXP_HI), _mm256_max_ps(_mm256_set1_ps(PCK_EXP_LO), x));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(PCK_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(PCK_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(PCK_LN2_LO), r);
    __m256 p = _mm256_set1_ps(PCK_EXP_C6);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(PCK_EXP_C5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(PCK_EXP_C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(PCK_EXP_C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(PCK_EXP_C2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

/* n < 8 tail through a zero-padded vector, so tails use the same arithmetic */
PCK_INLINE PCK_AVX2 __m256 load_tail(const float *p, ptrdiff_t n, float fill) {
    float t[8] = {fill, fill, fill, fill, fill, fill, fill, fill};
    for (ptrdiff_t i = 0; i < n; i++) t[i] = p[i];
    return _mm256_loadu_ps(t);
}

PCK_INLINE PCK_AVX2 void store_tail(float *p, __m256 v, ptrdiff_t n) {
    float t[8];
    _mm256_storeu_ps(t, v);
    for (ptrdiff_t i = 0; i < n; i++) p[i] = t[i];
}

PCK_AVX2 float pck__dot_avx2(ptrdiff_t n, const float *x, const float *y) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    ptrdiff_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    if (i < n) a1 = _mm256_fmadd_ps(load_tail(x + i, n - i, 0), load_tail(y + i, n - i, 0), a1);
    return pck__hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

PCK_AVX2 void pck__axpy_avx2(ptrdiff_t n, float a, const float *x, float *y) {
    __m256 av = _mm256_set1_ps(a);
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] = __builtin_fmaf(a, x[i], y[i]); /* same rounding as the body */
}

PCK_AVX2 void pck__scale_mul_avx2(ptrdiff_t n, float a, const float *x, const float *w, float *y) {
    __m256 av = _mm256_set1_ps(a);
    ptrdiff_t i = 0;
    if (w) {
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), av), _mm256_loadu_ps(w + i)));
        for (; i < n; i++) y[i] = (x[i] * a) * w[i];
    } else {
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), av));
        for (; i < n; i++) y[i] = x[i] * a;
    }
}

PCK_AVX2 float pck__max_avx2(ptrdiff_t n, const float *x) {
    __m256 m0 = _mm256_set1_ps(-__builtin_inff()), m1 = m0;
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0); /* NaN in x keeps m */
        m1 = _mm256_max_ps(_mm256_loadu_ps(x + i + 8), m1);
    }
    for (; i + 8 <= n; i += 8) m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0);
    if (i < n) m1 = _mm256_max_ps(load_tail(x + i, n - i, -__builtin_inff()), m1);
    return pck__hmax8(_mm256_max_ps(m0, m1));
}

PCK_AVX2 float pck__sum_avx2(ptrdiff_t n, const float *x) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    ptrdiff_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(_mm256_loadu_ps(x + i), a0);
        a1 = _mm256_add_ps(_mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_add_ps(_mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_add_ps(_mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_add_ps(_mm256_loadu_ps(x + i), a0);
    if (i < n) a1 = _mm256_add_ps(load_tail(x + i, n - i, 0), a1);
    return pck__hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

PCK_AVX2 void pck__exp_avx2(ptrdiff_t n, const float *x, float *y) {
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp8(_mm256_loadu_ps(x + i)));
    if (i < n) store_tail(y + i, exp8(load_tail(x + i, n - i, 0)), n - i);
}

PCK_AVX2 float pck__exp_sub_sum_avx2(ptrdiff_t n, const float *x, float m, float *y) {
    __m256 mv = _mm256_set1_ps(m), a0 = _mm256_setzero_ps(), a1 = a0;
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
        __m256 e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), mv));
        _mm256_storeu_ps(y + i, e0);
        _mm256_storeu_ps(y + i + 8, e1);
        a0 = _mm256_add_ps(a0, e0);
        a1 = _mm256_add_ps(a1, e1);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
        _mm256_storeu_ps(y + i, e);
        a0 = _mm256_add_ps(a0, e);
    }
    if (i < n) {
        __m256 e = exp8(_mm256_sub_ps(load_tail(x + i, n - i, -__builtin_inff()), mv));
        store_tail(y + i, e, n - i);
        a1 = _mm256_add_ps(a1, e);
    }
    return pck__hsum8(_mm256_add_ps(a0, a1));
}

PCK_INLINE PCK_AVX2 __m256 silu8(__m256 x) {
    __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

PCK_AVX2 void pck__silu_avx2(ptrdiff_t n, const float *x, float *y) {
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, silu8(_mm256_loadu_ps(x + i)));
    if (i < n) store_tail(y + i, silu8(load_tail(x + i, n - i, 0)), n - i);
}

PCK_AVX2 void pck__swiglu_avx2(ptrdiff_t n, const float *gate, const float *up, float *y) {
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(silu8(_mm256_loadu_ps(gate + i)), _mm256_loadu_ps(up + i)));
    if (i < n)
        store_tail(y + i, _mm256_mul_ps(silu8(load_tail(gate + i, n - i, 0)), load_tail(up + i, n - i, 0)), n - i);
}

#endif /* PCK_X86 */

/* ================================================================ NEON */
#if PCK_ARM64

PCK_INLINE float32x4_t exp4(float32x4_t x) {
    /* vmaxnm/vminnm would drop NaN; vmax/vmin propagate it */
    x = vminq_f32(vdupq_n_f32(PCK_EXP_HI), vmaxq_f32(vdupq_n_f32(PCK_EXP_LO), x));
    float32x4_t n = vrndnq_f32(vmulq_n_f32(x, PCK_LOG2E));
    float32x4_t r = vfmsq_n_f32(x, n, 0.693147182464599609375f);
    r = vfmsq_n_f32(r, n, -1.904654299957768e-09f);
    float32x4_t p = vdupq_n_f32(PCK_EXP_C6);
    p = vfmaq_f32(vdupq_n_f32(PCK_EXP_C5), p, r);
    p = vfmaq_f32(vdupq_n_f32(PCK_EXP_C4), p, r);
    p = vfmaq_f32(vdupq_n_f32(PCK_EXP_C3), p, r);
    p = vfmaq_f32(vdupq_n_f32(PCK_EXP_C2), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    int32x4_t ni = vcvtq_s32_f32(n);
    int32x4_t n1 = vshrq_n_s32(ni, 1), n2 = vsubq_s32(ni, n1);
    int32x4_t bias = vdupq_n_s32(127);
    float32x4_t s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, bias), 23));
    float32x4_t s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, bias), 23));
    return vmulq_f32(vmulq_f32(p, s1), s2);
}

PCK_INLINE float32x4_t nload_tail(const float *p, ptrdiff_t n, float fill) {
    float t[4] = {fill, fill, fill, fill};
    for (ptrdiff_t i = 0; i < n; i++) t[i] = p[i];
    return vld1q_f32(t);
}

PCK_INLINE void nstore_tail(float *p, float32x4_t v, ptrdiff_t n) {
    float t[4];
    vst1q_f32(t, v);
    for (ptrdiff_t i = 0; i < n; i++) p[i] = t[i];
}

float pck__dot_neon(ptrdiff_t n, const float *x, const float *y) {
    float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0;
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = vfmaq_f32(a0, vld1q_f32(x + i), vld1q_f32(y + i));
        a1 = vfmaq_f32(a1, vld1q_f32(x + i + 4), vld1q_f32(y + i + 4));
        a2 = vfmaq_f32(a2, vld1q_f32(x + i + 8), vld1q_f32(y + i + 8));
        a3 = vfmaq_f32(a3, vld1q_f32(x + i + 12), vld1q_f32(y + i + 12));
    }
    for (; i + 4 <= n; i += 4) a0 = vfmaq_f32(a0, vld1q_f32(x + i), vld1q_f32(y + i));
    if (i < n) a1 = vfmaq_f32(a1, nload_tail(x + i, n - i, 0), nload_tail(y + i, n - i, 0));
    return vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
}

void pck__axpy_neon(ptrdiff_t n, float a, const float *x, float *y) {
    ptrdiff_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), a));
    for (; i < n; i++) y[i] = __builtin_fmaf(a, x[i], y[i]);
}

void pck__scale_mul_neon(ptrdiff_t n, float a, const float *x, const float *w, float *y) {
    ptrdiff_t i = 0;
    if (w) {
        for (; i + 4 <= n; i += 4)
            vst1q_f32(y + i, vmulq_f32(vmulq_n_f32(vld1q_f32(x + i), a), vld1q_f32(w + i)));
        for (; i < n; i++) y[i] = (x[i] * a) * w[i];
    } else {
        for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vmulq_n_f32(vld1q_f32(x + i), a));
        for (; i < n; i++) y[i] = x[i] * a;
    }
}

float pck__max_neon(ptrdiff_t n, const float *x) {
    /* vmaxnm ignores a NaN operand, matching the scalar rule */
    float32x4_t m = vdupq_n_f32(-__builtin_inff());
    ptrdiff_t i = 0;
    for (; i + 4 <= n; i += 4) m = vmaxnmq_f32(m, vld1q_f32(x + i));
    float r = vmaxnmvq_f32(m);
    for (; i < n; i++) r = x[i] > r ? x[i] : r;
    return r;
}

float pck__sum_neon(ptrdiff_t n, const float *x) {
    float32x4_t a0 = vdupq_n_f32(0), a1 = a0;
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        a0 = vaddq_f32(a0, vld1q_f32(x + i));
        a1 = vaddq_f32(a1, vld1q_f32(x + i + 4));
    }
    for (; i + 4 <= n; i += 4) a0 = vaddq_f32(a0, vld1q_f32(x + i));
    if (i < n) a1 = vaddq_f32(a1, nload_tail(x + i, n - i, 0));
    return vaddvq_f32(vaddq_f32(a0, a1));
}

void pck__exp_neon(ptrdiff_t n, const float *x, float *y) {
    ptrdiff_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, exp4(vld1q_f32(x + i)));
    if (i < n) nstore_tail(y + i, exp4(nload_tail(x + i, n - i, 0)), n - i);
}

float pck__exp_sub_sum_neon(ptrdiff_t n, const float *x, float m, float *y) {
    float32x4_t mv = vdupq_n_f32(m), a0 = vdupq_n_f32(0);
    ptrdiff_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t e = exp4(vsubq_f32(vld1q_f32(x + i), mv));
        vst1q_f32(y + i, e);
        a0 = vaddq_f32(a0, e);
    }
    if (i < n) {
        float32x4_t e = exp4(vsubq_f32(nload_tail(x + i, n - i, -__builtin_inff()), mv));
        nstore_tail(y + i, e, n - i);
        a0 = vaddq_f32(a0, e);
    }
    return vaddvq_f32(a0);
}

PCK_INLINE float32x4_t silu4(float32x4_t x) {
    return vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0f), exp4(vnegq_f32(x))));
}

void pck__silu_neon(ptrdiff_t n, const float *x, float *y) {
    ptrdiff_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, silu4(vld1q_f32(x + i)));
    if (i < n) nstore_tail(y + i, silu4(nload_tail(x + i, n - i, 0)), n - i);
}

void pck__swiglu_neon(ptrdiff_t n, const float *gate, const float *up, float *y) {
    ptrdiff_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vmulq_f32(silu4(vld1q_f32(gate + i)), vld1q_f32(up + i)));
    if (i < n)
        nstore_tail(y + i, vmulq_f32(silu4(nload_tail(gate + i, n - i, 0)), nload_tail(up + i, n - i, 0)), n - i);
}

#endif /* PCK_ARM64 */
