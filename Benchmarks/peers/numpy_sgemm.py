"""Peer for the GEMM target: OpenBLAS SGEMM through numpy, median wall and CPU time per call.

    python3 Benchmarks/peers/numpy_sgemm.py [N] [--threads T]
(OpenBLAS threads: OPENBLAS_NUM_THREADS, default = all cores.)
"""
import json
import sys
import time

import numpy as np

n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 2048
rng = np.random.default_rng(1)
a = rng.random((n, n), dtype=np.float32)
b = rng.random((n, n), dtype=np.float32)
a @ b
a @ b
walls, cpus = [], []
start = time.perf_counter()
while len(walls) < 5 or (time.perf_counter() - start < 1.0 and len(walls) < 200):
    c0, t0 = time.process_time(), time.perf_counter()
    a @ b
    walls.append(time.perf_counter() - t0)
    cpus.append(time.process_time() - c0)
walls.sort()
cpus.sort()
w, c = walls[len(walls) // 2], cpus[len(cpus) // 2]
flops = 2.0 * n * n * n
print(json.dumps({"name": f"numpy sgemm {n}^3", "seconds": w, "gflops": flops / w / 1e9,
                  "cpuSeconds": c, "gflopsPerCpuSecond": flops / c / 1e9,
                  "blas": np.__config__.CONFIG["Build Dependencies"]["blas"].get("openblas configuration", "")}))
