/* CPU feature detection, the per-ISA tables, and the public entry points. */
#include "pck_internal.h"

#include <stdatomic.h>

#if PCK_X86
#include <cpuid.h>
#include <immintrin.h>
#endif
#if PCK_ARM64
#include <arm_neon.h>
#endif

/* pfx: the ISA of the memory-bound kernels; xpfx: of the exp-bound ones; bpfx: of the INT4
 * GEMV and B-panel packing (issue- and compute-bound: the packing dequantizes every expert
 * weight of the MoE layer). */
#define PCK_TABLE3(isa_, name_, gemm_, pfx, xpfx, bpfx)                                   \
    {                                                                                     \
        isa_, name_, gemm_, pck__pack_##pfx, pck__int4_xprep_##pfx, pck__int4_gemv_##bpfx,\
            pck__int4_pack_b_##bpfx, pck__int4_dequantize_##pfx, pck__int4_quantize_##pfx,\
            pck__f16_to_f32_##pfx, pck__f32_to_f16_##pfx, pck__bf16_to_f32_##pfx,         \
            pck__f32_to_bf16_##pfx, pck__dot_##pfx, pck__axpy_##pfx, pck__scale_mul_##pfx, \
            pck__max_##xpfx, pck__sum_##pfx, pck__exp_##xpfx, pck__exp_sub_sum_##xpfx,    \
            pck__silu_##xpfx, pck__swiglu_##xpfx                                          \
    }
#define PCK_TABLE(isa_, name_, gemm_, pfx) PCK_TABLE3(isa_, name_, gemm_, pfx, pfx, pfx)

static const pck_gemm_shape shape_scalar = {"scalar 4x8", 4, 8, pck__sgemm_kernel_scalar, NULL};
static const pck_kernels kernels_scalar[] = {
    PCK_TABLE(PCK_ISA_SCALAR, "scalar", &shape_scalar, scalar)};
#if PCK_X86
static const pck_gemm_shape shape_avx2 = {"avx2 6x16", 6, 16, pck__sgemm_kernel_avx2, NULL};
static const pck_kernels kernels_avx2[] = {PCK_TABLE(PCK_ISA_AVX2, "avx2", &shape_avx2, avx2)};
/* One table per AVX-512 GEMM shape (gemm_avx512.c); the exp-bound row kernels, the INT4
 * GEMV and packing are AVX-512 (vector_avx512.c, int4_avx512.c), the memory-bound ones reuse
 * AVX2, which reads memory as fast. */
#define PCK_AVX512_TABLE(i) \
    PCK_TABLE3(PCK_ISA_AVX512, "avx512", &pck__gemm_shapes_avx512[i], avx2, avx512, avx512)
static const pck_kernels kernels_avx512[] = {PCK_AVX512_TABLE(0), PCK_AVX512_TABLE(1),
                                             PCK_AVX512_TABLE(2)};
#undef PCK_AVX512_TABLE
#endif
#if PCK_ARM64
static const pck_gemm_shape shape_neon = {"neon 8x12", 8, 12, pck__sgemm_kernel_neon, NULL};
/* INT4 packing/quantize are not hot on the decode path: the portable loops serve NEON. */
static const pck_kernels kernels_neon[] = {{
    PCK_ISA_NEON, "neon", &shape_neon, pck__pack_neon, pck__int4_xprep_neon,
    pck__int4_gemv_neon, pck__int4_pack_b_scalar, pck__int4_dequantize_scalar,
    pck__int4_quantize_scalar, pck__f16_to_f32_neon, pck__f32_to_f16_neon,
    pck__bf16_to_f32_neon, pck__f32_to_bf16_neon, pck__dot_neon, pck__axpy_neon,
    pck__scale_mul_neon, pck__max_neon, pck__sum_neon, pck__exp_neon, pck__exp_sub_sum_neon,
    pck__silu_neon, pck__swiglu_neon}};
#endif

/* ---------------------------------------------------------------- detection */

static uint64_t detect_features(void) {
    uint64_t f = 0;
#if PCK_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (d & (1u << 26)) f |= PCK_FEAT_SSE2;
    if (c & (1u << 19)) f |= PCK_FEAT_SSE41;
    int osxsave = (c & (1u << 27)) != 0;
    uint64_t xcr0 = 0;
    if (osxsave) {
        /* xgetbv by opcode: no xsave target attribute needed */
        unsigned lo, hi;
        __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = ((uint64_t)hi << 32) | lo;
    }
    int ymm_ok = (xcr0 & 0x6) == 0x6;   /* SSE + AVX state saved by the OS */
    int zmm_ok = (xcr0 & 0xe6) == 0xe6; /* + opmask, ZMM_Hi256, Hi16_ZMM */
    if (ymm_ok && (c & (1u << 28))) f |= PCK_FEAT_AVX;
    if ((f & PCK_FEAT_AVX) && (c & (1u << 12))) f |= PCK_FEAT_FMA;
    if ((f & PCK_FEAT_AVX) && (c & (1u << 29))) f |= PCK_FEAT_F16C;
    if (__get_cpuid_max(0, 0) >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        if ((f & PCK_FEAT_AVX) && (b & (1u << 5))) f |= PCK_FEAT_AVX2;
        if (zmm_ok && (b & (1u << 16))) {
            f |= PCK_FEAT_AVX512F;
            if (b & (1u << 17)) f |= PCK_FEAT_AVX512DQ;
            if (b & (1u << 30)) f |= PCK_FEAT_AVX512BW;
            if (b & (1u << 31)) f |= PCK_FEAT_AVX512VL;
            if (c & (1u << 11)) f |= PCK_FEAT_AVX512VNNI;
            unsigned a1 = 0, b1, c1, d1;
            if (a >= 1) __cpuid_count(7, 1, a1, b1, c1, d1); /* a: the highest subleaf */
            if (a1 & (1u << 5)) f |= PCK_FEAT_AVX512BF16;
        }
    }
#elif PCK_ARM64
    f |= PCK_FEAT_NEON;
#endif
    return f;
}

/* CPUID traps to the hypervisor in a VM: detect once. */
static uint64_t features(void) {
    static _Atomic uint64_t cached; /* bit 63 marks "detected" */
    uint64_t f = atomic_load_explicit(&cached, memory_order_relaxed);
    if (!f) {
        f = detect_features() | (1ull << 63);
        atomic_store_explicit(&cached, f, memory_order_relaxed);
    }
    return f & ~(1ull << 63);
}

static int isa_supported_by(pck_isa isa, uint64_t f) {
    switch (isa) {
    case PCK_ISA_SCALAR: return 1;
#if PCK_X86
    case PCK_ISA_AVX2: {
        uint64_t need = PCK_FEAT_AVX2 | PCK_FEAT_FMA | PCK_FEAT_F16C;
        return (f & need) == need;
    }
    case PCK_ISA_AVX512: {
        uint64_t need = PCK_FEAT_AVX512F | PCK_FEAT_AVX512VL | PCK_FEAT_AVX512BW |
                        PCK_FEAT_AVX512DQ | PCK_FEAT_AVX2 | PCK_FEAT_FMA | PCK_FEAT_F16C;
        return (f & need) == need;
    }
#endif
#if PCK_ARM64
    case PCK_ISA_NEON: return (f & PCK_FEAT_NEON) != 0;
#endif
    default: return 0;
    }
}

static const pck_kernels *tables_of(pck_isa isa, int *count) {
    switch (isa) {
#if PCK_X86
    case PCK_ISA_AVX2: *count = 1; return kernels_avx2;
    case PCK_ISA_AVX512: *count = pck__gemm_shape_count_avx512; return kernels_avx512;
#endif
#if PCK_ARM64
    case PCK_ISA_NEON: *count = 1; return kernels_neon;
#endif
    case PCK_ISA_SCALAR: *count = 1; return kernels_scalar;
    default: *count = 0; return NULL;
    }
}

static const pck_kernels *table_of(pck_isa isa) {
    int n;
    const pck_kernels *t = tables_of(isa, &n);
    return n > 0 ? t : kernels_scalar;
}

static pck_isa best_of(uint64_t f) {
    static const pck_isa order[] = {PCK_ISA_AVX512, PCK_ISA_AVX2, PCK_ISA_NEON};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (isa_supported_by(order[i], f)) return order[i];
    return PCK_ISA_SCALAR;
}

/* The process default table. Detection is pure, so racing first calls all compute the
 * same answer and the first store wins harmlessly. */
static _Atomic(const pck_kernels *) g_table;
/* This thread's table (pck_use), or NULL for the default. */
static _Thread_local const pck_kernels *t_table;

static const pck_kernels *init_table(void) {
    const pck_kernels *t = table_of(best_of(features()));
    const pck_kernels *expected = NULL;
    if (!atomic_compare_exchange_strong_explicit(&g_table, &expected, t, memory_order_acq_rel,
                                                 memory_order_acquire))
        t = expected;
    return t;
}

PCK_INLINE const pck_kernels *K(void) {
    const pck_kernels *t = t_table;
    if (t) return t;
    t = atomic_load_explicit(&g_table, memory_order_acquire);
    return t ? t : init_table();
}

uint64_t pck_cpu_features(void) { return features(); }
pck_isa pck_isa_best(void) { return best_of(features()); }
pck_isa pck_isa_current(void) { return K()->isa; }
const char *pck_isa_name(void) { return K()->name; }

const char *pck_isa_name_of(pck_isa isa) {
    switch (isa) {
    case PCK_ISA_SCALAR: return "scalar";
    case PCK_ISA_AVX2: return "avx2";
    case PCK_ISA_AVX512: return "avx512";
    case PCK_ISA_NEON: return "neon";
    default: return "unknown";
    }
}

int pck_isa_supported(pck_isa isa) { return isa_supported_by(isa, features()); }

int pck_isa_select(pck_isa isa) {
    if (!pck_isa_supported(isa)) return -1;
    atomic_store_explicit(&g_table, table_of(isa), memory_order_release);
    return 0;
}

int pck_gemm_shapes(pck_isa isa) {
    int n;
    if (!pck_isa_supported(isa) || !tables_of(isa, &n)) return 0;
    return n;
}

const pck_kernels *pck_table(pck_isa isa, int shape) {
    int n = pck_gemm_shapes(isa);
    if (shape < 0 || shape >= n) return NULL;
    return &tables_of(isa, &n)[shape];
}

pck_isa pck_table_isa(const pck_kernels *t) { return t->isa; }
ptrdiff_t pck_table_mr(const pck_kernels *t) { return t->gemm->mr; }
ptrdiff_t pck_table_nr(const pck_kernels *t) { return t->gemm->nr; }
const char *pck_table_gemm_name(const pck_kernels *t) { return t->gemm->name; }

const pck_kernels *pck_use(const pck_kernels *t) {
    const pck_kernels *old = t_table;
    t_table = t;
    return old;
}

const pck_kernels *pck_current(void) { return K(); }

/* ---------------------------------------------------------------- SGEMM */

ptrdiff_t pck_sgemm_mr(void) { return K()->gemm->mr; }
ptrdiff_t pck_sgemm_nr(void) { return K()->gemm->nr; }

ptrdiff_t pck_sgemm_packed_a_size(ptrdiff_t mc, ptrdiff_t kc) {
    ptrdiff_t mr = K()->gemm->mr;
    return (mc + mr - 1) / mr * mr * kc;
}
ptrdiff_t pck_sgemm_packed_b_size(ptrdiff_t kc, ptrdiff_t nc) {
    ptrdiff_t nr = K()->gemm->nr;
    return (nc + nr - 1) / nr * nr * kc;
}

void pck_sgemm_pack_a(pck_dtype dt, ptrdiff_t mc, ptrdiff_t kc, const void *a, ptrdiff_t rs_a,
                      ptrdiff_t cs_a, float *ap) {
    const pck_kernels *t = K();
    t->pack(dt, t->gemm->mr, mc, kc, a, rs_a, cs_a, ap);
}

void pck_sgemm_pack_b(pck_dtype dt, ptrdiff_t kc, ptrdiff_t nc, const void *b, ptrdiff_t rs_b,
                      ptrdiff_t cs_b, float *bp) {
    const pck_kernels *t = K();
    t->pack(dt, t->gemm->nr, nc, kc, b, cs_b, rs_b, bp);
}

void pck_sgemm_kernel(ptrdiff_t kc, const float *ap, const float *bp, float *c, ptrdiff_t ldc,
                      ptrdiff_t m, ptrdiff_t n, int accumulate) {
    K()->gemm->sgemm_kernel(kc, ap, bp, c, ldc, m, n, accumulate, NULL);
}

void pck_sgemm_kernel_pf(ptrdiff_t kc, const float *ap, const float *bp, float *c, ptrdiff_t ldc,
                         ptrdiff_t m, ptrdiff_t n, int accumulate, const float *prefetch) {
    K()->gemm->sgemm_kernel(kc, ap, bp, c, ldc, m, n, accumulate, prefetch);
}

/* ---------------------------------------------------------------- BF16 pair GEMM */

int pck_bgemm_available(void) {
#if PCK_X86
    return K()->gemm->bgemm_kernel != NULL && (features() & PCK_FEAT_AVX512BF16) != 0;
#else
    return 0;
#endif
}

ptrdiff_t pck_bgemm_packed_a_size(ptrdiff_t mc, ptrdiff_t kc) {
    ptrdiff_t mr = K()->gemm->mr;
    return (mc + mr - 1) / mr * mr * ((kc + 1) / 2);
}
ptrdiff_t pck_bgemm_packed_b_size(ptrdiff_t kc, ptrdiff_t nc) {
    ptrdiff_t nr = K()->gemm->nr;
    return (nc + nr - 1) / nr * nr * ((kc + 1) / 2);
}

void pck_bgemm_pack_a(ptrdiff_t mc, ptrdiff_t kc, const uint16_t *a, ptrdiff_t rs_a,
                      ptrdiff_t cs_a, uint32_t *ap) {
#if PCK_X86
    pck__bpack_avx512(K()->gemm->mr, mc, kc, a, rs_a, cs_a, ap);
#else
    (void)mc, (void)kc, (void)a, (void)rs_a, (void)cs_a, (void)ap;
#endif
}

void pck_bgemm_pack_b(ptrdiff_t kc, ptrdiff_t nc, const uint16_t *b, ptrdiff_t rs_b,
                      ptrdiff_t cs_b, uint32_t *bp) {
#if PCK_X86
    pck__bpack_avx512(K()->gemm->nr, nc, kc, b, cs_b, rs_b, bp);
#else
    (void)kc, (void)nc, (void)b, (void)rs_b, (void)cs_b, (void)bp;
#endif
}

void pck_bgemm_kernel(ptrdiff_t kc, const uint32_t *ap, const uint32_t *bp, float *c,
                      ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n, int accumulate,
                      const uint32_t *prefetch) {
    K()->gemm->bgemm_kernel(kc, ap, bp, c, ldc, m, n, accumulate, prefetch);
}

/* ---------------------------------------------------------------- INT4 */

_Atomic int pck__int4_dn_enabled = 1;

void pck_int4_denormal_weights(int enable) {
    atomic_store_explicit(&pck__int4_dn_enabled, enable ? 1 : 0, memory_order_relaxed);
}

int pck_int4_denormals_fast(void) {
#if PCK_X86
    return pck_isa_supported(PCK_ISA_AVX2) ? pck__int4_denormals_fast() : 0;
#else
    return 0;
#endif
}

int pck_int4_xprep_denormal(const float *xp, ptrdiff_t k, ptrdiff_t g) {
    return xp[pck__xprep_mode(k, g)] != 0.0f;
}

ptrdiff_t pck_int4_xprep_size(ptrdiff_t m, ptrdiff_t k, ptrdiff_t g) {
    return m * pck__xprep_row(k, g);
}

void pck_int4_xprep(ptrdiff_t m, ptrdiff_t k, ptrdiff_t g, const float *x, ptrdiff_t ldx,
                    float *xp) {
    K()->int4_xprep(m, k, g, x, ldx, xp);
}

void pck_int4_gemv(ptrdiff_t m, ptrdiff_t k, ptrdiff_t g, const float *xp, const uint8_t *w,
                   ptrdiff_t ldw, const float *scales, ptrdiff_t lds, const int8_t *zeros,
                   ptrdiff_t ldz, ptrdiff_t n0, ptrdiff_t n1, float *y, ptrdiff_t ldy,
                   int accumulate) {
    K()->int4_gemv(m, k, g, xp, w, ldw, scales, lds, zeros, ldz, n0, n1, y, ldy, accumulate);
}

void pck_int4_pack_b(ptrdiff_t kc, ptrdiff_t nc, ptrdiff_t k0, ptrdiff_t n0, ptrdiff_t g,
                     const uint8_t *w, ptrdiff_t ldw, const float *scales, ptrdiff_t lds,
                     const int8_t *zeros, ptrdiff_t ldz, float *bp) {
    const pck_kernels *t = K();
    t->int4_pack_b(t->gemm->nr, kc, nc, k0, n0, g, w, ldw, scales, lds, zeros, ldz, bp);
}

void pck_int4_prefetch(ptrdiff_t kc, ptrdiff_t nc, ptrdiff_t k0, ptrdiff_t n0, ptrdiff_t g,
                       const uint8_t *w, ptrdiff_t ldw, const float *scales, ptrdiff_t lds) {
    ptrdiff_t bytes = (kc + 1) / 2;
    for (ptrdiff_t j = 0; j < nc; j++) {
        const uint8_t *row = w + (n0 + j) * ldw + k0 / 2;
        for (ptrdiff_t b = 0; b < bytes; b += 64) __builtin_prefetch(row + b, 0, 3);
        __builtin_prefetch(row + bytes - 1, 0, 3);
        if (g > 0) __builtin_prefetch(scales + (n0 + j) * lds + k0 / g, 0, 3);
    }
}

void pck_int4_dequantize(ptrdiff_t n0, ptrdiff_t n1, ptrdiff_t k, ptrdiff_t g, const uint8_t *w,
                         ptrdiff_t ldw, const float *scales, ptrdiff_t lds,
                         const int8_t *zeros, ptrdiff_t ldz, float *out, ptrdiff_t ldo) {
    K()->int4_dequantize(n0, n1, k, g, w, ldw, scales, lds, zeros, ldz, out, ldo);
}

void pck_int4_quantize(ptrdiff_t rows, ptrdiff_t k, ptrdiff_t g, const float *x, ptrdiff_t ldx,
                       uint8_t *w, ptrdiff_t ldw, float *scales, ptrdiff_t lds, int8_t *zeros,
                       ptrdiff_t ldz) {
    K()->int4_quantize(rows, k, g, x, ldx, w, ldw, scales, lds, zeros, ldz);
}

/* ---------------------------------------------------------------- conversion */

void pck_f16_to_f32(ptrdiff_t n, const uint16_t *src, float *dst) { K()->f16_to_f32(n, src, dst); }
void pck_f32_to_f16(ptrdiff_t n, const float *src, uint16_t *dst) { K()->f32_to_f16(n, src, dst); }
void pck_bf16_to_f32(ptrdiff_t n, const uint16_t *src, float *dst) { K()->bf16_to_f32(n, src, dst); }
void pck_f32_to_bf16(ptrdiff_t n, const float *src, uint16_t *dst) { K()->f32_to_bf16(n, src, dst); }

/* ---------------------------------------------------------------- vector */

float pck_dot(ptrdiff_t n, const float *x, const float *y) { return K()->dot(n, x, y); }
void pck_axpy(ptrdiff_t n, float a, const float *x, float *y) { K()->axpy(n, a, x, y); }
void pck_scale(ptrdiff_t n, float a, const float *x, float *y) { K()->scale_mul(n, a, x, NULL, y); }
float pck_max(ptrdiff_t n, const float *x) { return K()->max(n, x); }
float pck_sum(ptrdiff_t n, const float *x) { return K()->sum(n, x); }
void pck_exp(ptrdiff_t n, const float *x, float *y) { K()->exp(n, x, y); }
void pck_silu(ptrdiff_t n, const float *x, float *y) { K()->silu(n, x, y); }
void pck_swiglu(ptrdiff_t n, const float *gate, const float *up, float *y) {
    K()->swiglu(n, gate, up, y);
}

float pck_exp_sub_sum(ptrdiff_t n, const float *x, float m, float *y) {
    const pck_kernels *t = K();
    if (m == -__builtin_inff()) { /* fully masked: exp(-inf - -inf) would be NaN */
        for (ptrdiff_t i = 0; i < n; i++) y[i] = 0.0f;
        return 0.0f;
    }
    return t->exp_sub_sum(n, x, m, y);
}

void pck_softmax(ptrdiff_t n, const float *x, float *y) {
    const pck_kernels *t = K();
    float m = t->max(n, x);
    float l = pck_exp_sub_sum(n, x, m, y);
    if (l > 0.0f) t->scale_mul(n, 1.0f / l, y, NULL, y);
}

float pck_online_softmax_step(ptrdiff_t n, const float *s, float *m, float *l, float *p) {
    const pck_kernels *t = K();
    float m_old = *m;
    float bm = t->max(n, s);
    float m_new = bm > m_old ? bm : m_old;
    float ps = pck_exp_sub_sum(n, s, m_new, p);
    float alpha = (m_old == -__builtin_inff()) ? (m_new == -__builtin_inff() ? 1.0f : 0.0f)
                                               : pck__exp1(m_old - m_new);
    *l = *l * alpha + ps;
    *m = m_new;
    return alpha;
}

void pck_flash_softmax(ptrdiff_t rows, ptrdiff_t n, float *s, ptrdiff_t lds, const ptrdiff_t *limit,
                       ptrdiff_t j0, float *m, float *l, float *o, ptrdiff_t ldo, ptrdiff_t dv) {
    const pck_kernels *t = K();
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *sr = s + r * lds;
        ptrdiff_t visible = limit[r] - j0;
        visible = visible < 0 ? 0 : visible > n ? n : visible;
        for (ptrdiff_t j = visible; j < n; j++) sr[j] = -__builtin_inff();
        float m_old = m[r];
        float bm = visible > 0 ? t->max(visible, sr) : -__builtin_inff();
        float m_new = bm > m_old ? bm : m_old;
        float ps;
        if (m_new == -__builtin_inff()) { /* all masked so far: exp(-inf - -inf) would be NaN */
            /* the max skips NaN, so a row whose visible scores are NaN (and -inf) lands here:
             * its sum must still become NaN */
            int nan = 0;
            for (ptrdiff_t j = 0; j < visible; j++) nan |= sr[j] != sr[j];
            for (ptrdiff_t j = 0; j < n; j++) sr[j] = 0.0f;
            ps = nan ? __builtin_nanf("") : 0.0f;
        } else {
            ps = t->exp_sub_sum(visible, sr, m_new, sr);
            for (ptrdiff_t j = visible; j < n; j++) sr[j] = 0.0f;
        }
        float alpha = (m_old == -__builtin_inff()) ? 1.0f : pck__exp1(m_old - m_new);
        float lr = l[r];
        if (lr == lr) { /* a NaN row stays NaN; its output is written as NaN at the end */
            l[r] = lr * alpha + ps;
            if (alpha != 1.0f) t->scale_mul(dv, alpha, o + r * ldo, NULL, o + r * ldo);
        }
        m[r] = m_new;
    }
}

/* sqrt by instruction: the C target must not need libm at link time */
PCK_INLINE float sqrt1(float v) {
#if PCK_X86
    return _mm_cvtss_f32(_mm_sqrt_ss(_mm_set_ss(v)));
#elif PCK_ARM64
    return vget_lane_f32(vsqrt_f32(vdup_n_f32(v)), 0);
#else
    return __builtin_sqrtf(v);
#endif
}

PCK_INLINE float rms_inv(const pck_kernels *t, ptrdiff_t n, const float *x, float eps) {
    float ss = n > 0 ? t->dot(n, x, x) : 0.0f;
    return 1.0f / sqrt1(ss / (float)(n > 0 ? n : 1) + eps);
}

void pck_rmsnorm(ptrdiff_t n, const float *x, const float *w, float eps, float *y) {
    const pck_kernels *t = K();
    t->scale_mul(n, rms_inv(t, n, x, eps), x, w, y);
}

void pck_add_rmsnorm(ptrdiff_t n, const float *x, const float *r, const float *w, float eps,
                     float *h, float *y) {
    const pck_kernels *t = K();
    /* h = x + r, one rounding per element (fma(1, r, h) is the sum correctly rounded), in
     * whichever order keeps an aliased input readable. */
    if (h == r) {
        t->axpy(n, 1.0f, x, h);
    } else {
        if (h != x) __builtin_memmove(h, x, (size_t)n * sizeof(float));
        t->axpy(n, 1.0f, r, h);
    }
    t->scale_mul(n, rms_inv(t, n, h, eps), h, w, y);
}

void pck_rmsnorm_stream(ptrdiff_t n, const float *x, const float *w, float eps, float *y) {
    pck_scale_mul_stream(n, rms_inv(K(), n, x, eps), x, w, y);
}
