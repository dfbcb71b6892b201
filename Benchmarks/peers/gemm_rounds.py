"""Paired GEMM rounds against OpenBLAS for a while, one line per round.

    python3 Benchmarks/peers/gemm_rounds.py [SECONDS] [POLYCHIP]

Run from the repository root. Each round times `polychip bench --kernel matmul` (2048^3 f32)
on cpu:0 with every worker. It then times OpenBLAS SGEMM through numpy
(Benchmarks/peers/numpy_sgemm.py). Last, it times ours with one thread pinned by `taskset` to
core 0 and then to core 1, which shows a core that is slower than the other, and OpenBLAS with
one thread (OPENBLAS_NUM_THREADS=1) pinned to core 0. Medians per call, in ms. On a shared
host, the median of the per-round ratios is the figure to quote.
"""
import json
import os
import subprocess
import sys
import time

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 600
polychip = sys.argv[2] if len(sys.argv) > 2 else ".build/release/polychip"


def ours(device, prefix=()):
    out = subprocess.run([*prefix, polychip, "bench", "--device", device, "--kernel", "matmul",
                          "--min-time", "0.6", "--no-verify", "--json"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]["medianSeconds"] * 1e3


def openblas(prefix=(), env=None):
    out = subprocess.run([*prefix, "python3", "Benchmarks/peers/numpy_sgemm.py"],
                         capture_output=True, text=True, check=True, env={**os.environ, **(env or {})}).stdout
    return json.loads(out)["seconds"] * 1e3


def summary(name, ratios):
    ratios = sorted(ratios)
    if ratios:
        n = len(ratios)
        print(f"{name}: {n} rounds, median ratio {ratios[n // 2]:.3f}, interquartile "
              f"{ratios[n // 4]:.3f}-{ratios[3 * n // 4]:.3f}, {sum(r >= 1 for r in ratios)} >= 1.0")


ratios, ratios1 = [], []
end = time.time() + seconds
while time.time() < end:
    a, b = ours("cpu"), openblas()
    c0 = ours("cpu:threads=1,bind=0", ("taskset", "-c", "0"))
    c1 = ours("cpu:threads=1,bind=0", ("taskset", "-c", "1"))
    b1 = openblas(("taskset", "-c", "0"), {"OPENBLAS_NUM_THREADS": "1"})
    ratios.append(b / a)
    ratios1.append(b1 / c0)
    print(f"{time.strftime('%H:%M:%S')} ours2 {a:.1f} blas2 {b:.1f} ratio {b / a:.3f} | "
          f"ours1 core0 {c0:.1f} core1 {c1:.1f} blas1 core0 {b1:.1f} ratio {b1 / c0:.3f}  load {os.getloadavg()[0]:.2f}", flush=True)
summary("2 threads, OpenBLAS / ours", ratios)
summary("1 thread (core 0), OpenBLAS / ours", ratios1)
