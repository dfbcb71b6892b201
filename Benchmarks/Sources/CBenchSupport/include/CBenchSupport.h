#ifndef CBENCHSUPPORT_H
#define CBENCHSUPPORT_H
#include <stddef.h>
#include <stdint.h>
/* Runs `iterations` rounds of 12 independent 8-wide FMA chains (AVX2+FMA when the CPU has
 * them, else scalar); returns the f32 FLOPs performed. */
double pcb_fma_burn(int64_t iterations);
/* Whether pcb_fma_burn uses AVX2+FMA. */
int pcb_fma_is_avx2(void);
/* Sums `bytes` bytes of floats with wide loads (read bandwidth probe); returns the sum. */
float pcb_read_sum(const float *p, size_t bytes);
#endif
