#!/usr/bin/env python3
"""Golden data for the INT4 checkpoint importers (Tests/PolychipCoreTests/Int4CheckpointTests.swift).

Each format is implemented here from its published definition, with numpy in float32 where the
original computes in float32 (no code is taken from the projects themselves):

* ggml Q4_0 (ggml-quants.c, quantize_row_q4_0_ref / dequantize_row_q4_0): blocks of 32; amax and
  max = the value of largest magnitude (the first on ties); d = max / -8; id = 1/d (0 if d == 0);
  q = min(15, (int8_t)(x*id + 8.5f)); d stored as fp16; element j in the low nibble of byte j,
  element 16+j in its high nibble; dequantized value (q - 8) * fp32(d).
* GPTQ (AutoGPTQ / GPTQModel 4-bit layout): qweight int32 [K/8, N] packed along K (nibble j of
  qweight[i, n] is q[8i+j, n]); qzeros int32 [K/G, N/8] packed along N; scales fp16 [K/G, N];
  g_idx int32 [K] (act-order: the group of input feature k is its position in the quantization
  order // G); the v1 format stores zero - 1, v2 stores zero; value scale * (q - zero).
* AWQ (AutoAWQ GEMM layout): qweight int32 [K, N/8] and qzeros int32 [K/G, N/8], packed along N
  with nibble i of a word holding column 8c + [0, 2, 4, 6, 1, 3, 5, 7][i]; scales fp16 [K/G, N];
  value scale * (q - zero).

Writes q4_0.safetensors, gptq.safetensors and awq_*.npy next to this script.
Run: python3 make_int4_golden.py   (numpy only; deterministic)
"""
import json
import os
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20260222)
f32 = np.float32


def write_safetensors(path, tensors):
    header, body, offset = {}, b"", 0
    for name in sorted(tensors):
        dtype, arr = tensors[name]
        raw = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        body += raw
        offset += len(raw)
    header["__metadata__"] = {"generator": "make_int4_golden.py"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + body)


# ---- ggml Q4_0 ---------------------------------------------------------------------------

def q4_0_quantize(x):
    x = np.asarray(x, dtype=f32).reshape(-1, 32)
    out = bytearray()
    for blk in x:
        amax, mx = f32(0), f32(0)
        for v in blk:
            if amax < abs(v):
                amax, mx = f32(abs(v)), v
        d = f32(mx / f32(-8))
        inv = f32(f32(1) / d) if d != 0 else f32(0)
        out += np.float16(d).tobytes()  # round to nearest even
        for j in range(16):
            x0 = f32(blk[j] * inv)
            x1 = f32(blk[16 + j] * inv)
            q0 = min(15, int(np.trunc(f32(x0 + f32(8.5)))))
            q1 = min(15, int(np.trunc(f32(x1 + f32(8.5)))))
            out.append(q0 | (q1 << 4))
    return bytes(out)


def q4_0_dequantize(raw):
    raw = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 18)
    out = []
    for blk in raw:
        d = f32(np.frombuffer(blk[:2].tobytes(), dtype=np.float16)[0])
        lo = (blk[2:] & 0x0F).astype(np.int32) - 8
        hi = (blk[2:] >> 4).astype(np.int32) - 8
        out.append(np.concatenate([lo.astype(f32) * d, hi.astype(f32) * d]))
    return np.concatenate(out).astype(f32)


rows = []
rows.append(rng.standard_normal(64).astype(f32))                      # ordinary
r = rng.uniform(-1, 1, 64).astype(f32); r[:32] = 0; rows.append(r)      # an all-zero block
r = rng.uniform(-1, 1, 64).astype(f32); r[5] = -3.5; r[40] = -2.0; rows.append(r)  # negative max
r = rng.uniform(-1, 1, 64).astype(f32); r[3] = 2.0; r[9] = -2.0; r[33] = -4.0; r[50] = 4.0; rows.append(r)  # magnitude ties
r = (rng.integers(-8, 8, 64) * 0.25).astype(f32); r[0] = -2.0; r[32] = -2.0; rows.append(r)  # exact grid: x*id + 8.5 at .5
r = (rng.standard_normal(64) * 1e-6).astype(f32); rows.append(r)      # tiny: subnormal f16 d
r = (rng.standard_normal(64) * 3e4).astype(f32); rows.append(r)       # large
x = np.stack(rows).astype(f32)
blocks = q4_0_quantize(x)
write_safetensors(os.path.join(HERE, "q4_0.safetensors"), {
    "x": ("F32", x),
    "blocks": ("U8", np.frombuffer(blocks, dtype=np.uint8)),
    "dequant": ("F32", q4_0_dequantize(blocks).reshape(x.shape)),
})

# ---- GPTQ ---------------------------------------------------------------------------------

def pack_along_k(q):  # q [K, N] -> int32 [K/8, N]
    k, n = q.shape
    out = np.zeros((k // 8, n), dtype=np.uint32)
    for j in range(8):
        out |= q[j::8, :].astype(np.uint32) << np.uint32(4 * j)
    return out.view(np.int32)


def pack_along_n(z, order=range(8)):  # z [R, N] -> int32 [R, N/8]; nibble i holds column 8c+order[i]
    r, n = z.shape
    out = np.zeros((r, n // 8), dtype=np.uint32)
    for i, col in enumerate(order):
        out |= (z[:, col::8].astype(np.uint32) & np.uint32(0xF)) << np.uint32(4 * i)
    return out.view(np.int32)


def gptq_case(k, n, g, act_order, version):
    groups = k // g
    q = rng.integers(0, 16, (k, n)).astype(np.int32)
    zero = rng.integers(1 if version == "v1" else 0, 16, (groups, n)).astype(np.int32)
    scales = rng.uniform(0.001, 0.05, (groups, n)).astype(np.float16)
    if act_order:
        order = rng.permutation(k)  # quantization order (descending Hessian diagonal in GPTQ)
        g_idx = np.empty(k, dtype=np.int32)
        g_idx[order] = np.arange(k) // g
    else:
        g_idx = (np.arange(k) // g).astype(np.int32)
    stored = zero - 1 if version == "v1" else zero
    deq = scales.astype(f32)[g_idx, :] * (q - zero[g_idx, :]).astype(f32)
    return {"qweight": ("I32", pack_along_k(q)), "qzeros": ("I32", pack_along_n(stored)),
            "scales": ("F16", scales), "g_idx": ("I32", g_idx), "dequant": ("F32", deq.astype(f32))}


gptq = {}
for prefix, args in {"v1_act": (64, 16, 16, True, "v1"), "v2": (64, 24, 32, False, "v2"),
                     "v2_act": (128, 8, 32, True, "v2"), "v1": (32, 8, 16, False, "v1")}.items():
    for name, value in gptq_case(*args).items():
        gptq[prefix + "." + name] = value
write_safetensors(os.path.join(HERE, "gptq.safetensors"), gptq)

# ---- AWQ ----------------------------------------------------------------------------------

AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
k, n, g = 64, 32, 16
q = rng.integers(0, 16, (k, n)).astype(np.int32)
zero = rng.integers(0, 16, (k // g, n)).astype(np.int32)
scales = rng.uniform(0.001, 0.05, (k // g, n)).astype(np.float16)
deq = scales.astype(f32)[np.arange(k) // g, :] * (q - zero[np.arange(k) // g, :]).astype(f32)
np.save(os.path.join(HERE, "awq_qweight.npy"), pack_along_n(q, AWQ_ORDER))
np.save(os.path.join(HERE, "awq_qzeros.npy"), pack_along_n(zero, AWQ_ORDER))
np.save(os.path.join(HERE, "awq_scales.npy"), scales)
np.save(os.path.join(HERE, "awq_dequant.npy"), deq.astype(f32))
print("golden data written to", HERE)
