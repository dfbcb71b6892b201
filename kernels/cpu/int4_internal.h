/* Scalar helpers shared by the INT4 kernels of every ISA (int4_scalar.c, int4_avx2.c,
 * int4_neon.c): read one nibble, one zero point, one dequantized weight. */
#ifndef PCK_INT4_INTERNAL_H
#define PCK_INT4_INTERNAL_H
#include "pck_internal.h"

PCK_INLINE int nib(const uint8_t *row, ptrdiff_t k) {
    uint8_t b = row[k >> 1];
    return (k & 1) ? (b >> 4) : (b & 15);
}

PCK_INLINE int zero_at(const int8_t *z, ptrdiff_t n, ptrdiff_t ldz, ptrdiff_t gi) {
    return z ? z[n * ldz + gi] : 8;
}

PCK_INLINE float deq1(const uint8_t *w, ptrdiff_t ldw, const float *s, ptrdiff_t lds,
                      const int8_t *z, ptrdiff_t ldz, ptrdiff_t g, ptrdiff_t n, ptrdiff_t k) {
    ptrdiff_t gi = k / g;
    return (float)(nib(w + n * ldw, k) - zero_at(z, n, ldz, gi)) * s[n * lds + gi];
}

/* B-panel depths k0+from ..< k0+kc of weight rows nb ..< nb+rows into the sliver columns at o
 * (sliver rows nr floats apart): the K tail past the last 64-block, by the scalar definition. */
PCK_INLINE void pck__int4_pack_tail(ptrdiff_t nr, ptrdiff_t from, ptrdiff_t kc, ptrdiff_t k0,
                                    ptrdiff_t nb, int rows, ptrdiff_t g, const uint8_t *w,
                                    ptrdiff_t ldw, const float *s, ptrdiff_t lds,
                                    const int8_t *z, ptrdiff_t ldz, float *o) {
    for (ptrdiff_t kk = from; kk < kc; kk++)
        for (int r = 0; r < rows; r++) o[kk * nr + r] = deq1(w, ldw, s, lds, z, ldz, g, nb + r, k0 + kk);
}

#if PCK_X86
/* int4_avx2.c: the zero-point terms, K tail and store of R <= 4 GEMV rows n.. of one
 * activation row after the block part (out[r][0]); the AVX-512 GEMV finishes its rows with it. */
void pck__int4_rows_finish_avx2(int R, ptrdiff_t k, ptrdiff_t g, const float *xp,
                                const uint8_t *w, ptrdiff_t ldw, const float *s, ptrdiff_t lds,
                                const int8_t *z, ptrdiff_t ldz, ptrdiff_t n, float out[4][4],
                                float *y, int accumulate);

/* int4_avx2.c: 0xf << 4j for j = 0..6, 8 lanes each: the nibble masks of the m = 1 assembly
 * loops (AVX2 and AVX-512) */
extern const int32_t pck__int4_nibble_masks[7][8];
#endif

#endif
