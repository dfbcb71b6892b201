#!/usr/bin/env python3
"""Run a Polychip case bundle with a framework and write its outputs for `polychip conform --grade`.

    polychip conform --export BUNDLE --kernel matmul --kernel attention   # on any machine with polychip
    python3 polychip_runner.py BUNDLE --framework jax                     # where the framework runs
    polychip conform --grade BUNDLE --markdown matrix.md                  # the live suite's rules

Needs numpy and the framework only (no Polychip install). Reads BUNDLE/manifest.json (schema
polychip-case-bundle, version 1; docs/plugins.md), runs every case whose kernel has a mapping
onto the framework, and writes BUNDLE/cases/<id>/outputs/<name>.npy plus BUNDLE/runner.json.
Cases without a mapping are skipped and graded `missing` (lost coverage, never a pass).

Frameworks:
  jax    JAX (`pip install jax jaxlib`), on the device JAX picks (CPU unless JAX_PLATFORMS says
         otherwise). Tested in Polychip's CI on CPU.
  torch  PyTorch, or torch_npu / torch_mlu / torch_musa with --torch-device npu|mlu|musa. A
         documented mapping for porters; docs/plugins.md says which of its kernels were run.

Each mapping computes in at least f32 (16-bit inputs are widened, outputs rounded once to the
storage dtype by the framework's own conversion, round-to-nearest-even), as docs/kernels.md asks.
Where the framework's call does not follow the contract, a small adapter says so in a comment.
"""
import argparse
import json
import os
import sys
import traceback

import numpy as np

SCHEMA = "polychip-case-bundle"
SCHEMA_VERSION = 1


# ---------------------------------------------------------------- bundle I/O (numpy only)

def bf16_bits_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16_bits(x):
    """Round-to-nearest-even f32 → bf16 bit patterns (NaN stays NaN)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(x), np.uint16(0x7FC0), r)


def load_input(bundle, t):
    """A bundle input as numpy: floats as float32/float16 (bf16 widened to float32 exactly),
    integers as int32/int8, int4 as unpacked nibbles (uint8, the logical shape)."""
    a = np.load(os.path.join(bundle, t["file"]), allow_pickle=False)
    dt = t["dtype"]
    if dt == "bf16":
        return bf16_bits_to_f32(a.view(np.uint16))
    if dt == "int4":
        low, high = a & 0x0F, a >> 4
        return np.stack([low, high], axis=-1).reshape(tuple(t["shape"]))
    return a


def save_output(bundle, t, value):
    """Writes an output in the manifest's dtype (.npy descr as the manifest says)."""
    dt = t["dtype"]
    v = np.asarray(value)
    if dt == "f32":
        v = v.astype(np.float32)
    elif dt == "f16":
        v = v.astype(np.float16)
    elif dt == "bf16":
        # bit patterns: kept when the framework rounded to bf16 itself (ml_dtypes.bfloat16, or
        # uint16 bits from torch), else rounded here to nearest even
        if str(v.dtype) == "bfloat16":
            v = v.view(np.uint16)
        elif v.dtype != np.uint16:
            v = f32_to_bf16_bits(v)
    elif dt == "i32":
        v = v.astype(np.int32)
    elif dt == "i8":
        v = v.astype(np.int8)
    elif dt == "int4":
        u = v.astype(np.uint8).reshape(tuple(t["shape"][:-1]) + (t["shape"][-1] // 2, 2))
        v = (u[..., 0] | (u[..., 1] << 4)).astype(np.uint8)
    else:
        raise ValueError(f"unknown dtype {dt}")
    path = os.path.join(bundle, t["file"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, v, allow_pickle=False)


def read_manifest(bundle):
    with open(os.path.join(bundle, "manifest.json")) as f:
        m = json.load(f)
    if m.get("schema") != SCHEMA:
        raise SystemExit(f"{bundle}: not a Polychip case bundle (schema {m.get('schema')!r})")
    if int(m.get("schemaVersion", 0)) > SCHEMA_VERSION:
        raise SystemExit(f"{bundle}: manifest schema version {m['schemaVersion']} is newer than this runner reads ({SCHEMA_VERSION})")
    return m


def visible(lq, lk):
    """Bottom-right causal visibility [Lq, Lk]: query i sees key j iff j ≤ i + Lk − Lq."""
    return np.arange(lk)[None, :] <= np.arange(lq)[:, None] + (lk - lq)


def int4_values(q, scales, zeros, group):
    """The INT4 weight as float32: s[n, k/G] · (u[n, k] − z[n, k/G]) (z = 8 when symmetric)."""
    s = np.repeat(scales.astype(np.float32), group, axis=-1)
    z = np.repeat(zeros.astype(np.float32), group, axis=-1) if zeros is not None else np.float32(8)
    with np.errstate(invalid="ignore"):  # inf scale × 0 is NaN, as the contract says (non-finite cases)
        return s * (q.astype(np.float32) - z)


def rope_tables(positions, d, p):
    """cos/sin per (token, pair) in float64 (an f32 angle pos·θ loses ~1e-4 rad at pos 4096)."""
    r = p.get("rotaryDim") or d
    inv = float(p.get("base", 10000.0)) ** (-np.arange(0, r, 2, dtype=np.float64) / r)
    ang = positions.astype(np.float64)[:, None] * inv[None, :]
    return np.cos(ang), np.sin(ang), r


def rope_pairs(d, r, style):
    """Index arrays (first, second) of the rotated pairs."""
    half = r // 2
    if style == "neox":
        return np.arange(half), np.arange(half) + half
    return np.arange(0, r, 2), np.arange(1, r, 2)


# ---------------------------------------------------------------- JAX

def jax_mappings():
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    jax.config.update("jax_enable_x64", True)  # RoPE angles in f64 (see rope_tables)
    import jax.numpy as jnp
    import ml_dtypes

    storage = {"f32": jnp.float32, "f16": jnp.float16, "bf16": jnp.bfloat16}

    def f32(x):
        return jnp.asarray(x, dtype=jnp.float32)

    def out(x, dt):
        # the framework's conversion rounds to nearest even; bf16 comes back as ml_dtypes.bfloat16
        return np.asarray(jnp.asarray(x).astype(storage[dt]))

    def matmul(p, ins, dt):
        a, b = ins
        b = f32(b).T if p.get("transposeB") else f32(b)
        return [out(jnp.matmul(f32(a), b, precision=jax.lax.Precision.HIGHEST), dt)]

    def softmax(p, ins, dt):
        x = f32(ins[0])
        y = jax.nn.softmax(x, axis=-1)
        # contract adapters: +inf entries share the mass; an all −inf row is 0 (JAX gives NaN)
        pinf = jnp.isposinf(x)
        npinf = pinf.sum(-1, keepdims=True)
        y = jnp.where(npinf > 0, pinf / jnp.maximum(npinf, 1), y)
        y = jnp.where(jnp.all(jnp.isneginf(x), -1, keepdims=True), 0.0, y)
        y = jnp.where(jnp.any(jnp.isnan(x), -1, keepdims=True), jnp.nan, y)
        return [out(y, dt)]

    def rms_norm(p, ins, dt):
        x, w = f32(ins[0]), f32(ins[1])
        return [out(x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + p.get("eps", 1e-6)) * w, dt)]

    def silu(p, ins, dt):
        return [out(jax.nn.silu(f32(ins[0])), dt)]

    def swiglu(p, ins, dt):
        return [out(jax.nn.silu(f32(ins[0])) * f32(ins[1]), dt)]

    def add(p, ins, dt):
        return [out(f32(ins[0]) + f32(ins[1]), dt)]

    def scale(p, ins, dt):
        return [out(jnp.asarray(ins[0], jnp.float64) * p["alpha"], dt)]

    def rope(p, ins, dt):
        x, pos = jnp.asarray(ins[0], jnp.float64), ins[1]
        cos, sin, r = rope_tables(pos, x.shape[-1], p)
        i, j = rope_pairs(x.shape[-1], r, p.get("style", "neox"))
        a, b = x[:, :, i], x[:, :, j]
        c, s = jnp.asarray(cos)[:, None, :], jnp.asarray(sin)[:, None, :]
        y = x.at[:, :, i].set(a * c - b * s).at[:, :, j].set(a * s + b * c)
        return [out(y, dt)]

    def attention(p, ins, dt):
        q, k, v = (f32(t) for t in ins)                     # [B, H, L, D]
        lq, lk, d = q.shape[2], k.shape[2], q.shape[3]
        mask = jnp.asarray(visible(lq, lk) if p.get("causal") else np.ones((lq, lk), bool))[None, None]
        scale = p.get("scale") or 1 / np.sqrt(d)
        if v.shape[3] == d:
            # jax.nn.dot_product_attention: layout [B, L, H, D], GQA by head groups, the lse as
            # its residual
            o, lse = jax.nn.dot_product_attention(q.transpose(0, 2, 1, 3), k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3),
                                                  mask=mask, scale=scale, return_residual=True)
            o, lse = o.transpose(0, 2, 1, 3), lse.transpose(0, 2, 1)
        else:
            # Dv ≠ D (MLA's latent values) is outside dot_product_attention: the same math with
            # einsum, jax.nn.softmax and jax.nn.logsumexp
            rep = q.shape[1] // k.shape[1]
            kk, vv = jnp.repeat(k, rep, axis=1), jnp.repeat(v, rep, axis=1)
            logits = jnp.where(mask, jnp.einsum("bhqd,bhkd->bhqk", q, kk, precision="highest") * scale, -jnp.inf)
            o = jnp.einsum("bhqk,bhkd->bhqd", jax.nn.softmax(logits, axis=-1), vv, precision="highest")
            lse = jax.nn.logsumexp(logits, axis=-1)
        # contract adapter: a row with no visible key is 0 with lse −inf (JAX averages V and
        # returns a large negative lse)
        seen = jnp.asarray(mask.any(-1))[..., None]
        o = jnp.where(seen, o, 0.0)
        res = [out(o, dt)]
        if p.get("returnLSE"):
            res.append(np.asarray(jnp.where(seen[..., 0], lse, -jnp.inf), dtype=np.float32))
        return res

    def top_k(p, ins, dt):
        s = f32(ins[0])
        k = int(p["k"])
        n = s.shape[-1]
        s = jnp.where(jnp.isnan(s), -jnp.inf, s)            # NaN is never selected
        vals, idx = jax.lax.top_k(s, min(k, n))             # ties: the lower index first
        idx = jnp.where(jnp.isneginf(vals), -1, idx)        # −inf is never selected: pad
        if k > n:
            pad = k - n
            vals = jnp.concatenate([vals, jnp.full(vals.shape[:-1] + (pad,), -jnp.inf)], -1)
            idx = jnp.concatenate([idx, jnp.full(idx.shape[:-1] + (pad,), -1)], -1)
        return [np.asarray(idx, np.int32), np.asarray(vals, np.float32)]

    def unpack_int4(p, ins, at):
        zeros = None if p["symmetric"] else ins[at + 2]
        return jnp.asarray(int4_values(ins[at], ins[at + 1], zeros, int(p["groupSize"])))

    def dequantize_int4(p, ins, dt):
        return [out(unpack_int4(p, ins, 0), p["output"])]

    def int4_matmul(p, ins, dt):
        w = unpack_int4(p, ins, 1)                          # [N, K]
        return [out(jnp.matmul(f32(ins[0]), w.T, precision=jax.lax.Precision.HIGHEST), dt)]

    import jaxlib
    info = {"runner": f"polychip_runner.py jax {jax.__version__} (jaxlib {jaxlib.__version__})",
            "device": str(jax.devices()[0])}
    return info, {"matmul": matmul, "softmax": softmax, "rms-norm": rms_norm, "silu": silu, "swiglu": swiglu,
                  "add": add, "scale": scale, "rope": rope, "attention": attention, "top-k": top_k,
                  "dequantize-int4": dequantize_int4, "int4-matmul": int4_matmul}


# ---------------------------------------------------------------- PyTorch (torch, torch_npu, …)

def torch_mappings(device):
    import torch
    import torch.nn.functional as F
    if device == "npu":
        import torch_npu  # noqa: F401  (registers the 'npu' device)
    elif device == "mlu":
        import torch_mlu  # noqa: F401
    elif device == "musa":
        import torch_musa  # noqa: F401

    storage = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}

    def t(x, dtype=torch.float32):
        return torch.as_tensor(np.ascontiguousarray(x)).to(device=device, dtype=dtype)

    def out(x, dt):
        y = x.to(storage[dt]).cpu()
        # bf16 has no numpy dtype: its bit patterns, as the bundle stores them
        return y.view(torch.int16).numpy().view(np.uint16) if dt == "bf16" else y.numpy()

    def matmul(p, ins, dt):
        a, b = t(ins[0]), t(ins[1])
        return [out(a @ (b.T if p.get("transposeB") else b), dt)]

    def softmax(p, ins, dt):
        x = t(ins[0])
        y = torch.softmax(x, dim=-1)
        pinf = torch.isposinf(x)
        n = pinf.sum(-1, keepdim=True)
        y = torch.where(n > 0, pinf / n.clamp(min=1), y)
        y = torch.where(torch.isneginf(x).all(-1, keepdim=True), torch.zeros_like(y), y)
        return [out(y, dt)]

    def rms_norm(p, ins, dt):
        x, w = t(ins[0]), t(ins[1])
        return [out(F.rms_norm(x, (x.shape[-1],), w, eps=p.get("eps", 1e-6)), dt)]

    def silu(p, ins, dt):
        return [out(F.silu(t(ins[0])), dt)]

    def swiglu(p, ins, dt):
        return [out(F.silu(t(ins[0])) * t(ins[1]), dt)]

    def rope(p, ins, dt):
        x = t(ins[0], torch.float64) if device == "cpu" else t(ins[0])
        cos, sin, r = rope_tables(ins[1], ins[0].shape[-1], p)
        i, j = (torch.as_tensor(a, device=device) for a in rope_pairs(ins[0].shape[-1], r, p.get("style", "neox")))
        c, s = t(cos, x.dtype)[:, None, :], t(sin, x.dtype)[:, None, :]
        a, b = x[:, :, i], x[:, :, j]
        y = x.clone()
        y[:, :, i], y[:, :, j] = a * c - b * s, a * s + b * c
        return [out(y, dt)]

    def attention(p, ins, dt):
        q, k, v = (t(x) for x in ins)
        lq, lk, d = q.shape[2], k.shape[2], q.shape[3]
        mask = torch.as_tensor(visible(lq, lk) if p.get("causal") else np.ones((lq, lk), bool), device=device)
        scale = p.get("scale") or 1 / np.sqrt(d)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=True)
        seen = mask.any(-1)[None, None, :, None]
        res = [out(torch.where(seen, o, torch.zeros_like(o)), dt)]
        if p.get("returnLSE"):
            rep = q.shape[1] // k.shape[1]
            logits = (q @ k.repeat_interleave(rep, 1).transpose(-1, -2)) * scale
            lse = torch.logsumexp(logits.masked_fill(~mask, float("-inf")), -1)
            res.append(lse.float().cpu().numpy())
        return res

    def top_k(p, ins, dt):
        # torch.topk does not promise the order of equal values: sort stably instead
        s = t(ins[0])
        s = torch.where(torch.isnan(s), torch.full_like(s, float("-inf")), s)
        k = int(p["k"])
        vals, idx = torch.sort(s, dim=-1, descending=True, stable=True)
        vals, idx = vals[:, :k], idx[:, :k]
        idx = torch.where(torch.isneginf(vals), torch.full_like(idx, -1), idx)
        if k > s.shape[-1]:
            pad = k - s.shape[-1]
            vals = torch.cat([vals, torch.full((s.shape[0], pad), float("-inf"), device=device)], -1)
            idx = torch.cat([idx, torch.full((s.shape[0], pad), -1, device=device, dtype=idx.dtype)], -1)
        return [idx.int().cpu().numpy(), vals.float().cpu().numpy()]

    def dequantize_int4(p, ins, dt):
        zeros = None if p["symmetric"] else ins[2]
        return [out(t(int4_values(ins[0], ins[1], zeros, int(p["groupSize"]))), p["output"])]

    info = {"runner": f"polychip_runner.py torch {torch.__version__}", "device": device}
    return info, {"matmul": matmul, "softmax": softmax, "rms-norm": rms_norm, "silu": silu, "swiglu": swiglu,
                  "rope": rope, "attention": attention, "top-k": top_k, "dequantize-int4": dequantize_int4}


# ---------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", help="a directory written by polychip conform --export")
    ap.add_argument("--framework", choices=["jax", "torch"], default="jax")
    ap.add_argument("--torch-device", default="cpu", help="torch: cpu, cuda, npu (torch_npu), mlu (torch_mlu), musa (torch_musa)")
    ap.add_argument("--kernel", action="append", help="only these kernels (repeatable)")
    ap.add_argument("--list", action="store_true", help="print the kernels the framework maps and exit")
    args = ap.parse_args(argv)

    try:
        info, table = jax_mappings() if args.framework == "jax" else torch_mappings(args.torch_device)
    except ImportError as e:
        need = "jax jaxlib" if args.framework == "jax" else "torch (and torch_npu / torch_mlu / torch_musa for those devices)"
        raise SystemExit(f"--framework {args.framework} needs the module {e.name!r}, which this python cannot import: pip install {need}")
    if args.list:
        print(" ".join(sorted(table)))
        return 0
    m = read_manifest(args.bundle)
    ran = skipped = failed = 0
    for c in m["cases"]:
        if args.kernel and c["kernel"] not in args.kernel:
            continue
        fn = table.get(c["kernel"])
        if fn is None:
            skipped += 1
            continue
        try:
            ins = [load_input(args.bundle, t) for t in c["inputs"]]
            outs = fn(c["params"], ins, c["dtype"])
            for t, v in zip(c["outputs"], outs):
                save_output(args.bundle, t, v)
            ran += 1
        except Exception:  # a failing mapping leaves the case missing; the grade reports it
            failed += 1
            print(f"{c['id']}: {c['kernel']} {c['dtype']} {c['label']} failed:\n{traceback.format_exc()}", file=sys.stderr)
    with open(os.path.join(args.bundle, "runner.json"), "w") as f:
        json.dump(dict(info, ran=ran, skipped=skipped, failed=failed), f, indent=1)
    print(f"{info['runner']} on {info['device']}: ran {ran} cases, {skipped} without a mapping, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
