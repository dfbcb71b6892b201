/* Private to CPolychipKernels: the dispatch table and helpers shared by all ISA paths. */
#ifndef PCK_INTERNAL_H
#define PCK_INTERNAL_H

#include "CPolychipKernels.h"
#include <stdint.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define PCK_X86 1
/* Per-function targets: the package may not pass -mavx2, so each SIMD function carries
 * its own ISA and is only reached through the dispatch table. */
#define PCK_AVX2 __attribute__((target("avx2,fma,f16c")))
#define PCK_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c")))
#define PCK_AVX512BF16 \
    __attribute__((target("avx512bf16,avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c")))
#else
#define PCK_X86 0
#endif

#if defined(__aarch64__)
#define PCK_ARM64 1
#else
#define PCK_ARM64 0
#endif

#define PCK_INLINE static inline __attribute__((always_inline))

/* The GEMM microkernel shape of a table: f32 tile and, where the ISA has one, the bf16
 * pair tile of the same MR x NR. */
typedef struct pck_gemm_shape {
    const char *name; /* "avx512 14x32" */
    ptrdiff_t mr, nr;
    /* `pf`: memory to prefetch while the tile runs (kc / 4 cache lines from it), or NULL. */
    void (*sgemm_kernel)(ptrdiff_t kc, const float *ap, const float *bp, float *c,
                         ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n, int accumulate,
                         const float *pf);
    /* kc counts elements; the kernel runs ceil(kc/2) pairs. NULL: no pair kernel. */
    void (*bgemm_kernel)(ptrdiff_t kc, const uint32_t *ap, const uint32_t *bp, float *c,
                         ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n, int accumulate,
                         const uint32_t *pf);
} pck_gemm_shape;

struct pck_kernels {
    pck_isa isa;
    const char *name;
    const pck_gemm_shape *gemm;
    /* Packs `count` rows/columns into slivers of width R (MR or NR):
     * out[s*kc*R + k*R + r] = src[(s*R + r)*stride_r + k*stride_k]. */
    void (*pack)(pck_dtype dt, ptrdiff_t width, ptrdiff_t count, ptrdiff_t kc,
                 const void *src, ptrdiff_t stride_r, ptrdiff_t stride_k, float *out);

    void (*int4_xprep)(ptrdiff_t m, ptrdiff_t k, ptrdiff_t g, const float *x, ptrdiff_t ldx,
                       float *xp);
    void (*int4_gemv)(ptrdiff_t m, ptrdiff_t k, ptrdiff_t g, const float *xp,
                      const uint8_t *w, ptrdiff_t ldw, const float *s, ptrdiff_t lds,
                      const int8_t *z, ptrdiff_t ldz, ptrdiff_t n0, ptrdiff_t n1, float *y,
                      ptrdiff_t ldy, int accumulate);
    void (*int4_pack_b)(ptrdiff_t nr, ptrdiff_t kc, ptrdiff_t nc, ptrdiff_t k0, ptrdiff_t n0,
                        ptrdiff_t g, const uint8_t *w, ptrdiff_t ldw, const float *s,
                        ptrdiff_t lds, const int8_t *z, ptrdiff_t ldz, float *bp);
    void (*int4_dequantize)(ptrdiff_t n0, ptrdiff_t n1, ptrdiff_t k, ptrdiff_t g,
                            const uint8_t *w, ptrdiff_t ldw, const float *s, ptrdiff_t lds,
                            const int8_t *z, ptrdiff_t ldz, float *out, ptrdiff_t ldo);
    void (*int4_quantize)(ptrdiff_t rows, ptrdiff_t k, ptrdiff_t g, const float *x,
                          ptrdiff_t ldx, uint8_t *w, ptrdiff_t ldw, float *s, ptrdiff_t lds,
                          int8_t *z, ptrdiff_t ldz);

    void (*f16_to_f32)(ptrdiff_t n, const uint16_t *src, float *dst);
    void (*f32_to_f16)(ptrdiff_t n, const float *src, uint16_t *dst);
    void (*bf16_to_f32)(ptrdiff_t n, const uint16_t *src, float *dst);
    void (*f32_to_bf16)(ptrdiff_t n, const float *src, uint16_t *dst);

    float (*dot)(ptrdiff_t n, const float *x, const float *y);
    void (*axpy)(ptrdiff_t n, float a, const float *x, float *y);
    /* y = a * x * (w ? w : 1) */
    void (*scale_mul)(ptrdiff_t n, float a, const float *x, const float *w, float *y);
    float (*max)(ptrdiff_t n, const float *x);
    float (*sum)(ptrdiff_t n, const float *x);
    void (*exp)(ptrdiff_t n, const float *x, float *y);
    float (*exp_sub_sum)(ptrdiff_t n, const float *x, float m, float *y);
    void (*silu)(ptrdiff_t n, const float *x, float *y);
    void (*swiglu)(ptrdiff_t n, const float *gate, const float *up, float *y);
};

/* The per-ISA functions the tables (dispatch.c) point at. */

#define PCK_DECLARE_ISA(isa)                                                              \
    void pck__sgemm_kernel_##isa(ptrdiff_t, const float *, const float *, float *,        \
                                 ptrdiff_t, ptrdiff_t, ptrdiff_t, int, const float *);     \
    void pck__pack_##isa(pck_dtype, ptrdiff_t, ptrdiff_t, ptrdiff_t, const void *,        \
                         ptrdiff_t, ptrdiff_t, float *);                                  \
    void pck__int4_xprep_##isa(ptrdiff_t, ptrdiff_t, ptrdiff_t, const float *, ptrdiff_t, \
                               float *);                                                  \
    void pck__int4_gemv_##isa(ptrdiff_t, ptrdiff_t, ptrdiff_t, const float *,             \
                              const uint8_t *, ptrdiff_t, const float *, ptrdiff_t,       \
                              const int8_t *, ptrdiff_t, ptrdiff_t, ptrdiff_t, float *,   \
                              ptrdiff_t, int);                                            \
    void pck__int4_pack_b_##isa(ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,    \
                                ptrdiff_t, const uint8_t *, ptrdiff_t, const float *,     \
                                ptrdiff_t, const int8_t *, ptrdiff_t, float *);           \
    void pck__int4_dequantize_##isa(ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,           \
                                    const uint8_t *, ptrdiff_t, const float *, ptrdiff_t, \
                                    const int8_t *, ptrdiff_t, float *, ptrdiff_t);       \
    void pck__int4_quantize_##isa(ptrdiff_t, ptrdiff_t, ptrdiff_t, const float *,         \
                                  ptrdiff_t, uint8_t *, ptrdiff_t, float *, ptrdiff_t,    \
                                  int8_t *, ptrdiff_t);                                   \
    void pck__f16_to_f32_##isa(ptrdiff_t, const uint16_t *, float *);                     \
    void pck__f32_to_f16_##isa(ptrdiff_t, const float *, uint16_t *);                     \
    void pck__bf16_to_f32_##isa(ptrdiff_t, const uint16_t *, float *);                    \
    void pck__f32_to_bf16_##isa(ptrdiff_t, const float *, uint16_t *);                    \
    float pck__dot_##isa(ptrdiff_t, const float *, const float *);                        \
    void pck__axpy_##isa(ptrdiff_t, float, const float *, float *);                       \
    void pck__scale_mul_##isa(ptrdiff_t, float, const float *, const float *, float *);   \
    float pck__max_##isa(ptrdiff_t, const float *);                                       \
    float pck__sum_##isa(ptrdiff_t, const float *);                                       \
    void pck__exp_##isa(ptrdiff_t, const float *, float *);                               \
    float pck__exp_sub_sum_##isa(ptrdiff_t, const float *, float, float *);               \
    void pck__silu_##isa(ptrdiff_t, const float *, float *);                              \
    void pck__swiglu_##isa(ptrdiff_t, const float *, const float *, float *);

PCK_DECLARE_ISA(scalar)
#if PCK_X86
PCK_DECLARE_ISA(avx2)
/* gemm_avx512.c: the AVX-512 GEMM shapes (f32 tiles and bf16 pair tiles) and bf16 pair
 * packing. */
extern const pck_gemm_shape pck__gemm_shapes_avx512[];
extern const int pck__gemm_shape_count_avx512;
void pck__bpack_avx512(ptrdiff_t width, ptrdiff_t count, ptrdiff_t kc, const uint16_t *src,
                       ptrdiff_t stride_r, ptrdiff_t stride_k, uint32_t *out);
/* vector_avx512.c: the exp-bound row primitives (the rest of the AVX-512 tables is AVX2). */
float pck__max_avx512(ptrdiff_t, const float *);
void pck__exp_avx512(ptrdiff_t, const float *, float *);
float pck__exp_sub_sum_avx512(ptrdiff_t, const float *, float, float *);
void pck__silu_avx512(ptrdiff_t, const float *, float *);
void pck__swiglu_avx512(ptrdiff_t, const float *, const float *, float *);
/* int4_avx512.c: the INT4 GEMV for m = 1, g = 32 (else AVX2's) and B-panel packing, 16 weight rows
 * per vector. */
void pck__int4_gemv_avx512(ptrdiff_t, ptrdiff_t, ptrdiff_t, const float *, const uint8_t *,
                           ptrdiff_t, const float *, ptrdiff_t, const int8_t *, ptrdiff_t,
                           ptrdiff_t, ptrdiff_t, float *, ptrdiff_t, int);
void pck__int4_pack_b_avx512(ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                             const uint8_t *, ptrdiff_t, const float *, ptrdiff_t,
                             const int8_t *, ptrdiff_t, float *);
#endif
#if PCK_ARM64
void pck__sgemm_kernel_neon(ptrdiff_t, const float *, const float *, float *, ptrdiff_t,
                            ptrdiff_t, ptrdiff_t, int, const float *);
void pck__pack_neon(pck_dtype, ptrdiff_t, ptrdiff_t, ptrdiff_t, const void *, ptrdiff_t,
                    ptrdiff_t, float *);
void pck__int4_xprep_neon(ptrdiff_t, ptrdiff_t, ptrdiff_t, const float *, ptrdiff_t, float *);
void pck__int4_gemv_neon(ptrdiff_t, ptrdiff_t, ptrdiff_t, const float *, const uint8_t *,
                         ptrdiff_t, const float *, ptrdiff_t, const int8_t *, ptrdiff_t,
                         ptrdiff_t, ptrdiff_t, float *, ptrdiff_t, int);
void pck__f16_to_f32_neon(ptrdiff_t, const uint16_t *, float *);
void pck__f32_to_f16_neon(ptrdiff_t, const float *, uint16_t *);
void pck__bf16_to_f32_neon(ptrdiff_t, const uint16_t *, float *);
void pck__f32_to_bf16_neon(ptrdiff_t, const float *, uint16_t *);
float pck__dot_neon(ptrdiff_t, const float *, const float *);
void pck__axpy_neon(ptrdiff_t, float, const float *, float *);
void pck__scale_mul_neon(ptrdiff_t, float, const float *, const float *, float *);
float pck__max_neon(ptrdiff_t, const float *);
float pck__sum_neon(ptrdiff_t, const float *);
void pck__exp_neon(ptrdiff_t, const float *, float *);
float pck__exp_sub_sum_neon(ptrdiff_t, const float *, float, float *);
void pck__silu_neon(ptrdiff_t, const float *, float *);
void pck__swiglu_neon(ptrdiff_t, const float *, const float *, float *);
#endif

#if PCK_X86
#include <immintrin.h>
/* sum of the 8 lanes: (lanes l + l+4, then + 2 apart, then + 1 apart); the INT4 GEMVs' and
 * the vector reductions' fixed order */
PCK_INLINE PCK_AVX2 float pck__hsum8(__m256 v) {
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_movehdup_ps(a));
    return _mm_cvtss_f32(a);
}

/* the largest of the 8 lanes, in the same pairing */
PCK_INLINE PCK_AVX2 float pck__hmax8(__m256 v) {
    __m128 a = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_max_ps(a, _mm_movehl_ps(a, a));
    a = _mm_max_ss(a, _mm_movehdup_ps(a));
    return _mm_cvtss_f32(a);
}

/* 8 x 8 transpose of 32-bit lanes (packing A and B slivers, f32 and bf16 pairs). */
PCK_INLINE PCK_AVX2 void pck__transpose8(__m256 v[8]) {
    __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
    __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
    __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
    __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xee);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xee);
    v[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    v[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    v[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    v[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    v[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    v[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    v[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    v[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

#endif

/* ---- scalar helpers shared by every path (bit-exact definitions) ---- */

PCK_INLINE uint32_t pck__f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
PCK_INLINE float pck__bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

PCK_INLINE float pck__f16_to_f32_1(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ffu;
    if (e == 0x1f) /* inf; NaN comes back quiet, as F16C and FCVT do */
        return pck__bits_f32(sign | 0x7f800000u | (m << 13) | (m ? 0x400000u : 0u));
    if (e != 0) return pck__bits_f32(sign | ((e + 112) << 23) | (m << 13));
    /* subnormal: m * 2^-24 is exact in f32 */
    float f = (float)m * (1.0f / 16777216.0f);
    return sign ? -f : f;
}

/* Round to nearest even; NaN keeps sign and top payload with the quiet bit (as F16C). */
PCK_INLINE uint16_t pck__f32_to_f16_1(float f) {
    uint32_t x = pck__f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520 */
    if (ax >= 0x38800000u) {                                  /* normal f16 */
        uint32_t r = ax + 0x0fffu + ((ax >> 13) & 1u);
        return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
    }
    if (ax < 0x33000000u) return (uint16_t)sign; /* < 2^-25: rounds to 0 */
    /* subnormal f16: shift the full significand, round to nearest even */
    uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e; /* 14..24 */
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return (uint16_t)(sign | q);
}

PCK_INLINE float pck__bf16_to_f32_1(uint16_t h) { return pck__bits_f32((uint32_t)h << 16); }

PCK_INLINE uint16_t pck__f32_to_bf16_1(float f) {
    uint32_t x = pck__f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/* round half away from zero without libm; NaN stays NaN, |v| >= 2^23 is integral. */
PCK_INLINE float pck__round_away(float v) {
    float av = v < 0 ? -v : v;
    if (!(av < 8388608.0f)) return v;
    float t = (float)(int32_t)v;
    float d = v - t; /* exact */
    if (d >= 0.5f) t += 1.0f;
    if (d <= -0.5f) t -= 1.0f;
    return t;
}

/* clamp with NaN -> lo (the order SIMD max/min reproduce) */
PCK_INLINE float pck__clampf(float v, float lo, float hi) {
    v = (v >= lo) ? v : lo;
    return (v <= hi) ? v : hi;
}

/* expf on every path (vector.c, vector_avx512.c): x = n*ln2 + r, a degree-6 polynomial
 * for exp(r), 2^n as two exact power-of-two factors; inputs clamped to [-104, 89]. */
#define PCK_EXP_LO -104.0f
#define PCK_EXP_HI 89.0f
#define PCK_LOG2E 1.44269504088896341f
#define PCK_EXP_C2 4.999999404e-01f
#define PCK_EXP_C3 1.666652113e-01f
#define PCK_EXP_C4 4.166838899e-02f
#define PCK_EXP_C5 8.368710056e-03f
#define PCK_EXP_C6 1.381460810e-03f
/* ln2 = HI + LO; HI has 9 trailing zero bits so n*HI is exact for |n| <= 256 */
#define PCK_LN2_HI 0.693145751953125f
#define PCK_LN2_LO 1.428606765330187e-06f
#define PCK_ROUND_MAGIC 12582912.0f /* 1.5 * 2^23: adding it rounds to an integer (RNE) */

/* Per-group INT4 parameters, shared by every ISA so they agree bit for bit. */
PCK_INLINE float pck__sym_scale(float amax) { return amax / 7.0f; }
/* docs/kernels.md: the range always holds 0 (lo = min(min x, 0), hi = max(max x, 0)), so
 * the zero point fits in 0..15; s = (hi - lo) / 15; an all-zero group has s = 0, z = 0. */
PCK_INLINE float pck__asym_scale(float mn, float mx) {
    float lo = mn < 0.0f ? mn : 0.0f, hi = mx > 0.0f ? mx : 0.0f;
    return (hi - lo) / 15.0f;
}
PCK_INLINE float pck__asym_zero(float mn, float s) {
    if (s == 0.0f) return 0.0f;
    float lo = mn < 0.0f ? mn : 0.0f;
    return pck__clampf(pck__round_away(-lo / s), 0.0f, 15.0f);
}

/* Layout of the INT4 activation workspace, per activation row:
 * [k floats: x in the ISA's order][pad to 16][k/g group sums][pad to 16][16: mode].
 * mode[0] (AVX2): 0 = the kernel converts nibbles to float; otherwise the nibbles are
 * read as denormal floats and mode[0] = 2^-E undoes the activations' scale (int4_avx2.c). */
PCK_INLINE ptrdiff_t pck__round16(ptrdiff_t v) { return (v + 15) & ~(ptrdiff_t)15; }
PCK_INLINE ptrdiff_t pck__xprep_mode(ptrdiff_t k, ptrdiff_t g) {
    return pck__round16(k) + pck__round16(g > 0 ? k / g : 0);
}
PCK_INLINE ptrdiff_t pck__xprep_row(ptrdiff_t k, ptrdiff_t g) { return pck__xprep_mode(k, g) + 16; }

/* 0 once pck_int4_denormal_weights(0) was called (tests compare both AVX2 paths). */
extern _Atomic int pck__int4_dn_enabled;
/* 1 if this CPU runs FMAs with denormal inputs at full rate (timed once; x86 only). */
int pck__int4_denormals_fast(void);

/* Scalar references reused by SIMD paths for tails and unusual shapes. */
void pck__int4_gemv_natural(ptrdiff_t m, ptrdiff_t k, ptrdiff_t g, const float *xp,
                            ptrdiff_t xrow, const uint8_t *w, ptrdiff_t ldw, const float *s,
                            ptrdiff_t lds, const int8_t *z, ptrdiff_t ldz, ptrdiff_t n0,
                            ptrdiff_t n1, float *y, ptrdiff_t ldy, int accumulate);
float pck__exp1(float x);

#endif /* PCK_INTERNAL_H */
