/* The AVX-512 GEMM shapes: f32 MR x NR tiles on 512-bit FMAs and, with AVX512_BF16, the
 * bf16 pair tiles of the same shapes on vdpbf16ps, plus the bf16 pair packing.
 *
 * A tile keeps MR x NR/16 zmm accumulators; per k it loads NR/16 B vectors and broadcasts
 * MR A values from memory into the FMAs. The loops are written once as a macro over
 * (MR, NV = NR/16) and fully unrolled, so the accumulators stay in registers (an
 * un-unrolled row loop kept them on the stack: 10 GFLOP/s instead of 115 on Zen 4). */
#include "pck_internal.h"

#if PCK_X86
#include <immintrin.h>

#define PCK_UNROLL _Pragma("clang loop unroll(full)")

/* Lanes 0 ..< rem of 16 (rem may be <= 0 or >= 16). */
PCK_INLINE PCK_AVX512 __mmask16 lanes(ptrdiff_t rem) {
    return rem >= 16 ? (__mmask16)0xffff : rem <= 0 ? (__mmask16)0 : (__mmask16)((1u << rem) - 1);
}

/* Stores the accumulators into C (adding C when `accumulate`): whole tiles with plain
 * stores, edge tiles (m < MR or n < NR) with masked ones, so nothing outside m x n is
 * touched. */
#define PCK_X_STORE(MR, NV)                                                               \
    if (m == MR && n == 16 * NV) {                                                        \
        PCK_UNROLL for (int i = 0; i < MR; i++) PCK_UNROLL for (int v = 0; v < NV; v++) { \
            float *p = c + i * ldc + 16 * v;                                              \
            __m512 r = acc[i][v];                                                         \
            if (accumulate) r = _mm512_add_ps(_mm512_loadu_ps(p), r);                     \
            _mm512_storeu_ps(p, r);                                                       \
        }                                                                                 \
        return;                                                                           \
    }                                                                                     \
    PCK_UNROLL for (int i = 0; i < MR; i++) {                                             \
        if (i >= m) break;                                                                \
        PCK_UNROLL for (int v = 0; v < NV; v++) {                                         \
            __mmask16 mk = lanes(n - 16 * v);                                             \
            float *p = c + i * ldc + 16 * v;                                              \
            __m512 r = acc[i][v];                                                         \
            if (accumulate) r = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, p), r);           \
            _mm512_mask_storeu_ps(p, mk, r);                                              \
        }                                                                                 \
    }

/* Prefetches the C tile's lines (its rows are NR floats = NV lines each). */
#define PCK_X_PREFETCH_C(MR, NV)                                                          \
    PCK_UNROLL for (int i = 0; i < MR; i++) {                                             \
        if (i >= m) break;                                                                \
        PCK_UNROLL for (int v = 0; v < NV; v++)                                           \
            _mm_prefetch((const char *)(c + i * ldc + 16 * v), _MM_HINT_T0);              \
    }

/* f32 tile: kc steps of NV loads, MR broadcasts and MR*NV FMAs, unrolled by 4. `pf`
 * (a quarter of the next B sliver, kc*NR/4 floats) is prefetched one line per 16 floats
 * over the loop. */
#define PCK_SGEMM_X(NAME, MR, NV)                                                         \
    static PCK_AVX512 void NAME(ptrdiff_t kc, const float *ap, const float *bp, float *c,  \
                                ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n, int accumulate,  \
                                const float *pf) {                                        \
        if (!pf) pf = bp; /* re-touching the current sliver costs a load, no branch */    \
        __m512 acc[MR][NV];                                                               \
        PCK_UNROLL for (int i = 0; i < MR; i++) PCK_UNROLL for (int v = 0; v < NV; v++)   \
            acc[i][v] = _mm512_setzero_ps();                                              \
        PCK_X_PREFETCH_C(MR, NV)                                                          \
        ptrdiff_t k = 0;                                                                  \
        for (; k + 4 <= kc; k += 4) {                                                     \
            _mm_prefetch((const char *)(ap + 4 * MR * 4), _MM_HINT_T0);                   \
            PCK_UNROLL for (int q = 0; q < NV; q++)                                       \
                _mm_prefetch((const char *)(pf + 16 * q), _MM_HINT_T0);                   \
            pf += 16 * NV;                                                                \
            PCK_UNROLL for (int kk = 0; kk < 4; kk++) {                                   \
                __m512 b[NV];                                                             \
                PCK_UNROLL for (int v = 0; v < NV; v++)                                   \
                    b[v] = _mm512_loadu_ps(bp + kk * 16 * NV + 16 * v);                   \
                PCK_UNROLL for (int i = 0; i < MR; i++) {                                 \
                    __m512 a = _mm512_set1_ps(ap[kk * MR + i]);                           \
                    PCK_UNROLL for (int v = 0; v < NV; v++)                               \
                        acc[i][v] = _mm512_fmadd_ps(a, b[v], acc[i][v]);                  \
                }                                                                         \
            }                                                                             \
            ap += 4 * MR;                                                                 \
            bp += 4 * 16 * NV;                                                            \
        }                                                                                 \
        for (; k < kc; k++) {                                                             \
            __m512 b[NV];                                                                 \
            PCK_UNROLL for (int v = 0; v < NV; v++) b[v] = _mm512_loadu_ps(bp + 16 * v);  \
            PCK_UNROLL for (int i = 0; i < MR; i++) {                                     \
                __m512 a = _mm512_set1_ps(ap[i]);                                         \
                PCK_UNROLL for (int v = 0; v < NV; v++)                                   \
                    acc[i][v] = _mm512_fmadd_ps(a, b[v], acc[i][v]);                      \
            }                                                                             \
            ap += MR;                                                                     \
            bp += 16 * NV;                                                                \
        }                                                                                 \
        PCK_X_STORE(MR, NV)                                                               \
    }

/* bf16 pair tile: ceil(kc/2) steps, each NV loads of 16 column pairs, MR broadcasts of a
 * row's pair and MR*NV vdpbf16ps. `pf`: a quarter of the next pair sliver. */
#define PCK_BGEMM_X(NAME, MR, NV)                                                         \
    static PCK_AVX512BF16 void NAME(ptrdiff_t kc, const uint32_t *ap, const uint32_t *bp, \
                                    float *c, ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n,    \
                                    int accumulate, const uint32_t *pf) {                 \
        if (!pf) pf = bp;                                                                 \
        ptrdiff_t kp = (kc + 1) / 2;                                                      \
        __m512 acc[MR][NV];                                                               \
        PCK_UNROLL for (int i = 0; i < MR; i++) PCK_UNROLL for (int v = 0; v < NV; v++)   \
            acc[i][v] = _mm512_setzero_ps();                                              \
        PCK_X_PREFETCH_C(MR, NV)                                                          \
        ptrdiff_t p = 0;                                                                  \
        for (; p + 4 <= kp; p += 4) {                                                     \
            _mm_prefetch((const char *)(ap + 4 * MR * 4), _MM_HINT_T0);                   \
            PCK_UNROLL for (int q = 0; q < NV; q++)                                       \
                _mm_prefetch((const char *)(pf + 16 * q), _MM_HINT_T0);                   \
            pf += 16 * NV;                                                                \
            PCK_UNROLL for (int pp = 0; pp < 4; pp++) {                                   \
                __m512bh b[NV];                                                           \
                PCK_UNROLL for (int v = 0; v < NV; v++) b[v] = (__m512bh)_mm512_loadu_si512( \
                    (const void *)(bp + pp * 16 * NV + 16 * v));                          \
                PCK_UNROLL for (int i = 0; i < MR; i++) {                                 \
                    __m512bh a = (__m512bh)_mm512_set1_epi32((int)ap[pp * MR + i]);       \
                    PCK_UNROLL for (int v = 0; v < NV; v++)                               \
                        acc[i][v] = _mm512_dpbf16_ps(acc[i][v], a, b[v]);                 \
                }                                                                         \
            }                                                                             \
            ap += 4 * MR;                                                                 \
            bp += 4 * 16 * NV;                                                            \
        }                                                                                 \
        for (; p < kp; p++) {                                                             \
            __m512bh b[NV];                                                               \
            PCK_UNROLL for (int v = 0; v < NV; v++)                                       \
                b[v] = (__m512bh)_mm512_loadu_si512((const void *)(bp + 16 * v));         \
            PCK_UNROLL for (int i = 0; i < MR; i++) {                                     \
                __m512bh a = (__m512bh)_mm512_set1_epi32((int)ap[i]);                     \
                PCK_UNROLL for (int v = 0; v < NV; v++)                                   \
                    acc[i][v] = _mm512_dpbf16_ps(acc[i][v], a, b[v]);                     \
            }                                                                             \
            ap += MR;                                                                     \
            bp += 16 * NV;                                                                \
        }                                                                                 \
        PCK_X_STORE(MR, NV)                                                               \
    }

/* 14 x 32: 28 accumulators + 2 B vectors of 32 zmm registers; the most FMAs per C element
 * loaded and stored. 8 x 48: 24 + 3, rows in multiples of 8 (MoE expert segments of 64
 * tokens fill whole tiles). */
PCK_SGEMM_X(sgemm_14x32, 14, 2)
PCK_SGEMM_X(sgemm_8x48, 8, 3)
PCK_BGEMM_X(bgemm_14x32, 14, 2)
PCK_BGEMM_X(bgemm_8x48, 8, 3)

/* 6 x 16: the AVX2 tile (256-bit; 16 registers are enough for it) in the AVX-512 table, for
 * MoE experts: their segments of ~64 rows waste fewer rows in 6-row tiles than in 14- or
 * 8-row ones, and the table's INT4 packing (int4_avx512.c) dequantizes faster than AVX2's. */
const pck_gemm_shape pck__gemm_shapes_avx512[] = {
    {"avx512 14x32", 14, 32, sgemm_14x32, bgemm_14x32},
    {"avx512 8x48", 8, 48, sgemm_8x48, bgemm_8x48},
    {"avx512 6x16", 6, 16, pck__sgemm_kernel_avx2, NULL},
};
const int pck__gemm_shape_count_avx512 =
    (int)(sizeof pck__gemm_shapes_avx512 / sizeof pck__gemm_shapes_avx512[0]);

/* ---------------------------------------------------------------- bf16 pair packing */

/* Rows r < rows of one sliver, element (r, k) at src[r*sr + k*sk]: out[p*R + r] holds
 * (r, 2p) in its low half and (r, 2p + 1) in its high half; rows past `rows` and the
 * element past an odd kc are 0. */
static void bpack_generic(ptrdiff_t R, ptrdiff_t rows, ptrdiff_t kc, const uint16_t *src,
                          ptrdiff_t sr, ptrdiff_t sk, uint32_t *o) {
    ptrdiff_t kp = (kc + 1) / 2;
    for (ptrdiff_t p = 0; p < kp; p++)
        for (ptrdiff_t r = 0; r < R; r++) {
            uint32_t lo = r < rows ? src[r * sr + 2 * p * sk] : 0;
            uint32_t hi = r < rows && 2 * p + 1 < kc ? src[r * sr + (2 * p + 1) * sk] : 0;
            o[p * R + r] = lo | hi << 16;
        }
}

/* Source contiguous along r (B row-major): two k rows interleaved 16 lanes at a time. */
static PCK_AVX512 void bpack_rows_interleave(ptrdiff_t R, ptrdiff_t kc, const uint16_t *src,
                                             ptrdiff_t sk, uint32_t *o) {
    ptrdiff_t p = 0;
    for (; 2 * p + 1 < kc; p++) {
        const uint16_t *r0 = src + 2 * p * sk, *r1 = r0 + sk;
        ptrdiff_t r = 0;
        for (; r + 16 <= R; r += 16) {
            __m512i lo = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(r0 + r)));
            __m512i hi = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(r1 + r)));
            _mm512_storeu_si512((void *)(o + p * R + r), _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
        for (; r < R; r++) o[p * R + r] = (uint32_t)r0[r] | (uint32_t)r1[r] << 16;
    }
    if (2 * p < kc) /* odd kc: the last pair's high half is 0 */
        for (ptrdiff_t r = 0; r < R; r++) o[p * R + r] = src[2 * p * sk + r];
}

/* Source contiguous along k (A row-major, B weight layout): a row's pairs are 32-bit
 * words already; 16 x 16 word transposes (two 8 x 8 halves). */
static PCK_AVX512 void bpack_rows_transpose(ptrdiff_t R, ptrdiff_t kc, const uint16_t *src,
                                            ptrdiff_t sr, uint32_t *o) {
    ptrdiff_t kp = (kc + 1) / 2, full = kc / 2;
    ptrdiff_t p = 0;
    for (; p + 8 <= full; p += 8) {
        for (ptrdiff_t r0 = 0; r0 < R; r0 += 8) {
            ptrdiff_t nrow = R - r0 < 8 ? R - r0 : 8;
            __m256 v[8];
            for (int i = 0; i < 8; i++)
                v[i] = i < nrow ? _mm256_loadu_ps((const float *)(src + (r0 + i) * sr + 2 * p))
                                : _mm256_setzero_ps();
            pck__transpose8(v);
            __mmask8 mk = (__mmask8)((1u << nrow) - 1);
            for (int i = 0; i < 8; i++) _mm256_mask_storeu_ps((float *)(o + (p + i) * R + r0), mk, v[i]);
        }
    }
    for (; p < kp; p++)
        for (ptrdiff_t r = 0; r < R; r++) {
            const uint16_t *s = src + r * sr + 2 * p;
            o[p * R + r] = (uint32_t)s[0] | (2 * p + 1 < kc ? (uint32_t)s[1] << 16 : 0u);
        }
}

PCK_AVX512 void pck__bpack_avx512(ptrdiff_t R, ptrdiff_t count, ptrdiff_t kc,
                                  const uint16_t *src, ptrdiff_t sr, ptrdiff_t sk,
                                  uint32_t *out) {
    ptrdiff_t kp = (kc + 1) / 2;
    for (ptrdiff_t r0 = 0; r0 < count; r0 += R) {
        ptrdiff_t rows = count - r0 < R ? count - r0 : R;
        const uint16_t *s = src + r0 * sr;
        uint32_t *o = out + (r0 / R) * kp * R;
        if (rows == R && sr == 1)
            bpack_rows_interleave(R, kc, s, sk, o);
        else if (rows == R && sk == 1)
            bpack_rows_transpose(R, kc, s, sr, o);
        else
            bpack_generic(R, rows, kc, s, sr, sk, o);
    }
}

#endif /* PCK_X86 */
