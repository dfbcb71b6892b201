/* INT4 on AVX-512: the decode GEMV (m = 1, g = 32 and g % 64 == 0) and the B-panel packing.
 *
 * GEMV, g = 32: two 64-weight blocks of a row per 512-bit load, on the AVX2 kernels'
 * activation layout (pck__int4_xprep_avx2: each block j-major), with the same two weight
 * paths (nibbles converted to float, or read as denormal floats) in the same order, so the
 * two agree bit for bit. On Zen 4 a 512-bit op costs two 256-bit slots, so the gain is half
 * the instructions: the AVX2 loop runs there well below what its FMA and integer pipes allow
 * (~10% faster at N4096 K14336 on two cores, docs/benchmarks.md).
 *
 * GEMV, g % 64 == 0: the AVX2 kernel's arithmetic and bits with 256-bit EVEX ops, whose 32
 * registers let one group's end overlap the next group (see the section below).
 *
 * Packing: the MoE layer's expert GEMMs dequantize every weight once
 * per call into NR-wide slivers, which the profile puts at ~11% of the layer on Zen 4. Each
 * 512-bit vector holds one k of 16 weight rows, so a 16-column sliver row is one store; the
 * nibble becomes (u - z) * s through a float whose mantissa takes the nibble in place (one
 * ternary-logic op instead of mask + subtract + convert), less 2^e + z. Every output is
 * (float)(u - z) * s rounded once, as the scalar and AVX2 packings give it. */
#include "int4_internal.h"
#include "int4_asm_x86.h"

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

/* ---------------------------------------------------------------- GEMV, m = 1, g % 64 == 0
 *
 * The AVX2 kernel's arithmetic in the same order (so the bits are the AVX2 GEMV's), but
 * EVEX-encoded 256-bit ops use the 32 registers. At g = 128 the AVX2 loop spent ~25% of its
 * time at the group ends: the masks and the row totals live in memory there (16 registers),
 * and each group's reduction (even + odd sums, x 2^-E, one scale FMA) waits ~10 cycles on
 * the group's last FMAs, which the loop did not hide (about half of the 25%; the other half
 * is the reduction's own operations). Here the masks and totals stay in registers, and two
 * accumulator sets alternate, so the reduction of one group runs spread over the first
 * block of the next (after its nibbles 0, 2 and 4).
 * In cache, 4 rows x K 14336, Zen 4: 11.1 -> 13.2 weights per cycle at g = 128.
 *
 * Registers: ymm0-7 / ymm16-23 = the two sets (rows 0-3 even nibbles, rows 0-3 odd);
 * ymm8-11 = the 4 rows' 32 weight bytes; ymm12 = activations; ymm13-14 = nibbles;
 * ymm24-27, ymm15 = masks 0xf << 4j, j = 0..4 (the conversion path reads j = 5, 6 from
 * memory); ymm28-31 = the rows' totals. */

/* nibble j of the 4 rows (mask operand M) into A0-A3, activations at byte xoff of the block */
#define I5_NIB4(CV, M, xoff, A0, A1, A2, A3)                                              \
    "vmovups " #xoff "(%[x]), %%ymm12\n\t"                                                \
    "vpandd " M ", %%ymm8, %%ymm13\n\t"                                                   \
    "vpandd " M ", %%ymm9, %%ymm14\n\t"                                                   \
    CV("ymm13") CV("ymm14")                                                               \
    "vfmadd231ps %%ymm12, %%ymm13, %%" A0 "\n\t"                                          \
    "vfmadd231ps %%ymm12, %%ymm14, %%" A1 "\n\t"                                          \
    "vpandd " M ", %%ymm10, %%ymm13\n\t"                                                  \
    "vpandd " M ", %%ymm11, %%ymm14\n\t"                                                  \
    CV("ymm13") CV("ymm14")                                                               \
    "vfmadd231ps %%ymm12, %%ymm13, %%" A2 "\n\t"                                          \
    "vfmadd231ps %%ymm12, %%ymm14, %%" A3 "\n\t"
/* Nibbles 0-4 masked in place, X1-X3 (the previous group's end) after nibbles 0, 2, 4 */
#define I5_NIBS0_4(CV, X1, X2, X3, A0, A1, A2, A3, A4, A5, A6, A7)                        \
    I5_NIB4(CV, "%%ymm24", 0, A0, A1, A2, A3) X1                                          \
    I5_NIB4(CV, "%%ymm25", 32, A4, A5, A6, A7)                                            \
    I5_NIB4(CV, "%%ymm26", 64, A0, A1, A2, A3) X2                                         \
    I5_NIB4(CV, "%%ymm27", 96, A4, A5, A6, A7)                                            \
    I5_NIB4(CV, "%%ymm15", 128, A0, A1, A2, A3) X3
/* conversion path: nibbles 5 and 6 masked in place, 7 = v >> 28 */
#define I5_BLOCK(X1, X2, X3, A0, A1, A2, A3, A4, A5, A6, A7)                              \
    I4_LOAD4                                                                              \
    I5_NIBS0_4(I4_CVT, X1, X2, X3, A0, A1, A2, A3, A4, A5, A6, A7)                        \
    I5_NIB4(I4_CVT, "160(%[mk])", 160, A4, A5, A6, A7)                                    \
    I5_NIB4(I4_CVT, "192(%[mk])", 192, A0, A1, A2, A3)                                    \
    I4_NIB7(I4_CVT, 28, A4, A5, A6, A7)                                                   \
    I4_ADVANCE
/* denormal path: after v >> 8, nibbles 5 and 6 masked at bits 12 and 16, 7 = v >> 20 */
#define I5_BLOCK_DN(X1, X2, X3, A0, A1, A2, A3, A4, A5, A6, A7)                           \
    I4_LOAD4                                                                              \
    I5_NIBS0_4(I4_DN, X1, X2, X3, A0, A1, A2, A3, A4, A5, A6, A7)                         \
    "vpsrld $8, %%ymm8, %%ymm8\n\t"                                                       \
    "vpsrld $8, %%ymm9, %%ymm9\n\t"                                                       \
    "vpsrld $8, %%ymm10, %%ymm10\n\t"                                                     \
    "vpsrld $8, %%ymm11, %%ymm11\n\t"                                                     \
    I5_NIB4(I4_DN, "%%ymm27", 160, A4, A5, A6, A7)                                        \
    I5_NIB4(I4_DN, "%%ymm15", 192, A0, A1, A2, A3)                                        \
    I4_NIB7(I4_DN, 20, A4, A5, A6, A7)                                                    \
    I4_ADVANCE

#define I5_SET_A "ymm0", "ymm1", "ymm2", "ymm3", "ymm4", "ymm5", "ymm6", "ymm7"
#define I5_SET_B "ymm16", "ymm17", "ymm18", "ymm19", "ymm20", "ymm21", "ymm22", "ymm23"
#define I5_ZERO4(a, b, c, d)                                                              \
    "vpxord %%" a ", %%" a ", %%" a "\n\t"                                                \
    "vpxord %%" b ", %%" b ", %%" b "\n\t"                                                \
    "vpxord %%" c ", %%" c ", %%" c "\n\t"                                                \
    "vpxord %%" d ", %%" d ", %%" d "\n\t"
#define I5_ZERO8(a, b, c, d, e, f, g, h) I5_ZERO4(a, b, c, d) I5_ZERO4(e, f, g, h)
#define I5_ZERO8_(...) I5_ZERO8(__VA_ARGS__)
/* A group's end in three steps: even + odd; (DN) x 2^-E; total += sum * the row's scale,
 * then the scale pointers move to the next group. */
#define I5_END1(A0, A1, A2, A3, A4, A5, A6, A7)                                           \
    "vaddps %%" A4 ", %%" A0 ", %%" A0 "\n\t"                                             \
    "vaddps %%" A5 ", %%" A1 ", %%" A1 "\n\t"                                             \
    "vaddps %%" A6 ", %%" A2 ", %%" A2 "\n\t"                                             \
    "vaddps %%" A7 ", %%" A3 ", %%" A3 "\n\t"
#define I5_END2_DN(A0, A1, A2, A3, ...)                                                   \
    "vmulps %[rs]%{1to8%}, %%" A0 ", %%" A0 "\n\t"                                        \
    "vmulps %[rs]%{1to8%}, %%" A1 ", %%" A1 "\n\t"                                        \
    "vmulps %[rs]%{1to8%}, %%" A2 ", %%" A2 "\n\t"                                        \
    "vmulps %[rs]%{1to8%}, %%" A3 ", %%" A3 "\n\t"
#define I5_END2(...) ""
#define I5_END3(A0, A1, A2, A3, ...)                                                      \
    "vfmadd231ps (%[s])%{1to8%}, %%" A0 ", %%ymm28\n\t"                                   \
    "vfmadd231ps (%[s],%[lds4])%{1to8%}, %%" A1 ", %%ymm29\n\t"                           \
    "vfmadd231ps (%[s],%[lds4],2)%{1to8%}, %%" A2 ", %%ymm30\n\t"                         \
    "vfmadd231ps (%[s3])%{1to8%}, %%" A3 ", %%ymm31\n\t"                                  \
    "add $4, %[s]\n\t"                                                                    \
    "add $4, %[s3]\n\t"
#define I5_CALL(F, ...) F(__VA_ARGS__)
#define I5_END_ALL(END2, ...)                                                             \
    I5_CALL(I5_END1, __VA_ARGS__) I5_CALL(END2, __VA_ARGS__) I5_CALL(I5_END3, __VA_ARGS__)
/* A group into set S (zeroed first), its first block carrying the end of set P (or none:
 * P = ""); the other nblk - 1 blocks in a loop at local label L. */
#define I5_GROUP(BLOCK, X1, X2, X3, L, ...)                                               \
    I5_ZERO8_(__VA_ARGS__)                                                                \
    I5_CALL(BLOCK, X1, X2, X3, __VA_ARGS__)                                               \
    "mov %[nblk], %[ci]\n\t"                                                              \
    "dec %[ci]\n\t"                                                                       \
    "jz " #L "f\n\t"                                                                      \
    #L "0:\n\t" I5_CALL(BLOCK, "", "", "", __VA_ARGS__)                                   \
    "dec %[ci]\n\t"                                                                       \
    "jnz " #L "0b\n\t"                                                                    \
    #L ":\n\t"
/* n >= 1 groups of nblk >= 1 blocks: group 0 into set A, then B and A alternating, each
 * with the other set's end; the last group's end after the loop; totals stored at y */
#define I5_GROUPS_ASM(BLOCK, END2)                                                        \
    __asm__ volatile(                                                                     \
        "vmovdqa32 (%[mk]), %%ymm24\n\t"                                                  \
        "vmovdqa32 32(%[mk]), %%ymm25\n\t"                                                \
        "vmovdqa32 64(%[mk]), %%ymm26\n\t"                                                \
        "vmovdqa32 96(%[mk]), %%ymm27\n\t"                                                \
        "vmovdqa32 128(%[mk]), %%ymm15\n\t"                                               \
        I5_ZERO4("ymm28", "ymm29", "ymm30", "ymm31")                                      \
        I5_GROUP(BLOCK, "", "", "", 3, I5_SET_A)                                          \
        "dec %[n]\n\t"                                                                    \
        "jz 8f\n\t"                                                                       \
        "1:\n\t"                                                                          \
        I5_GROUP(BLOCK, I5_CALL(I5_END1, I5_SET_A), I5_CALL(END2, I5_SET_A),              \
                 I5_CALL(I5_END3, I5_SET_A), 4, I5_SET_B)                                 \
        "dec %[n]\n\t"                                                                    \
        "jz 9f\n\t"                                                                       \
        I5_GROUP(BLOCK, I5_CALL(I5_END1, I5_SET_B), I5_CALL(END2, I5_SET_B),              \
                 I5_CALL(I5_END3, I5_SET_B), 5, I5_SET_A)                                 \
        "dec %[n]\n\t"                                                                    \
        "jnz 1b\n\t"                                                                      \
        "8:\n\t" I5_END_ALL(END2, I5_SET_A) "jmp 7f\n\t"                                  \
        "9:\n\t" I5_END_ALL(END2, I5_SET_B)                                               \
        "7:\n\t"                                                                          \
        "vmovups %%ymm28, (%[y])\n\t"                                                     \
        "vmovups %%ymm29, 32(%[y])\n\t"                                                   \
        "vmovups %%ymm30, 64(%[y])\n\t"                                                   \
        "vmovups %%ymm31, 96(%[y])\n\t"                                                   \
        I4_ASM_IO                                                                         \
        : I4_ASM_CLOBBERS16, "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21",        \
          "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", \
          "xmm31", "memory", "cc")

/* out[r][0] for the 4 rows at w: n >= 1 groups of nblk 64-blocks (m = 1, g % 64 == 0);
 * DN: denormal path with rs = 2^-E */
static __attribute__((noinline)) PCK_AVX512 void i5_m1_r4_groups(int dn, float rs, ptrdiff_t n,
                                                                 ptrdiff_t nblk, const float *x,
                                                                 const uint8_t *w, ptrdiff_t ldw,
                                                                 const float *s, ptrdiff_t lds,
                                                                 float out[4][4]) {
    const uint8_t *w3 = w + 3 * ldw;
    const float *s3 = s + 3 * lds;
    ptrdiff_t ci;
    float y[32];
    if (dn) I5_GROUPS_ASM(I5_BLOCK_DN, I5_END2_DN);
    else I5_GROUPS_ASM(I5_BLOCK, I5_END2);
    for (int r = 0; r < 4; r++) out[r][0] = pck__hsum8(_mm256_loadu_ps(y + 8 * r));
}
#undef I5_GROUPS_ASM
#undef I5_GROUP
#undef I5_END_ALL
#undef I5_CALL
#undef I5_END3
#undef I5_END2
#undef I5_END2_DN
#undef I5_END1
#undef I5_ZERO8_
#undef I5_ZERO8
#undef I5_ZERO4
#undef I5_SET_B
#undef I5_SET_A
#undef I5_BLOCK_DN
#undef I5_BLOCK
#undef I5_NIBS0_4
#undef I5_NIB4

/* Rows in fours through the kernel above, each finished (zero points, store) as the AVX2
 * GEMV finishes them; the n % 4 rows left go to the AVX2 GEMV, whose one-row kernel has the
 * same order. */
PCK_INLINE PCK_AVX512 ptrdiff_t i5_gemv_m1_groups(int dn, ptrdiff_t k, ptrdiff_t g,
                                                  const float *xp, const uint8_t *w,
                                                  ptrdiff_t ldw, const float *s, ptrdiff_t lds,
                                                  const int8_t *z, ptrdiff_t ldz, ptrdiff_t n0,
                                                  ptrdiff_t n1, float *y, int accumulate) {
    float rs = dn ? xp[pck__xprep_mode(k, g)] : 1.0f, out[4][4];
    ptrdiff_t n = n0;
    for (; n + 4 <= n1; n += 4) {
        i5_m1_r4_groups(dn, rs, k / g, g / 64, xp, w + n * ldw, ldw, s + n * lds, lds, out);
        pck__int4_rows_finish_avx2(4, k, g, xp, w, ldw, s, lds, z, ldz, n, out, y, accumulate);
    }
    return n;
}

/* m = 1 here (g == 32: the 512-bit kernel; g % 64 == 0: the 256-bit one above); everything
 * else is the AVX2 GEMV's. */
PCK_AVX512 void pck__int4_gemv_avx512(ptrdiff_t m, ptrdiff_t k, ptrdiff_t g, const float *xp,
                                      const uint8_t *w, ptrdiff_t ldw, const float *s,
                                      ptrdiff_t lds, const int8_t *z, ptrdiff_t ldz, ptrdiff_t n0,
                                      ptrdiff_t n1, float *y, ptrdiff_t ldy, int accumulate) {
    int groups = m == 1 && g % 64 == 0 && k >= g;
    if (!(m == 1 && g == 32) && !(groups && n1 - n0 >= 4)) {
        pck__int4_gemv_avx2(m, k, g, xp, w, ldw, s, lds, z, ldz, n0, n1, y, ldy, accumulate);
        return;
    }
    int dn = xp[pck__xprep_mode(k, g)] != 0.0f;
    /* denormals must be read as such (DAZ) and exact subnormal sums kept (FTZ): clear both
     * for this thread while the kernel runs, whatever the caller set */
    unsigned csr = _mm_getcsr();
    if (dn) _mm_setcsr(csr & ~(0x8040u));
    if (groups) {
        ptrdiff_t n = i5_gemv_m1_groups(dn, k, g, xp, w, ldw, s, lds, z, ldz, n0, n1, y, accumulate);
        _mm_setcsr(csr);
        if (n < n1) pck__int4_gemv_avx2(1, k, g, xp, w, ldw, s, lds, z, ldz, n, n1, y, ldy, accumulate);
        return;
    }
    if (dn) i4_gemv512_m1(1, k, g, xp, w, ldw, s, lds, z, ldz, n0, n1, y, accumulate);
    else i4_gemv512_m1(0, k, g, xp, w, ldw, s, lds, z, ldz, n0, n1, y, accumulate);
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
