/* INT4 weights (W4A16), portable C: GEMV / small-M GEMM on natural-order activations (also
 * the fallback for group sizes and K tails the SIMD paths do not cover), dequantize (plain
 * and into SGEMM B panels), quantize. Layout and formulas: see CPolychipKernels.h; the SIMD
 * versions are int4_avx2.c and int4_neon.c. */
#include "int4_internal.h"

/* Natural-order activations (xp rows xrow floats apart): used by the scalar ISA, for
 * group sizes the SIMD paths do not cover, and for K tails. m is chunked by 8. */
void pck__int4_gemv_natural(ptrdiff_t m, ptrdiff_t k, ptrdiff_t g, const float *xp,
                            ptrdiff_t xrow, const uint8_t *w, ptrdiff_t ldw, const float *s,
                            ptrdiff_t lds, const int8_t *z, ptrdiff_t ldz, ptrdiff_t n0,
                            ptrdiff_t n1, float *y, ptrdiff_t ldy, int accumulate) {
    for (ptrdiff_t n = n0; n < n1; n++) {
        const uint8_t *wr = w + n * ldw;
        for (ptrdiff_t i0 = 0; i0 < m; i0 += 8) {
            int mm = m - i0 < 8 ? (int)(m - i0) : 8;
            float tot[8] = {0};
            for (ptrdiff_t k0 = 0; k0 < k; k0 += g) {
                float zf = (float)zero_at(z, n, ldz, k0 / g), sc = s[n * lds + k0 / g];
                float part[8] = {0};
                for (ptrdiff_t kk = k0; kk < k0 + g; kk += 2) {
                    uint8_t b = wr[kk >> 1];
                    float wl = (float)(b & 15) - zf, wh = (float)(b >> 4) - zf;
                    for (int i = 0; i < mm; i++) {
                        const float *x = xp + (i0 + i) * xrow;
                        part[i] += x[kk] * wl + x[kk + 1] * wh;
                    }
                }
                for (int i = 0; i < mm; i++) tot[i] += sc * part[i];
            }
            for (int i = 0; i < mm; i++) {
                float *yy = y + (i0 + i) * ldy + n;
                *yy = accumulate ? *yy + tot[i] : tot[i];
            }
        }
    }
}

void pck__int4_xprep_scalar(ptrdiff_t m, ptrdiff_t k, ptrdiff_t g, const float *x,
                            ptrdiff_t ldx, float *xp) {
    ptrdiff_t xrow = pck__xprep_row(k, g);
    for (ptrdiff_t i = 0; i < m; i++) {
        memcpy(xp + i * xrow, x + i * ldx, (size_t)k * sizeof(float));
        xp[i * xrow + pck__xprep_mode(k, g)] = 0.0f;
    }
}

void pck__int4_gemv_scalar(ptrdiff_t m, ptrdiff_t k, ptrdiff_t g, const float *xp,
                           const uint8_t *w, ptrdiff_t ldw, const float *s, ptrdiff_t lds,
                           const int8_t *z, ptrdiff_t ldz, ptrdiff_t n0, ptrdiff_t n1, float *y,
                           ptrdiff_t ldy, int accumulate) {
    pck__int4_gemv_natural(m, k, g, xp, pck__xprep_row(k, g), w, ldw, s, lds, z, ldz, n0, n1, y,
                           ldy, accumulate);
}

void pck__int4_pack_b_scalar(ptrdiff_t nr, ptrdiff_t kc, ptrdiff_t nc, ptrdiff_t k0,
                             ptrdiff_t n0, ptrdiff_t g, const uint8_t *w, ptrdiff_t ldw,
                             const float *s, ptrdiff_t lds, const int8_t *z, ptrdiff_t ldz,
                             float *bp) {
    for (ptrdiff_t j0 = 0; j0 < nc; j0 += nr) {
        float *o = bp + (j0 / nr) * kc * nr;
        for (ptrdiff_t j = 0; j < nr; j++) {
            int valid = j0 + j < nc;
            for (ptrdiff_t kk = 0; kk < kc; kk++)
                o[kk * nr + j] = valid ? deq1(w, ldw, s, lds, z, ldz, g, n0 + j0 + j, k0 + kk) : 0.0f;
        }
    }
}

void pck__int4_dequantize_scalar(ptrdiff_t n0, ptrdiff_t n1, ptrdiff_t k, ptrdiff_t g,
                                 const uint8_t *w, ptrdiff_t ldw, const float *s, ptrdiff_t lds,
                                 const int8_t *z, ptrdiff_t ldz, float *out, ptrdiff_t ldo) {
    for (ptrdiff_t n = n0; n < n1; n++)
        for (ptrdiff_t kk = 0; kk < k; kk++)
            out[(n - n0) * ldo + kk] = deq1(w, ldw, s, lds, z, ldz, g, n, kk);
}

/* One group: scale (and zero) from the data; returns s, writes *zf. */
PCK_INLINE float group_params(const float *x, ptrdiff_t g, int asym, float *zf) {
    if (!asym) {
        float amax = 0.0f;
        for (ptrdiff_t i = 0; i < g; i++) {
            float a = pck__bits_f32(pck__f32_bits(x[i]) & 0x7fffffffu);
            amax = (a > amax) ? a : amax;
        }
        *zf = 8.0f;
        return pck__sym_scale(amax);
    }
    float mn = __builtin_inff(), mx = -__builtin_inff();
    for (ptrdiff_t i = 0; i < g; i++) {
        mn = (x[i] < mn) ? x[i] : mn;
        mx = (x[i] > mx) ? x[i] : mx;
    }
    if (mn > mx) mn = mx = 0.0f; /* all NaN */
    float sc = pck__asym_scale(mn, mx);
    *zf = pck__asym_zero(mn, sc);
    return sc;
}

PCK_INLINE int quant1(float v, float sc, float zf, int asym) {
    if (sc == 0.0f) return asym ? 0 : 8;
    float r = pck__round_away(v / sc);
    if (asym) return (int)pck__clampf(r + zf, 0.0f, 15.0f);
    return (int)pck__clampf(r, -8.0f, 7.0f) + 8;
}

void pck__int4_quantize_scalar(ptrdiff_t rows, ptrdiff_t k, ptrdiff_t g, const float *x,
                               ptrdiff_t ldx, uint8_t *w, ptrdiff_t ldw, float *s, ptrdiff_t lds,
                               int8_t *z, ptrdiff_t ldz) {
    int asym = z != NULL;
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        uint8_t *wr = w + r * ldw;
        for (ptrdiff_t k0 = 0; k0 < k; k0 += g) {
            float zf;
            float sc = group_params(xr + k0, g, asym, &zf);
            s[r * lds + k0 / g] = sc;
            if (asym) z[r * ldz + k0 / g] = (int8_t)zf;
            for (ptrdiff_t kk = k0; kk < k0 + g; kk += 2) {
                int lo = quant1(xr[kk], sc, zf, asym), hi = quant1(xr[kk + 1], sc, zf, asym);
                wr[kk >> 1] = (uint8_t)(lo | (hi << 4));
            }
        }
    }
}
