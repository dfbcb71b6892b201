/*
 * CPolychipKernels: single-threaded SIMD microkernels for Polychip's CPU backend.
 *
 * Tiling, threading and scheduling live in Swift; these functions only process one
 * tile / panel / row range. None allocates, none keeps state besides the ISA dispatch
 * table, all are safe to call concurrently on disjoint outputs.
 *
 * Conventions
 *  - Counts and strides are ptrdiff_t (Swift Int), strides in elements unless noted.
 *  - f16 and bf16 values are passed as their raw 16-bit patterns (uint16_t).
 *  - Every entry point runs the kernels of a table: one ISA's vector kernels plus one
 *    GEMM microkernel shape. The table is per thread (pck_use, set by the Swift backend
 *    for its submitting thread and in every pool task, so devices with different tables
 *    run side by side); a thread that set none uses the process default, the best ISA
 *    from CPUID (x86_64) or the architecture (aarch64 always has NEON), with that ISA's
 *    first GEMM shape; pck_isa_select() changes the default.
 *  - No alignment is required anywhere; 64-byte aligned packed buffers are a bit faster.
 */
#ifndef CPOLYCHIPKERNELS_H
#define CPOLYCHIPKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- dispatch */

typedef enum pck_isa {
    PCK_ISA_SCALAR = 0, /* portable C, any CPU */
    PCK_ISA_AVX2 = 1,   /* x86_64 AVX2 + FMA + F16C */
    PCK_ISA_AVX512 = 2, /* x86_64 AVX-512 F/VL/BW/DQ (+ AVX2/FMA/F16C) */
    PCK_ISA_NEON = 3    /* aarch64 Advanced SIMD */
} pck_isa;

/* Bits of pck_cpu_features(). */
enum {
    PCK_FEAT_SSE2 = 1u << 0,
    PCK_FEAT_SSE41 = 1u << 1,
    PCK_FEAT_AVX = 1u << 2, /* includes OS support for YMM state */
    PCK_FEAT_AVX2 = 1u << 3,
    PCK_FEAT_FMA = 1u << 4,
    PCK_FEAT_F16C = 1u << 5,
    PCK_FEAT_AVX512F = 1u << 6, /* includes OS support for ZMM state */
    PCK_FEAT_AVX512BW = 1u << 7,
    PCK_FEAT_AVX512DQ = 1u << 8,
    PCK_FEAT_AVX512VL = 1u << 9,
    PCK_FEAT_AVX512BF16 = 1u << 10, /* vdpbf16ps */
    PCK_FEAT_AVX512VNNI = 1u << 11,
    PCK_FEAT_NEON = 1u << 16
};

/* CPU features detected at first use (PCK_FEAT_* bits). */
uint64_t pck_cpu_features(void);
/* Best ISA this CPU supports (what is used unless pck_isa_select overrides it). */
pck_isa pck_isa_best(void);
/* ISA in use now. */
pck_isa pck_isa_current(void);
/* Name of the ISA in use: "scalar", "avx2", "avx512", "neon". Static storage. */
const char *pck_isa_name(void);
/* Name of any ISA value (same strings); "unknown" for others. */
const char *pck_isa_name_of(pck_isa isa);
/* 1 if this CPU (and this build) can run `isa`, else 0. */
int pck_isa_supported(pck_isa isa);
/* Make `isa` the process default (threads that called pck_use keep their table);
 * returns 0, or -1 (nothing changed) if unsupported. Not to be called while kernels run
 * on threads without a table of their own: packed panels and INT4 activation workspaces
 * are table-specific, so re-pack after switching. */
int pck_isa_select(pck_isa isa);

/* A kernel table: one ISA's kernels with one GEMM microkernel shape. Tables are static;
 * pointers stay valid for the life of the process. */
typedef struct pck_kernels pck_kernels;
/* Number of GEMM microkernel shapes `isa` offers (0 if this CPU or build lacks it). */
int pck_gemm_shapes(pck_isa isa);
/* The table for `isa` with GEMM shape `shape` (0 ..< pck_gemm_shapes(isa)), or NULL. */
const pck_kernels *pck_table(pck_isa isa, int shape);
/* The table's ISA, GEMM register tile and the tile's name ("avx512 14x32"). */
pck_isa pck_table_isa(const pck_kernels *t);
ptrdiff_t pck_table_mr(const pck_kernels *t);
ptrdiff_t pck_table_nr(const pck_kernels *t);
const char *pck_table_gemm_name(const pck_kernels *t);
/* Run this thread's kernels from `t` (NULL: the process default). Cheap (one
 * thread-local store); returns the previous table of the thread (NULL if none). */
const pck_kernels *pck_use(const pck_kernels *t);
/* The table this thread runs now. */
const pck_kernels *pck_current(void);

/* Runs `iterations` rounds of 12 independent FMA chains at `isa`'s vector width (a
 * multiply-add for scalar) and returns the floating-point operations done (0 if the CPU
 * lacks `isa`); the caller times it. Tells a full-width 512-bit FMA unit from one that
 * runs 512-bit FMAs as two 256-bit halves (Zen 4), and gives the measured FMA peak. */
double pck_fma_burn(pck_isa isa, int64_t iterations);

/* ---------------------------------------------------------------- SGEMM */

/* Storage type of packed-from operands (values are widened to f32 while packing). */
typedef enum pck_dtype { PCK_DT_F32 = 0, PCK_DT_F16 = 1, PCK_DT_BF16 = 2 } pck_dtype;

/* Register tile of the current table: scalar 4x8, AVX2 6x16, AVX-512 14x32 or 8x48, NEON 8x12. */
ptrdiff_t pck_sgemm_mr(void);
ptrdiff_t pck_sgemm_nr(void);

/* Floats needed by pck_sgemm_pack_a(mc, kc): ceil(mc/MR)*MR*kc. */
ptrdiff_t pck_sgemm_packed_a_size(ptrdiff_t mc, ptrdiff_t kc);
/* Floats needed by pck_sgemm_pack_b(kc, nc): ceil(nc/NR)*NR*kc. */
ptrdiff_t pck_sgemm_packed_b_size(ptrdiff_t kc, ptrdiff_t nc);

/* Pack an mc x kc block of A, element (i,k) at a[i*rs_a + k*cs_a] (a is f32, f16 or bf16
 * per dt; A[M,K] row-major: rs_a = lda, cs_a = 1). Output: ceil(mc/MR) slivers of kc*MR
 * floats, ap[s*kc*MR + k*MR + r] = A(s*MR + r, k); rows past mc are zero. */
void pck_sgemm_pack_a(pck_dtype dt, ptrdiff_t mc, ptrdiff_t kc, const void *a,
                      ptrdiff_t rs_a, ptrdiff_t cs_a, float *ap);

/* Pack a kc x nc block of B, element (k,j) at b[k*rs_b + j*cs_b]. B[K,N] row-major:
 * rs_b = ldb, cs_b = 1; weight layout W[N,K] (B = W^T): rs_b = 1, cs_b = ldw.
 * Output: ceil(nc/NR) slivers of kc*NR floats, bp[s*kc*NR + k*NR + c] = B(k, s*NR + c);
 * columns past nc are zero. */
void pck_sgemm_pack_b(pck_dtype dt, ptrdiff_t kc, ptrdiff_t nc, const void *b,
                      ptrdiff_t rs_b, ptrdiff_t cs_b, float *bp);

/* Microkernel: one MR x NR tile. ap = one A sliver (kc*MR floats), bp = one B sliver
 * (kc*NR floats). C[i*ldc + j] for i < m <= MR, j < n <= NR:
 *   C = (accumulate ? C : 0) + sum_k ap[k*MR+i] * bp[k*NR+j].
 * Only the m x n corner of C is read or written; with accumulate == 0, C is not read.
 * Any kc >= 0 (kc == 0 stores 0 or leaves C). */
void pck_sgemm_kernel(ptrdiff_t kc, const float *ap, const float *bp, float *c,
                      ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n, int accumulate);

/* The same tile, also prefetching kc / 4 cache lines (kc * 16 bytes) from `prefetch`
 * while it runs, so that four calls bring the next B sliver (kc * 16 floats with the
 * AVX2 tile) into L1 before its first tile. NULL prefetches nothing new. Results are
 * identical to pck_sgemm_kernel. */
void pck_sgemm_kernel_pf(ptrdiff_t kc, const float *ap, const float *bp, float *c,
                         ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n, int accumulate,
                         const float *prefetch);

/* ---------------------------------------------------------------- BF16 pair GEMM */
/*
 * Where the CPU has AVX512_BF16, bf16 x bf16 GEMMs can run on vdpbf16ps: operands stay
 * bf16, packed as pairs of consecutive k (one 32-bit lane), and each instruction adds two
 * exact bf16 products per lane into an f32 accumulator. Numerics differ from the widened
 * path (docs/kernels.md, "bf16 GEMM on AVX512_BF16"): the two products of a pair are added
 * into the accumulator by the instruction (on Intel, odd then even, each rounded to nearest
 * even), and bf16 subnormal inputs and f32 subnormal results flush to zero. Same register
 * tile (MR x NR) as the table's f32 GEMM; packed depth is kp = ceil(kc / 2) pairs, an odd
 * kc padded with zero.
 */

/* 1 if the current table has the pair kernel (AVX-512 table on a CPU with AVX512_BF16). */
int pck_bgemm_available(void);
/* 32-bit slots needed by pck_bgemm_pack_a(mc, kc) / pck_bgemm_pack_b(kc, nc). */
ptrdiff_t pck_bgemm_packed_a_size(ptrdiff_t mc, ptrdiff_t kc);
ptrdiff_t pck_bgemm_packed_b_size(ptrdiff_t kc, ptrdiff_t nc);
/* As pck_sgemm_pack_a / _b for bf16 sources (raw 16-bit patterns), into pairs:
 * ap[s*kp*MR + p*MR + r] = A(s*MR + r, 2p) | A(s*MR + r, 2p + 1) << 16 (zero past mc, kc);
 * bp[s*kp*NR + p*NR + c] = B(2p, s*NR + c) | B(2p + 1, s*NR + c) << 16. */
void pck_bgemm_pack_a(ptrdiff_t mc, ptrdiff_t kc, const uint16_t *a, ptrdiff_t rs_a,
                      ptrdiff_t cs_a, uint32_t *ap);
void pck_bgemm_pack_b(ptrdiff_t kc, ptrdiff_t nc, const uint16_t *b, ptrdiff_t rs_b,
                      ptrdiff_t cs_b, uint32_t *bp);
/* One MR x NR tile over kp = ceil(kc/2) pairs: C = (accumulate ? C : 0) + sum of pair
 * products, f32 C as pck_sgemm_kernel. `prefetch` as pck_sgemm_kernel_pf (may be NULL).
 * Only valid when pck_bgemm_available(). */
void pck_bgemm_kernel(ptrdiff_t kc, const uint32_t *ap, const uint32_t *bp, float *c,
                      ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n, int accumulate,
                      const uint32_t *prefetch);

/* ---------------------------------------------------------------- INT4 (W4) */
/*
 * Packed weights W[N,K], row n at w + n*ldw (ldw in bytes, >= K/2). Byte j of a row holds
 * k = 2j in its low nibble and k = 2j+1 in its high nibble; u in 0..15.
 * Groups of G consecutive k (G even, K % G == 0): scale s[n*lds + k/G] (f32) and zero point
 * z[n*ldz + k/G] (int8; a NULL zeros pointer means z = 8 everywhere, the symmetric format).
 * Value: w[n,k] = s * (u - z).
 */

/* Floats needed by pck_int4_xprep for m activation rows. */
ptrdiff_t pck_int4_xprep_size(ptrdiff_t m, ptrdiff_t k, ptrdiff_t g);

/* Lay out m activation rows x[i*ldx + k] (f32) for pck_int4_gemv with group size g:
 * ISA-specific order plus per-group sums. O(m*k); do it once, share it across threads. */
void pck_int4_xprep(ptrdiff_t m, ptrdiff_t k, ptrdiff_t g, const float *x, ptrdiff_t ldx,
                    float *xp);

/* AVX2 INT4 GEMV: 1 (the default) lets pck_int4_xprep choose the denormal-weight path
 * where it gives the same bits as converting nibbles to float; 0 always converts.
 * For tests and benchmarks; results are identical either way. */
void pck_int4_denormal_weights(int enable);
/* 1 if FMAs with denormal inputs run at full rate on this CPU (timed once per process;
 * the denormal path is only used where they do). 0 off x86. */
int pck_int4_denormals_fast(void);
/* 1 if the workspace xp from pck_int4_xprep(m, k, g, ...) takes the denormal path. */
int pck_int4_xprep_denormal(const float *xp, ptrdiff_t k, ptrdiff_t g);

/* The probe behind pck_int4_denormals_fast: the best of 5 rounds of 2048 FMAs with normal
 * and with denormal inputs, in TSC ticks (0, 0 off x86 / without AVX2). */
void pck_denormal_probe(uint64_t *normal_ticks, uint64_t *denormal_ticks);
/* The probe's decision: 1 (denormals at full rate) iff denormal <= 1.25 x normal ticks. */
int pck_denormal_verdict(uint64_t normal_ticks, uint64_t denormal_ticks);

/* W4A16 GEMV / small-M GEMM on rows n0..<n1 of W:
 *   y[i*ldy + n] = (accumulate ? y[i*ldy + n] : 0) + sum_k x[i,k] * w[n,k],  i < m.
 * xp from pck_int4_xprep(m, k, g, ...) under the same ISA. Each weight byte is read from
 * memory once for all m rows (m > 4 re-reads the row from L1). y is indexed by absolute
 * n, so threads share base pointers and split [n0, n1) (any split; multiples of 12 rows
 * keep every call on the widest path). Fast path: g % 32 == 0; other even g take a
 * portable loop. f32 accumulation as sum_g s*(sum x*u - z*sum x); xprep pre-scales x by
 * powers of two down to 2^-24 (AVX2; 2^-12 on NEON), exact unless |x| < 2^-102 (2^-114).
 * On AVX2 with every |x| in a range of about 2^96 (xprep checks), the nibbles are used as
 * denormal floats instead (no conversion; same bits); DAZ/FTZ are cleared while it runs.
 * Prefetches the rows after n1. */
void pck_int4_gemv(ptrdiff_t m, ptrdiff_t k, ptrdiff_t g, const float *xp,
                   const uint8_t *w, ptrdiff_t ldw, const float *scales, ptrdiff_t lds,
                   const int8_t *zeros, ptrdiff_t ldz, ptrdiff_t n0, ptrdiff_t n1,
                   float *y, ptrdiff_t ldy, int accumulate);

/* Dequantize into the SGEMM packed-B layout (B = W^T, as pck_sgemm_pack_b with the weight
 * layout): B(kk, j) = w[n0 + j, k0 + kk] for kk < kc, j < nc; k0 must be even.
 * Values are exactly s * (u - z) rounded once to f32. */
void pck_int4_pack_b(ptrdiff_t kc, ptrdiff_t nc, ptrdiff_t k0, ptrdiff_t n0, ptrdiff_t g,
                     const uint8_t *w, ptrdiff_t ldw, const float *scales, ptrdiff_t lds,
                     const int8_t *zeros, ptrdiff_t ldz, float *bp);

/* Prefetches (into L1) what pck_int4_pack_b(kc, nc, k0, n0, ...) will read: each row's
 * kc/2 weight bytes from k0 and its first scale. A GEMM calls it for the next B sliver while
 * the current one's tiles run (expert weights come from memory; MoE layer -2.5% CPU time). */
void pck_int4_prefetch(ptrdiff_t kc, ptrdiff_t nc, ptrdiff_t k0, ptrdiff_t n0, ptrdiff_t g,
                       const uint8_t *w, ptrdiff_t ldw, const float *scales, ptrdiff_t lds);

/* Dequantize rows n0..<n1, all k: out[(n-n0)*ldo + k] = s * (u - z) (exact f32 product). */
void pck_int4_dequantize(ptrdiff_t n0, ptrdiff_t n1, ptrdiff_t k, ptrdiff_t g,
                         const uint8_t *w, ptrdiff_t ldw, const float *scales,
                         ptrdiff_t lds, const int8_t *zeros, ptrdiff_t ldz, float *out,
                         ptrdiff_t ldo);

/* Quantize rows: x[r*ldx + k] for r < rows -> w, scales (and zeros). Per group:
 *  zeros == NULL (symmetric): amax = max|x|, s = amax / 7.0f;
 *     s == 0: u = 8; else u = clamp(round(x / s), -8, 7) + 8.
 *  zeros != NULL (asymmetric, docs/kernels.md): lo = min(min x, 0), hi = max(max x, 0)
 *     (the range always holds 0, so the zero point fits), s = (hi - lo) / 15.0f;
 *     s == 0 (all zero): z = 0, u = 0; else z = clamp(round(-lo / s), 0, 15),
 *     u = clamp(round(x / s) + z, 0, 15).
 * round = half away from zero; divisions are IEEE f32 divisions, so every ISA gives the
 * same bits as the scalar path. NaN is ignored by min/max/amax; a NaN quotient clamps to
 * the low end. */
void pck_int4_quantize(ptrdiff_t rows, ptrdiff_t k, ptrdiff_t g, const float *x,
                       ptrdiff_t ldx, uint8_t *w, ptrdiff_t ldw, float *scales,
                       ptrdiff_t lds, int8_t *zeros, ptrdiff_t ldz);

/* ---------------------------------------------------------------- conversion */

/* IEEE binary16 <-> f32, bit-identical to F16C / AArch64 FCVT on every path. f32 -> f16
 * rounds to nearest even, overflow -> inf; NaN -> quiet NaN (sign and top payload bits kept)
 * both ways. */
void pck_f16_to_f32(ptrdiff_t n, const uint16_t *src, float *dst);
void pck_f32_to_f16(ptrdiff_t n, const float *src, uint16_t *dst);
/* bfloat16 <-> f32. f32 -> bf16 rounds to nearest even (no flush of subnormals);
 * NaN -> quiet NaN (top 16 bits with the quiet bit set). */
void pck_bf16_to_f32(ptrdiff_t n, const uint16_t *src, float *dst);
void pck_f32_to_bf16(ptrdiff_t n, const float *src, uint16_t *dst);

/* ---------------------------------------------------------------- vector */
/* Reductions use a fixed order per ISA and n: the same inputs give the same bits. */

/* sum_i x[i] * y[i] */
float pck_dot(ptrdiff_t n, const float *x, const float *y);
/* y[i] += a * x[i] */
void pck_axpy(ptrdiff_t n, float a, const float *x, float *y);
/* y[i] = a * x[i] (y may equal x) */
void pck_scale(ptrdiff_t n, float a, const float *x, float *y);
/* max_i x[i], NaNs ignored; -inf when n == 0 or all NaN. */
float pck_max(ptrdiff_t n, const float *x);
/* sum_i x[i] */
float pck_sum(ptrdiff_t n, const float *x);
/* y[i] = exp(x[i]) (y may equal x). Max error 2 ulp for x <= 88.72 (1 ulp typical),
 * exp(-inf) = 0, x > 88.7228 -> inf, NaN -> NaN, subnormal results kept. */
void pck_exp(ptrdiff_t n, const float *x, float *y);
/* y[i] = exp(x[i] - m); returns sum_i y[i] (y may equal x). m = -inf gives y = 0
 * (rows that are fully masked), never NaN. */
float pck_exp_sub_sum(ptrdiff_t n, const float *x, float m, float *y);
/* Stable softmax of one row: y = exp(x - max x) / sum. All -inf row -> all 0. */
void pck_softmax(ptrdiff_t n, const float *x, float *y);
/* One flash-attention step for a block of n scores s (already scaled and masked, -inf =
 * masked). In/out running max *m (start at -inf) and running sum *l (start at 0).
 * Writes p[i] = exp(s[i] - m_new) (p may equal s), updates *m, *l, and returns the factor
 * alpha = exp(m_old - m_new) by which the caller rescales its output accumulator before
 * adding p.V (alpha = 1 while everything seen is masked; never NaN). */
float pck_online_softmax_step(ptrdiff_t n, const float *s, float *m, float *l, float *p);
/* pck_online_softmax_step for the `rows` rows of a flash-attention score block, and the
 * output rescale: row r has n scores at s + r*lds, of which the first
 * clamp(limit[r] - j0, 0, n) are visible (the rest become p = 0); p is written over s.
 * o row r (dv floats at o + r*ldo) is multiplied by alpha where alpha != 1. A row whose
 * running sum l is NaN (a NaN score was seen: exp(NaN - m) is NaN) keeps l = NaN and its o
 * untouched; the caller writes it as NaN. */
void pck_flash_softmax(ptrdiff_t rows, ptrdiff_t n, float *s, ptrdiff_t lds,
                       const ptrdiff_t *limit, ptrdiff_t j0, float *m, float *l, float *o,
                       ptrdiff_t ldo, ptrdiff_t dv);
/* y[i] = (x[i] * a) * (w ? w[i] : 1), the bits of pck_scale / the rmsnorm scale, written
 * with non-temporal stores where the CPU has them (x86-64), then a store fence: a large
 * output written once is not read for ownership first and does not evict the working set.
 * y must be 4-byte aligned and must not overlap x or w. */
void pck_scale_mul_stream(ptrdiff_t n, float a, const float *x, const float *w, float *y);
/* pck_rmsnorm writing y with pck_scale_mul_stream. */
void pck_rmsnorm_stream(ptrdiff_t n, const float *x, const float *w, float eps, float *y);
/* Top-k of one row (the catalog's topK): the k largest of x[0..<n] in descending order,
 * equal values in ascending index order; NaN and -inf never selected; fewer than k
 * selectable entries are padded with (-1, -inf). Values are the inputs' own bits.
 * `scratch`: pck_topk_scratch(n, k) bytes, 4-byte aligned. O(n + k). */
ptrdiff_t pck_topk_scratch(ptrdiff_t n, ptrdiff_t k);
void pck_topk_row(ptrdiff_t n, const float *x, ptrdiff_t k, int32_t *idx, float *val,
                  void *scratch);
/* y[i] = x[i] * (1/sqrt(mean(x^2) + eps)) * (w ? w[i] : 1) (y may equal x). */
void pck_rmsnorm(ptrdiff_t n, const float *x, const float *w, float eps, float *y);
/* Fused residual add + RMSNorm of one row: h = x + r (the new residual), then
 * y = pck_rmsnorm(h); h may equal x or r, y may equal x or r. */
void pck_add_rmsnorm(ptrdiff_t n, const float *x, const float *r, const float *w, float eps,
                     float *h, float *y);
/* y[i] = x[i] * sigmoid(x[i]) (y may equal x). */
void pck_silu(ptrdiff_t n, const float *x, float *y);
/* y[i] = silu(gate[i]) * up[i] (y may equal gate or up). */
void pck_swiglu(ptrdiff_t n, const float *gate, const float *up, float *y);

#ifdef __cplusplus
}
#endif

#endif /* CPOLYCHIPKERNELS_H */
