/* INT4 on AVX-512: the decode GEMV (m = 1, g = 32) and the B-panel packing.
 *
 * GEMV: two 64-weight blocks of a row per 512-bit load, on the AVX2 kernels' activation layout
 * (pck__int4_xprep_avx2: each block j-major), with the same two weight paths (nibbles converted
 * to float, or read as denormal floats) in the same order, so the two agree bit for bit. On
 * Zen 4 a 512-bit op costs two 256-bit slots, so the gain is half the instructions: the AVX2
 * loop runs there well below what its FMA and integer pipes allow (~10% faster at N4096
 * K14336 on two cores, docs/benchmarks.md).
 *
 * Packing: the MoE layer's expert GEMMs dequantize every weight once
 * per call into NR-wide slivers, which the profile puts at ~11% of the layer on Zen 4. Each
 * 512-bit vector holds one k of 16 weight rows, so a 16-column sliver row is one store; the
 * nibble becomes (u - z) * s through a float whose mantissa takes the nibble in place (one
 * ternary-logic op instead of mask + subtract + convert), less 2^e + z. Every output is
 * (float)(u - z) * s rounded once, as the scalar and AVX2 packings give it. */
#include "int4_internal.h"

#if PCK_X86
#include <immintrin.h>

/* v[i] = [row i | row i+8] (8 lanes each) -> v[l] = [rows 0-7 | rows 8-15] of column l:
 * an 8x8 transpose in each 256-bit half. */
PCK_INLINE PCK_AVX512 void transpose_2x8x8(__m512 v[8]) {
    __m512 t0 = _mm512_unpacklo_ps(v[0], v[1]), t1 = _mm512_unpackhi_ps(v[0], v[1]);
    __m512 t2 = _mm512_unpacklo_ps(v[2], v[3]), t3 = _mm512_unpackhi_ps(v[2], v[3]);
    __m512 t4 = _mm512_unpacklo_ps(v[4], v[5]), t5 = _mm512_unpackhi_ps(v[4], v[5]);
    __m512 t6 = _mm512_unpacklo_ps(v[6], v[7]), t7 = _mm512_unpackhi_ps(v[6], v[7]);
    __m512 s0 = _mm512_shuffle_ps(t0, t2, 0x44), s1 = _mm512_shuffle_ps(t0, t2, 0xee);
    __m512 s2 = _mm512_shuffle_ps(t1, t3, 0x44), s3 = _mm512_shuffle_ps(t1, t3, 0xee);
    __m512 s4 = _mm512_shuffle_ps(t4, t6, 0x44), s5 = _mm512_shuffle_ps(t4, t6, 0xee);
    __m512 s6 = _mm512_shuffle_ps(t5, t7, 0x44), s7 = _mm512_shuffle_ps(t5, t7, 0xee);
    const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
    const __m512i hi = _mm512_setr_epi32(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
    v[0] = _mm512_permutex2var_ps(s0, lo, s4);
    v[1] = _mm512_permutex2var_ps(s1, lo, s5);
    v[2] = _mm512_permutex2var_ps(s2, lo, s6);
    v[3] = _mm512_permutex2var_ps(s3, lo, s7);
    v[4] = _mm512_permutex2var_ps(s0, hi, s4);
    v[5] = _mm512_permutex2var_ps(s1, hi, s5);
    v[6] = _mm512_permutex2var_ps(s2, hi, s6);
    v[7] = _mm512_permutex2var_ps(s3, hi, s7);
}

/* ---------------------------------------------------------------- GEMV, m = 1 */

/* x of nibble j for the 128 weights at b: the two 64-blocks' j-rows side by side (hi: the
 * second block exists) */
PCK_INLINE PCK_AVX512 __m512 x_pair(const float *x, ptrdiff_t b, int j, int hi) {
    __m256 lo = _mm256_loadu_ps(x + b + 8 * j);
    return hi ? _mm512_insertf32x8(_mm512_castps256_ps512(lo), _mm256_loadu_ps(x + b + 64 + 8 * j), 1)
              : _mm512_zextps256_ps512(lo);
}

/* g = 32 scales of the 16 lanes of the 128 weights at b (lane l holds k = b + 64(l/8) +
 * 8(l%8) + j): 4 groups in 4-lane quarters; lanes past a missing second block are 0. */
PCK_INLINE PCK_AVX512 __m512 scale_pair(const float *s, ptrdiff_t b, int hi) {
    const __m512i q = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    __m128 v = _mm_maskz_loadu_ps(hi ? 0xf : 0x3, s + b / 32);
    return _mm512_permutexvar_ps(q, _mm512_castps128_ps512(v));
}

/* out[r][0] = sum over the 64-blocks of s_g * sum x*u for R rows at w, g = 32 (k64 = K rounded down
 * to 64); DN: denormal path with rs = 2^-E. Per row two accumulators (even / odd nibbles)
 * per 128 weights, summed, rescaled, then one scale FMA into the row's 16-lane total. */
PCK_INLINE PCK_AVX512 void i4_m1_core512(const int DN, const int R, float rs, ptrdiff_t k64,
                                         const float *x, const uint8_t *w,
                                         ptrdiff_t ldw, const float *s, ptrdiff_t lds,
                                         float out[4][4]) {
    const __m512i m0 = _mm512_set1_epi32(0xf), m1 = _mm512_set1_epi32(0xf0);
    const __m512i m2 = _mm512_set1_epi32(0xf00), m3 = _mm512_set1_epi32(0xf000);
    const __m512i m4 = _mm512_set1_epi32(0xf0000), m5 = _mm512_set1_epi32(0xf00000);
    const __m512i m6 = _mm512_set1_epi32(0xf000000);
    const __m512 rsv = _mm512_set1_ps(rs);
    __m512 y[4];
    for (int r = 0; r < R; r++) y[r] = _mm512_setzero_ps();
    for (ptrdiff_t b = 0; b < k64; b += 128) {
        const int hi = b + 128 <= k64;
        __m512i v[4];
        __m512 ae[4], ao[4];
        for (int r = 0; r < R; r++) {
            const uint8_t *p = w + r * ldw + b / 2;
            v[r] = hi ? _mm512_loadu_si512((const void *)p) : _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)p));
            _mm_prefetch((const char *)(p + R * ldw), _MM_HINT_T0); /* the next call's rows */
            ae[r] = _mm512_setzero_ps();
            ao[r] = _mm512_setzero_ps();
        }
#define PCK_I4_NIB(j, expr)                                                               \
    do {                                                                                  \
        __m512 xv = x_pair(x, b, j, hi);                                                  \
        for (int r = 0; r < R; r++) {                                                     \
            __m512i vv = v[r];                                                            \
            __m512 u = DN ? _mm512_castsi512_ps(expr) : _mm512_cvtepi32_ps(expr);         \
            if ((j) % 2 == 0) ae[r] = _mm512_fmadd_ps(u, xv, ae[r]);                       \
            else ao[r] = _mm512_fmadd_ps(u, xv, ao[r]);                                    \
        }                                                                                 \
    } while (0)
        PCK_I4_NIB(0, _mm512_and_si512(vv, m0));
        PCK_I4_NIB(1, _mm512_and_si512(vv, m1));
        PCK_I4_NIB(2, _mm512_and_si512(vv, m2));
        PCK_I4_NIB(3, _mm512_and_si512(vv, m3));
        PCK_I4_NIB(4, _mm512_and_si512(vv, m4));
        if (DN) { /* nibbles 5 and 6 masked at bits 12 and 16 after v >> 8, 7 = v >> 28 */
            PCK_I4_NIB(5, _mm512_and_si512(_mm512_srli_epi32(vv, 8), m3));
            PCK_I4_NIB(6, _mm512_and_si512(_mm512_srli_epi32(vv, 8), m4));
        } else {
            PCK_I4_NIB(5, _mm512_and_si512(vv, m5));
            PCK_I4_NIB(6, _mm512_and_si512(vv, m6));
        }
        PCK_I4_NIB(7, _mm512_srli_epi32(vv, 28));
#undef PCK_I4_NIB
        for (int r = 0; r < R; r++) {
            __m512 a = _mm512_add_ps(ae[r], ao[r]);
            if (DN) a = _mm512_mul_ps(a, rsv);
            y[r] = _mm512_fmadd_ps(a, scale_pair(s + r * lds, b, hi), y[r]);
        }
    }
    for (int r = 0; r < R; r++) out[r][0] = _mm512_reduce_add_ps(y[r]);
}

PCK_INLINE PCK_AVX512 void i4_gemv512_m1(const int DN, ptrdiff_t k, ptrdiff_t g, const float *xp,
                                         const uint8_t *w, ptrdiff_t ldw, const float *s,
                                         ptrdiff_t lds, const int8_t *z, ptrdiff_t ldz,
                                         ptrdiff_t n0, ptrdiff_t n1, float *y, int accumulate) {
    ptrdiff_t k64 = k & ~(ptrdiff_t)63;
    float rs = DN ? xp[pck__xprep_mode(k, g)] : 1.0f;
    float out[4][4];
    ptrdiff_t n = n0;
    for (; n + 4 <= n1; n += 4) {
        i4_m1_core512(DN, 4, rs, k64, xp, w + n * ldw, ldw, s + n * lds, lds, out);
        pck__int4_rows_finish_avx2(4, k, g, xp, w, ldw, s, lds, z, ldz, n, out, y, accumulate);
    }
    for (; n < n1; n++) {
        i4_m1_core512(DN, 1, rs, k64, xp, w + n * ldw, ldw, s + n * lds, lds, out);
        pck__int4_rows_finish_avx2(1, k, g, xp, w, ldw, s, lds, z, ldz, n, out, y, accumulate);
    }
}

/* m = 1 with g == 32 here; everything else is the AVX2 GEMV's (with g % 64 == 0 it scales
 * once per group, which measured faster than this kernel's scale per 128 weights). */
PCK_AVX512 void pck__int4_gemv_avx512(ptrdiff_t m, ptrdiff_t k, ptrdiff_t g, const float *xp,
                                      const uint8_t *w, ptrdiff_t ldw, const float *s,
                                      ptrdiff_t lds, const int8_t *z, ptrdiff_t ldz, ptrdiff_t n0,
                                      ptrdiff_t n1, float *y, ptrdiff_t ldy, int accumulate) {
    if (m != 1 || g != 32) {
        pck__int4_gemv_avx2(m, k, g, xp, w, ldw, s, lds, z, ldz, n0, n1, y, ldy, accumulate);
        return;
    }
    if (xp[pck__xprep_mode(k, g)] == 0.0f) {
        i4_gemv512_m1(0, k, g, xp, w, ldw, s, lds, z, ldz, n0, n1, y, accumulate);
        return;
    }
    /* denormals must be read as such (DAZ) and exact subnormal sums kept (FTZ): clear both
     * for this thread while the kernel runs, whatever the caller set */
    unsigned csr = _mm_getcsr();
    _mm_setcsr(csr & ~(0x8040u));
    i4_gemv512_m1(1, k, g, xp, w, ldw, s, lds, z, ldz, n0, n1, y, accumulate);
    _mm_setcsr(csr);
}

/* ---------------------------------------------------------------- B-panel packing */

/* Scales (and zero points) of groups gf ..< gf+ng for the 16 rows nb ..< nb+16, one vector
 * per group, lane r = row nb+r: masked row loads and the transpose, no scalar gather. */
PCK_INLINE PCK_AVX512 void group_vectors16(ptrdiff_t nb, ptrdiff_t gf, ptrdiff_t ng,
                                           const float *s, ptrdiff_t lds, const int8_t *z,
                                           ptrdiff_t ldz, __m512 *st, __m512i *zt) {
    for (ptrdiff_t g0 = 0; g0 < ng; g0 += 8) {
        ptrdiff_t cnt = ng - g0 < 8 ? ng - g0 : 8;
        __mmask8 mk = (__mmask8)((1u << cnt) - 1);
        __m512 v[8];
        for (int r = 0; r < 8; r++) {
            __m256 a = _mm256_maskz_loadu_ps(mk, s + (nb + r) * lds + gf + g0);
            __m256 b = _mm256_maskz_loadu_ps(mk, s + (nb + r + 8) * lds + gf + g0);
            v[r] = _mm512_insertf32x8(_mm512_castps256_ps512(a), b, 1);
        }
        transpose_2x8x8(v);
        for (ptrdiff_t i = 0; i < cnt; i++) st[g0 + i] = v[i];
        if (!z) continue;
        for (int r = 0; r < 8; r++) {
            __m256i a = _mm256_cvtepi8_epi32(_mm_maskz_loadu_epi8(mk, z + (nb + r) * ldz + gf + g0));
            __m256i b = _mm256_cvtepi8_epi32(_mm_maskz_loadu_epi8(mk, z + (nb + r + 8) * ldz + gf + g0));
            v[r] = _mm512_castsi512_ps(_mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1));
        }
        transpose_2x8x8(v);
        for (ptrdiff_t i = 0; i < cnt; i++) zt[g0 + i] = _mm512_castps_si512(v[i]);
    }
}

/* 16 weight rows nb.. x depths k0 ..< k0+kc64 into columns c0 ..< c0+16 of a sliver o whose
 * rows are nr floats apart. */
PCK_INLINE PCK_AVX512 void pack16(ptrdiff_t nr, ptrdiff_t kc64, ptrdiff_t k0, ptrdiff_t nb,
                                  ptrdiff_t g, const uint8_t *w, ptrdiff_t ldw,
                                  const float *s, ptrdiff_t lds, const int8_t *z,
                                  ptrdiff_t ldz, float *o) {
    enum { MAX_GROUPS = 1024 / 8 + 1 };
    ptrdiff_t gf = k0 / g, ng = (k0 + kc64 - 1) / g - gf + 1;
    __m512 st[MAX_GROUPS];
    __m512i zt[MAX_GROUPS];
    group_vectors16(nb, gf, ng, s, lds, z, ldz, st, zt);
    const __m512i m0 = _mm512_set1_epi32(0xf), m1 = _mm512_set1_epi32(0xf0);
    const __m512i m2 = _mm512_set1_epi32(0xf00), m3 = _mm512_set1_epi32(0xf000);
    /* The nibble u at bit 4q, or'ed into the float 2^(23-4q) (whose mantissa bit 4q is worth
     * 1), reads as 2^(23-4q) + u; less cv[q] = 2^(23-4q) + z that is u - z exactly. */
    __m512i magic[4];
    __m512 cv[4], sv = _mm512_setzero_ps();
    for (int q = 0; q < 4; q++) {
        magic[q] = _mm512_set1_epi32((127 + 23 - 4 * q) << 23);
        cv[q] = _mm512_add_ps(_mm512_castsi512_ps(magic[q]), _mm512_set1_ps(8.0f));
    }
    ptrdiff_t gcur = -1;
    for (ptrdiff_t kb = 0; kb < kc64; kb += 64) {
        __m512 v[8];
        for (int r = 0; r < 8; r++) {
            __m256i a = _mm256_loadu_si256((const __m256i *)(w + (nb + r) * ldw + (k0 + kb) / 2));
            __m256i b = _mm256_loadu_si256((const __m256i *)(w + (nb + r + 8) * ldw + (k0 + kb) / 2));
            v[r] = _mm512_castsi512_ps(_mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1));
        }
        transpose_2x8x8(v); /* v[l]: lane r = 8 nibbles of row nb+r at k = kb+8l.. */
        for (int l = 0; l < 8; l++) {
            ptrdiff_t gi = (k0 + kb + 8 * l) / g;
            if (gi != gcur) {
                gcur = gi;
                sv = st[gi - gf];
                if (z) {
                    __m512 zf = _mm512_cvtepi32_ps(zt[gi - gf]);
                    for (int q = 0; q < 4; q++) cv[q] = _mm512_add_ps(_mm512_castsi512_ps(magic[q]), zf);
                }
            }
            float *ok = o + (kb + 8 * l) * nr;
            __m512i a = _mm512_castps_si512(v[l]), h = _mm512_srli_epi32(a, 16);
            /* 0xEA: (x & m) | magic */
#define PCK_I4_OUT(j, x, m, q)                                                             \
    _mm512_storeu_ps(ok + (j) * nr,                                                        \
                     _mm512_mul_ps(_mm512_sub_ps(_mm512_castsi512_ps(_mm512_ternarylogic_epi32( \
                                                     x, m, magic[q], 0xEA)),               \
                                                 cv[q]),                                    \
                                   sv))
            PCK_I4_OUT(0, a, m0, 0);
            PCK_I4_OUT(1, a, m1, 1);
            PCK_I4_OUT(2, a, m2, 2);
            PCK_I4_OUT(3, a, m3, 3);
            PCK_I4_OUT(4, h, m0, 0);
            PCK_I4_OUT(5, h, m1, 1);
            PCK_I4_OUT(6, h, m2, 2);
            PCK_I4_OUT(7, _mm512_srli_epi32(a, 28), m0, 0);
#undef PCK_I4_OUT
        }
    }
}

PCK_AVX512 void pck__int4_pack_b_avx512(ptrdiff_t nr, ptrdiff_t kc, ptrdiff_t nc, ptrdiff_t k0,
                                        ptrdiff_t n0, ptrdiff_t g, const uint8_t *w,
                                        ptrdiff_t ldw, const float *s, ptrdiff_t lds,
                                        const int8_t *z, ptrdiff_t ldz, float *bp) {
    /* the group table holds kc / 8 + 1 groups; other layouts take the AVX2 packing */
    if (nr % 16 != 0 || g % 8 != 0 || k0 % 8 != 0 || kc > 1024) {
        pck__int4_pack_b_avx2(nr, kc, nc, k0, n0, g, w, ldw, s, lds, z, ldz, bp);
        return;
    }
    ptrdiff_t kc64 = kc & ~(ptrdiff_t)63;
    for (ptrdiff_t j0 = 0; j0 < nc; j0 += nr) {
        float *o = bp + (j0 / nr) * kc * nr;
        if (nc - j0 < nr) { /* ragged last sliver: zero-padded columns */
            pck__int4_pack_b_scalar(nr, kc, nc - j0, k0, n0 + j0, g, w, ldw, s, lds, z, ldz, o);
            continue;
        }
        for (ptrdiff_t c0 = 0; c0 < nr; c0 += 16) {
            if (kc64 > 0) pack16(nr, kc64, k0, n0 + j0 + c0, g, w, ldw, s, lds, z, ldz, o + c0);
            pck__int4_pack_tail(nr, kc64, kc, k0, n0 + j0 + c0, 16, g, w, ldw, s, lds, z, ldz, o + c0);
        }
    }
}

#endif
