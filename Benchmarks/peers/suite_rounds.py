"""`polychip bench`'s default suite on cpu:0 against PoCL (opencl:0), several rounds, one line
per kernel with the median of the per-round ratios.

    python3 Benchmarks/peers/suite_rounds.py [ROUNDS] [POLYCHIP] [--min-time S] [--kernel K ...]

Run from the repository root. Each round is one `polychip bench --device cpu --device opencl:0`
process, which times every kernel on cpu:0 and then on PoCL back to back, so each kernel's
ratio PoCL/cpu:0 is paired within the round. Medians per call (wall) and the process CPU time
per call are printed; on a shared host the median of the per-round wall ratios is the figure
to quote, with the CPU-time ratio beside it (insensitive to time slicing).
"""
import json
import os
import statistics
import subprocess
import sys
import time

args = sys.argv[1:]
min_time = "0.5"
kernels = []
if "--min-time" in args:
    i = args.index("--min-time"); min_time = args[i + 1]; del args[i:i + 2]
while "--kernel" in args:
    i = args.index("--kernel"); kernels += ["--kernel", args[i + 1]]; del args[i:i + 2]
rounds = int(args[0]) if args else 3
polychip = args[1] if len(args) > 1 else ".build/release/polychip"

ratios, cpu_ratios, ours, peer = {}, {}, {}, {}
for r in range(rounds):
    load = os.getloadavg()[0]
    out = subprocess.run([polychip, "bench", "--device", "cpu", "--device", "opencl:0", *kernels,
                          "--min-time", min_time, "--no-verify", "--json"],
                         capture_output=True, text=True, check=True).stdout
    rows = json.loads(out)
    by = {}
    for row in rows:
        by.setdefault((row["kernel"], row["shape"]), {})[row["device"]] = row
    line = []
    for key, d in by.items():
        c, o = d.get("cpu:0"), d.get("opencl:0")
        if not (c and o):
            continue
        ratios.setdefault(key, []).append(o["medianSeconds"] / c["medianSeconds"])
        if c.get("cpuSeconds") and o.get("cpuSeconds"):
            cpu_ratios.setdefault(key, []).append(o["cpuSeconds"] / c["cpuSeconds"])
        ours.setdefault(key, []).append(c["medianSeconds"])
        peer.setdefault(key, []).append(o["medianSeconds"])
        line.append(f"{key[0]} {o['medianSeconds'] / c['medianSeconds']:.2f}")
    print(f"{time.strftime('%H:%M:%S')} round {r + 1} (load {load:.2f} -> {os.getloadavg()[0]:.2f}): " + ", ".join(line), flush=True)

print(f"\n{rounds} rounds; PoCL / cpu:0, median of per-round ratios (wall; CPU time)")
for key in ratios:
    med = statistics.median(ratios[key])
    cpu = statistics.median(cpu_ratios[key]) if key in cpu_ratios else float("nan")
    print(f"  {key[0]:18s} {key[1]:52s} cpu:0 {statistics.median(ours[key]) * 1e3:9.3f} ms  "
          f"PoCL {statistics.median(peer[key]) * 1e3:9.3f} ms  {med:5.2f}x (min {min(ratios[key]):.2f}x; CPU time {cpu:.2f}x)")
