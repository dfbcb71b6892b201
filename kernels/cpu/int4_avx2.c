/* INT4 weights (W4A16) on AVX2 (x86-64, per-function target attributes): GEMV / small-M
 * GEMM with the conversion and denormal-weight paths, B-panel packing, dequantize and
 * quantize. The denormal path is chosen by the probe in probe.c (pck__int4_denormals_fast). */
#include "int4_internal.h"
#include "int4_asm_x86.h"

#if PCK_X86
#include <immintrin.h>

/* Activation order for a 64-weight block (32 bytes = 8 int32 lanes of 8 nibbles): the
 * kernel extracts nibble j of every lane at once, so x is stored j-major,
 * xp[j*8 + l] = x[8l + j] * f_j, where f_j undoes the nibble's bit position p_j in the lane.
 *
 * Conversion path: nibbles 0-6 are masked in place (p = 4j), nibble 7 is v >> 28 (p = 0),
 * then converted to float; f_j = 2^-p_j. One integer op per nibble, none to move v.
 *
 * Denormal path (no conversion; the loop is bound by its FP-pipe ops, and this removes 8
 * of every 24): a masked nibble u at bit p, read as a float, is the denormal u * 2^(p-149),
 * exactly, so with f_j = 2^(E+149-p_j) each FMA product is x*u*2^E: the conversion path's
 * product scaled by 2^E. Nibbles 0-4 are masked in place, 5 and 6 after v >> 8, 7 is
 * v >> 28. Both paths then round identically when no value overflows or is rounded as a
 * subnormal: E = -22 - max(e, 0) with max|x| < 2^e keeps x * 2^(E+149) finite, and every
 * nonzero |x| >= 2^(1-E-127) (biased exponent >= 1 - E) keeps all products and partial
 * sums either normal or exact subnormals. Per group the sums are multiplied by 2^-E before
 * the scale FMA. Rows outside that range (or with inf/NaN) take the conversion path. */
static const int nib_shift[8] = {0, 4, 8, 12, 16, 20, 24, 0};
static const int nib_pos_dn[8] = {0, 4, 8, 12, 16, 12, 16, 0};

PCK_INLINE PCK_AVX2 void transpose8i(__m256i v[8]);

PCK_INLINE float pow2f(int e) { /* 2^e, -126 <= e <= 127 */
    union { uint32_t u; float f; } c = {.u = (uint32_t)(e + 127) << 23};
    return c.f;
}

/* max(e, 0) for row x[0..<k64] if it can take the denormal path, else -1 */
PCK_INLINE PCK_AVX2 int i4_dn_exponent(const float *x, ptrdiff_t k64) {
    const __m256i absm = _mm256_set1_epi32(0x7fffffff), zero = _mm256_setzero_si256();
    __m256i mx = zero, mn = _mm256_set1_epi32(-1);
    for (ptrdiff_t kk = 0; kk < k64; kk += 8) {
        __m256i v = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + kk)), absm);
        mx = _mm256_max_epi32(mx, v);
        /* zeros become 0xffffffff, the unsigned maximum, so they never count as the min */
        mn = _mm256_min_epu32(mn, _mm256_or_si256(v, _mm256_cmpeq_epi32(v, zero)));
    }
    uint32_t a[8], b[8], hi = 0, lo = 0xffffffffu;
    _mm256_storeu_si256((__m256i *)a, mx);
    _mm256_storeu_si256((__m256i *)b, mn);
    for (int l = 0; l < 8; l++) {
        hi = a[l] > hi ? a[l] : hi;
        lo = b[l] < lo ? b[l] : lo;
    }
    int bmax = (int)(hi >> 23), bmin = lo == 0xffffffffu ? 255 : (int)(lo >> 23);
    int ep = bmax - 126 > 0 ? bmax - 126 : 0; /* max|x| < 2^(bmax-126) */
    if (bmax > 226 || bmin < 23 + ep) return -1; /* also inf/NaN (bmax 255), 2^-E <= 2^122 */
    return ep;
}

/* Vectorized (it runs on one thread before the GEMV splits N): 8x8 transposes for the
 * block order, the group sums in double with two 4-lane accumulators. */
PCK_AVX2 void pck__int4_xprep_avx2(ptrdiff_t m, ptrdiff_t k, ptrdiff_t g, const float *x,
                                   ptrdiff_t ldx, float *xp) {
    ptrdiff_t xrow = pck__xprep_row(k, g), mode = pck__xprep_mode(k, g);
    if (g % 32 != 0) {
        pck__int4_xprep_scalar(m, k, g, x, ldx, xp);
        return;
    }
    ptrdiff_t k64 = k & ~(ptrdiff_t)63, ng = k / g;
    /* one path for all m rows (the kernel shares each weight vector across them); each
     * row's exponent waits in its mode slot until every row is known to qualify */
    int dn = k64 > 0 && atomic_load_explicit(&pck__int4_dn_enabled, memory_order_relaxed) &&
             pck__int4_denormals_fast();
    for (ptrdiff_t i = 0; i < m && dn; i++) {
        int ep = i4_dn_exponent(x + i * ldx, k64);
        xp[i * xrow + mode] = (float)ep;
        dn = ep >= 0;
    }
    for (ptrdiff_t i = 0; i < m; i++) {
        const float *xi = x + i * ldx;
        float *o = xp + i * xrow, *sums = o + pck__round16(k);
        __m256 f[8];
        int ep = dn ? (int)o[mode] : 0;
        for (int j = 0; j < 8; j++)
            f[j] = _mm256_set1_ps(dn ? pow2f(127 - ep - nib_pos_dn[j]) : pow2f(-nib_shift[j]));
        o[mode] = dn ? pow2f(22 + ep) : 0.0f;
        for (ptrdiff_t b = 0; b < k64; b += 64) {
            __m256i v[8];
            for (int l = 0; l < 8; l++) v[l] = _mm256_castps_si256(_mm256_loadu_ps(xi + b + 8 * l));
            transpose8i(v); /* v[j] lane l = x[b + 8l + j] */
            for (int j = 0; j < 8; j++)
                _mm256_storeu_ps(o + b + j * 8, _mm256_mul_ps(_mm256_castsi256_ps(v[j]), f[j]));
        }
        for (ptrdiff_t kk = k64; kk < k; kk++) o[kk] = xi[kk];
        /* per-group sums of the block part, for the zero-point term z * sum(x) */
        for (ptrdiff_t gi = 0; gi < ng; gi++) {
            __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
            ptrdiff_t e = (gi + 1) * g < k64 ? (gi + 1) * g : k64; /* a multiple of 32 */
            for (ptrdiff_t kk = gi * g; kk < e; kk += 8) {
                a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm_loadu_ps(xi + kk)));
                a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm_loadu_ps(xi + kk + 4)));
            }
            __m256d a = _mm256_add_pd(a0, a1);
            __m128d h = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
            sums[gi] = (float)_mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
        }
    }
}

/* accumulator split: keep >= 4 independent FMA chains per call without running out of
 * the 16 ymm registers (measured on Zen 3: more splits spill and lose) */
#define PCK_I4_P(R, MM) ((R) * (MM) >= 4 ? 1 : 2)

/* R rows x MM activation rows over the 64-blocks of K: out[r][i] = sum_g s_g * sum x*u
 * (u unshifted by the x layout). Zero points are applied by the caller. Each output keeps
 * P accumulators (nibble j goes to j % P) so that R*MM*P >= 8 independent FMA chains cover
 * the FMA latency on two pipes. pf: byte distance of the rows to prefetch. DN: denormal
 * path, rs[i] = 2^-E of activation row i. */
PCK_INLINE PCK_AVX2 void i4_core_avx2(const int DN, const int R, const int MM, const int P,
                                      ptrdiff_t k64, ptrdiff_t g, ptrdiff_t pf,
                                      const float *const *xr, const float *rs,
                                      const uint8_t *const *wr, const float *const *sr,
                                      float out[4][4]) {
    const __m256i m0 = _mm256_set1_epi32(0xf), m1 = _mm256_set1_epi32(0xf0);
    const __m256i m2 = _mm256_set1_epi32(0xf00), m3 = _mm256_set1_epi32(0xf000);
    const __m256i m4 = _mm256_set1_epi32(0xf0000), m5 = _mm256_set1_epi32(0xf00000);
    const __m256i m6 = _mm256_set1_epi32(0xf000000);
    __m256 yacc[4][4], acc[4][4][4], rsv[4];
    for (int i = 0; i < MM; i++) rsv[i] = _mm256_set1_ps(DN ? rs[i] : 1.0f);
    for (int r = 0; r < R; r++)
        for (int i = 0; i < MM; i++) {
            yacc[r][i] = _mm256_setzero_ps();
            for (int q = 0; q < P; q++) acc[r][i][q] = _mm256_setzero_ps();
        }

#define PCK_I4_NIBBLE(j, expr)                                                            \
    do {                                                                                  \
        __m256 xv[4];                                                                     \
        for (int i = 0; i < MM; i++) xv[i] = _mm256_loadu_ps(xr[i] + b + (j) * 8);        \
        for (int r = 0; r < R; r++) {                                                     \
            __m256i vv = v[r];                                                            \
            __m256 u = DN ? _mm256_castsi256_ps(expr) : _mm256_cvtepi32_ps(expr);         \
            for (int i = 0; i < MM; i++)                                                  \
                acc[r][i][(j) % P] = _mm256_fmadd_ps(u, xv[i], acc[r][i][(j) % P]);        \
        }                                                                                 \
    } while (0)

    /* nibbles 0-6 are masked in place (DN: 5 and 6 after v >> 8), 7 is v >> 28 */
#define PCK_I4_BLOCK()                                                                    \
    do {                                                                                  \
        __m256i v[4];                                                                     \
        for (int r = 0; r < R; r++) {                                                     \
            v[r] = _mm256_loadu_si256((const __m256i *)(wr[r] + b / 2));                  \
            if (pf) _mm_prefetch((const char *)(wr[r] + pf + b / 2), _MM_HINT_T0);        \
        }                                                                                 \
        PCK_I4_NIBBLE(0, _mm256_and_si256(vv, m0));                                       \
        PCK_I4_NIBBLE(1, _mm256_and_si256(vv, m1));                                       \
        PCK_I4_NIBBLE(2, _mm256_and_si256(vv, m2));                                       \
        PCK_I4_NIBBLE(3, _mm256_and_si256(vv, m3));                                       \
        PCK_I4_NIBBLE(4, _mm256_and_si256(vv, m4));                                       \
        PCK_I4_NIBBLE(5, DN ? _mm256_and_si256(_mm256_srli_epi32(vv, 8), m3)              \
                            : _mm256_and_si256(vv, m5));                                  \
        PCK_I4_NIBBLE(6, DN ? _mm256_and_si256(_mm256_srli_epi32(vv, 8), m4)              \
                            : _mm256_and_si256(vv, m6));                                  \
        PCK_I4_NIBBLE(7, _mm256_srli_epi32(vv, 28));                                      \
    } while (0)

#define PCK_I4_SCALE(svexpr)                                                              \
    do {                                                                                  \
        for (int r = 0; r < R; r++) {                                                     \
            __m256 sv = svexpr;                                                           \
            for (int i = 0; i < MM; i++) {                                                \
                __m256 a = acc[r][i][0];                                                  \
                for (int q = 1; q < P; q++) a = _mm256_add_ps(a, acc[r][i][q]);           \
                if (DN) a = _mm256_mul_ps(a, rsv[i]);                                     \
                yacc[r][i] = _mm256_fmadd_ps(a, sv, yacc[r][i]);                          \
                for (int q = 0; q < P; q++) acc[r][i][q] = _mm256_setzero_ps();           \
            }                                                                             \
        }                                                                                 \
    } while (0)

    if (g % 64 == 0) {
        /* whole blocks per group: one scale FMA per group */
        ptrdiff_t gi = 0;
        for (ptrdiff_t g0 = 0; g0 < k64; g0 += g, gi++) {
            for (ptrdiff_t b = g0; b < g0 + g; b += 64) PCK_I4_BLOCK();
            PCK_I4_SCALE(_mm256_broadcast_ss(sr[r] + gi));
        }
    } else {
        /* g % 64 == 32: lanes 0-3 and 4-7 of a block may belong to different groups */
        for (ptrdiff_t b = 0; b < k64; b += 64) {
            ptrdiff_t glo = b / g, ghi = (b + 32) / g;
            PCK_I4_BLOCK();
            PCK_I4_SCALE(_mm256_set_m128(_mm_broadcast_ss(sr[r] + ghi), _mm_broadcast_ss(sr[r] + glo)));
        }
    }
#undef PCK_I4_SCALE
#undef PCK_I4_BLOCK
#undef PCK_I4_NIBBLE
    for (int r = 0; r < R; r++)
        for (int i = 0; i < MM; i++) out[r][i] = pck__hsum8(yacc[r][i]);
}

/* ---- m = 1, 4 rows: inline assembly (x86-64, GCC/Clang syntax) ----
 * The compiler could not keep 8 accumulators + 4 weight vectors + activations + masks in the
 * 16 ymm registers (it spilled accumulators, and a spilled FMA chain waits on
 * store-forwarding). Fixed allocation: ymm0-3 / ymm4-7 = rows 0-3, even / odd nibbles
 * (8 independent FMA chains: both FMA pipes busy); ymm8-11 = the 4 rows' 32 weight bytes;
 * ymm12 = activations; ymm13-14 = nibbles; ymm15 = mask (a load, shared by the 4 rows).
 * Per 8 weights and row: and (or shift), int-to-float, FMA; nothing else in the loop. */
const int32_t pck__int4_nibble_masks[7][8] __attribute__((aligned(32))) = {
#define M8(v) {v, v, v, v, v, v, v, v}
    M8(0xf), M8(0xf0), M8(0xf00), M8(0xf000), M8(0xf0000), M8(0xf00000), M8(0xf000000)};
#undef M8

/* nibble j (mask at byte moff of pck__int4_nibble_masks, activations at byte xoff of the
 * block) of the 4 rows into accumulators A0-A3; CV converts the masked nibbles (I4_CVT) or
 * not (I4_DN) */
#define I4_NIB4(CV, moff, xoff, A0, A1, A2, A3)                                           \
    "vmovdqa " #moff "(%[mk]), %%ymm15\n\t"                                               \
    "vmovups " #xoff "(%[x]), %%ymm12\n\t"                                                \
    "vpand %%ymm8, %%ymm15, %%ymm13\n\t"                                                  \
    "vpand %%ymm9, %%ymm15, %%ymm14\n\t"                                                  \
    CV("ymm13") CV("ymm14")                                                               \
    "vfmadd231ps %%ymm12, %%ymm13, %%" A0 "\n\t"                                          \
    "vfmadd231ps %%ymm12, %%ymm14, %%" A1 "\n\t"                                          \
    "vpand %%ymm10, %%ymm15, %%ymm13\n\t"                                                 \
    "vpand %%ymm11, %%ymm15, %%ymm14\n\t"                                                 \
    CV("ymm13") CV("ymm14")                                                               \
    "vfmadd231ps %%ymm12, %%ymm13, %%" A2 "\n\t"                                          \
    "vfmadd231ps %%ymm12, %%ymm14, %%" A3 "\n\t"

/* Nibbles 0-4 of a block, masked in place (both paths). */
#define I4_NIBS0_4(CV)                                                                    \
    I4_NIB4(CV, 0, 0, "ymm0", "ymm1", "ymm2", "ymm3")                                     \
    I4_NIB4(CV, 32, 32, "ymm4", "ymm5", "ymm6", "ymm7")                                   \
    I4_NIB4(CV, 64, 64, "ymm0", "ymm1", "ymm2", "ymm3")                                   \
    I4_NIB4(CV, 96, 96, "ymm4", "ymm5", "ymm6", "ymm7")                                   \
    I4_NIB4(CV, 128, 128, "ymm0", "ymm1", "ymm2", "ymm3")

/* One block, conversion path: nibbles 0-6 masked in place, 7 = v >> 28. */
#define I4_BLOCK4                                                                         \
    I4_LOAD4                                                                              \
    I4_NIBS0_4(I4_CVT)                                                                    \
    I4_NIB4(I4_CVT, 160, 160, "ymm4", "ymm5", "ymm6", "ymm7")                             \
    I4_NIB4(I4_CVT, 192, 192, "ymm0", "ymm1", "ymm2", "ymm3")                             \
    I4_NIB7(I4_CVT, 28, "ymm4", "ymm5", "ymm6", "ymm7")                                                                   \
    I4_ADVANCE

/* One block, denormal path: nibbles 0-4 masked in place, then the weight registers are
 * shifted right by 8 (nibbles 5 and 6 masked at bits 12 and 16, 7 = (v >> 8) >> 20).
 * Same accumulators and order as I4_BLOCK4. */
#define I4_BLOCK4_DN                                                                      \
    I4_LOAD4                                                                              \
    I4_NIBS0_4(I4_DN)                                                                     \
    "vpsrld $8, %%ymm8, %%ymm8\n\t"                                                       \
    "vpsrld $8, %%ymm9, %%ymm9\n\t"                                                       \
    "vpsrld $8, %%ymm10, %%ymm10\n\t"                                                     \
    "vpsrld $8, %%ymm11, %%ymm11\n\t"                                                     \
    I4_NIB4(I4_DN, 96, 160, "ymm4", "ymm5", "ymm6", "ymm7")                               \
    I4_NIB4(I4_DN, 128, 192, "ymm0", "ymm1", "ymm2", "ymm3")                              \
    I4_NIB7(I4_DN, 20, "ymm4", "ymm5", "ymm6", "ymm7")                                                                    \
    I4_ADVANCE

#define I4_ZERO8                                                                          \
    "vxorps %%xmm0, %%xmm0, %%xmm0\n\t"                                                   \
    "vxorps %%xmm1, %%xmm1, %%xmm1\n\t"                                                   \
    "vxorps %%xmm2, %%xmm2, %%xmm2\n\t"                                                   \
    "vxorps %%xmm3, %%xmm3, %%xmm3\n\t"                                                   \
    "vxorps %%xmm4, %%xmm4, %%xmm4\n\t"                                                   \
    "vxorps %%xmm5, %%xmm5, %%xmm5\n\t"                                                   \
    "vxorps %%xmm6, %%xmm6, %%xmm6\n\t"                                                   \
    "vxorps %%xmm7, %%xmm7, %%xmm7\n\t"

/* denormal path: the group sums times 2^-E (exact) before the scale FMA */
#define I4_RESCALE                                                                        \
    "vbroadcastss %[rs], %%ymm9\n\t"                                                      \
    "vmulps %%ymm9, %%ymm0, %%ymm0\n\t"                                                   \
    "vmulps %%ymm9, %%ymm1, %%ymm1\n\t"                                                   \
    "vmulps %%ymm9, %%ymm2, %%ymm2\n\t"                                                   \
    "vmulps %%ymm9, %%ymm3, %%ymm3\n\t"

/* y[r] = fma(a_r + b_r, scale vector of row r, y[r]) with the scales in ymm12-15 */
#define I4_SCALE4(RESCALE)                                                                \
    "vaddps %%ymm4, %%ymm0, %%ymm0\n\t"                                                   \
    "vaddps %%ymm5, %%ymm1, %%ymm1\n\t"                                                   \
    "vaddps %%ymm6, %%ymm2, %%ymm2\n\t"                                                   \
    "vaddps %%ymm7, %%ymm3, %%ymm3\n\t"                                                   \
    RESCALE                                                                               \
    "vfmadd213ps (%[y]), %%ymm12, %%ymm0\n\t"                                             \
    "vfmadd213ps 32(%[y]), %%ymm13, %%ymm1\n\t"                                           \
    "vfmadd213ps 64(%[y]), %%ymm14, %%ymm2\n\t"                                           \
    "vfmadd213ps 96(%[y]), %%ymm15, %%ymm3\n\t"                                           \
    "vmovups %%ymm0, (%[y])\n\t"                                                          \
    "vmovups %%ymm1, 32(%[y])\n\t"                                                        \
    "vmovups %%ymm2, 64(%[y])\n\t"                                                        \
    "vmovups %%ymm3, 96(%[y])\n\t"

#define I4_ASM_OPERANDS I4_ASM_IO : I4_ASM_CLOBBERS16, "memory", "cc"

/* g % 64 == 0: n >= 1 groups of nblk >= 1 blocks, one scale per row and group. Same
 * arithmetic, in the same order, as i4_core_avx2 with R = 4, MM = 1, P = 2. */
#define I4_GROUPS_ASM(BLOCK, RESCALE)                                                     \
    __asm__ volatile("1:\n\t" I4_ZERO8                                                    \
                     "mov %[nblk], %[ci]\n\t"                                             \
                     "2:\n\t" BLOCK                                                       \
                     "dec %[ci]\n\t"                                                      \
                     "jnz 2b\n\t"                                                         \
                     "vbroadcastss (%[s]), %%ymm12\n\t"                                   \
                     "vbroadcastss (%[s],%[lds4]), %%ymm13\n\t"                           \
                     "vbroadcastss (%[s],%[lds4],2), %%ymm14\n\t"                         \
                     "vbroadcastss (%[s3]), %%ymm15\n\t" I4_SCALE4(RESCALE)               \
                     "add $4, %[s]\n\t"                                                   \
                     "add $4, %[s3]\n\t"                                                  \
                     "dec %[n]\n\t"                                                       \
                     "jnz 1b\n\t" I4_ASM_OPERANDS)

PCK_INLINE PCK_AVX2 void i4_m1_r4_groups(int dn, float rs, ptrdiff_t n, ptrdiff_t nblk,
                                         const float *x, const uint8_t *w, ptrdiff_t ldw,
                                         const float *s, ptrdiff_t lds, float *y) {
    const uint8_t *w3 = w + 3 * ldw;
    const float *s3 = s + 3 * lds;
    ptrdiff_t ci;
    if (dn) I4_GROUPS_ASM(I4_BLOCK4_DN, I4_RESCALE);
    else I4_GROUPS_ASM(I4_BLOCK4, "");
}

/* g == 32: n >= 1 blocks, lanes 0-3 and 4-7 of each in consecutive groups */
#define I4_SC2(addr, reg)                                                                 \
    "vbroadcastss " addr ", %%" reg "\n\t"                                                \
    "vbroadcastss 4" addr ", %%ymm8\n\t"                                                  \
    "vblendps $0xf0, %%ymm8, %%" reg ", %%" reg "\n\t"
#define I4_G32_ASM(BLOCK, RESCALE)                                                        \
    __asm__ volatile("1:\n\t" I4_ZERO8 BLOCK                                              \
                     I4_SC2("(%[s])", "ymm12")                                            \
                     I4_SC2("(%[s],%[lds4])", "ymm13")                                    \
                     I4_SC2("(%[s],%[lds4],2)", "ymm14")                                  \
                     I4_SC2("(%[s3])", "ymm15") I4_SCALE4(RESCALE)                        \
                     "add $8, %[s]\n\t"                                                   \
                     "add $8, %[s3]\n\t"                                                  \
                     "dec %[n]\n\t"                                                       \
                     "jnz 1b\n\t" I4_ASM_OPERANDS)

PCK_INLINE PCK_AVX2 void i4_m1_r4_g32(int dn, float rs, ptrdiff_t n, const float *x,
                                      const uint8_t *w, ptrdiff_t ldw, const float *s,
                                      ptrdiff_t lds, float *y) {
    const uint8_t *w3 = w + 3 * ldw;
    const float *s3 = s + 3 * lds;
    ptrdiff_t ci, nblk = 1; /* operands shared with i4_m1_r4_groups, unused here */
    if (dn) I4_G32_ASM(I4_BLOCK4_DN, I4_RESCALE);
    else I4_G32_ASM(I4_BLOCK4, "");
}
#undef I4_G32_ASM
#undef I4_SC2
#undef I4_GROUPS_ASM
#undef I4_ASM_OPERANDS
#undef I4_SCALE4
#undef I4_RESCALE
#undef I4_ZERO8
#undef I4_BLOCK4_DN
#undef I4_BLOCK4
#undef I4_NIBS0_4
#undef I4_NIB4

/* out[r][0] for 4 rows at w (m = 1; g % 64 == 0 or g == 32); dn: denormal path with
 * rs = 2^-E */
static __attribute__((noinline)) PCK_AVX2 void i4_m1_r4(int dn, float rs, ptrdiff_t k64,
                                                        ptrdiff_t g, const float *x,
                                                        const uint8_t *w, ptrdiff_t ldw,
                                                        const float *s, ptrdiff_t lds,
                                                        float out[4][4]) {
    float y[32] = {0};
    if (g == 32 && k64 >= 64) i4_m1_r4_g32(dn, rs, k64 / 64, x, w, ldw, s, lds, y);
    else if (g != 32 && k64 >= g) i4_m1_r4_groups(dn, rs, k64 / g, g / 64, x, w, ldw, s, lds, y);
    for (int r = 0; r < 4; r++) out[r][0] = pck__hsum8(_mm256_loadu_ps(y + 8 * r));
}

/* zt[r] = sum_g s_g * z_g * X_g over all groups for R rows (X_g = block-part sums from
 * xprep). The rows run interleaved (R independent FMA chains: one chain per row was
 * latency-bound, ~4 cycles per 8 groups and row, 10% of the M = 1 time at g = 32); each
 * row's arithmetic and order are those of a single row. */
PCK_INLINE PCK_AVX2 void zero_terms_avx2(const int R, ptrdiff_t ng, const float *const *sr,
                                         const int8_t *const *zr, const float *sums,
                                         float zt[4]) {
    __m256 acc[4];
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
    ptrdiff_t gi = 0;
    for (; gi + 8 <= ng; gi += 8) {
        __m256 xs = _mm256_loadu_ps(sums + gi);
        for (int r = 0; r < R; r++) {
            __m256 zv = zr[r] ? _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(zr[r] + gi))))
                              : _mm256_set1_ps(8.0f);
            acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(sr[r] + gi), zv), xs, acc[r]);
        }
    }
    for (int r = 0; r < R; r++) {
        float t = pck__hsum8(acc[r]);
        for (ptrdiff_t gj = gi; gj < ng; gj++) t += sr[r][gj] * (float)(zr[r] ? zr[r][gj] : 8) * sums[gj];
        zt[r] = t;
    }
}

/* y for R <= 4 weight rows n.. x MM <= 4 activation rows i0..: out[r][i] holds the block
 * part (sum over the 64-blocks of s_g * sum x*u); this subtracts the zero-point terms, adds
 * the K tail in natural order and stores (or accumulates). */
PCK_INLINE PCK_AVX2 void i4_rows_finish(const int R, const int MM, ptrdiff_t k, ptrdiff_t g,
                                        const float *xp, ptrdiff_t xrow, ptrdiff_t i0,
                                        const uint8_t *w, ptrdiff_t ldw, const float *s,
                                        ptrdiff_t lds, const int8_t *z, ptrdiff_t ldz,
                                        ptrdiff_t n, float out[4][4], float *y, ptrdiff_t ldy,
                                        int accumulate) {
    ptrdiff_t k64 = k & ~(ptrdiff_t)63, ng = k / g;
    const float *sr[4];
    const int8_t *zr[4];
    for (int r = 0; r < R; r++) {
        sr[r] = s + (n + r) * lds;
        zr[r] = z ? z + (n + r) * ldz : NULL;
    }
    for (int i = 0; i < MM; i++) {
        const float *xi = xp + (i0 + i) * xrow;
        float zt[4];
        zero_terms_avx2(R, ng, sr, zr, xi + pck__round16(k), zt);
        for (int r = 0; r < R; r++) {
            const uint8_t *wr = w + (n + r) * ldw;
            float v = out[r][i] - zt[r];
            for (ptrdiff_t kk = k64; kk < k; kk += 2) { /* K tail, natural order */
                uint8_t b = wr[kk >> 1];
                ptrdiff_t gi = kk / g;
                float zf = (float)(zr[r] ? zr[r][gi] : 8);
                v += sr[r][gi] * (xi[kk] * ((float)(b & 15) - zf) +
                                  xi[kk + 1] * ((float)(b >> 4) - zf));
            }
            float *yy = y + (i0 + i) * ldy + n + r;
            *yy = accumulate ? *yy + v : v;
        }
    }
}

/* The same out of line for one activation row (m = 1), for the AVX-512 GEMV: R = 4 keeps the
 * four zero-point chains interleaved, other R (leftover rows) go one row at a time. */
PCK_AVX2 void pck__int4_rows_finish_avx2(int R, ptrdiff_t k, ptrdiff_t g, const float *xp,
                                         const uint8_t *w, ptrdiff_t ldw, const float *s,
                                         ptrdiff_t lds, const int8_t *z, ptrdiff_t ldz,
                                         ptrdiff_t n, float out[4][4], float *y, int accumulate) {
    ptrdiff_t xrow = pck__xprep_row(k, g);
    if (R == 4) {
        i4_rows_finish(4, 1, k, g, xp, xrow, 0, w, ldw, s, lds, z, ldz, n, out, y, 0, accumulate);
        return;
    }
    for (int r = 0; r < R; r++) {
        float o[4][4] = {{out[r][0]}};
        i4_rows_finish(1, 1, k, g, xp, xrow, 0, w, ldw, s, lds, z, ldz, n + r, o, y, 0, accumulate);
    }
}

PCK_INLINE PCK_AVX2 void i4_rows_avx2(const int DN, const int R, const int MM, const int P,
                                      ptrdiff_t k, ptrdiff_t g,
                                      const float *xp, ptrdiff_t xrow, ptrdiff_t i0,
                                      const uint8_t *w, ptrdiff_t ldw, const float *s,
                                      ptrdiff_t lds, const int8_t *z, ptrdiff_t ldz, ptrdiff_t n,
                                      float *y, ptrdiff_t ldy, int accumulate) {
    ptrdiff_t k64 = k & ~(ptrdiff_t)63;
    const float *xr[4];
    const uint8_t *wr[4];
    const float *sr[4];
    float out[4][4], rs[4];
    for (int i = 0; i < MM; i++) {
        xr[i] = xp + (i0 + i) * xrow;
        rs[i] = xr[i][pck__xprep_mode(k, g)];
    }
    for (int r = 0; r < R; r++) {
        wr[r] = w + (n + r) * ldw;
        sr[r] = s + (n + r) * lds;
    }
    if (MM == 1 && R == 4 && (g % 64 == 0 || g == 32))
        i4_m1_r4(DN, rs[0], k64, g, xr[0], wr[0], ldw, sr[0], lds, out); /* prefetches the next rows */
    else
        i4_core_avx2(DN, R, MM, P, k64, g, R * ldw, xr, rs, wr, sr, out); /* prefetch the next rows */
    i4_rows_finish(R, MM, k, g, xp, xrow, i0, w, ldw, s, lds, z, ldz, n, out, y, ldy, accumulate);
}

/* g % 32 == 0; DN: xp was laid out for the denormal path */
PCK_INLINE PCK_AVX2 void i4_gemv_avx2(const int DN, ptrdiff_t m, ptrdiff_t k, ptrdiff_t g,
                                      const float *xp, const uint8_t *w, ptrdiff_t ldw,
                                      const float *s, ptrdiff_t lds, const int8_t *z,
                                      ptrdiff_t ldz, ptrdiff_t n0, ptrdiff_t n1, float *y,
                                      ptrdiff_t ldy, int accumulate) {
    ptrdiff_t xrow = pck__xprep_row(k, g);
#define PCK_I4_ROWS(R, MM, i0, n)                                                         \
    i4_rows_avx2(DN, R, MM, PCK_I4_P(R, MM), k, g, xp, xrow, i0, w, ldw, s, lds, z, ldz, n, y, ldy, accumulate)
    ptrdiff_t n = n0;
    /* Rows per call trade activation reloads (L2 traffic: x does not fit L1) against
     * registers: 4 rows for m = 1, 3 for m = 2, 2 for larger m in chunks of 4. */
    if (m == 1) {
        for (; n + 4 <= n1; n += 4) PCK_I4_ROWS(4, 1, 0, n);
        for (; n < n1; n++) PCK_I4_ROWS(1, 1, 0, n);
    } else if (m == 2) {
        for (; n + 3 <= n1; n += 3) PCK_I4_ROWS(3, 2, 0, n);
        for (; n < n1; n++) PCK_I4_ROWS(1, 2, 0, n);
    } else {
        /* two weight rows at a time (they stay in L1 across the activation chunks) */
        for (; n + 2 <= n1; n += 2) {
            ptrdiff_t i0 = 0;
            for (; i0 + 4 <= m; i0 += 4) PCK_I4_ROWS(2, 4, i0, n);
            switch (m - i0) {
            case 3: PCK_I4_ROWS(2, 3, i0, n); break;
            case 2: PCK_I4_ROWS(2, 2, i0, n); break;
            case 1: PCK_I4_ROWS(2, 1, i0, n); break;
            default: break;
            }
        }
        for (; n < n1; n++) {
            ptrdiff_t i0 = 0;
            for (; i0 + 4 <= m; i0 += 4) PCK_I4_ROWS(1, 4, i0, n);
            switch (m - i0) {
            case 3: PCK_I4_ROWS(1, 3, i0, n); break;
            case 2: PCK_I4_ROWS(1, 2, i0, n); break;
            case 1: PCK_I4_ROWS(1, 1, i0, n); break;
            default: break;
            }
        }
    }
#undef PCK_I4_ROWS
}

PCK_AVX2 void pck__int4_gemv_avx2(ptrdiff_t m, ptrdiff_t k, ptrdiff_t g, const float *xp,
                                  const uint8_t *w, ptrdiff_t ldw, const float *s, ptrdiff_t lds,
                                  const int8_t *z, ptrdiff_t ldz, ptrdiff_t n0, ptrdiff_t n1,
                                  float *y, ptrdiff_t ldy, int accumulate) {
    if (g % 32 != 0) {
        pck__int4_gemv_natural(m, k, g, xp, pck__xprep_row(k, g), w, ldw, s, lds, z, ldz, n0,
                               n1, y, ldy, accumulate);
        return;
    }
    if (m <= 0 || xp[pck__xprep_mode(k, g)] == 0.0f) {
        i4_gemv_avx2(0, m, k, g, xp, w, ldw, s, lds, z, ldz, n0, n1, y, ldy, accumulate);
        return;
    }
    /* denormals must be read as such (DAZ) and exact subnormal sums kept (FTZ): clear both
     * for this thread while the kernel runs, whatever the caller set */
    unsigned csr = _mm_getcsr();
    _mm_setcsr(csr & ~(0x8040u));
    i4_gemv_avx2(1, m, k, g, xp, w, ldw, s, lds, z, ldz, n0, n1, y, ldy, accumulate);
    _mm_setcsr(csr);
}

PCK_INLINE PCK_AVX2 void transpose8i(__m256i v[8]) {
    __m256 t[8];
    for (int i = 0; i < 8; i++) t[i] = _mm256_castsi256_ps(v[i]);
    pck__transpose8(t);
    for (int i = 0; i < 8; i++) v[i] = _mm256_castps_si256(t[i]);
}

/* 8 rows x 64 k into B-panel rows: a byte-lane transpose puts 8 weight rows in the 8
 * lanes, then each nibble u at bit 4q becomes (u - z) * s rounded once: or'ed into the
 * float 2^(23-4q), whose mantissa bit 4q is worth 1, it reads as 2^(23-4q) + u, and less
 * 2^(23-4q) + z that is u - z exactly (no conversion, and s is used unscaled, so a
 * subnormal scale rounds as the scalar packing rounds it). */
PCK_AVX2 void pck__int4_pack_b_avx2(ptrdiff_t nr, ptrdiff_t kc, ptrdiff_t nc, ptrdiff_t k0,
                                    ptrdiff_t n0, ptrdiff_t g, const uint8_t *w, ptrdiff_t ldw,
                                    const float *s, ptrdiff_t lds, const int8_t *z,
                                    ptrdiff_t ldz, float *bp) {
    if (g % 8 != 0 || k0 % 8 != 0 || nr % 8 != 0) {
        pck__int4_pack_b_scalar(nr, kc, nc, k0, n0, g, w, ldw, s, lds, z, ldz, bp);
        return;
    }
    const __m256i m0 = _mm256_set1_epi32(0xf), m1 = _mm256_set1_epi32(0xf0);
    const __m256i m2 = _mm256_set1_epi32(0xf00), m3 = _mm256_set1_epi32(0xf000);
    __m256 magic[4];
    for (int q = 0; q < 4; q++) magic[q] = _mm256_castsi256_ps(_mm256_set1_epi32((127 + 23 - 4 * q) << 23));
    ptrdiff_t kc64 = kc & ~(ptrdiff_t)63;
    for (ptrdiff_t j0 = 0; j0 < nc; j0 += nr) {
        float *o = bp + (j0 / nr) * kc * nr;
        if (nc - j0 < nr) { /* ragged last sliver: zero-padded columns */
            pck__int4_pack_b_scalar(nr, kc, nc - j0, k0, n0 + j0, g, w, ldw, s, lds, z, ldz, o);
            continue;
        }
        for (ptrdiff_t c0 = 0; c0 < nr; c0 += 8) {
            ptrdiff_t nb = n0 + j0 + c0; /* first of 8 weight rows */
            ptrdiff_t gcur = -1;
            __m256 sv = _mm256_setzero_ps(), cv[4];
            for (int q = 0; q < 4; q++) cv[q] = _mm256_add_ps(magic[q], _mm256_set1_ps(8.0f));
            for (ptrdiff_t kb = 0; kb < kc64; kb += 64) {
                __m256i v[8];
                for (int r = 0; r < 8; r++)
                    v[r] = _mm256_loadu_si256((const __m256i *)(w + (nb + r) * ldw + (k0 + kb) / 2));
                transpose8i(v); /* v[l]: lane r = 8 nibbles of row nb+r, k = kb+8l.. */
                for (int l = 0; l < 8; l++) {
                    ptrdiff_t gi = (k0 + kb + 8 * l) / g;
                    if (gi != gcur) {
                        gcur = gi;
                        float st[8], zt[8];
                        for (int r = 0; r < 8; r++) {
                            st[r] = s[(nb + r) * lds + gi];
                            zt[r] = z ? (float)z[(nb + r) * ldz + gi] : 8.0f;
                        }
                        sv = _mm256_loadu_ps(st);
                        __m256 zf = _mm256_loadu_ps(zt);
                        for (int q = 0; q < 4; q++) cv[q] = _mm256_add_ps(magic[q], zf);
                    }
                    float *ok = o + (kb + 8 * l) * nr + c0;
                    __m256i a = v[l], h = _mm256_srli_epi32(a, 16);
#define PCK_I4_OUT(j, bits, q)                                                            \
    _mm256_storeu_ps(ok + (j) * nr,                                                       \
                     _mm256_mul_ps(_mm256_sub_ps(_mm256_or_ps(_mm256_castsi256_ps(bits),   \
                                                              magic[q]),                  \
                                                 cv[q]),                                  \
                                   sv))
                    PCK_I4_OUT(0, _mm256_and_si256(a, m0), 0);
                    PCK_I4_OUT(1, _mm256_and_si256(a, m1), 1);
                    PCK_I4_OUT(2, _mm256_and_si256(a, m2), 2);
                    PCK_I4_OUT(3, _mm256_and_si256(a, m3), 3);
                    PCK_I4_OUT(4, _mm256_and_si256(h, m0), 0);
                    PCK_I4_OUT(5, _mm256_and_si256(h, m1), 1);
                    PCK_I4_OUT(6, _mm256_and_si256(h, m2), 2);
                    PCK_I4_OUT(7, _mm256_srli_epi32(a, 28), 0);
#undef PCK_I4_OUT
                }
            }
            pck__int4_pack_tail(nr, kc64, kc, k0, nb, 8, g, w, ldw, s, lds, z, ldz, o + c0);
        }
    }
}

PCK_AVX2 void pck__int4_dequantize_avx2(ptrdiff_t n0, ptrdiff_t n1, ptrdiff_t k, ptrdiff_t g,
                                        const uint8_t *w, ptrdiff_t ldw, const float *s,
                                        ptrdiff_t lds, const int8_t *z, ptrdiff_t ldz,
                                        float *out, ptrdiff_t ldo) {
    if (g % 8 != 0) {
        pck__int4_dequantize_scalar(n0, n1, k, g, w, ldw, s, lds, z, ldz, out, ldo);
        return;
    }
    const __m128i lo4 = _mm_set1_epi8(0x0f);
    ptrdiff_t k32 = k & ~(ptrdiff_t)31;
    for (ptrdiff_t n = n0; n < n1; n++) {
        const uint8_t *wr = w + n * ldw;
        float *o = out + (n - n0) * ldo;
        for (ptrdiff_t kb = 0; kb < k32; kb += 32) {
            __m128i b = _mm_loadu_si128((const __m128i *)(wr + kb / 2));
            __m128i lo = _mm_and_si128(b, lo4), hi = _mm_and_si128(_mm_srli_epi16(b, 4), lo4);
            __m128i q[2] = {_mm_unpacklo_epi8(lo, hi), _mm_unpackhi_epi8(lo, hi)}; /* k order */
            for (int c = 0; c < 4; c++) {
                ptrdiff_t kk = kb + 8 * c, gi = kk / g;
                __m128i bytes = (c & 1) ? _mm_unpackhi_epi64(q[c >> 1], q[c >> 1]) : q[c >> 1];
                __m256i u = _mm256_cvtepu8_epi32(bytes);
                __m256i zz = _mm256_set1_epi32(zero_at(z, n, ldz, gi));
                __m256 val = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(u, zz)),
                                           _mm256_set1_ps(s[n * lds + gi]));
                _mm256_storeu_ps(o + kk, val);
            }
        }
        for (ptrdiff_t kk = k32; kk < k; kk++) o[kk] = deq1(w, ldw, s, lds, z, ldz, g, n, kk);
    }
}

/* round half away from zero, exactly as pck__round_away */
PCK_INLINE PCK_AVX2 __m256 round_away8(__m256 v) {
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 d = _mm256_sub_ps(v, t);
    __m256 one = _mm256_set1_ps(1.0f);
    t = _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(d, _mm256_set1_ps(0.5f), _CMP_GE_OQ), one));
    t = _mm256_sub_ps(t, _mm256_and_ps(_mm256_cmp_ps(d, _mm256_set1_ps(-0.5f), _CMP_LE_OQ), one));
    return t;
}

PCK_INLINE PCK_AVX2 float hmin8(__m256 v) {
    __m128 a = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_min_ps(a, _mm_movehl_ps(a, a));
    a = _mm_min_ss(a, _mm_movehdup_ps(a));
    return _mm_cvtss_f32(a);
}

PCK_AVX2 void pck__int4_quantize_avx2(ptrdiff_t rows, ptrdiff_t k, ptrdiff_t g, const float *x,
                                      ptrdiff_t ldx, uint8_t *w, ptrdiff_t ldw, float *s,
                                      ptrdiff_t lds, int8_t *z, ptrdiff_t ldz) {
    if (g % 8 != 0) {
        pck__int4_quantize_scalar(rows, k, g, x, ldx, w, ldw, s, lds, z, ldz);
        return;
    }
    int asym = z != NULL;
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        uint8_t *wr = w + r * ldw;
        for (ptrdiff_t k0 = 0; k0 < k; k0 += g) {
            float sc, zf;
            /* min/max are exact, so any order matches the scalar path; max_ps(v, acc)
             * returns acc when v is NaN, which ignores NaN like the scalar compare. */
            if (!asym) {
                __m256 am = _mm256_setzero_ps();
                for (ptrdiff_t i = 0; i < g; i += 8)
                    am = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(xr + k0 + i), absmask), am);
                sc = pck__sym_scale(pck__hmax8(am));
                zf = 8.0f;
            } else {
                __m256 mn = _mm256_set1_ps(__builtin_inff()), mx = _mm256_set1_ps(-__builtin_inff());
                for (ptrdiff_t i = 0; i < g; i += 8) {
                    __m256 v = _mm256_loadu_ps(xr + k0 + i);
                    mn = _mm256_min_ps(v, mn);
                    mx = _mm256_max_ps(v, mx);
                }
                float fmn = hmin8(mn), fmx = pck__hmax8(mx);
                if (fmn > fmx) fmn = fmx = 0.0f;
                sc = pck__asym_scale(fmn, fmx);
                zf = pck__asym_zero(fmn, sc);
                z[r * ldz + k0 / g] = (int8_t)zf;
            }
            s[r * lds + k0 / g] = sc;
            if (sc == 0.0f) {
                memset(wr + k0 / 2, asym ? 0 : 0x88, (size_t)(g / 2));
                continue;
            }
            __m256 sv = _mm256_set1_ps(sc), zv = _mm256_set1_ps(asym ? zf : 0.0f);
            __m256 lo = _mm256_set1_ps(asym ? 0.0f : -8.0f), hi = _mm256_set1_ps(asym ? 15.0f : 7.0f);
            __m256i off = _mm256_set1_epi32(asym ? 0 : 8);
            const __m256i pick = _mm256_setr_epi8(0, 8, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                                  0, 8, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
            for (ptrdiff_t i = 0; i < g; i += 8) {
                __m256 q = round_away8(_mm256_div_ps(_mm256_loadu_ps(xr + k0 + i), sv));
                q = _mm256_add_ps(q, zv);
                q = _mm256_min_ps(_mm256_max_ps(q, lo), hi); /* NaN -> lo */
                __m256i u = _mm256_add_epi32(_mm256_cvttps_epi32(q), off);
                /* lanes (even, odd) -> byte even | odd << 4 */
                u = _mm256_or_si256(u, _mm256_srli_epi64(u, 28));
                u = _mm256_shuffle_epi8(u, pick);
                uint32_t packed = (uint32_t)_mm256_extract_epi16(u, 0) |
                                  ((uint32_t)_mm256_extract_epi16(u, 8) << 16);
                memcpy(wr + (k0 + i) / 2, &packed, 4);
            }
        }
    }
}

#endif /* PCK_X86 */
