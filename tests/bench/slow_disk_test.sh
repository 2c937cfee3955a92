#!/usr/bin/env bash
# The slow-disk module (tools/slow_disk.cc) does what the figures measured
# under it rely on: a program run with it pays at least CDE_SLOW_DISK_US for
# every fdatasync (its own bare probe and the store's synced commits alike,
# whether the group-commit writer syncs them or the pipelined one), and what
# it syncs is still written (no commit fails).
# Usage: slow_disk_test.sh MODULE COMMIT_BENCH SCRATCH_DIR
set -euo pipefail
module="$1" bench="$2" scratch="$3"
rm -rf "$scratch"
# 20 ms: far slower than any disk CI runs on, so only the module explains it.
asked_ms=20
out="$(LD_PRELOAD="$module" CDE_SLOW_DISK_US=$((asked_ms * 1000)) "$bench" \
  --fdatasync-samples 10 --seconds 0.3 --concurrency 1 4 \
  --writer group pipelined --data-dir "$scratch")"
rm -rf "$scratch"
printf '%s\n' "$out"
json="$(printf '%s\n' "$out" | tail -n 1)"
field() {  # every value of a numeric JSON field, one per line
  printf '%s' "$json" | grep -o "\"$1\":[0-9.e+-]*" | cut -d: -f2
}
fail=0
check_at_least() {  # NAME VALUE MIN
  if ! awk -v v="$2" -v m="$3" 'BEGIN { exit !(v >= m) }'; then
    echo "FAIL: $1 is $2, expected at least $3" >&2
    fail=1
  fi
}
check_at_least bare_fdatasync_p50_ms "$(field bare_fdatasync_p50_ms)" "$asked_ms"
check_at_least overwrite_fdatasync_p50_ms \
  "$(field overwrite_fdatasync_p50_ms)" "$asked_ms"
levels=0
while read -r p50; do
  check_at_least "a level's commit p50_ms" "$p50" "$asked_ms"
  levels=$((levels + 1))
done < <(field p50_ms)
while read -r errors; do
  if [[ $errors != 0 ]]; then
    echo "FAIL: $errors commits failed" >&2
    fail=1
  fi
done < <(field errors)
if ((levels != 4)); then  # 2 levels, each with both writers
  echo "FAIL: $levels levels reported, expected 4" >&2
  fail=1
fi
exit "$fail"
