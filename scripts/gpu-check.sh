#!/usr/bin/env bash
# Runs the OpenCL backend's GPU checks (issue 4) on a machine with an NVIDIA GPU and
# NVIDIA's OpenCL driver, without Swift: conformance, the GPU target benchmarks, the
# GEMM tile sweep, the PyTorch peer, calibrate + bench --validate.
#
#   scripts/gpu-check.sh BIN_DIR OUT_DIR [steps...]
#
# BIN_DIR holds a `polychip` built with
#   swift build -c release --static-swift-stdlib --product polychip
# (stripped, optionally gzipped as polychip.gz) and the non-system shared libraries it
# needs (ldd); steps default to all of:
#   info conform torch targets sweep suite validate
# (also: gvsweep -- INT4 GEMV tiles; int4 -- the INT4 GEMV targets alone)
# Every step has a time limit; logs and JSON land in OUT_DIR (at most 8 files).
set -u
BIN=$(cd "$1" && pwd); OUT_DIR=$2; shift 2
if [ -f "$BIN/polychip.gz" ]; then   # carried compressed (the device's working-tree limit)
  mkdir -p /tmp/polychip-bin && cp "$BIN"/*.so* /tmp/polychip-bin/ 2>/dev/null
  gunzip -c "$BIN/polychip.gz" > /tmp/polychip-bin/polychip && chmod +x /tmp/polychip-bin/polychip
  BIN=/tmp/polychip-bin
fi
steps=${*:-info conform torch targets sweep suite validate}
mkdir -p "$OUT_DIR" /tmp/icd
# NVIDIA's ICD is not registered by default on the lent machines; register it alone so
# opencl:0 is the GPU (PoCL stays out of this run).
echo libnvidia-opencl.so.1 > /tmp/icd/nvidia.icd
export OCL_ICD_VENDORS=/tmp/icd LD_LIBRARY_PATH="$BIN:${LD_LIBRARY_PATH:-}"
export POLYCHIP_CACHE_DIR=/tmp/polychip-cache
P="$BIN/polychip"
LOG="$OUT_DIR/log.txt"
# Headers, stderr and exit codes go to the log and stderr; a command's stdout goes to the
# log and stdout (so `run ... > FILE.json` stays valid JSON).
say() { echo "### $(date +%T) $*" | tee -a "$LOG" >&2; }
run() {
  local secs=$1; shift; say "\$ $*"
  timeout "$secs" "$@" 2> >(tee -a "$LOG" >&2) | tee -a "$LOG"
  echo "(exit ${PIPESTATUS[0]})" | tee -a "$LOG" >&2
}
has() { [[ " $steps " == *" $1 "* ]]; }

if has info; then
  run 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  run 30 "$P" devices
fi
if has conform; then
  run 300 "$P" conform --device opencl:0 --json "$OUT_DIR/conform.jsonl" --markdown "$OUT_DIR/support.md"
fi
if has torch; then
  run 120 python3 "$(dirname "$0")/../Benchmarks/peers/torch_gpu.py" > "$OUT_DIR/torch.json"
fi
B=(bench --device opencl:0 --min-time 1)
if has targets; then   # one JSON array per line
  {
    run 120 "$P" "${B[@]}" --json --kernel matmul --shape M=8192,N=8192,K=8192 | tr -d '\n'; echo
    for g in 32 128; do
      run 90 "$P" "${B[@]}" --json --kernel int4-matmul --shape M=1,N=16384,K=16384,G=$g | tr -d '\n'; echo
    done
    run 180 "$P" "${B[@]}" --json --kernel attention --shape B=8,Hq=32,Hkv=32,Lq=4096,Lk=4096,D=128,causal=1 | tr -d '\n'; echo
    run 90 "$P" "${B[@]}" --json --kernel attention --shape B=8,Hq=32,Hkv=8,Lq=1,Lk=8192,D=128,causal=1 | tr -d '\n'; echo
  } > "$OUT_DIR/targets.jsonl"
fi
if has int4; then     # the INT4 GEMV targets alone
  for g in 32 128; do
    run 90 "$P" "${B[@]}" --json --kernel int4-matmul --shape M=1,N=16384,K=16384,G=$g | tr -d '\n'; echo
  done > "$OUT_DIR/int4.jsonl"
fi
if has sweep; then
  # GEMM tile sweep: TM/TN/TK/WPTM/WPTN per line (POLYCHIP_OPENCL_TUNING keys).
  for t in ${SWEEP:-"tm=128,tn=128,tk=16,wptm=8,wptn=8" "tm=128,tn=128,tk=8,wptm=8,wptn=8" "tm=64,tn=128,tk=16,wptm=8,wptn=8" "tm=128,tn=64,tk=16,wptm=8,wptn=8" "tm=64,tn=64,tk=16,wptm=4,wptn=4"}; do
    POLYCHIP_OPENCL_TUNING=$t run 90 "$P" "${B[@]}" --no-verify --min-time 0.5 --kernel matmul --shape M=8192,N=8192,K=8192
  done
fi
if has gvsweep; then
  # INT4 GEMV sweep: gvWG/gvRows (POLYCHIP_OPENCL_TUNING keys).
  for t in ${GV_SWEEP:-"gvWG=128,gvRows=4" "gvWG=64,gvRows=4" "gvWG=256,gvRows=4" "gvWG=128,gvRows=8" "gvWG=64,gvRows=8" "gvWG=128,gvRows=2"}; do
    POLYCHIP_OPENCL_TUNING=$t run 60 "$P" "${B[@]}" --no-verify --min-time 0.5 --kernel int4-matmul --shape M=1,N=16384,K=16384,G=32
  done
fi
if has suite; then
  run 300 "$P" bench --device opencl:0 --json > "$OUT_DIR/suite.json"
fi
if has validate; then
  run 300 "$P" calibrate --device opencl:0 --out "$OUT_DIR/h100-opencl.json"
  run 300 "$P" bench --validate --device opencl:0 --profile "$OUT_DIR/h100-opencl.json"
fi
say done
