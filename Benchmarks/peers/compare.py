"""Runs Polychip's CPU benchmarks and their peers alternately, several rounds, on one machine,
and prints medians and ratios (the machine is shared: compare within one run).

    python3 Benchmarks/peers/compare.py [--rounds 3] [--ggml /path/to/test-backend-ops] [gemm int4 attention moe scaling]

Peers: OpenBLAS SGEMM through numpy (Benchmarks/peers/numpy_sgemm.py); ggml's
test-backend-ops perf mode for Q4_0 MUL_MAT and FLASH_ATTN_EXT (built locally, not vendored).
"""
import json
import os
import re
import statistics
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
bench = os.path.join(here, "..", ".build", "release", "polychip-cpu-bench")
args = sys.argv[1:]
rounds = 3
ggml = os.environ.get("GGML_TEST_BACKEND_OPS", "/work/peers/ggml/build/bin/test-backend-ops")
if "--rounds" in args:
    i = args.index("--rounds"); rounds = int(args[i + 1]); del args[i:i + 2]
if "--ggml" in args:
    i = args.index("--ggml"); ggml = args[i + 1]; del args[i:i + 2]
which = args or ["gemm", "int4", "attention", "moe", "scaling"]


def ours(name, env=None):
    out = subprocess.run([bench, name, "--json"], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})}).stdout
    rows = json.loads(out)
    return rows if name == "machine" else [r for r in rows if not r["name"].startswith("machine")]


def numpy_sgemm(env=None):
    out = subprocess.run([sys.executable, os.path.join(here, "numpy_sgemm.py")], capture_output=True, text=True,
                         check=True, env={**os.environ, **(env or {})}).stdout
    return json.loads(out)


def ggml_perf(op, params):
    out = subprocess.run([ggml, "perf", "-b", "CPU", "-o", op, "-p", params], capture_output=True, text=True).stdout
    res = []
    for line in out.splitlines():
        m = re.search(r"^\s*(\S+\(.*\)):\s+(\d+) runs -\s+([\d.]+) us/run - +([\d.]+) (\w)FLOP/run - .*?([\d.]+) (\w)FLOPS", line)
        if m:
            scale = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
            flop = float(m.group(4)) * scale[m.group(5)]
            res.append({"case": m.group(1), "seconds": float(m.group(3)) * 1e-6, "flops": flop})
    return res


results = {}


def add(key, value):
    results.setdefault(key, []).append(value)


machine = ours("machine")
# Peak of the cores used: the larger of the concurrent measurement and threads x one thread.
peak = max(machine[0]["gflops"], 2 * machine[2]["gflops"]) * 1e9
bandwidth = machine[1]["gbps"] * 1e9
for r in range(rounds):
    if "gemm" in which:
        n = numpy_sgemm()
        add("numpy sgemm 2048 s", n["seconds"])
        o = ours("gemm")[0]
        add("polychip gemm 2048 s", o["seconds"])
    if "scaling" in which:
        add("polychip gemm 2048 1-thread s", ours("gemm1")[0]["seconds"])
        add("polychip gemm 2048 2-thread s", ours("gemm")[0]["seconds"])
    if "int4" in which:
        g = ggml_perf("MUL_MAT", "type_a=q4_0,type_b=f32,m=4096,n=1,k=14336,")
        if g:
            add("ggml q4_0 mul_mat M1 s", g[0]["seconds"])
        for row in ours("int4"):
            add(f"polychip {row['name']} s", row["seconds"])
    if "attention" in which:
        g = ggml_perf("FLASH_ATTN_EXT", r"hsk=128,hsv=128,nh=8,nr23=\[4,1\],kv=2048,nb=2048")
        for c in g:
            tag = ("mask" if "mask=1" in c["case"] else "nomask") + ("-f32" if "type_K=f32" in c["case"] else "-f16")
            add(f"ggml flash_attn_ext {tag} GFLOP/s", c["flops"] / c["seconds"] / 1e9)
        for name in ["attention", "attnfull"]:
            o = ours(name)[0]
            add(f"polychip {o['name']} GFLOP/s", o["gflops"])
    if "moe" in which:
        o = ours("moe")[0]
        add("polychip moe s", o["seconds"])

print(f"machine: FMA peak {peak / 1e9:.1f} GFLOP/s (measured 2 threads {machine[0]['gflops']:.1f}, 1 thread {machine[2]['gflops']:.1f}), "
      f"read bandwidth {bandwidth / 1e9:.2f} GB/s ({rounds} rounds, medians)")
med = {k: statistics.median(v) for k, v in results.items()}
for k, v in med.items():
    print(f"  {k:60s} median {v:.6g}  best {min(results[k]) if k.endswith(' s') else max(results[k]):.6g}   (all: {', '.join(f'{x:.4g}' for x in results[k])})")


def ratio(a, b, label):
    if a in med and b in med:
        best = (min if a.endswith(" s") else max)
        print(f"{label}: {med[a] / med[b]:.2f}x (medians), {best(results[a]) / best(results[b]):.2f}x (best of each)")


ratio("numpy sgemm 2048 s", "polychip gemm 2048 s", "GEMM speed vs numpy/OpenBLAS")
if "polychip gemm 2048 s" in med:
    print(f"GEMM % of FMA peak: {100 * 2 * 2048**3 / med['polychip gemm 2048 s'] / peak:.0f}%")
ratio("polychip gemm 2048 1-thread s", "polychip gemm 2048 2-thread s", "GEMM 2 threads vs 1")
ratio("ggml q4_0 mul_mat M1 s", "polychip int4 matmul M1 N4096 K14336 g32 s", "INT4 GEMV g32 speed vs ggml Q4_0")
ratio("ggml q4_0 mul_mat M1 s", "polychip int4 matmul M1 N4096 K14336 g128 s", "INT4 GEMV g128 speed vs ggml Q4_0")
for g in (32, 128):
    key = f"polychip int4 matmul M1 N4096 K14336 g{g} s"
    if key in med:
        print(f"INT4 GEMV g{g} weight read: {4096 * 14336 / 2 / med[key] / 1e9:.2f} GB/s = {100 * 4096 * 14336 / 2 / med[key] / bandwidth:.0f}% of read bandwidth")
for k in list(med):
    if k.startswith("polychip attention") and "GFLOP/s" in k:
        print(f"{k}: {100 * med[k] * 1e9 / peak:.0f}% of FMA peak")
for tag in ("nomask-f32", "nomask-f16", "mask-f16"):
    ratio("polychip attention B1 H32/8 Lq2048 Lk2048 D128 GFLOP/s", f"ggml flash_attn_ext {tag} GFLOP/s", f"attention (non-causal) throughput vs ggml {tag}")
    ratio("polychip attention B1 H32/8 Lq2048 Lk2048 D128 causal GFLOP/s", f"ggml flash_attn_ext {tag} GFLOP/s", f"attention (causal) throughput vs ggml {tag}")
if "polychip moe s" in med:
    sys.path.insert(0, here)
    rows, h, f, e, g, t = 512 * 8, 2048, 1024, 64, 32, 512
    w4 = lambda n, k: e * (n * k / 2 + n * k / g * 4)
    fl = lambda fl_, by: max(fl_ / peak, by / bandwidth)
    floor = fl(2 * t * e * h, (t * h + e * h + t * e) * 4) + 2 * fl(2 * rows * f * h, w4(f, h) + t * h * 4 + rows * f * 4) \
        + fl(2 * rows * h * f, w4(h, f) + rows * f * 4 + rows * h * 4)
    print(f"MoE layer: {med['polychip moe s'] * 1e3:.1f} ms vs GEMM floor {floor * 1e3:.1f} ms = {med['polychip moe s'] / floor:.2f}x")
