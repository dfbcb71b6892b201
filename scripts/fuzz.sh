#!/usr/bin/env bash
# Builds the libFuzzer targets in Fuzz/ (address sanitizer + libFuzzer) and runs each for a
# bounded time. Crashers land in Fuzz/regressions/<target>/ — commit them: the test suite
# replays every file there (Tests/PolychipCoreTests/FuzzRegressionTests.swift).
#   scripts/fuzz.sh [SECONDS_PER_TARGET=60] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../Fuzz"
secs=${1:-60}; shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(FuzzNumPy FuzzSelector FuzzProfile FuzzValidation FuzzCheckpoint)
for t in "${targets[@]}"; do
  # lld: gold crashes (internal error in its DWARF reader) linking these binaries.
  swift build -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld --product "$t" >/dev/null
done
for t in "${targets[@]}"; do
  corpus=".build/corpus/$t"; mkdir -p "$corpus" "regressions/$t"
  cp -n seeds/"$t"/* "$corpus"/ 2>/dev/null || true
  echo "== $t for ${secs}s"
  set +e
  ".build/release/$t" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="regressions/$t/" "$corpus" 2>&1 |
    grep -E "^(#[0-9]+.*DONE|Done|==[0-9]+==ERROR|SUMMARY|stat::number_of_executed_units|stat::peak_rss_mb|artifact_prefix|Test unit written)"
  status=${PIPESTATUS[0]}
  set -e
  echo "== $t exit $status"
done
