/* INT4 weights (W4A16) on NEON (arm64): GEMV / small-M GEMM on j-major activations. */
#include "int4_internal.h"

#if PCK_ARM64
#include <arm_neon.h>

/* 32-weight blocks (16 bytes = 4 lanes of 8 nibbles), same j-major idea as AVX2:
 * xp[j*4 + l] = x[8l + j] * 2^-shift_j. */
static const int nib_shift_n[8] = {0, 4, 8, 12, 0, 4, 8, 0};

void pck__int4_xprep_neon(ptrdiff_t m, ptrdiff_t k, ptrdiff_t g, const float *x, ptrdiff_t ldx,
                          float *xp) {
    ptrdiff_t xrow = pck__xprep_row(k, g);
    if (g % 32 != 0) {
        pck__int4_xprep_scalar(m, k, g, x, ldx, xp);
        return;
    }
    ptrdiff_t ng = k / g;
    for (ptrdiff_t i = 0; i < m; i++) {
        const float *xi = x + i * ldx;
        float *o = xp + i * xrow, *sums = o + pck__round16(k);
        o[pck__xprep_mode(k, g)] = 0.0f; /* NEON converts */
        for (ptrdiff_t b = 0; b < k; b += 32)
            for (int j = 0; j < 8; j++)
                for (int l = 0; l < 4; l++)
                    o[b + j * 4 + l] = xi[b + 8 * l + j] * (1.0f / (float)(1 << nib_shift_n[j]));
        for (ptrdiff_t gi = 0; gi < ng; gi++) {
            double acc = 0.0;
            for (ptrdiff_t kk = gi * g; kk < (gi + 1) * g; kk++) acc += xi[kk];
            sums[gi] = (float)acc;
        }
    }
}

PCK_INLINE void i4_rows_neon(const int R, const int MM, ptrdiff_t k, ptrdiff_t g, const float *xp,
                             ptrdiff_t xrow, ptrdiff_t i0, const uint8_t *w, ptrdiff_t ldw,
                             const float *s, ptrdiff_t lds, const int8_t *z, ptrdiff_t ldz,
                             ptrdiff_t n, float *y, ptrdiff_t ldy, int accumulate) {
    const uint32x4_t m0 = vdupq_n_u32(0xf), m1 = vdupq_n_u32(0xf0);
    const uint32x4_t m2 = vdupq_n_u32(0xf00), m3 = vdupq_n_u32(0xf000);
    const float *xr[4];
    const uint8_t *wr[4];
    float32x4_t yacc[4][4], acc[4][4];
    for (int i = 0; i < MM; i++) xr[i] = xp + (i0 + i) * xrow;
    for (int r = 0; r < R; r++) wr[r] = w + (n + r) * ldw;
    for (int r = 0; r < R; r++)
        for (int i = 0; i < MM; i++) yacc[r][i] = acc[r][i] = vdupq_n_f32(0.0f);
    for (ptrdiff_t g0 = 0; g0 < k; g0 += g) {
        for (ptrdiff_t b = g0; b < g0 + g; b += 32) {
            uint32x4_t v[4];
            for (int r = 0; r < R; r++) v[r] = vreinterpretq_u32_u8(vld1q_u8(wr[r] + b / 2));
#define PCK_N4(j, expr)                                                                   \
    do {                                                                                  \
        float32x4_t xv[4];                                                                \
        for (int i = 0; i < MM; i++) xv[i] = vld1q_f32(xr[i] + b + (j) * 4);              \
        for (int r = 0; r < R; r++) {                                                     \
            uint32x4_t vv = v[r];                                                         \
            float32x4_t u = vcvtq_f32_u32(expr);                                          \
            for (int i = 0; i < MM; i++) acc[r][i] = vfmaq_f32(acc[r][i], u, xv[i]);      \
        }                                                                                 \
    } while (0)
            PCK_N4(0, vandq_u32(vv, m0));
            PCK_N4(1, vandq_u32(vv, m1));
            PCK_N4(2, vandq_u32(vv, m2));
            PCK_N4(3, vandq_u32(vv, m3));
            PCK_N4(7, vshrq_n_u32(vv, 28));
            for (int r = 0; r < R; r++) v[r] = vshrq_n_u32(v[r], 16);
            PCK_N4(4, vandq_u32(vv, m0));
            PCK_N4(5, vandq_u32(vv, m1));
            PCK_N4(6, vandq_u32(vv, m2));
#undef PCK_N4
        }
        for (int r = 0; r < R; r++) {
            float sc = s[(n + r) * lds + g0 / g];
            for (int i = 0; i < MM; i++) {
                yacc[r][i] = vfmaq_n_f32(yacc[r][i], acc[r][i], sc);
                acc[r][i] = vdupq_n_f32(0.0f);
            }
        }
    }
    ptrdiff_t ng = k / g;
    for (int r = 0; r < R; r++) {
        const float *sr = s + (n + r) * lds;
        const int8_t *zr = z ? z + (n + r) * ldz : NULL;
        for (int i = 0; i < MM; i++) {
            const float *sums = xr[i] + pck__round16(k);
            float zt = 0.0f;
            for (ptrdiff_t gi = 0; gi < ng; gi++) zt += sr[gi] * (float)(zr ? zr[gi] : 8) * sums[gi];
            float v = vaddvq_f32(yacc[r][i]) - zt;
            float *yy = y + (i0 + i) * ldy + n + r;
            *yy = accumulate ? *yy + v : v;
        }
    }
}

void pck__int4_gemv_neon(ptrdiff_t m, ptrdiff_t k, ptrdiff_t g, const float *xp,
                         const uint8_t *w, ptrdiff_t ldw, const float *s, ptrdiff_t lds,
                         const int8_t *z, ptrdiff_t ldz, ptrdiff_t n0, ptrdiff_t n1, float *y,
                         ptrdiff_t ldy, int accumulate) {
    ptrdiff_t xrow = pck__xprep_row(k, g);
    if (g % 32 != 0) {
        pck__int4_gemv_natural(m, k, g, xp, xrow, w, ldw, s, lds, z, ldz, n0, n1, y, ldy,
                               accumulate);
        return;
    }
#define PCK_N4_ROWS(R, MM, i0, n)                                                         \
    i4_rows_neon(R, MM, k, g, xp, xrow, i0, w, ldw, s, lds, z, ldz, n, y, ldy, accumulate)
    ptrdiff_t n = n0;
    if (m == 1) {
        for (; n + 4 <= n1; n += 4) PCK_N4_ROWS(4, 1, 0, n);
        for (; n < n1; n++) PCK_N4_ROWS(1, 1, 0, n);
    } else if (m == 2) {
        for (; n + 2 <= n1; n += 2) PCK_N4_ROWS(2, 2, 0, n);
        for (; n < n1; n++) PCK_N4_ROWS(1, 2, 0, n);
    } else {
        for (; n < n1; n++) {
            ptrdiff_t i0 = 0;
            for (; i0 + 4 <= m; i0 += 4) PCK_N4_ROWS(1, 4, i0, n);
            switch (m - i0) {
            case 3: PCK_N4_ROWS(1, 3, i0, n); break;
            case 2: PCK_N4_ROWS(1, 2, i0, n); break;
            case 1: PCK_N4_ROWS(1, 1, i0, n); break;
            default: break;
            }
        }
    }
#undef PCK_N4_ROWS
}

#endif /* PCK_ARM64 */
