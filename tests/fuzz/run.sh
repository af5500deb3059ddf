#!/bin/sh
# Runs libFuzzer targets for a bounded time each (`make fuzz` calls this).
#
#   tests/fuzz/run.sh BUILD SECONDS TARGET...
#
# For each target: first the known crashers in tests/fuzz/regressions/TARGET
# are replayed (each must now pass), then the fuzzer runs for SECONDS on a
# working corpus in BUILD/corpus/TARGET, seeded read-only from
# tests/fuzz/corpus/TARGET. Crash inputs land in BUILD/artifacts/TARGET/; copy
# one to tests/fuzz/regressions/TARGET/ to keep it. session_fuzz gets the
# broker of the same build, whose stderr is kept as
# BUILD/artifacts/session_fuzz/broker.stderr.
set -u
build=$1
seconds=$2
shift 2

export TERN_BROKER="$build/tern-broker"
failed=0
summary=""
for target in "$@"; do
  bin="$build/fuzz/$target"
  work="$build/corpus/$target"
  artifacts="$build/artifacts/$target"
  log="$artifacts/fuzz.log"
  mkdir -p "$work" "$artifacts"
  export TERN_BROKER_LOG="$artifacts/broker.stderr"

  regressions="tests/fuzz/regressions/$target"
  if [ -d "$regressions" ] && [ -n "$(ls -A "$regressions")" ]; then
    for input in "$regressions"/*; do
      if ! "$bin" "$input" >"$artifacts/regressions.log" 2>&1; then
        line="$target: regression $(basename "$input") still fails:"
        echo "$line"
        grep -E "runtime error|ERROR: |^$target: " "$artifacts/regressions.log" |
          grep -v "broker .* pid" | head -5 | sed 's/^/    /'
        summary="$summary$line see $artifacts/regressions.log
"
        failed=1
      fi
    done
  fi

  echo "$target: fuzzing for $seconds s"
  # Only this run's findings count: crash files of earlier runs stay in the
  # folder (until copied to tests/fuzz/regressions) but must not fail it.
  stamp="$artifacts/.started"
  touch "$stamp"
  "$bin" -max_total_time="$seconds" -timeout=30 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$work" "tests/fuzz/corpus/$target" \
    >"$log" 2>&1
  code=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  corpus=$(ls "$work" | wc -l)
  crashes=$(find "$artifacts" -maxdepth 1 -newer "$stamp" \
    \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
    -o -name 'oom-*' -o -name 'slow-unit-*' \) | wc -l)
  line="$target: ${runs:-?} executions in $seconds s, working corpus $corpus inputs, $crashes crash inputs, exit $code"
  echo "$line"
  summary="$summary$line
"
  if [ "$code" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    tail -60 "$log"
    failed=1
  fi
done
echo "--- fuzz summary ---"
printf '%s' "$summary"
exit $failed
