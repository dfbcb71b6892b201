/*
 * polychip_backend.h — the Polychip backend plugin ABI, version 1.
 *
 * A vendor backend is a shared library (C or C++, no Swift) that exports one symbol,
 * `polychip_backend_get_api`, returning a table of functions. Polychip loads it with dlopen
 * (`polychip --plugin PATH`, `POLYCHIP_PLUGINS=a.so:b.so`, `Polychip.loadPlugin(path:)`), and its
 * devices appear as `NAME:INDEX` wherever a device selector is accepted. docs/plugins.md is the
 * guide; this header is the contract.
 *
 * Versioning. `POLYCHIP_BACKEND_ABI_VERSION` changes only when an existing field or function
 * changes meaning; the host refuses a plugin built for another version. New fields and functions
 * are appended to the end of a struct, and every struct starts with `struct_size`: the host reads
 * a plugin's optional functions only when the plugin's `struct_size` covers them, and a plugin
 * reads a host-filled struct's later fields only when the host's `struct_size` covers them.
 *
 * Threading. The host never calls into one plugin from two threads at once (it holds a lock per
 * plugin), so a plugin needs no locking of its own. Calls may come from different threads.
 *
 * Validation. The host validates every call before it crosses: shapes, dtypes, parameters and
 * output descriptors follow docs/kernels.md, every view lies inside its buffer, and every buffer
 * belongs to the device. Data-dependent rules (group offsets, indices) are the plugin's to check:
 * a violation is POLYCHIP_ERROR_INVALID_ARGUMENT with a message.
 *
 * Messages. Functions that can fail take `char *message, size_t message_capacity`: on failure the
 * plugin writes a NUL-terminated UTF-8 explanation (truncated to the capacity). The host puts it,
 * with the plugin and the kernel, into a typed PolychipError.
 */
#ifndef POLYCHIP_BACKEND_H
#define POLYCHIP_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define POLYCHIP_BACKEND_ABI_VERSION 1u
/** The symbol every plugin exports (a `polychip_backend_get_api_fn`). */
#define POLYCHIP_BACKEND_ENTRY_SYMBOL "polychip_backend_get_api"
/** Tensors have at most this many dimensions. */
#define POLYCHIP_MAX_RANK 8

#if defined(_WIN32)
#define POLYCHIP_EXPORT __declspec(dllexport)
#else
#define POLYCHIP_EXPORT __attribute__((visibility("default")))
#endif

/* ---------------------------------------------------------------- status and support */

/** Return codes of every fallible function. */
typedef enum polychip_status {
    POLYCHIP_OK = 0,
    /** A data-dependent rule was broken (offsets, indices) or an argument the host cannot check. */
    POLYCHIP_ERROR_INVALID_ARGUMENT = 1,
    /** The call cannot run here (should have been answered by `query`). */
    POLYCHIP_ERROR_UNSUPPORTED = 2,
    /** An allocation failed. */
    POLYCHIP_ERROR_OUT_OF_MEMORY = 3,
    /** The device failed during the call (launch failure, memory error, lost device). */
    POLYCHIP_ERROR_DEVICE = 4,
    /** Anything else. */
    POLYCHIP_ERROR_INTERNAL = 5
} polychip_status;

/** The answer of `support` and `query`. */
typedef enum polychip_support {
    /** Implemented by the device's own kernels. */
    POLYCHIP_SUPPORT_NATIVE = 0,
    /** Runs through a documented emulation; the reason says which. */
    POLYCHIP_SUPPORT_EMULATED = 1,
    /** Does not run; the reason says why (lost coverage, never a silent fallback). */
    POLYCHIP_SUPPORT_UNSUPPORTED = 2
} polychip_support;

/* ---------------------------------------------------------------- dtypes and kernels */

/** Storage dtypes (docs/kernels.md, "Data types"). */
typedef enum polychip_dtype {
    POLYCHIP_DTYPE_F32 = 0,
    POLYCHIP_DTYPE_F16 = 1,
    POLYCHIP_DTYPE_BF16 = 2,   /* the upper half of a binary32, round-to-nearest-even */
    POLYCHIP_DTYPE_I8 = 3,
    POLYCHIP_DTYPE_I32 = 4,
    POLYCHIP_DTYPE_INT4 = 5    /* packed nibbles, low nibble first; the last dimension is even */
} polychip_dtype;

/** The catalog kernels (docs/kernels.md). Values are fixed; new kernels get new values. */
typedef enum polychip_kernel {
    POLYCHIP_KERNEL_MATMUL = 0,
    POLYCHIP_KERNEL_GROUPED_MATMUL = 1,
    POLYCHIP_KERNEL_RMS_NORM = 2,
    POLYCHIP_KERNEL_SOFTMAX = 3,
    POLYCHIP_KERNEL_SILU = 4,
    POLYCHIP_KERNEL_SWIGLU = 5,
    POLYCHIP_KERNEL_ROPE = 6,
    POLYCHIP_KERNEL_ADD = 7,
    POLYCHIP_KERNEL_SCALE = 8,
    POLYCHIP_KERNEL_ATTENTION = 9,
    POLYCHIP_KERNEL_LIGHTNING_INDEXER = 10,
    POLYCHIP_KERNEL_TOP_K = 11,
    POLYCHIP_KERNEL_SPARSE_ATTENTION = 12,
    POLYCHIP_KERNEL_MOE_ROUTER = 13,
    POLYCHIP_KERNEL_MOE_PERMUTE = 14,
    POLYCHIP_KERNEL_MOE_COMBINE = 15,
    POLYCHIP_KERNEL_MOE_LAYER = 16,
    POLYCHIP_KERNEL_QUANTIZE_INT4 = 17,
    POLYCHIP_KERNEL_DEQUANTIZE_INT4 = 18,
    POLYCHIP_KERNEL_INT4_MATMUL = 19,
    POLYCHIP_KERNEL_INT4_GROUPED_MATMUL = 20,
    POLYCHIP_KERNEL_ADD_RMS_NORM = 21,
    POLYCHIP_KERNEL_COUNT = 22
} polychip_kernel;

/* ---------------------------------------------------------------- kernel parameters
 *
 * One struct per parameter family; `polychip_op` holds all of them and the kernel says which
 * families it uses (the table in docs/plugins.md). The host resolves every default before the
 * call crosses (the RoPE rotary dim, the attention scale), so a plugin never guesses one.
 * Booleans are int32 0/1.
 */

/** matmul, grouped-matmul. */
typedef struct polychip_matmul_params {
    int32_t transpose_b;     /* b is [N,K] (w is [E,N,K]) instead of [K,N] ([E,K,N]) */
    int32_t reserved;
} polychip_matmul_params;

/** rms-norm and add-rms-norm (`eps`), scale (`alpha`). */
typedef struct polychip_elementwise_params {
    double eps;
    double alpha;
} polychip_elementwise_params;

typedef enum polychip_rope_style {
    POLYCHIP_ROPE_NEOX = 0,  /* pairs (i, i + R/2) */
    POLYCHIP_ROPE_GPTJ = 1   /* pairs (2i, 2i + 1) */
} polychip_rope_style;

/** rope. */
typedef struct polychip_rope_params {
    int32_t style;           /* polychip_rope_style */
    int32_t rotary_dim;      /* R, resolved: even, 2 ≤ R ≤ D */
    double base;             /* θ */
} polychip_rope_params;

/** attention (`causal` used), sparse-attention (`causal` is 0). */
typedef struct polychip_attention_params {
    int32_t causal;          /* bottom-right aligned */
    int32_t return_lse;      /* a second output, lse f32 */
    double scale;            /* resolved: 1/sqrt(D) when the caller gave none */
} polychip_attention_params;

/** top-k. */
typedef struct polychip_topk_params {
    int64_t k;
} polychip_topk_params;

typedef enum polychip_router_scoring {
    POLYCHIP_ROUTER_SOFTMAX = 0,
    POLYCHIP_ROUTER_SIGMOID = 1
} polychip_router_scoring;

/** moe-router, and the routing of moe-layer. */
typedef struct polychip_router_params {
    int32_t scoring;         /* polychip_router_scoring */
    int32_t top_k;
    int32_t n_group;
    int32_t topk_group;
    int32_t renormalize;
    int32_t has_bias;        /* a bias input follows the logits */
    double routed_scale;
} polychip_router_params;

/** The INT4 format: quantize-int4, dequantize-int4, int4-matmul, int4-grouped-matmul, and the
 *  experts of moe-layer when `polychip_moe_params.int4_experts` is set. */
typedef struct polychip_int4_params {
    int32_t group_size;      /* even, divides K */
    int32_t symmetric;       /* zero point 8 and no zeros tensor; else an i8 zeros tensor */
    int32_t output_dtype;    /* dequantize-int4: polychip_dtype of the output */
    int32_t reserved;
} polychip_int4_params;

/** moe-permute (`num_experts`), moe-layer (`has_shared`, `int4_experts`). */
typedef struct polychip_moe_params {
    int32_t num_experts;
    int32_t has_shared;
    int32_t int4_experts;
    int32_t reserved;
} polychip_moe_params;

/** One kernel call's kernel and parameters. Filled by the host; read-only for the plugin. */
typedef struct polychip_op {
    uint32_t struct_size;    /* sizeof(polychip_op) of the host */
    uint32_t kernel;         /* polychip_kernel */
    polychip_matmul_params matmul;
    polychip_elementwise_params elementwise;
    polychip_rope_params rope;
    polychip_attention_params attention;
    polychip_topk_params top_k;
    polychip_router_params router;
    polychip_int4_params int4;
    polychip_moe_params moe;
} polychip_op;

/* ---------------------------------------------------------------- buffers and tensors */

/** A device buffer, made and owned by the plugin; opaque to the host. */
typedef struct polychip_buffer_s *polychip_buffer;

/** A dense row-major view: `shape[0..rank)` elements of `dtype` from `byte_offset` of
 *  `buffer`. In a support query `buffer` is NULL. Inputs and outputs never alias. */
typedef struct polychip_tensor {
    uint32_t struct_size;    /* sizeof(polychip_tensor) of the host */
    int32_t dtype;           /* polychip_dtype */
    int32_t rank;            /* 0 … POLYCHIP_MAX_RANK */
    int32_t reserved;
    int64_t shape[POLYCHIP_MAX_RANK];
    polychip_buffer buffer;
    uint64_t byte_offset;
    const char *name;        /* the operand's catalog name ("a", "gate.q"), for messages */
} polychip_tensor;

/* ---------------------------------------------------------------- devices */

typedef enum polychip_device_kind {
    POLYCHIP_DEVICE_CPU = 0,
    POLYCHIP_DEVICE_GPU = 1,
    POLYCHIP_DEVICE_ACCELERATOR = 2
} polychip_device_kind;

/** Static facts about one device. The host zeroes it and sets `struct_size`. */
typedef struct polychip_device_info {
    uint32_t struct_size;
    int32_t kind;                    /* polychip_device_kind */
    char name[128];
    char vendor[64];
    uint64_t memory_bytes;
    int32_t compute_units;
    uint32_t dtype_mask;             /* bit (1u << polychip_dtype) per dtype the device holds */
    double peak_flops[6];            /* FLOP/s per polychip_dtype; 0 = unknown */
    double memory_bandwidth;         /* bytes/s; 0 = unknown */
    char details[512];               /* "key=value" lines: driver, ISA, library versions */
} polychip_device_info;

typedef enum polychip_tile_role {
    POLYCHIP_TILE_BLOCK = 0,         /* the dimension is cut into blocks of `size` */
    POLYCHIP_TILE_THRESHOLD = 1      /* another code path is taken from `size` on */
} polychip_tile_role;

/** One block size or path threshold of a kernel (docs/conformance: boundary cases). */
typedef struct polychip_tile_boundary {
    uint32_t struct_size;
    int32_t role;                    /* polychip_tile_role */
    int64_t size;
    char dim[16];                    /* the case dimension: "M", "N", "K", "Lq", "Lk", "D", "R", "T", … */
    char name[48];                   /* the implementation's name for it ("gemm.mb") */
} polychip_tile_boundary;

/* ---------------------------------------------------------------- the function table */

/** Plugin state, opaque to the host. */
typedef struct polychip_backend polychip_backend;

typedef struct polychip_backend_api {
    /** sizeof(polychip_backend_api) the plugin was built with. */
    uint32_t struct_size;
    /** POLYCHIP_BACKEND_ABI_VERSION the plugin was built with. */
    uint32_t abi_version;
    /** The selector prefix of its devices: 1–32 characters of [a-z0-9_-], not a built-in
     *  backend's name (reference, cpu, opencl, sim). */
    const char *name;
    /** Free-form: the library and its version ("oneDNN 2.6.3"). */
    const char *version;

    /** Creates the plugin state. Called once, before anything else. */
    int32_t (*init)(polychip_backend **backend, char *message, size_t message_capacity);
    /** Releases it (the host may never call it: a process may simply exit). */
    void (*shutdown)(polychip_backend *backend);

    int32_t (*device_count)(polychip_backend *backend, int32_t *count, char *message, size_t message_capacity);
    int32_t (*device_info)(polychip_backend *backend, int32_t device, polychip_device_info *info,
                           char *message, size_t message_capacity);

    /** A buffer of `byte_count` bytes (≥ 1). */
    int32_t (*buffer_alloc)(polychip_backend *backend, int32_t device, uint64_t byte_count, polychip_buffer *buffer,
                            char *message, size_t message_capacity);
    void (*buffer_free)(polychip_backend *backend, int32_t device, polychip_buffer buffer);
    /** Host → device, `byte_count` bytes at `offset` (the range lies inside the buffer). Complete on return. */
    int32_t (*buffer_write)(polychip_backend *backend, int32_t device, polychip_buffer buffer, uint64_t offset,
                            const void *source, uint64_t byte_count, char *message, size_t message_capacity);
    /** Device → host, after every earlier call on the device is complete. */
    int32_t (*buffer_read)(polychip_backend *backend, int32_t device, polychip_buffer buffer, uint64_t offset,
                           void *destination, uint64_t byte_count, char *message, size_t message_capacity);

    /** Whether `kernel` runs with `dtype` as its activation dtype for some shapes
     *  (a polychip_support). What `polychip devices` lists. */
    int32_t (*support)(polychip_backend *backend, int32_t device, uint32_t kernel, int32_t dtype,
                       char *reason, size_t reason_capacity);
    /** Whether this exact call runs: the kernel, its parameters and every input and output
     *  descriptor (buffers NULL). Returns a polychip_support; `reason` says why it is emulated or
     *  unsupported, or for a native call which code path it takes ("brgemm avx512_core_bf16"). */
    int32_t (*query)(polychip_backend *backend, int32_t device, const polychip_op *op,
                     const polychip_tensor *inputs, int32_t input_count,
                     const polychip_tensor *outputs, int32_t output_count,
                     char *reason, size_t reason_capacity);
    /** Runs one validated call. May return before the device is done (the host calls
     *  `synchronize` next). Set `*device_seconds` to the kernel's device-side time when the device
     *  measures it; leave it negative and the host times execute + synchronize on its clock.
     *  On failure the outputs may hold anything, the inputs must be intact. */
    int32_t (*execute)(polychip_backend *backend, int32_t device, const polychip_op *op,
                       const polychip_tensor *inputs, int32_t input_count,
                       const polychip_tensor *outputs, int32_t output_count,
                       double *device_seconds, char *message, size_t message_capacity);
    /** Waits for every call on the device. */
    int32_t (*synchronize)(polychip_backend *backend, int32_t device, char *message, size_t message_capacity);

    /* ---- optional: NULL when the plugin does not implement it ---- */

    /** The block sizes and path thresholds of `kernel` on `device`: writes up to `capacity`
     *  entries and sets `*count` to how many there are. The conformance suite derives its
     *  boundary shapes from them; without it, it uses generic blocks of 16 and 64. */
    int32_t (*kernel_tiling)(polychip_backend *backend, int32_t device, uint32_t kernel,
                             polychip_tile_boundary *boundaries, int32_t capacity, int32_t *count);
} polychip_backend_api;

/** The entry point: returns the plugin's table (static storage), or NULL when the plugin
 *  cannot serve a host of `host_abi_version`. */
typedef const polychip_backend_api *(*polychip_backend_get_api_fn)(uint32_t host_abi_version);

POLYCHIP_EXPORT const polychip_backend_api *polychip_backend_get_api(uint32_t host_abi_version);

#ifdef __cplusplus
}
#endif

#endif /* POLYCHIP_BACKEND_H */
