#!/usr/bin/env bash
# bench/replay-vs-live.sh BUILD_DIR [RUNS]: does a big replay hurt everyone
# else? Against BUILD_DIR/tern-broker (--fsync never, a fresh data dir):
#
#   replay: tern-bench --replay publishes 3,000,000 msgs of 256 B (batch 64)
#           to one topic, then its consumer reads them all back from the
#           store (the broker's in-memory tail holds only the last 32 MiB);
#   live:   as soon as that publish is done, a second tern-bench sends
#           5,000 msgs/s of 256 B (batch 1) through another topic for 3 s,
#           while the replay runs, and reports their end-to-end latency.
#
# Prints one line per run: replay msgs/s, live p50/p99/p99.9 in µs. Uses this
# checkout's tern-bench and tern (so an older broker can be measured with the
# same tools). Exit status 0 if no run lost a message.
set -u

BROKER=$1/tern-broker
RUNS=${2:-3}
HERE=$(dirname "$0")
BENCH=$HERE/../build/tern-bench
TERN=$HERE/../build/tern
for bin in "$BROKER" "$BENCH" "$TERN"; do
  [ -x "$bin" ] || { echo "replay-vs-live.sh: $bin not found" >&2; exit 2; }
done
# shellcheck source=bench/broker.sh
. "$HERE/broker.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tern-replay.XXXXXX") || exit 2
BROKER_PID=
REPLAY_PID=
cleanup() {
  [ -n "$REPLAY_PID" ] && kill "$REPLAY_PID" 2>/dev/null
  [ -n "$BROKER_PID" ] && stop_broker >/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

COUNT=3000000
FAILED=0
for run in $(seq 1 "$RUNS"); do
  rm -rf "$WORK/data"
  start_broker never "$WORK" || exit 1
  "$BENCH" --server "127.0.0.1:$PORT" --topic history --size 256 \
    --count $COUNT --batch 64 --replay --quiet --json >"$WORK/replay.json" &
  REPLAY_PID=$!
  # The live stream starts once the whole history is published (bounded).
  for _ in $(seq 1 600); do
    next=$("$TERN" --server "127.0.0.1:$PORT" topics list 2>/dev/null |
      sed -n 's/^history[^\t]*\tfirst offset [0-9]*\tnext offset \([0-9]*\).*/\1/p')
    [ "${next:-0}" -ge $COUNT ] && break
    sleep 0.1
  done
  "$BENCH" --server "127.0.0.1:$PORT" --topic live --size 256 --rate 5000 \
    --duration 3 --batch 1 --quiet --json >"$WORK/live.json" || FAILED=1
  wait "$REPLAY_PID" || FAILED=1
  REPLAY_PID=
  stop_broker >/dev/null
  printf 'run %d: replay %s msgs/s, live p50 %s p99 %s p99.9 %s us\n' "$run" \
    "$(json "$WORK/replay.json" deliver_msgs_per_s)" \
    "$(json "$WORK/live.json" e2e_us p50)" \
    "$(json "$WORK/live.json" e2e_us p99)" \
    "$(json "$WORK/live.json" e2e_us p999)"
done
exit $FAILED
