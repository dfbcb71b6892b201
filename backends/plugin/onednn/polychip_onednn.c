/*
 * A Polychip backend plugin over oneDNN (Debian's libdnnl-dev), written the way a porter wraps a
 * vendor kernel library (CNNL, aclnn, muDNN): each catalog kernel that the library really
 * provides maps onto its primitives; everything else answers "unsupported" with the reason, which
 * the support matrix shows as lost coverage. Nothing here falls back to hand-written arithmetic,
 * except the documented softmax rule for rows holding NaN, +inf or only -inf (docs/kernels.md),
 * which oneDNN's softmax does not define.
 *
 * Kernels: matmul (src [M,K] × weights [K,N], or [N,K] through strides), grouped-matmul (one
 * oneDNN matmul per expert segment), softmax (softmax_v2, accurate, last axis), silu (eltwise
 * swish, alpha 1), swiglu (eltwise swish with a binary-mul post-op: one rounding), add (binary
 * add), scale (eltwise linear, beta 0). Which dtypes run is oneDNN's answer for this CPU: the
 * plugin asks for a primitive descriptor and reports what oneDNN says.
 *
 * The device is one oneDNN CPU engine with one in-order stream; buffers are host memory.
 */
#define _POSIX_C_SOURCE 200809L
#include "polychip_backend.h"

#include <oneapi/dnnl/dnnl.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct polychip_buffer_s {
    uint64_t bytes;
    unsigned char *data;
};

/* A cached primitive: oneDNN JIT-compiles on creation, so a benchmark loop must not pay it per call. */
typedef struct prim_key {
    uint32_t kernel;
    int32_t dtype;
    int64_t dims[3];
    int32_t flag;
    float alpha;
} prim_key;

typedef struct cache_entry {
    prim_key key;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    uint64_t used;
} cache_entry;

#define CACHE_SIZE 64

struct polychip_backend {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    cache_entry cache[CACHE_SIZE];
    uint64_t tick;
};

static void say(char *msg, size_t cap, const char *fmt, ...) {
    if (!msg || cap == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
}

static const char *kernel_name(uint32_t k) {
    static const char *names[POLYCHIP_KERNEL_COUNT] = {
        "matmul", "grouped-matmul", "rms-norm", "softmax", "silu", "swiglu", "rope", "add", "scale", "attention",
        "lightning-indexer", "top-k", "sparse-attention", "moe-router", "moe-permute", "moe-combine", "moe-layer",
        "quantize-int4", "dequantize-int4", "int4-matmul", "int4-grouped-matmul", "add-rms-norm"};
    return k < POLYCHIP_KERNEL_COUNT ? names[k] : "?";
}

static const char *dtype_name(int32_t d) {
    static const char *names[] = {"f32", "f16", "bf16", "i8", "i32", "int4"};
    return d >= 0 && d <= POLYCHIP_DTYPE_INT4 ? names[d] : "?";
}

static int dtype_bytes(int32_t d) {
    switch (d) {
    case POLYCHIP_DTYPE_F32: case POLYCHIP_DTYPE_I32: return 4;
    case POLYCHIP_DTYPE_F16: case POLYCHIP_DTYPE_BF16: return 2;
    default: return 1;
    }
}

static int dnnl_type(int32_t d, dnnl_data_type_t *out) {
    switch (d) {
    case POLYCHIP_DTYPE_F32: *out = dnnl_f32; return 1;
    case POLYCHIP_DTYPE_F16: *out = dnnl_f16; return 1;
    case POLYCHIP_DTYPE_BF16: *out = dnnl_bf16; return 1;
    default: return 0;
    }
}

/* Why the kernel is not here: the catalog kernels oneDNN 2.6 has no primitive for. */
static const char *missing_reason(uint32_t k) {
    switch (k) {
    case POLYCHIP_KERNEL_RMS_NORM: case POLYCHIP_KERNEL_ADD_RMS_NORM:
        return "oneDNN 2.6 has no RMS normalization (its layer normalization always subtracts the mean)";
    case POLYCHIP_KERNEL_ROPE: return "oneDNN has no rotary-embedding primitive";
    case POLYCHIP_KERNEL_ATTENTION:
        return "oneDNN 2.6 has no fused attention primitive (scaled dot-product attention arrived with oneDNN 3.x's graph API)";
    case POLYCHIP_KERNEL_LIGHTNING_INDEXER: case POLYCHIP_KERNEL_SPARSE_ATTENTION:
        return "oneDNN has no DeepSeek sparse-attention primitives";
    case POLYCHIP_KERNEL_TOP_K: return "oneDNN has no top-k primitive";
    case POLYCHIP_KERNEL_MOE_ROUTER: case POLYCHIP_KERNEL_MOE_PERMUTE: case POLYCHIP_KERNEL_MOE_COMBINE:
    case POLYCHIP_KERNEL_MOE_LAYER:
        return "oneDNN has no mixture-of-experts routing primitives";
    case POLYCHIP_KERNEL_QUANTIZE_INT4: case POLYCHIP_KERNEL_DEQUANTIZE_INT4: case POLYCHIP_KERNEL_INT4_MATMUL:
    case POLYCHIP_KERNEL_INT4_GROUPED_MATMUL:
        return "oneDNN 2.6 has no 4-bit weight types";
    default: return NULL;
    }
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- primitive descriptors */

static int64_t elements(const polychip_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->shape[i];
    return n;
}

/* The cache key of a call: the kernel, its dtype and the dims its primitive depends on. */
static prim_key key_for(uint32_t kernel, int32_t dtype, int64_t d0, int64_t d1, int64_t d2, int32_t flag, float alpha) {
    prim_key k;
    memset(&k, 0, sizeof k);
    k.kernel = kernel; k.dtype = dtype; k.dims[0] = d0; k.dims[1] = d1; k.dims[2] = d2; k.flag = flag; k.alpha = alpha;
    return k;
}

/* Creates the primitive descriptor of `k`; returns the oneDNN status. */
static dnnl_status_t make_pd(polychip_backend *b, const prim_key *k, dnnl_primitive_desc_t *pd) {
    dnnl_data_type_t dt;
    if (!dnnl_type(k->dtype, &dt)) return dnnl_unimplemented;
    dnnl_status_t s;
    switch (k->kernel) {
    case POLYCHIP_KERNEL_MATMUL: {
        /* dims: M, K, N; flag: transpose_b (weights stored [N,K], read through strides) */
        dnnl_memory_desc_t src, wei, dst;
        dnnl_dims_t sd = {k->dims[0], k->dims[1]}, wd = {k->dims[1], k->dims[2]}, dd = {k->dims[0], k->dims[2]};
        if ((s = dnnl_memory_desc_init_by_tag(&src, 2, sd, dt, dnnl_ab)) != dnnl_success) return s;
        if (k->flag) {
            dnnl_dims_t strides = {1, k->dims[1]};
            s = dnnl_memory_desc_init_by_strides(&wei, 2, wd, dt, strides);
        } else {
            s = dnnl_memory_desc_init_by_tag(&wei, 2, wd, dt, dnnl_ab);
        }
        if (s != dnnl_success) return s;
        if ((s = dnnl_memory_desc_init_by_tag(&dst, 2, dd, dt, dnnl_ab)) != dnnl_success) return s;
        dnnl_matmul_desc_t desc;
        if ((s = dnnl_matmul_desc_init(&desc, &src, &wei, NULL, &dst)) != dnnl_success) return s;
        return dnnl_primitive_desc_create(pd, &desc, NULL, b->engine, NULL);
    }
    case POLYCHIP_KERNEL_SOFTMAX: {
        /* dims: rows, D */
        dnnl_memory_desc_t md;
        dnnl_dims_t d = {k->dims[0], k->dims[1]};
        if ((s = dnnl_memory_desc_init_by_tag(&md, 2, d, dt, dnnl_ab)) != dnnl_success) return s;
        dnnl_softmax_v2_desc_t desc;
        if ((s = dnnl_softmax_v2_forward_desc_init(&desc, dnnl_forward_inference, dnnl_softmax_accurate, &md, &md, 1)) != dnnl_success)
            return s;
        return dnnl_primitive_desc_create(pd, &desc, NULL, b->engine, NULL);
    }
    case POLYCHIP_KERNEL_SILU: case POLYCHIP_KERNEL_SCALE: case POLYCHIP_KERNEL_SWIGLU: {
        /* dims: rows, D. (oneDNN 2.6's reference eltwise with a binary post-op writes nothing on a
         * 1-D tensor, so every elementwise call is described as [rows, D].) */
        dnnl_memory_desc_t md;
        dnnl_dims_t d = {k->dims[0], k->dims[1]};
        if ((s = dnnl_memory_desc_init_by_tag(&md, 2, d, dt, dnnl_ab)) != dnnl_success) return s;
        dnnl_eltwise_desc_t desc;
        int linear = k->kernel == POLYCHIP_KERNEL_SCALE;
        if ((s = dnnl_eltwise_forward_desc_init(&desc, dnnl_forward_inference, linear ? dnnl_eltwise_linear : dnnl_eltwise_swish, &md,
                                                linear ? k->alpha : 1.0f, 0.0f)) != dnnl_success)
            return s;
        if (k->kernel != POLYCHIP_KERNEL_SWIGLU) return dnnl_primitive_desc_create(pd, &desc, NULL, b->engine, NULL);
        /* swiglu: silu(gate) · up as one primitive, multiplied in f32 before the single rounding */
        dnnl_post_ops_t ops;
        dnnl_primitive_attr_t attr;
        if ((s = dnnl_post_ops_create(&ops)) != dnnl_success) return s;
        if ((s = dnnl_post_ops_append_binary(ops, dnnl_binary_mul, &md)) != dnnl_success) { dnnl_post_ops_destroy(ops); return s; }
        if ((s = dnnl_primitive_attr_create(&attr)) != dnnl_success) { dnnl_post_ops_destroy(ops); return s; }
        s = dnnl_primitive_attr_set_post_ops(attr, ops);
        if (s == dnnl_success) s = dnnl_primitive_desc_create(pd, &desc, attr, b->engine, NULL);
        dnnl_primitive_attr_destroy(attr);
        dnnl_post_ops_destroy(ops);
        return s;
    }
    case POLYCHIP_KERNEL_ADD: {
        dnnl_memory_desc_t md;
        dnnl_dims_t d = {k->dims[0], k->dims[1]};
        if ((s = dnnl_memory_desc_init_by_tag(&md, 2, d, dt, dnnl_ab)) != dnnl_success) return s;
        dnnl_binary_desc_t desc;
        if ((s = dnnl_binary_desc_init(&desc, dnnl_binary_add, &md, &md, &md)) != dnnl_success) return s;
        return dnnl_primitive_desc_create(pd, &desc, NULL, b->engine, NULL);
    }
    default:
        return dnnl_unimplemented;
    }
}

/* The cached entry for `k`, made on first use (`with_primitive`: also JIT the primitive). The
 * least recently used entry makes room. */
static cache_entry *entry_for(polychip_backend *b, const prim_key *k, int with_primitive, dnnl_status_t *status) {
    cache_entry *e = NULL, *victim = &b->cache[0];
    for (int i = 0; i < CACHE_SIZE && !e; i++) {
        cache_entry *c = &b->cache[i];
        if (c->pd && memcmp(&c->key, k, sizeof *k) == 0) e = c;
        else if (c->used < victim->used) victim = c;  /* an empty slot has used == 0 */
    }
    if (!e) {
        dnnl_primitive_desc_t pd = NULL;
        *status = make_pd(b, k, &pd);
        if (*status != dnnl_success) return NULL;
        if (victim->prim) dnnl_primitive_destroy(victim->prim);
        if (victim->pd) dnnl_primitive_desc_destroy(victim->pd);
        memset(victim, 0, sizeof *victim);
        victim->key = *k;
        victim->pd = pd;
        e = victim;
    }
    e->used = ++b->tick;
    if (with_primitive && !e->prim) {
        *status = dnnl_primitive_create(&e->prim, e->pd);
        if (*status != dnnl_success) { e->prim = NULL; return NULL; }
    }
    *status = dnnl_success;
    return e;
}

static const char *impl_name(const cache_entry *e) {
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(e->pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl) return "?";
    return impl;
}

/* The key of a validated call. Returns 0 (and a reason) for calls the plugin does not map. */
static int call_key(const polychip_op *op, const polychip_tensor *in, int32_t n_in, prim_key *k, char *why, size_t cap) {
    const char *missing = missing_reason(op->kernel);
    if (missing) { say(why, cap, "%s", missing); return 0; }
    if (n_in < 1) { say(why, cap, "no inputs"); return 0; }
    int32_t dt = in[0].dtype;
    dnnl_data_type_t unused;
    if (!dnnl_type(dt, &unused)) { say(why, cap, "%s inputs are not a oneDNN float type", dtype_name(dt)); return 0; }
    int64_t n = elements(&in[0]), d = in[0].rank > 0 ? in[0].shape[in[0].rank - 1] : 1;
    switch (op->kernel) {
    case POLYCHIP_KERNEL_MATMUL: {
        int tb = op->matmul.transpose_b != 0;
        *k = key_for(op->kernel, dt, in[0].shape[0], in[0].shape[1], tb ? in[1].shape[0] : in[1].shape[1], tb, 0);
        return 1;
    }
    case POLYCHIP_KERNEL_GROUPED_MATMUL: {
        /* the segment sizes are data: the query checks the whole token count as one segment */
        int tb = op->matmul.transpose_b != 0;
        *k = key_for(POLYCHIP_KERNEL_MATMUL, dt, in[0].shape[0], in[0].shape[1], tb ? in[1].shape[1] : in[1].shape[2], tb, 0);
        return 1;
    }
    case POLYCHIP_KERNEL_SOFTMAX: case POLYCHIP_KERNEL_SILU: case POLYCHIP_KERNEL_SWIGLU: case POLYCHIP_KERNEL_ADD:
        *k = key_for(op->kernel, dt, n / d, d, 0, 0, 0); return 1;
    case POLYCHIP_KERNEL_SCALE: *k = key_for(op->kernel, dt, n / d, d, 0, 0, (float)op->elementwise.alpha); return 1;
    default: say(why, cap, "not mapped onto oneDNN"); return 0;
    }
}

static void unimplemented(char *why, size_t cap, uint32_t kernel, int32_t dt, dnnl_status_t s) {
    if (s == dnnl_unimplemented)
        say(why, cap, "oneDNN has no %s implementation for %s on this CPU (%s)", kernel_name(kernel), dtype_name(dt),
            "dnnl_unimplemented");
    else
        say(why, cap, "oneDNN refused %s for %s (dnnl status %d)", kernel_name(kernel), dtype_name(dt), (int)s);
}

/* ---------------------------------------------------------------- softmax's special rows */

static float load_f(int32_t dt, const unsigned char *p, int64_t i) {
    uint32_t bits;
    float f;
    switch (dt) {
    case POLYCHIP_DTYPE_F32: memcpy(&f, p + 4 * i, 4); return f;
    case POLYCHIP_DTYPE_BF16: { uint16_t h; memcpy(&h, p + 2 * i, 2); bits = (uint32_t)h << 16; memcpy(&f, &bits, 4); return f; }
    default: {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF;
        if (exp == 0x1F) bits = sign | 0x7F800000u | (man << 13);
        else if (exp == 0) { f = ldexpf((float)man, -24); return sign ? -f : f; }
        else bits = sign | ((exp + 112) << 23) | (man << 13);
        memcpy(&f, &bits, 4);
        return f;
    }
    }
}

/* f32 → binary16, round to nearest even (subnormals and overflow included). */
static uint16_t f16_bits(float v) {
    uint32_t x;
    memcpy(&x, &v, 4);
    uint32_t sign = (x >> 16) & 0x8000, man = x & 0x7FFFFF;
    int32_t exp = (int32_t)((x >> 23) & 0xFF), e = exp - 127 + 15;
    if (exp == 0xFF) return (uint16_t)(sign | 0x7C00 | (man ? 0x200 : 0));
    if (e >= 0x1F) return (uint16_t)(sign | 0x7C00);
    if (e <= 0) {
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000;
        int shift = 14 - e;
        return (uint16_t)(sign | ((man + (1u << (shift - 1)) - 1 + ((man >> shift) & 1)) >> shift));
    }
    return (uint16_t)(sign | (((uint32_t)e << 10) + ((man + 0xFFF + ((man >> 13) & 1)) >> 13)));
}

static void store_f(int32_t dt, unsigned char *p, int64_t i, float v) {
    if (dt == POLYCHIP_DTYPE_F32) { memcpy(p + 4 * i, &v, 4); return; }
    uint32_t bits;
    memcpy(&bits, &v, 4);
    uint16_t h;
    if (dt == POLYCHIP_DTYPE_BF16) h = isnan(v) ? 0x7FC0 : (uint16_t)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    else h = f16_bits(v);
    memcpy(p + 2 * i, &h, 2);
}

/* docs/kernels.md: a row with a NaN is all NaN; +inf entries share the mass; an all -inf row is 0.
 * oneDNN defines none of these, so such rows are rewritten after it ran. */
static void softmax_special_rows(int32_t dt, const unsigned char *x, unsigned char *y, int64_t rows, int64_t d) {
    for (int64_t r = 0; r < rows; r++) {
        int nan = 0;
        int64_t pinf = 0, ninf = 0;
        for (int64_t j = 0; j < d; j++) {
            float v = load_f(dt, x, r * d + j);
            if (isnan(v)) nan = 1;
            else if (isinf(v)) { if (v > 0) pinf++; else ninf++; }
        }
        if (!nan && pinf == 0 && ninf < d) continue;
        for (int64_t j = 0; j < d; j++) {
            float v = load_f(dt, x, r * d + j), out;
            if (nan) out = NAN;
            else if (pinf > 0) out = (isinf(v) && v > 0) ? 1.0f / (float)pinf : 0.0f;
            else out = 0.0f;
            store_f(dt, y, r * d + j, out);
        }
    }
}

/* ---------------------------------------------------------------- the ABI */

static int32_t pc_init(polychip_backend **out, char *msg, size_t cap) {
    polychip_backend *b = calloc(1, sizeof *b);
    if (!b) { say(msg, cap, "out of host memory"); return POLYCHIP_ERROR_OUT_OF_MEMORY; }
    dnnl_status_t s = dnnl_engine_create(&b->engine, dnnl_cpu, 0);
    if (s != dnnl_success) { say(msg, cap, "dnnl_engine_create(cpu) failed: status %d", (int)s); free(b); return POLYCHIP_ERROR_INTERNAL; }
    s = dnnl_stream_create(&b->stream, b->engine, dnnl_stream_default_flags);
    if (s != dnnl_success) {
        say(msg, cap, "dnnl_stream_create failed: status %d", (int)s);
        dnnl_engine_destroy(b->engine);
        free(b);
        return POLYCHIP_ERROR_INTERNAL;
    }
    *out = b;
    return POLYCHIP_OK;
}

static void pc_shutdown(polychip_backend *b) {
    if (!b) return;
    for (int i = 0; i < CACHE_SIZE; i++) {
        if (b->cache[i].prim) dnnl_primitive_destroy(b->cache[i].prim);
        if (b->cache[i].pd) dnnl_primitive_desc_destroy(b->cache[i].pd);
    }
    dnnl_stream_destroy(b->stream);
    dnnl_engine_destroy(b->engine);
    free(b);
}

static int32_t pc_device_count(polychip_backend *b, int32_t *count, char *msg, size_t cap) {
    (void)b; (void)msg; (void)cap;
    *count = 1;
    return POLYCHIP_OK;
}

static const char *isa_name(dnnl_cpu_isa_t isa) {
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

static int32_t pc_device_info(polychip_backend *b, int32_t device, polychip_device_info *info, char *msg, size_t cap) {
    (void)b;
    if (device != 0) { say(msg, cap, "no device %d", device); return POLYCHIP_ERROR_INVALID_ARGUMENT; }
    const dnnl_version_t *v = dnnl_version();
    info->kind = POLYCHIP_DEVICE_CPU;
    snprintf(info->name, sizeof info->name, "oneDNN %d.%d.%d CPU engine (%s)", v->major, v->minor, v->patch,
             isa_name(dnnl_get_effective_cpu_isa()));
    snprintf(info->vendor, sizeof info->vendor, "oneDNN (UXL Foundation)");
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    info->memory_bytes = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    info->compute_units = cpus > 0 ? (int32_t)cpus : 1;
    info->dtype_mask = (1u << POLYCHIP_DTYPE_F32) | (1u << POLYCHIP_DTYPE_F16) | (1u << POLYCHIP_DTYPE_BF16) |
                       (1u << POLYCHIP_DTYPE_I8) | (1u << POLYCHIP_DTYPE_I32) | (1u << POLYCHIP_DTYPE_INT4);
    snprintf(info->details, sizeof info->details, "dnnl=%d.%d.%d (%s)\nisa=%s\ncpu runtime=%s", v->major, v->minor, v->patch,
             v->hash ? v->hash : "?", isa_name(dnnl_get_effective_cpu_isa()),
             v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : v->cpu_runtime == DNNL_RUNTIME_TBB ? "TBB" : "other");
    return POLYCHIP_OK;
}

static int32_t pc_buffer_alloc(polychip_backend *b, int32_t device, uint64_t bytes, polychip_buffer *out, char *msg, size_t cap) {
    (void)b; (void)device;
    polychip_buffer buf = calloc(1, sizeof *buf);
    size_t rounded = (size_t)((bytes + 63) / 64 * 64);
    if (buf) buf->data = aligned_alloc(64, rounded ? rounded : 64);
    if (!buf || !buf->data) {
        free(buf);
        say(msg, cap, "cannot allocate %llu bytes", (unsigned long long)bytes);
        return POLYCHIP_ERROR_OUT_OF_MEMORY;
    }
    buf->bytes = bytes;
    *out = buf;
    return POLYCHIP_OK;
}

static void pc_buffer_free(polychip_backend *b, int32_t device, polychip_buffer buf) {
    (void)b; (void)device;
    if (buf) { free(buf->data); free(buf); }
}

static int32_t pc_buffer_write(polychip_backend *b, int32_t device, polychip_buffer buf, uint64_t offset, const void *src,
                               uint64_t bytes, char *msg, size_t cap) {
    (void)b; (void)device; (void)msg; (void)cap;
    memcpy(buf->data + offset, src, (size_t)bytes);
    return POLYCHIP_OK;
}

static int32_t pc_buffer_read(polychip_backend *b, int32_t device, polychip_buffer buf, uint64_t offset, void *dst,
                              uint64_t bytes, char *msg, size_t cap) {
    (void)device; (void)msg; (void)cap;
    dnnl_stream_wait(b->stream);
    memcpy(dst, buf->data + offset, (size_t)bytes);
    return POLYCHIP_OK;
}

static int32_t pc_support(polychip_backend *b, int32_t device, uint32_t kernel, int32_t dtype, char *why, size_t cap) {
    (void)device;
    const char *missing = missing_reason(kernel);
    if (missing) { say(why, cap, "%s", missing); return POLYCHIP_SUPPORT_UNSUPPORTED; }
    dnnl_data_type_t dt;
    if (!dnnl_type(dtype, &dt)) { say(why, cap, "%s is not a oneDNN float type", dtype_name(dtype)); return POLYCHIP_SUPPORT_UNSUPPORTED; }
    /* a representative shape: oneDNN answers per descriptor */
    uint32_t probe = kernel == POLYCHIP_KERNEL_GROUPED_MATMUL ? POLYCHIP_KERNEL_MATMUL : kernel;
    prim_key k = key_for(probe, dtype, 16, 16, probe == POLYCHIP_KERNEL_MATMUL ? 16 : 0, 0, 1.0f);
    dnnl_status_t s;
    cache_entry *e = entry_for(b, &k, 0, &s);
    if (!e) { unimplemented(why, cap, kernel, dtype, s); return POLYCHIP_SUPPORT_UNSUPPORTED; }
    return POLYCHIP_SUPPORT_NATIVE;
}

static int32_t pc_query(polychip_backend *b, int32_t device, const polychip_op *op, const polychip_tensor *in, int32_t n_in,
                        const polychip_tensor *out, int32_t n_out, char *why, size_t cap) {
    (void)device; (void)out; (void)n_out;
    prim_key k;
    if (!call_key(op, in, n_in, &k, why, cap)) return POLYCHIP_SUPPORT_UNSUPPORTED;
    dnnl_status_t s;
    cache_entry *e = entry_for(b, &k, 0, &s);
    if (!e) { unimplemented(why, cap, op->kernel, in[0].dtype, s); return POLYCHIP_SUPPORT_UNSUPPORTED; }
    if (op->kernel == POLYCHIP_KERNEL_GROUPED_MATMUL) say(why, cap, "oneDNN matmul per expert segment: %s", impl_name(e));
    else say(why, cap, "oneDNN %s: %s", kernel_name(op->kernel), impl_name(e));
    return POLYCHIP_SUPPORT_NATIVE;
}

static unsigned char *at(const polychip_tensor *t) { return t->buffer->data + t->byte_offset; }

/* Runs one primitive on raw pointers (arguments in `args`, memory descriptors from the pd). */
static dnnl_status_t run(polychip_backend *b, cache_entry *e, int n, const int *arg_ids, const dnnl_query_t *md_queries,
                         const int *md_index, void *const *ptrs, double *seconds) {
    dnnl_memory_t mems[4] = {0};
    dnnl_exec_arg_t args[4];
    dnnl_status_t s = dnnl_success;
    for (int i = 0; i < n && s == dnnl_success; i++) {
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(e->pd, md_queries[i], md_index[i]);
        if (!md) { s = dnnl_invalid_arguments; break; }
        s = dnnl_memory_create(&mems[i], md, b->engine, ptrs[i]);
        args[i].arg = arg_ids[i];
        args[i].memory = mems[i];
    }
    if (s == dnnl_success) {
        double t0 = now_seconds();
        s = dnnl_primitive_execute(e->prim, b->stream, n, args);
        if (s == dnnl_success) s = dnnl_stream_wait(b->stream);
        *seconds += now_seconds() - t0;
    }
    for (int i = 0; i < n; i++) if (mems[i]) dnnl_memory_destroy(mems[i]);
    return s;
}

static int32_t pc_execute(polychip_backend *b, int32_t device, const polychip_op *op, const polychip_tensor *in, int32_t n_in,
                          const polychip_tensor *out, int32_t n_out, double *device_seconds, char *msg, size_t cap) {
    (void)device; (void)n_out;
    prim_key k;
    char why[512];
    if (!call_key(op, in, n_in, &k, why, sizeof why)) { say(msg, cap, "%s", why); return POLYCHIP_ERROR_UNSUPPORTED; }
    double seconds = 0;
    dnnl_status_t s = dnnl_success;
    cache_entry *e;
    int32_t dt = in[0].dtype;
    int es = dtype_bytes(dt);
    static const int mm_args[3] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST};
    static const dnnl_query_t mm_mds[3] = {dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md};
    static const int zero3[3] = {0, 0, 0};
    switch (op->kernel) {
    case POLYCHIP_KERNEL_MATMUL: {
        if (!(e = entry_for(b, &k, 1, &s))) break;
        void *p[3] = {at(&in[0]), at(&in[1]), at(&out[0])};
        s = run(b, e, 3, mm_args, mm_mds, zero3, p, &seconds);
        break;
    }
    case POLYCHIP_KERNEL_GROUPED_MATMUL: {
        int tb = op->matmul.transpose_b != 0;
        int64_t t = in[0].shape[0], kd = in[0].shape[1], ne = in[1].shape[0], n = tb ? in[1].shape[1] : in[1].shape[2];
        const int32_t *off = (const int32_t *)at(&in[2]);
        if (off[0] != 0 || off[ne] != t) {
            say(msg, cap, "offsets must start at 0 and end at T = %lld, got %d … %d", (long long)t, off[0], off[ne]);
            return POLYCHIP_ERROR_INVALID_ARGUMENT;
        }
        for (int64_t x = 0; x < ne; x++) {
            if (off[x + 1] < off[x]) {
                say(msg, cap, "offsets must not decrease: offsets[%lld] = %d > offsets[%lld] = %d", (long long)x, off[x],
                    (long long)(x + 1), off[x + 1]);
                return POLYCHIP_ERROR_INVALID_ARGUMENT;
            }
        }
        for (int64_t x = 0; x < ne && s == dnnl_success; x++) {
            int64_t rows = off[x + 1] - off[x];
            if (rows == 0) continue;
            prim_key seg = key_for(POLYCHIP_KERNEL_MATMUL, dt, rows, kd, n, tb, 0);
            if (!(e = entry_for(b, &seg, 1, &s))) break;
            void *p[3] = {at(&in[0]) + (size_t)(off[x] * kd * es), at(&in[1]) + (size_t)(x * kd * n * es),
                          at(&out[0]) + (size_t)(off[x] * n * es)};
            s = run(b, e, 3, mm_args, mm_mds, zero3, p, &seconds);
        }
        break;
    }
    case POLYCHIP_KERNEL_SOFTMAX: case POLYCHIP_KERNEL_SILU: case POLYCHIP_KERNEL_SCALE: {
        if (!(e = entry_for(b, &k, 1, &s))) break;
        static const int args[2] = {DNNL_ARG_SRC, DNNL_ARG_DST};
        static const dnnl_query_t mds[2] = {dnnl_query_src_md, dnnl_query_dst_md};
        void *p[2] = {at(&in[0]), at(&out[0])};
        s = run(b, e, 2, args, mds, zero3, p, &seconds);
        if (s == dnnl_success && op->kernel == POLYCHIP_KERNEL_SOFTMAX)
            softmax_special_rows(dt, at(&in[0]), at(&out[0]), k.dims[0], k.dims[1]);
        break;
    }
    case POLYCHIP_KERNEL_SWIGLU: {
        if (!(e = entry_for(b, &k, 1, &s))) break;
        const int args[3] = {DNNL_ARG_SRC, DNNL_ARG_DST, DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1};
        static const dnnl_query_t mds[3] = {dnnl_query_src_md, dnnl_query_dst_md, dnnl_query_src_md};
        void *p[3] = {at(&in[0]), at(&out[0]), at(&in[1])};
        s = run(b, e, 3, args, mds, zero3, p, &seconds);
        break;
    }
    case POLYCHIP_KERNEL_ADD: {
        if (!(e = entry_for(b, &k, 1, &s))) break;
        static const int args[3] = {DNNL_ARG_SRC_0, DNNL_ARG_SRC_1, DNNL_ARG_DST};
        static const dnnl_query_t mds[3] = {dnnl_query_src_md, dnnl_query_src_md, dnnl_query_dst_md};
        static const int idx[3] = {0, 1, 0};
        void *p[3] = {at(&in[0]), at(&in[1]), at(&out[0])};
        s = run(b, e, 3, args, mds, idx, p, &seconds);
        break;
    }
    default:
        say(msg, cap, "%s is not mapped onto oneDNN", kernel_name(op->kernel));
        return POLYCHIP_ERROR_UNSUPPORTED;
    }
    if (s == dnnl_unimplemented) { unimplemented(msg, cap, op->kernel, dt, s); return POLYCHIP_ERROR_UNSUPPORTED; }
    if (s != dnnl_success) {
        say(msg, cap, "oneDNN %s failed: dnnl status %d", kernel_name(op->kernel), (int)s);
        return s == dnnl_out_of_memory ? POLYCHIP_ERROR_OUT_OF_MEMORY : POLYCHIP_ERROR_DEVICE;
    }
    *device_seconds = seconds;
    return POLYCHIP_OK;
}

static int32_t pc_synchronize(polychip_backend *b, int32_t device, char *msg, size_t cap) {
    (void)device;
    dnnl_status_t s = dnnl_stream_wait(b->stream);
    if (s != dnnl_success) { say(msg, cap, "dnnl_stream_wait failed: status %d", (int)s); return POLYCHIP_ERROR_DEVICE; }
    return POLYCHIP_OK;
}

#define STR_(x) #x
#define STR(x) STR_(x)

static const polychip_backend_api api = {
    .struct_size = sizeof(polychip_backend_api),
    .abi_version = POLYCHIP_BACKEND_ABI_VERSION,
    .name = "onednn",
    .version = "oneDNN plugin 1, built against libdnnl " STR(DNNL_VERSION_MAJOR) "." STR(DNNL_VERSION_MINOR) "." STR(DNNL_VERSION_PATCH),
    .init = pc_init,
    .shutdown = pc_shutdown,
    .device_count = pc_device_count,
    .device_info = pc_device_info,
    .buffer_alloc = pc_buffer_alloc,
    .buffer_free = pc_buffer_free,
    .buffer_write = pc_buffer_write,
    .buffer_read = pc_buffer_read,
    .support = pc_support,
    .query = pc_query,
    .execute = pc_execute,
    .synchronize = pc_synchronize,
    .kernel_tiling = NULL,
};

POLYCHIP_EXPORT const polychip_backend_api *polychip_backend_get_api(uint32_t host_abi_version) {
    return host_abi_version == POLYCHIP_BACKEND_ABI_VERSION ? &api : NULL;
}
