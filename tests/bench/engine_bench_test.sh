#!/usr/bin/env bash
# cde-bench's engine figures count what the engine did: a noop saga of
# three steps commits four transitions (its start and each step's outcome),
# so a run of N sagas reports 4 N + 1 commits (the workflow's registration
# is the one more), no more groups than commits, every saga finished
# without an error, and the loop thread's CPU per commit as a positive
# figure, over the whole run and over its steady part (a fifth of the sagas
# finished to four fifths: sagas/s and the loop's CPU per commit
# positive, its user and system parts not negative: the kernel splits a
# thread's time at its clock ticks, so a short window may see either
# part stand still); with either writer, synced or not. The group-commit
# writer also times a cycle's parts: each group's write and the callers'
# first transition back after it, positive; and, once it wrote early, its
# CPU per transition written early, positive.
# Usage: engine_bench_test.sh CDE_BENCH SCRATCH_DIR
set -euo pipefail
bench="$1" scratch="$2"
sagas=300
fail=0
field() {  # a numeric field's value in the run's JSON line ($json)
  printf '%s' "$json" | grep -o "\"$1\":[0-9.e+-]*" | cut -d: -f2
}
expect() {  # WHAT ACTUAL AWK-CONDITION-ON-v
  if ! awk -v v="$2" "BEGIN { exit !($3) }"; then
    echo "FAIL [$flags]: $1 is $2, expected $3" >&2
    fail=1
  fi
}
for flags in "" "--pipeline" "--no-sync"; do
  rm -rf "$scratch"
  # shellcheck disable=SC2086  # flags are words
  out="$("$bench" --workload noop --sagas "$sagas" --concurrency 16 \
    --wal-spare-mb 0 --data-dir "$scratch" $flags)"
  rm -rf "$scratch"
  printf '%s\n' "$out"
  json="$(printf '%s\n' "$out" | tail -n 1)"
  expect sagas "$(field sagas)" "v == $sagas"
  expect errors "$(field errors)" "v == 0"
  expect commits "$(field commits)" "v == 4 * $sagas + 1"
  expect commit_groups "$(field commit_groups)" "v >= 1 && v <= 4 * $sagas + 1"
  expect loop_cpu_us_per_commit "$(field loop_cpu_us_per_commit)" "v > 0"
  expect steady_sagas_per_s "$(field steady_sagas_per_s)" "v > 0"
  expect steady_loop_cpu_us_per_commit \
    "$(field steady_loop_cpu_us_per_commit)" "v > 0"
  expect steady_loop_user_us_per_commit \
    "$(field steady_loop_user_us_per_commit)" "v >= 0"
  expect steady_loop_system_us_per_commit \
    "$(field steady_loop_system_us_per_commit)" "v >= 0"
  if [[ "$flags" != "--pipeline" ]]; then
    expect commit_write_us "$(field commit_write_us)" "v > 0"
    expect commit_first_return_us "$(field commit_first_return_us)" "v > 0"
    # Its callers are told within the write (at the sync, or at its end).
    expect commit_tell_us "$(field commit_tell_us)" \
      "v > 0 && v <= $(field commit_write_us)"
    if [[ "$(field commit_early_writes)" -gt 0 ]]; then
      expect writer_early_cpu_us_per_transition \
        "$(field writer_early_cpu_us_per_transition)" "v > 0"
    fi
  fi
done
exit "$fail"
