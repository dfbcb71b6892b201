"""PyTorch peer figures on a CUDA GPU for the OpenCL backend's GPU targets (issue 4), as JSON.

    python3 Benchmarks/peers/torch_gpu.py [--quick]

Shapes match `scripts/gpu-check.sh`: f32 GEMM 8192^3 with TF32 off, causal SDPA in f32
(B=8, H=32, L=4096, D=128), device-to-device copy bandwidth (bytes read + written), and a
bf16 GEMV N=K=16384 for context (PyTorch has no plain W4A16 GEMV with our layout).
Timing: CUDA events, 3 warm-ups, median of >= 10 calls.
"""
import json
import statistics
import sys

import torch

quick = "--quick" in sys.argv
dev = torch.device("cuda")
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_float32_matmul_precision("highest")


def time_ms(fn, reps=10, warm=3):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    return statistics.median(ts), min(ts), max(ts)


rows = []
g = torch.Generator(device=dev).manual_seed(1)

n = 2048 if quick else 8192
a = torch.randn(n, n, device=dev, generator=g)
b = torch.randn(n, n, device=dev, generator=g)
med, lo, hi = time_ms(lambda: torch.matmul(a, b.t()))
rows.append({"name": "matmul f32 (TF32 off)", "shape": f"M=N=K={n}", "ms": med, "min_ms": lo, "max_ms": hi,
             "tflops": 2 * n**3 / med / 1e9})
del a, b

B, H, L, D = (2, 8, 1024, 128) if quick else (8, 32, 4096, 128)
q = torch.randn(B, H, L, D, device=dev, generator=g)
k = torch.randn(B, H, L, D, device=dev, generator=g)
v = torch.randn(B, H, L, D, device=dev, generator=g)
sdpa = torch.nn.functional.scaled_dot_product_attention
med, lo, hi = time_ms(lambda: sdpa(q, k, v, is_causal=True))
# causal: QK^T and PV over the lower triangle incl. diagonal, 2 FLOPs per MAC
flops = 2 * 2 * B * H * D * (L * (L + 1) / 2)
rows.append({"name": "sdpa causal f32", "shape": f"B={B},H={H},L={L},D={D}", "ms": med, "min_ms": lo, "max_ms": hi,
             "tflops": flops / med / 1e9})
del q, k, v

nbytes = (256 if quick else 2048) * 2**20
src = torch.empty(nbytes // 4, device=dev)
src.uniform_(generator=g)
dst = torch.empty_like(src)
med, lo, hi = time_ms(lambda: dst.copy_(src))
rows.append({"name": "d2d copy", "shape": f"{nbytes // 2**20} MiB", "ms": med, "min_ms": lo, "max_ms": hi,
             "gbps": 2 * nbytes / med / 1e6})
del src, dst

nk = 4096 if quick else 16384
w = torch.randn(nk, nk, device=dev, generator=g).to(torch.bfloat16)
x = torch.randn(1, nk, device=dev, generator=g).to(torch.bfloat16)
med, lo, hi = time_ms(lambda: torch.matmul(x, w.t()))
rows.append({"name": "gemv bf16", "shape": f"M=1,N=K={nk}", "ms": med, "min_ms": lo, "max_ms": hi,
             "gbps": (nk * nk * 2 + nk * 4) / med / 1e6})

print(json.dumps({"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                  "cuda": torch.version.cuda, "rows": rows}, indent=1))
