/* The AVX-512 row primitives that are bound by the exp polynomial, not by memory: max,
 * exp, exp-subtract-sum (softmax and flash attention), SiLU and SwiGLU. Each lane computes
 * exactly what exp8 in vector.c computes (same operations, same constants), so elementwise
 * results equal the AVX2 path bit for bit; sums reduce 16 lanes instead of 8, in a fixed
 * order. On Zen 4 a 512-bit op costs two 256-bit pipe slots, but half the instructions
 * (and vscalefps for 2^n) leave the front end and scheduler room. */
#include "pck_internal.h"

#if PCK_X86
#include <immintrin.h>

PCK_INLINE PCK_AVX512 __m512 exp16(__m512 x) {
    /* max/min return the second operand when one is NaN, so NaN passes through */
    x = _mm512_min_ps(_mm512_set1_ps(PCK_EXP_HI), _mm512_max_ps(_mm512_set1_ps(PCK_EXP_LO), x));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(PCK_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(PCK_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(PCK_LN2_LO), r);
    __m512 p = _mm512_set1_ps(PCK_EXP_C6);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(PCK_EXP_C5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(PCK_EXP_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(PCK_EXP_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(PCK_EXP_C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    /* p * 2^n rounded once, as exp8's two exact power-of-two factors give it: one vscalefps
     * instead of eight integer and multiply operations */
    return _mm512_scalef_ps(p, n);
}

PCK_INLINE PCK_AVX512 __mmask16 tail(ptrdiff_t n) { return (__mmask16)((1u << n) - 1); }

/* Horizontal sums and maxima in one fixed order (halves folded pairwise). */
PCK_INLINE PCK_AVX512 float hsum16(__m512 v) {
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_movehdup_ps(a));
    return _mm_cvtss_f32(a);
}

PCK_INLINE PCK_AVX512 float hmax16(__m512 v) {
    __m256 h = _mm256_max_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 a = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    a = _mm_max_ps(a, _mm_movehl_ps(a, a));
    a = _mm_max_ss(a, _mm_movehdup_ps(a));
    return _mm_cvtss_f32(a);
}

PCK_AVX512 float pck__max_avx512(ptrdiff_t n, const float *x) {
    const __m512 ninf = _mm512_set1_ps(-__builtin_inff());
    __m512 m0 = ninf, m1 = ninf;
    ptrdiff_t i = 0;
    for (; i + 32 <= n; i += 32) {
        m0 = _mm512_max_ps(_mm512_loadu_ps(x + i), m0); /* NaN in x keeps m */
        m1 = _mm512_max_ps(_mm512_loadu_ps(x + i + 16), m1);
    }
    for (; i + 16 <= n; i += 16) m0 = _mm512_max_ps(_mm512_loadu_ps(x + i), m0);
    if (i < n) m1 = _mm512_max_ps(_mm512_mask_loadu_ps(ninf, tail(n - i), x + i), m1);
    return hmax16(_mm512_max_ps(m0, m1));
}

PCK_AVX512 void pck__exp_avx512(ptrdiff_t n, const float *x, float *y) {
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp16(_mm512_loadu_ps(x + i)));
    if (i < n) _mm512_mask_storeu_ps(y + i, tail(n - i), exp16(_mm512_maskz_loadu_ps(tail(n - i), x + i)));
}

PCK_AVX512 float pck__exp_sub_sum_avx512(ptrdiff_t n, const float *x, float m, float *y) {
    __m512 mv = _mm512_set1_ps(m), a0 = _mm512_setzero_ps(), a1 = a0;
    ptrdiff_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 e0 = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), mv));
        __m512 e1 = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), mv));
        _mm512_storeu_ps(y + i, e0);
        _mm512_storeu_ps(y + i + 16, e1);
        a0 = _mm512_add_ps(a0, e0);
        a1 = _mm512_add_ps(a1, e1);
    }
    for (; i + 16 <= n; i += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), mv));
        _mm512_storeu_ps(y + i, e);
        a0 = _mm512_add_ps(a0, e);
    }
    if (i < n) {
        __mmask16 k = tail(n - i);
        __m512 e = exp16(_mm512_sub_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-__builtin_inff()), k, x + i), mv));
        _mm512_mask_storeu_ps(y + i, k, e);
        a1 = _mm512_add_ps(a1, _mm512_maskz_mov_ps(k, e));
    }
    return hsum16(_mm512_add_ps(a0, a1));
}

PCK_INLINE PCK_AVX512 __m512 silu16(__m512 x) {
    __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

PCK_AVX512 void pck__silu_avx512(ptrdiff_t n, const float *x, float *y) {
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, silu16(_mm512_loadu_ps(x + i)));
    if (i < n) _mm512_mask_storeu_ps(y + i, tail(n - i), silu16(_mm512_maskz_loadu_ps(tail(n - i), x + i)));
}

PCK_AVX512 void pck__swiglu_avx512(ptrdiff_t n, const float *gate, const float *up, float *y) {
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_mul_ps(silu16(_mm512_loadu_ps(gate + i)), _mm512_loadu_ps(up + i)));
    if (i < n) {
        __mmask16 k = tail(n - i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(silu16(_mm512_maskz_loadu_ps(k, gate + i)), _mm512_maskz_loadu_ps(k, up + i)));
    }
}

#endif /* PCK_X86 */
