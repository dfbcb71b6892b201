/* Inline-assembly fragments of the m = 1, four-row INT4 GEMV loops, shared by the AVX2 loop
 * (int4_avx2.c) and the AVX-512 tables' EVEX loop (int4_avx512.c), which give its bits. Both
 * keep the 4 rows' 32 weight bytes in ymm8-11, the activations in ymm12 and the nibbles in
 * ymm13-14, with the operands of I4_ASM_IO. */
#ifndef PCK_INT4_ASM_X86_H
#define PCK_INT4_ASM_X86_H

/* CV of the nibble loops: convert the masked nibbles to float, or use them as the denormal
 * floats they already are */
#define I4_CVT(reg) "vcvtdq2ps %%" reg ", %%" reg "\n\t"
#define I4_DN(reg) ""

/* nibble 7 of the 4 rows: the weight registers >> sh, into accumulators A4-A7 */
#define I4_NIB7(CV, sh, A4, A5, A6, A7)                                                   \
    "vmovups 224(%[x]), %%ymm12\n\t"                                                      \
    "vpsrld $" #sh ", %%ymm8, %%ymm13\n\t"                                                \
    "vpsrld $" #sh ", %%ymm9, %%ymm14\n\t"                                                \
    CV("ymm13") CV("ymm14")                                                               \
    "vfmadd231ps %%ymm12, %%ymm13, %%" A4 "\n\t"                                          \
    "vfmadd231ps %%ymm12, %%ymm14, %%" A5 "\n\t"                                          \
    "vpsrld $" #sh ", %%ymm10, %%ymm13\n\t"                                               \
    "vpsrld $" #sh ", %%ymm11, %%ymm14\n\t"                                               \
    CV("ymm13") CV("ymm14")                                                               \
    "vfmadd231ps %%ymm12, %%ymm13, %%" A6 "\n\t"                                          \
    "vfmadd231ps %%ymm12, %%ymm14, %%" A7 "\n\t"

/* Loads one 64-weight block of the 4 rows; prefetches the same bytes of the next 4 rows
 * (w + 4..7 ldw: the rows the next call reads). */
#define I4_LOAD4                                                                          \
    "vmovdqu (%[w]), %%ymm8\n\t"                                                          \
    "vmovdqu (%[w],%[ldw]), %%ymm9\n\t"                                                   \
    "vmovdqu (%[w],%[ldw],2), %%ymm10\n\t"                                                \
    "vmovdqu (%[w3]), %%ymm11\n\t"                                                        \
    "prefetcht0 (%[w],%[ldw],4)\n\t"                                                      \
    "prefetcht0 (%[w3],%[ldw],2)\n\t"                                                     \
    "prefetcht0 (%[w3],%[ldw3])\n\t"                                                      \
    "prefetcht0 (%[w3],%[ldw],4)\n\t"

/* the next block: 32 weight bytes per row, 64 activations of 4 bytes */
#define I4_ADVANCE                                                                        \
    "add $32, %[w]\n\t"                                                                   \
    "add $32, %[w3]\n\t"                                                                  \
    "add $256, %[x]\n\t"

/* The loops' operands (the caller's w, w3, x, s, s3 = row 3's scales, n, ci, ldw, lds, y,
 * nblk and rs) and the 16 registers both loops write; the AVX-512 loop adds xmm16-31. */
#define I4_ASM_IO                                                                         \
    : [w] "+r"(w), [w3] "+r"(w3), [x] "+r"(x), [s] "+r"(s), [s3] "+r"(s3), [n] "+r"(n),   \
      [ci] "=&r"(ci)                                                                      \
    : [ldw] "r"(ldw), [ldw3] "r"(3 * ldw), [lds4] "r"(lds * 4),                          \
      [mk] "r"(pck__int4_nibble_masks),                                                   \
      [y] "r"(y), [nblk] "rm"(nblk), [rs] "m"(rs)
#define I4_ASM_CLOBBERS16                                                                 \
    "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",       \
    "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"

#endif
