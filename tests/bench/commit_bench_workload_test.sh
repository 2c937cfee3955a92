#!/usr/bin/env bash
# cde-commit-bench commits the rows its workloads say: `step` 4 rows per
# transition (issue 18's typical transition), `noop-saga` the 9 rows in 4
# transitions of a three-step noop saga as the engine writes it (3, 1, 1, 4).
# Usage: commit_bench_workload_test.sh COMMIT_BENCH SCRATCH_DIR
set -euo pipefail
bench="$1" scratch="$2"
fail=0
for spec in "step 4.0 4.0" "noop-saga 2.2 2.3"; do
  read -r workload low high <<< "$spec"
  rm -rf "$scratch"
  out="$("$bench" --workload "$workload" --no-sync --seconds 0.3 \
    --concurrency 1 8 --fdatasync-samples 5 --data-dir "$scratch")"
  rm -rf "$scratch"
  printf '%s\n' "$out"
  json="$(printf '%s\n' "$out" | tail -n 1)"
  # Rows per transition at each level: keys/s over transitions/s.
  paste <(printf '%s' "$json" | grep -o '"keys_per_s":[0-9.e+-]*' | cut -d: -f2) \
        <(printf '%s' "$json" | grep -o '"transitions_per_s":[0-9.e+-]*' | cut -d: -f2) |
    while read -r keys transitions; do
      if ! awk -v k="$keys" -v t="$transitions" -v lo="$low" -v hi="$high" \
          'BEGIN { r = k / t; exit !(t > 0 && r >= lo - 1e-9 && r <= hi + 1e-9) }'; then
        echo "FAIL: $workload wrote $keys rows/s in $transitions transitions/s," \
             "expected $low to $high rows per transition" >&2
        exit 1
      fi
    done || fail=1
  if printf '%s' "$json" | grep -o '"errors":[0-9]*' | grep -qv '"errors":0$'; then
    echo "FAIL: $workload: commits failed" >&2
    fail=1
  fi
done
exit "$fail"
