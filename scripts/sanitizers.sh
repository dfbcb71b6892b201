#!/usr/bin/env bash
# Runs the whole test suite under Thread Sanitizer and Address Sanitizer, each in its own
# build folder so the normal .build stays untouched. Prints each run's closing line.
#   scripts/sanitizers.sh [thread] [address]
set -uo pipefail
cd "$(dirname "$0")/.."
kinds=("$@"); [ ${#kinds[@]} -gt 0 ] || kinds=(thread address)
status=0
for k in "${kinds[@]}"; do
  echo "== swift test --sanitize=$k"
  start=$(date +%s)
  # Tests that provoke out-of-memory need the sanitizer allocators to return NULL, not abort.
  TSAN_OPTIONS="allocator_may_return_null=1 ${TSAN_OPTIONS:-}" ASAN_OPTIONS="allocator_may_return_null=1 ${ASAN_OPTIONS:-}" \
    swift test --sanitize="$k" --scratch-path ".build-$k" > ".build-$k.log" 2>&1
  rc=$?
  grep -E "Test run with|WARNING: ThreadSanitizer|ERROR: AddressSanitizer|SUMMARY" ".build-$k.log" | sort | uniq -c | head -20
  echo "== $k: exit $rc in $(( $(date +%s) - start )) s (log: .build-$k.log)"
  [ $rc -eq 0 ] || status=1
done
exit $status
