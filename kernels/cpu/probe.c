/* Timing probes behind the backend's per-machine choices: the FMA rate of each vector
 * width (is a 512-bit FMA one operation or two 256-bit halves here?) and whether FMAs with
 * denormal inputs run at full rate (the INT4 GEMV's denormal-weight path). The decisions
 * themselves are plain functions of the measured numbers, so tests can check both
 * outcomes on any machine. */
#include "pck_internal.h"

#if PCK_X86
#include <immintrin.h>
#include <x86intrin.h>
#endif

/* ---------------------------------------------------------------- FMA rate */

/* 12 independent chains: enough for two pipes of latency 4 (and one 512-bit pipe). */
static double burn_scalar(int64_t it) {
    float a[12];
    for (int q = 0; q < 12; q++) a[q] = 1.0f;
    for (int64_t i = 0; i < it; i++) {
        for (int q = 0; q < 12; q++) a[q] = a[q] * 0.999999f + 1e-7f;
        __asm__ volatile("" : : "r"(a) : "memory");
    }
    volatile float sink = a[0];
    (void)sink;
    return (double)it * 12 * 2;
}

#if PCK_X86
static __attribute__((noinline)) PCK_AVX2 double burn_avx2(int64_t it) {
    __m256 a[12];
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int q = 0; q < 12; q++) a[q] = _mm256_set1_ps(1.0f);
    for (int64_t i = 0; i < it; i++) {
        for (int q = 0; q < 12; q++) a[q] = _mm256_fmadd_ps(a[q], m, c);
        __asm__ volatile("" : "+x"(a[0]), "+x"(a[1]), "+x"(a[2]), "+x"(a[3]), "+x"(a[4]), "+x"(a[5]));
    }
    for (int q = 1; q < 12; q++) a[0] = _mm256_add_ps(a[0], a[q]);
    __asm__ volatile("" : : "x"(a[0]));
    return (double)it * 12 * 8 * 2;
}

static __attribute__((noinline)) PCK_AVX512 double burn_avx512(int64_t it) {
    __m512 a[12];
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int q = 0; q < 12; q++) a[q] = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < it; i++) {
        for (int q = 0; q < 12; q++) a[q] = _mm512_fmadd_ps(a[q], m, c);
        __asm__ volatile("" : "+v"(a[0]), "+v"(a[1]), "+v"(a[2]), "+v"(a[3]), "+v"(a[4]), "+v"(a[5]));
    }
    for (int q = 1; q < 12; q++) a[0] = _mm512_add_ps(a[0], a[q]);
    __asm__ volatile("" : : "v"(a[0]));
    return (double)it * 12 * 16 * 2;
}
#endif

double pck_fma_burn(pck_isa isa, int64_t iterations) {
    if (!pck_isa_supported(isa)) return 0;
    switch (isa) {
#if PCK_X86
    case PCK_ISA_AVX2: return burn_avx2(iterations);
    case PCK_ISA_AVX512: return burn_avx512(iterations);
#endif
    default: return burn_scalar(iterations);
    }
}

/* ---------------------------------------------------------------- denormal FMAs */

int pck_denormal_verdict(uint64_t normal_ticks, uint64_t denormal_ticks) {
    return denormal_ticks * 4 <= normal_ticks * 5; /* within 25% */
}

#if PCK_X86
/* Ticks for 2048 FMAs in 8 chains with inputs a (bit pattern) and b (DAZ/FTZ cleared by
 * the caller). */
static __attribute__((noinline)) PCK_AVX2 uint64_t fma_ticks(int32_t abits, float bv) {
    __m256 a = _mm256_castsi256_ps(_mm256_set1_epi32(abits)), b = _mm256_set1_ps(bv), c[8];
    for (int q = 0; q < 8; q++) c[q] = _mm256_setzero_ps();
    uint64_t t0 = __rdtsc();
    for (int i = 0; i < 256; i++) {
        __asm__ volatile("" : "+x"(a));
        for (int q = 0; q < 8; q++) c[q] = _mm256_fmadd_ps(a, b, c[q]);
    }
    uint64_t t = __rdtsc() - t0;
    for (int q = 1; q < 8; q++) c[0] = _mm256_add_ps(c[0], c[q]);
    __asm__ volatile("" : : "x"(c[0]));
    return t;
}

void pck_denormal_probe(uint64_t *normal_ticks, uint64_t *denormal_ticks) {
    if (!pck_isa_supported(PCK_ISA_AVX2)) {
        *normal_ticks = *denormal_ticks = 0;
        return;
    }
    unsigned csr = _mm_getcsr();
    _mm_setcsr(csr & ~(0x8040u));
    uint64_t tn = UINT64_MAX, td = UINT64_MAX;
    for (int r = 0; r < 5; r++) {
        uint64_t a = fma_ticks(0x40400000, 0x1p-20f); /* 3.0: normal */
        uint64_t b = fma_ticks(0x00070000, 0x1p100f); /* a denormal */
        tn = a < tn ? a : tn;
        td = b < td ? b : td;
    }
    _mm_setcsr(csr);
    *normal_ticks = tn;
    *denormal_ticks = td;
}

/* Timed once per process: the best of 5 rounds of each, denormal within 25% of normal
 * (Zen 3 and Zen 4 are; cores that take a microcode assist per denormal operand would
 * make the denormal path far slower). */
int pck__int4_denormals_fast(void) {
    static _Atomic int state; /* 0 not yet timed, 1 fast, 2 slow */
    int st = atomic_load_explicit(&state, memory_order_relaxed);
    if (st) return st == 1;
    uint64_t tn, td;
    pck_denormal_probe(&tn, &td);
    st = pck_denormal_verdict(tn, td) ? 1 : 2;
    atomic_store_explicit(&state, st, memory_order_relaxed);
    return st == 1;
}
#else
void pck_denormal_probe(uint64_t *normal_ticks, uint64_t *denormal_ticks) {
    *normal_ticks = *denormal_ticks = 0;
}
#endif
