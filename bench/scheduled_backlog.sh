#!/bin/bash
# bench/scheduled_backlog.sh BUILD_DIR: does a large backlog of scheduled
# messages slow the delivery of the others?
#
# Starts two brokers (BUILD_DIR/tern-broker, fsync always, fresh data
# directories): "plain", and "backlog", into whose topic "work" it first
# schedules $BACKLOG messages (default 1,000,000, 256 B) six hours ahead with
# `tern pub --delay 6h`. Then runs tern-bench S1 (1 producer, 1 consumer,
# 256 B, 200,000 messages, frames of $BATCH, default 64) on topic "work" of
# each, alternating, $ROUNDS times (default 3), and prints every run and the
# medians. Last, how fast a backlog is appended once it falls due: $DUE
# messages (default 200,000) scheduled 10 s ahead on the plain broker, timed
# from their due time to the last one received by `tern sub`. The brokers
# are stopped by their PIDs at the end.
set -u
BUILD=${1:?usage: bench/scheduled_backlog.sh BUILD_DIR}
BROKER=$BUILD/tern-broker
BENCH=$BUILD/tern-bench
CLI=$BUILD/tern
BACKLOG=${BACKLOG:-1000000}
ROUNDS=${ROUNDS:-3}
BATCH=${BATCH:-64}
DUE=${DUE:-200000}
ARGS="--size 256 --count 200000 --batch $BATCH --window 1000 --prefetch 1000"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tern-scheduled.XXXXXX") || exit 2
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench/broker.sh
. "$(dirname "$0")/broker.sh"

declare -A ADDRESS
for name in plain backlog; do
  mkdir -p "$WORK/$name"
  start_broker always "$WORK/$name" || exit 2
  PIDS+=("$BROKER_PID")
  ADDRESS[$name]=127.0.0.1:$PORT
done

echo "scheduling $BACKLOG messages of 256 B 6 h ahead..." >&2
started=$(date +%s.%N)
payload=$(head -c 256 /dev/zero | tr '\0' x)
yes "$payload" | head -n "$BACKLOG" |
  "$CLI" --server "${ADDRESS[backlog]}" pub --delay 6h work 2>"$WORK/pub.log" ||
  { cat "$WORK/pub.log" >&2; exit 1; }
ended=$(date +%s.%N)
awk -v n="$BACKLOG" -v s="$started" -v e="$ended" \
  'BEGIN { printf "scheduled %d in %.1f s (%.0f msgs/s, tern pub, frames of 100)\n", n, e - s, n / (e - s) }'
"$CLI" --server "${ADDRESS[backlog]}" topics info work | grep scheduled

declare -A PUB DEL P50 P99
for round in $(seq 1 "$ROUNDS"); do
  for name in plain backlog; do
    out="$WORK/$name-$round.json"
    # shellcheck disable=SC2086  # $ARGS is a word list
    "$BENCH" --server "${ADDRESS[$name]}" --topic work --fixed-topic $ARGS \
      --json --quiet >"$out" 2>"$WORK/bench.log" ||
      { cat "$WORK/bench.log" >&2; exit 1; }
    PUB[$name]+="$(json "$out" publish_msgs_per_s) "
    DEL[$name]+="$(json "$out" deliver_msgs_per_s) "
    P50[$name]+="$(json "$out" e2e_us p50) "
    P99[$name]+="$(json "$out" e2e_us p99) "
    echo "round $round, $name: published $(json "$out" publish_msgs_per_s)/s," \
      "delivered $(json "$out" deliver_msgs_per_s)/s, e2e p50" \
      "$(json "$out" e2e_us p50) us, p99 $(json "$out" e2e_us p99) us"
  done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
printf '%-8s %12s %12s %10s %10s\n' broker "publish/s" "delivered/s" "e2e p50" "p99"
for name in plain backlog; do
  printf '%-8s %12s %12s %10s %10s\n' "$name" \
    "$(echo "${PUB[$name]}" | median)" "$(echo "${DEL[$name]}" | median)" \
    "$(echo "${P50[$name]}" | median)" "$(echo "${P99[$name]}" | median)"
done
"$CLI" --server "${ADDRESS[backlog]}" topics info work | grep scheduled

echo "scheduling $DUE messages 10 s ahead..." >&2
"$CLI" --server "${ADDRESS[plain]}" sub due --subscription s --from latest \
  --timeout 0.5 >/dev/null 2>&1 # creates the subscription
due=$(($(date +%s%N) / 1000000 + 10000))
yes "$payload" | head -n "$DUE" |
  "$CLI" --server "${ADDRESS[plain]}" pub --delay 10s due 2>"$WORK/pub.log" ||
  { cat "$WORK/pub.log" >&2; exit 1; }
"$CLI" --server "${ADDRESS[plain]}" sub due --subscription s --count "$DUE" \
  --timeout 60 >/dev/null 2>"$WORK/sub.log" ||
  { cat "$WORK/sub.log" >&2; exit 1; }
done_ms=$(($(date +%s%N) / 1000000))
awk -v n="$DUE" -v ms=$((done_ms - due)) \
  'BEGIN { printf "%d falling due at once: all received %.2f s after their due time (%.0f msgs/s)\n", n, ms / 1000, n / (ms / 1000) }'
