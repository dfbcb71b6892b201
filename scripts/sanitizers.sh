#!/usr/bin/env bash
# Runs the whole test suite under Thread Sanitizer and under Address Sanitizer (with
# LeakSanitizer), each in its own build folder (.build-tsan, .build-asan) so the normal .build
# stays untouched, and fails on any sanitizer report.
#   scripts/sanitizers.sh [thread] [address]
#
# Every process (the test bundle and the `polychip` binaries the CLI tests start) writes its
# reports to .build-<tsan|asan>/reports/report.<pid>; the test output goes to .build-<tsan|asan>.log.
# Leaks are checked against scripts/lsan-suppressions.txt (leaks inside XCTest, Foundation's
# Process and the OpenCL driver stack, none in Polychip code; the file says why for each).
# Exit status: 0 only when every run passes and no report was written.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
kinds=("$@"); [ ${#kinds[@]} -gt 0 ] || kinds=(thread address)
status=0
for k in "${kinds[@]}"; do
  case "$k" in
    thread) short=tsan ;;
    address) short=asan ;;
    *) echo "unknown sanitizer '$k' (thread or address)" >&2; exit 2 ;;
  esac
  build=".build-$short" log=".build-$short.log" reports="$root/.build-$short/reports"
  rm -rf "$reports"; mkdir -p "$reports"
  echo "== $(date -u +%FT%TZ) swift test --sanitize=$k --scratch-path $build"
  start=$(date +%s)
  # allocator_may_return_null: tests that provoke out-of-memory need the sanitizer allocators
  # to return NULL, not abort. log_path: one report file per process, subprocesses included.
  common="allocator_may_return_null=1 log_path=$reports/report"
  TSAN_OPTIONS="$common ${TSAN_OPTIONS:-}" \
  ASAN_OPTIONS="$common ${ASAN_OPTIONS:-}" \
  LSAN_OPTIONS="suppressions=$root/scripts/lsan-suppressions.txt print_suppressions=1 ${LSAN_OPTIONS:-}" \
    swift test --sanitize="$k" --scratch-path "$build" > "$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  grep -hE "Test run with|Executed [0-9]+ tests?" "$log" | sort | uniq -c
  # Reports: in the report files, and in the log in case a process did not get log_path.
  pattern="WARNING: ThreadSanitizer|ERROR: AddressSanitizer|ERROR: LeakSanitizer"
  found=$(cat "$log" "$reports"/* 2>/dev/null | grep -cE "$pattern")
  cat "$reports"/* 2>/dev/null | grep -hE "^SUMMARY: " | sort | uniq -c | head -40
  # Leaks hidden by scripts/lsan-suppressions.txt, summed over processes by pattern.
  for f in "$reports"/*; do [ -f "$f" ] && awk '/Suppressions used:/ {p=1; next} /^-+$/ {p=0} p && $1 ~ /^[0-9]+$/' "$f"; done |
    awk '{n[$3] += $1; b[$3] += $2} END {for (t in n) printf "   suppressed leak:%-28s %5d leaks %9d bytes\n", t, n[t], b[t]}'
  echo "== $k: exit $rc, $found sanitizer report(s), $secs s (log: $log, reports: ${reports#"$root"/})"
  [ "$rc" -eq 0 ] && [ "$found" -eq 0 ] || status=1
done
exit $status
