/*
 * gemm.cl -- matmul, groupedMatmul (common.cl is prepended by the host).
 *
 * Build macros: DTYPE, TM, TN, TK, WPTM, WPTN; optional LPAD (default 1),
 * GEMM_CPU (0 = GPU mapping, 1 = CPU float8 mapping), GEMM_VEC and
 * GEMM_PREFETCH (GPU mapping only; see common.cl).
 * Local size (all GEMM kernels): (TN/WPTN, TM/WPTM, 1), required exactly.
 * Local memory: 4*(AS_SIZE + BS_SIZE) bytes (static) =
 *   4*TK*(TM + TN + 2*LPAD) (GEMM_CPU=0) or 4*(TM*(TK+LPAD) + TK*(TN+LPAD)).
 */

#define GEMM_ATTR __attribute__((reqd_work_group_size(RTSN, RTSM, 1)))

/* c[M,N] = a[M,K] . b[K,N]
 * global = (ceil(N/TN) * RTSN, ceil(M/TM) * RTSM, 1) */
__kernel GEMM_ATTR void matmul_nn(const __global st_t *A, ulong a_off,
                                  const __global st_t *B, ulong b_off,
                                  __global st_t *C, ulong c_off,
                                  int M, int N, int K)
{
    __local float As[AS_SIZE] __attribute__((aligned(16)));
    __local float Bs[BS_SIZE] __attribute__((aligned(16)));
    A += a_off; B += b_off; C += c_off;
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int col0 = get_group_id(0) * TN, row0 = get_group_id(1) * TM;
    gacc_t acc[WPTM][GACC_N];
    gemm_zero(acc);
    gemm_tile(As, Bs, acc, A, B, M, N, K, K, row0, col0, 0);
    gemm_store(C, M, N, row0, col0, acc, tx, ty);
}

/* c[M,N] = a[M,K] . b[N,K]^T  (weight layout) ; same grid as matmul_nn */
__kernel GEMM_ATTR void matmul_nt(const __global st_t *A, ulong a_off,
                                  const __global st_t *B, ulong b_off,
                                  __global st_t *C, ulong c_off,
                                  int M, int N, int K)
{
    __local float As[AS_SIZE] __attribute__((aligned(16)));
    __local float Bs[BS_SIZE] __attribute__((aligned(16)));
    A += a_off; B += b_off; C += c_off;
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int col0 = get_group_id(0) * TN, row0 = get_group_id(1) * TM;
    gacc_t acc[WPTM][GACC_N];
    gemm_zero(acc);
    gemm_tile(As, Bs, acc, A, B, M, N, K, K, row0, col0, 1);
    gemm_store(C, M, N, row0, col0, acc, tx, ty);
}

/* As matmul_nt but C is always f32 (moeLayer router logits: x . routerWeight^T
 * "computed and routed in f32"). */
__kernel GEMM_ATTR void matmul_nt_f32out(const __global st_t *A, ulong a_off,
                                         const __global st_t *B, ulong b_off,
                                         __global float *C, ulong c_off,
                                         int M, int N, int K)
{
    __local float As[AS_SIZE] __attribute__((aligned(16)));
    __local float Bs[BS_SIZE] __attribute__((aligned(16)));
    A += a_off; B += b_off; C += c_off;
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int col0 = get_group_id(0) * TN, row0 = get_group_id(1) * TM;
    gacc_t acc[WPTM][GACC_N];
    gemm_zero(acc);
    gemm_tile(As, Bs, acc, A, B, M, N, K, K, row0, col0, 1);
#pragma unroll
    for (int i = 0; i < WPTM; i++) {
        int gr = row0 + GEMM_ROW(ty, i);
        if (gr < M) {
#pragma unroll
            for (int j = 0; j < WPTN; j++) {
                int gc = col0 + GEMM_COL(tx, j);
                if (gc < N) C[(size_t)gr * (size_t)N + (size_t)gc] = gemm_acc(acc, i, j);
            }
        }
    }
}

/*
 * y[T,N]: rows offs[e]..offs[e+1] = x[rows] . w[e]
 * grouped_matmul_nn: w[E,K,N];  grouped_matmul_nt: w[E,N,K]
 * global = (ceil(N/TN) * RTSN, (ceil(T/TM) + E) * RTSM, 1): dim1 enumerates
 * row tiles expert by expert (an upper bound; surplus groups exit at once).
 */
__kernel GEMM_ATTR void grouped_matmul_nn(const __global st_t *X, ulong x_off,
                                          const __global st_t *W, ulong w_off,
                                          const __global int *offs, ulong offs_off,
                                          __global st_t *Y, ulong y_off,
                                          int T, int N, int K, int E)
{
    __local float As[AS_SIZE] __attribute__((aligned(16)));
    __local float Bs[BS_SIZE] __attribute__((aligned(16)));
    X += x_off; W += w_off; offs += offs_off; Y += y_off;
    int seg0, cnt, row0;
    const int e0 = grouped_tile_lookup(offs, E, T, get_group_id(1), &seg0, &cnt, &row0);
    const int e = pc_max_i(e0, 0);
    const int kend = (e0 < 0) ? 0 : K;       /* surplus work-group: no K steps, no stores */
    const __global st_t *A = X + (size_t)seg0 * (size_t)K;
    const __global st_t *B = W + (size_t)e * (size_t)K * (size_t)N;
    __global st_t *C = Y + (size_t)seg0 * (size_t)N;
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int col0 = get_group_id(0) * TN;
    gacc_t acc[WPTM][GACC_N];
    gemm_zero(acc);
    gemm_tile(As, Bs, acc, A, B, cnt, N, K, kend, row0, col0, 0);
    gemm_store(C, cnt, N, row0, col0, acc, tx, ty);
}

__kernel GEMM_ATTR void grouped_matmul_nt(const __global st_t *X, ulong x_off,
                                          const __global st_t *W, ulong w_off,
                                          const __global int *offs, ulong offs_off,
                                          __global st_t *Y, ulong y_off,
                                          int T, int N, int K, int E)
{
    __local float As[AS_SIZE] __attribute__((aligned(16)));
    __local float Bs[BS_SIZE] __attribute__((aligned(16)));
    X += x_off; W += w_off; offs += offs_off; Y += y_off;
    int seg0, cnt, row0;
    const int e0 = grouped_tile_lookup(offs, E, T, get_group_id(1), &seg0, &cnt, &row0);
    const int e = pc_max_i(e0, 0);
    const int kend = (e0 < 0) ? 0 : K;       /* surplus work-group: no K steps, no stores */
    const __global st_t *A = X + (size_t)seg0 * (size_t)K;
    const __global st_t *B = W + (size_t)e * (size_t)N * (size_t)K;
    __global st_t *C = Y + (size_t)seg0 * (size_t)N;
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int col0 = get_group_id(0) * TN;
    gacc_t acc[WPTM][GACC_N];
    gemm_zero(acc);
    gemm_tile(As, Bs, acc, A, B, cnt, N, K, kend, row0, col0, 1);
    gemm_store(C, cnt, N, row0, col0, acc, tx, ty);
}

/*
 * Offsets validation for groupedMatmul / int4GroupedMatmul (contract:
 * offsets[0] = 0, non-decreasing, offsets[E] = T; otherwise invalidArgument).
 * err[0] |= 1 when the rules are broken (the host zeroes err first and reads
 * it back). global = (roundup(E+1, L)), any local size L.
 */
__kernel void check_offsets(const __global int *offs, ulong offs_off, int E, int T,
                            __global int *err, ulong err_off)
{
    offs += offs_off; err += err_off;
    const int i = get_global_id(0);
    if (i > E) return;
    const int v = offs[i];
    bool bad = (v < 0) || (v > T);
    if (i == 0 && v != 0) bad = true;
    if (i == E && v != T) bad = true;
    if (i > 0 && offs[i - 1] > v) bad = true;
    if (bad) atomic_or(err, 1);
}
