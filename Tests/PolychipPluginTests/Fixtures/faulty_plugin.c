/*
 * A misbehaving backend plugin, for the tests only (built by them with cc). Device `faulty:0`
 * runs f32 only; each kernel it claims plants one fault, so the suite must report each as what
 * it is:
 *
 *   matmul    correct (the control; reports tiles M 8 and K 24 through kernel_tiling)
 *   add       wrong values (c = a + b + 0.25·|a|)                         → fail, NMSE
 *   scale     writes one element past its output view                   → fail, wrote outside
 *   silu      correct output, then writes into its input                → fail, input modified
 *   softmax   correct output with one NaN                               → fail, NaN
 *   swiglu    never returns                                             → timeout
 *   rms-norm  dereferences NULL                                         → crashed, SIGSEGV
 *   rope      calls abort()                                             → crashed, SIGABRT
 *   top-k     returns POLYCHIP_ERROR_DEVICE with a message              → fail, threw
 *
 * Build-time switches make broken plugins for the loader's errors: FAULTY_ABI_VERSION (another
 * version), FAULTY_NO_ENTRY (no entry point), FAULTY_INIT_FAILS, FAULTY_NO_EXECUTE (a required
 * function missing), FAULTY_NAME (another name, e.g. a built-in one).
 */
#define _POSIX_C_SOURCE 200809L
#include "polychip_backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef FAULTY_ABI_VERSION
#define FAULTY_ABI_VERSION POLYCHIP_BACKEND_ABI_VERSION
#endif
#ifndef FAULTY_NAME
#define FAULTY_NAME "faulty"
#endif

struct polychip_buffer_s { uint64_t bytes; unsigned char *data; };
struct polychip_backend { int unused; };

static int32_t f_init(polychip_backend **out, char *msg, size_t cap) {
#ifdef FAULTY_INIT_FAILS
    (void)out;
    snprintf(msg, cap, "planted init failure: no device found");
    return POLYCHIP_ERROR_INTERNAL;
#else
    (void)msg; (void)cap;
    *out = calloc(1, sizeof(polychip_backend));
    return *out ? POLYCHIP_OK : POLYCHIP_ERROR_OUT_OF_MEMORY;
#endif
}

static void f_shutdown(polychip_backend *b) { free(b); }

static int32_t f_count(polychip_backend *b, int32_t *n, char *msg, size_t cap) { (void)b; (void)msg; (void)cap; *n = 1; return POLYCHIP_OK; }

static int32_t f_info(polychip_backend *b, int32_t d, polychip_device_info *info, char *msg, size_t cap) {
    (void)b; (void)d; (void)msg; (void)cap;
    info->kind = POLYCHIP_DEVICE_ACCELERATOR;
    snprintf(info->name, sizeof info->name, "Faulty test accelerator");
    snprintf(info->vendor, sizeof info->vendor, "Polychip tests");
    info->memory_bytes = 1ull << 30;
    info->compute_units = 4;
    info->dtype_mask = 1u << POLYCHIP_DTYPE_F32 | 1u << POLYCHIP_DTYPE_I32;
    info->peak_flops[POLYCHIP_DTYPE_F32] = 1e9;
    snprintf(info->details, sizeof info->details, "faults=planted per kernel\nabi=%u", (unsigned)FAULTY_ABI_VERSION);
    return POLYCHIP_OK;
}

static int32_t f_alloc(polychip_backend *b, int32_t d, uint64_t bytes, polychip_buffer *out, char *msg, size_t cap) {
    (void)b; (void)d;
    polychip_buffer buf = calloc(1, sizeof *buf);
    if (buf) buf->data = calloc(1, (size_t)bytes);
    if (!buf || !buf->data) { free(buf); snprintf(msg, cap, "cannot allocate %llu bytes", (unsigned long long)bytes); return POLYCHIP_ERROR_OUT_OF_MEMORY; }
    buf->bytes = bytes;
    *out = buf;
    return POLYCHIP_OK;
}

static void f_free(polychip_backend *b, int32_t d, polychip_buffer buf) { (void)b; (void)d; if (buf) { free(buf->data); free(buf); } }

static int32_t f_write(polychip_backend *b, int32_t d, polychip_buffer buf, uint64_t off, const void *src, uint64_t n, char *m, size_t c) {
    (void)b; (void)d; (void)m; (void)c;
    memcpy(buf->data + off, src, (size_t)n);
    return POLYCHIP_OK;
}

static int32_t f_read(polychip_backend *b, int32_t d, polychip_buffer buf, uint64_t off, void *dst, uint64_t n, char *m, size_t c) {
    (void)b; (void)d; (void)m; (void)c;
    memcpy(dst, buf->data + off, (size_t)n);
    return POLYCHIP_OK;
}

static int claimed(uint32_t k) {
    switch (k) {
    case POLYCHIP_KERNEL_MATMUL: case POLYCHIP_KERNEL_ADD: case POLYCHIP_KERNEL_SCALE: case POLYCHIP_KERNEL_SILU:
    case POLYCHIP_KERNEL_SOFTMAX: case POLYCHIP_KERNEL_SWIGLU: case POLYCHIP_KERNEL_RMS_NORM: case POLYCHIP_KERNEL_ROPE:
    case POLYCHIP_KERNEL_TOP_K:
        return 1;
    default: return 0;
    }
}

static int32_t f_support(polychip_backend *b, int32_t d, uint32_t k, int32_t dt, char *why, size_t cap) {
    (void)b; (void)d;
    if (!claimed(k)) { snprintf(why, cap, "the faulty device has no such kernel"); return POLYCHIP_SUPPORT_UNSUPPORTED; }
    if (dt != POLYCHIP_DTYPE_F32) { snprintf(why, cap, "the faulty device computes in f32 only"); return POLYCHIP_SUPPORT_UNSUPPORTED; }
    return POLYCHIP_SUPPORT_NATIVE;
}

static int32_t f_query(polychip_backend *b, int32_t d, const polychip_op *op, const polychip_tensor *in, int32_t nin,
                       const polychip_tensor *out, int32_t nout, char *why, size_t cap) {
    (void)out; (void)nout;
    int32_t s = f_support(b, d, op->kernel, nin > 0 ? in[0].dtype : -1, why, cap);
    if (s == POLYCHIP_SUPPORT_NATIVE) snprintf(why, cap, "faulty %u", op->kernel);
    return s;
}

static float *F(const polychip_tensor *t) { return (float *)(t->buffer->data + t->byte_offset); }

static int64_t count(const polychip_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->shape[i];
    return n;
}

static int32_t f_execute(polychip_backend *b, int32_t d, const polychip_op *op, const polychip_tensor *in, int32_t nin,
                         const polychip_tensor *out, int32_t nout, double *secs, char *msg, size_t cap) {
    (void)b; (void)d; (void)nin; (void)nout; (void)secs;
    int64_t n = count(&in[0]);
    switch (op->kernel) {
    case POLYCHIP_KERNEL_MATMUL: {
        int64_t m = in[0].shape[0], k = in[0].shape[1], tb = op->matmul.transpose_b, nn = tb ? in[1].shape[0] : in[1].shape[1];
        const float *a = F(&in[0]), *w = F(&in[1]);
        float *c = F(&out[0]);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < nn; j++) {
                double s = 0;
                for (int64_t x = 0; x < k; x++) s += (double)a[i * k + x] * (double)(tb ? w[j * k + x] : w[x * nn + j]);
                c[i * nn + j] = (float)s;
            }
        return POLYCHIP_OK;
    }
    case POLYCHIP_KERNEL_ADD:
        for (int64_t i = 0; i < n; i++) F(&out[0])[i] = F(&in[0])[i] + F(&in[1])[i] + 0.25f * fabsf(F(&in[0])[i]);
        return POLYCHIP_OK;
    case POLYCHIP_KERNEL_SCALE:
        for (int64_t i = 0; i <= n; i++) F(&out[0])[i] = (float)op->elementwise.alpha * (i < n ? F(&in[0])[i] : 1.0f);
        return POLYCHIP_OK;
    case POLYCHIP_KERNEL_SILU:
        for (int64_t i = 0; i < n; i++) { float x = F(&in[0])[i]; F(&out[0])[i] = (float)((double)x / (1.0 + exp(-(double)x))); }
        F(&in[0])[0] = 42.0f;
        return POLYCHIP_OK;
    case POLYCHIP_KERNEL_SOFTMAX: {
        int64_t dd = in[0].shape[in[0].rank - 1];
        for (int64_t r = 0; r < n / dd; r++) {
            const float *x = F(&in[0]) + r * dd;
            float *y = F(&out[0]) + r * dd;
            double mx = x[0], s = 0;
            for (int64_t j = 1; j < dd; j++) if (x[j] > mx) mx = x[j];
            for (int64_t j = 0; j < dd; j++) s += exp((double)x[j] - mx);
            for (int64_t j = 0; j < dd; j++) y[j] = (float)(exp((double)x[j] - mx) / s);
        }
        F(&out[0])[n / 2] = NAN;
        return POLYCHIP_OK;
    }
    case POLYCHIP_KERNEL_SWIGLU:
        /* a hang that also leaves a helper process behind (as a vendor compiler server would):
           it inherits the worker's descriptors, so the host must kill the whole group */
        if (fork() == 0) for (;;) pause();
        for (;;) sleep(1);
    case POLYCHIP_KERNEL_RMS_NORM: {
        volatile float *nowhere = NULL;
        nowhere[n] = 1.0f;
        return POLYCHIP_OK;
    }
    case POLYCHIP_KERNEL_ROPE:
        abort();
    case POLYCHIP_KERNEL_TOP_K:
        snprintf(msg, cap, "planted device error: the top-k unit is wedged");
        return POLYCHIP_ERROR_DEVICE;
    default:
        snprintf(msg, cap, "not claimed");
        return POLYCHIP_ERROR_UNSUPPORTED;
    }
}

static int32_t f_sync(polychip_backend *b, int32_t d, char *m, size_t c) { (void)b; (void)d; (void)m; (void)c; return POLYCHIP_OK; }

static int32_t f_tiling(polychip_backend *b, int32_t d, uint32_t k, polychip_tile_boundary *out, int32_t cap, int32_t *n) {
    (void)b; (void)d;
    *n = 0;
    if (k != POLYCHIP_KERNEL_MATMUL) return POLYCHIP_OK;
    *n = 2;
    if (cap >= 2) {
        out[0].role = POLYCHIP_TILE_BLOCK; out[0].size = 8;
        snprintf(out[0].dim, sizeof out[0].dim, "M"); snprintf(out[0].name, sizeof out[0].name, "faulty.mb");
        out[1].role = POLYCHIP_TILE_BLOCK; out[1].size = 24;
        snprintf(out[1].dim, sizeof out[1].dim, "K"); snprintf(out[1].name, sizeof out[1].name, "faulty.kb");
    }
    return POLYCHIP_OK;
}

static const polychip_backend_api api = {
    .struct_size = sizeof(polychip_backend_api),
    .abi_version = FAULTY_ABI_VERSION,
    .name = FAULTY_NAME,
    .version = "faulty test plugin",
    .init = f_init,
    .shutdown = f_shutdown,
    .device_count = f_count,
    .device_info = f_info,
    .buffer_alloc = f_alloc,
    .buffer_free = f_free,
    .buffer_write = f_write,
    .buffer_read = f_read,
    .support = f_support,
    .query = f_query,
#ifdef FAULTY_NO_EXECUTE
    .execute = NULL,
#else
    .execute = f_execute,
#endif
    .synchronize = f_sync,
    .kernel_tiling = f_tiling,
};

#ifdef FAULTY_NO_ENTRY
POLYCHIP_EXPORT int polychip_not_a_plugin(void) { return 0; }
#else
POLYCHIP_EXPORT const polychip_backend_api *polychip_backend_get_api(uint32_t host_abi_version) {
    (void)host_abi_version;
    return &api;
}
#endif
