/* f16 / bf16 <-> f32 arrays. Every path gives the same bits as the scalar helpers in
 * pck_internal.h (which are written to match F16C and AArch64 FCVT). */
#include "pck_internal.h"

#if PCK_X86
#include <immintrin.h>
#endif
#if PCK_ARM64
#include <arm_neon.h>
#endif

/* ================================================================ scalar */

void pck__f16_to_f32_scalar(ptrdiff_t n, const uint16_t *src, float *dst) {
    for (ptrdiff_t i = 0; i < n; i++) dst[i] = pck__f16_to_f32_1(src[i]);
}
void pck__f32_to_f16_scalar(ptrdiff_t n, const float *src, uint16_t *dst) {
    for (ptrdiff_t i = 0; i < n; i++) dst[i] = pck__f32_to_f16_1(src[i]);
}
void pck__bf16_to_f32_scalar(ptrdiff_t n, const uint16_t *src, float *dst) {
    for (ptrdiff_t i = 0; i < n; i++) dst[i] = pck__bf16_to_f32_1(src[i]);
}
void pck__f32_to_bf16_scalar(ptrdiff_t n, const float *src, uint16_t *dst) {
    for (ptrdiff_t i = 0; i < n; i++) dst[i] = pck__f32_to_bf16_1(src[i]);
}

/* ================================================================ AVX2 + F16C */
#if PCK_X86

PCK_AVX2 void pck__f16_to_f32_avx2(ptrdiff_t n, const uint16_t *src, float *dst) {
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = pck__f16_to_f32_1(src[i]);
}

PCK_AVX2 void pck__f32_to_f16_avx2(ptrdiff_t n, const float *src, uint16_t *dst) {
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = pck__f32_to_f16_1(src[i]);
}

PCK_AVX2 void pck__bf16_to_f32_avx2(ptrdiff_t n, const uint16_t *src, float *dst) {
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
    }
    for (; i < n; i++) dst[i] = pck__bf16_to_f32_1(src[i]);
}

/* 8 floats -> 8 bf16 in the low 16 bits of each lane (RNE; NaN -> quiet). */
PCK_INLINE PCK_AVX2 __m256i bf16_round8(__m256 f) {
    __m256i x = _mm256_castps_si256(f);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(x, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
    __m256i ax = _mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff));
    __m256i nan = _mm256_cmpgt_epi32(ax, _mm256_set1_epi32(0x7f800000));
    __m256i q = _mm256_or_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(0x40));
    return _mm256_blendv_epi8(r, q, nan);
}

PCK_AVX2 void pck__f32_to_bf16_avx2(ptrdiff_t n, const float *src, uint16_t *dst) {
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i a = bf16_round8(_mm256_loadu_ps(src + i));
        __m256i b = bf16_round8(_mm256_loadu_ps(src + i + 8));
        /* packus works per 128-bit lane; permute restores element order */
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xd8);
        _mm256_storeu_si256((__m256i *)(dst + i), p);
    }
    for (; i < n; i++) dst[i] = pck__f32_to_bf16_1(src[i]);
}

#endif /* PCK_X86 */

/* ================================================================ NEON */
#if PCK_ARM64

void pck__f16_to_f32_neon(ptrdiff_t n, const uint16_t *src, float *dst) {
    ptrdiff_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(dst + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(src + i))));
    for (; i < n; i++) dst[i] = pck__f16_to_f32_1(src[i]);
}

void pck__f32_to_f16_neon(ptrdiff_t n, const float *src, uint16_t *dst) {
    ptrdiff_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1_u16(dst + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(src + i))));
    for (; i < n; i++) dst[i] = pck__f32_to_f16_1(src[i]);
}

void pck__bf16_to_f32_neon(ptrdiff_t n, const uint16_t *src, float *dst) {
    ptrdiff_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(dst + i, vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(src + i), 16)));
    for (; i < n; i++) dst[i] = pck__bf16_to_f32_1(src[i]);
}

void pck__f32_to_bf16_neon(ptrdiff_t n, const float *src, uint16_t *dst) {
    ptrdiff_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint32x4_t x = vreinterpretq_u32_f32(vld1q_f32(src + i));
        uint32x4_t lsb = vandq_u32(vshrq_n_u32(x, 16), vdupq_n_u32(1));
        uint32x4_t r = vshrq_n_u32(vaddq_u32(x, vaddq_u32(lsb, vdupq_n_u32(0x7fff))), 16);
        uint32x4_t nan = vcgtq_u32(vandq_u32(x, vdupq_n_u32(0x7fffffff)), vdupq_n_u32(0x7f800000));
        uint32x4_t q = vorrq_u32(vshrq_n_u32(x, 16), vdupq_n_u32(0x40));
        vst1_u16(dst + i, vmovn_u32(vbslq_u32(nan, q, r)));
    }
    for (; i < n; i++) dst[i] = pck__f32_to_bf16_1(src[i]);
}

#endif /* PCK_ARM64 */
