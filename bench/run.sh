#!/usr/bin/env bash
# bench/run.sh BUILD_DIR: tern-bench's standard scenarios, each against a
# broker of its own, with --fsync always and with --fsync never.
#
# For every (fsync, scenario) pair it starts BUILD_DIR/tern-broker on a free
# loopback port with a fresh data directory, runs BUILD_DIR/tern-bench --json,
# reads the broker's peak RSS (VmHWM) just before stopping it with SIGTERM, and
# removes the directory. Then it prints one table.
#
#   S1      work queue: 1 producer, 1 consumer, 256 B, 200,000 msgs
#   S1 4K   the same with 4 KiB payloads, 50,000 msgs
#   S1 b1   S1 publishing one message per frame, as peerbench does
#   S2      fan-out: 1 producer, 4 subscriptions x 1 consumer, 256 B, 100,000
#   S3      latency: 1 producer paced at 5,000 msgs/s for 10 s, 256 B, batch 1
#   S4      many clients: 8 producers, 8 consumers, 8 topics, 256 B, 200,000
#
# All with window 1000, prefetch 1000 and an ack per message (the client merges
# them into ranges).
# S1, S2 and S4 publish frames of $BATCH messages.
#
# Environment: BENCH_QUICK=1 shortens S3 to 3 s; BENCH_FSYNC="never" runs one
# policy only; BENCH_ONLY=PREFIX runs the scenarios whose name starts with it
# (e.g. "S3"); BENCH_OUT=DIR keeps each run's JSON there, as
# "SCENARIO-FSYNC.json" with "scenario" and "fsync" added in front, next to
# its latency distributions (tern-bench --latency-out, likewise tagged) as
# "SCENARIO-FSYNC.latency.json": bench/plot draws them. BENCH_TLS=1 runs
# over TLS, with a throwaway self-signed certificate (EC P-256) made by the
# openssl command for the run. BENCH_SCRAPE=SECONDS serves HTTP and GETs
# /metrics every SECONDS during each run (the cost of being watched).
# Exit status 0 if every run passed its loss/duplicate check.
set -u

BUILD=${1:-build}
BROKER=$BUILD/tern-broker
BENCH=$BUILD/tern-bench
BATCH=64
FSYNCS=${BENCH_FSYNC:-always never}
S3_SECONDS=10
[ "${BENCH_QUICK:-0}" = 1 ] && S3_SECONDS=3

for bin in "$BROKER" "$BENCH"; do
  if [ ! -x "$bin" ]; then
    echo "run.sh: $bin not found; build it first (make BUILD=$BUILD)" >&2
    exit 2
  fi
done

# name|tern-bench arguments
SCENARIOS=(
  "S1 256B|--size 256 --count 200000 --batch $BATCH"
  "S1 4KiB|--size 4096 --count 50000 --batch $BATCH"
  "S1 256B b1|--size 256 --count 200000 --batch 1"
  "S2 fan-out x4|--size 256 --count 100000 --subscriptions 4 --consumers 4 --batch $BATCH"
  "S3 paced 5k/s|--size 256 --rate 5000 --duration $S3_SECONDS --batch 1"
  "S4 8p/8c/8t|--size 256 --count 200000 --producers 8 --consumers 8 --topics 8 --batch $BATCH"
)
COMMON="--window 1000 --prefetch 1000 --json --quiet"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tern-bench-run.XXXXXX") || exit 2
BROKER_PID=
# shellcheck disable=SC2317  # run by the trap
cleanup() {
  if [ -n "$BROKER_PID" ]; then
    kill -TERM "$BROKER_PID" 2>/dev/null
    wait "$BROKER_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TRANSPORT=plaintext
[ -n "${BENCH_SCRAPE:-}" ] && TRANSPORT="plaintext, /metrics every ${BENCH_SCRAPE} s"
BROKER_EXTRA=
if [ "${BENCH_TLS:-0}" = 1 ]; then
  if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -nodes -keyout "$WORK/tls.key" -out "$WORK/tls.crt" -days 1 \
    -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 2>"$WORK/tls.log"; then
    echo "run.sh: cannot make a TLS certificate:" >&2
    cat "$WORK/tls.log" >&2
    exit 2
  fi
  TRANSPORT=TLS
  BROKER_EXTRA="--tls-cert $WORK/tls.crt --tls-key $WORK/tls.key"
  COMMON="$COMMON --tls-ca $WORK/tls.crt"
fi

# shellcheck source=bench/broker.sh
. "$(dirname "$0")/broker.sh"

ROWS=()
FAILED=0
n=0
for fsync in $FSYNCS; do
  for scenario in "${SCENARIOS[@]}"; do
    name=${scenario%%|*}
    args=${scenario#*|}
    case "$name" in "${BENCH_ONLY:-}"*) ;; *) continue ;; esac
    n=$((n + 1))
    dir="$WORK/$n"
    mkdir -p "$dir"
    echo "run.sh: $name, fsync $fsync, $TRANSPORT: tern-bench $args" >&2
    SCRAPER_PID=
    if [ -n "${BENCH_SCRAPE:-}" ]; then
      HTTP_PORT=$(pick_port) || exit 2
      BROKER_HTTP=127.0.0.1:$HTTP_PORT
    fi
    if ! start_broker "$fsync" "$dir"; then
      ROWS+=("$name|$fsync|-|-|-|-|-|-|-|-|BROKER FAILED")
      FAILED=1
      continue
    fi
    if [ -n "${BENCH_SCRAPE:-}" ]; then
      scrape "$HTTP_PORT" "$BENCH_SCRAPE" &
      SCRAPER_PID=$!
    fi
    latency_args=()
    [ -n "${BENCH_OUT:-}" ] && latency_args=(--latency-out "$dir/latency.json")
    # shellcheck disable=SC2086  # $args and $COMMON are word lists
    "$BENCH" --server "127.0.0.1:$PORT" $args $COMMON "${latency_args[@]}" \
      >"$dir/result.json" 2>"$dir/bench.log"
    status=$?
    if [ -n "$SCRAPER_PID" ]; then
      kill "$SCRAPER_PID"
      wait "$SCRAPER_PID" 2>/dev/null
    fi
    rss_kb=$(stop_broker)
    rss_mb=$(awk -v k="$rss_kb" 'BEGIN { printf "%.0f", k / 1024 }')
    if [ -n "${BENCH_OUT:-}" ]; then
      mkdir -p "$BENCH_OUT"
      tag=$(echo "$name-$fsync" | tr -c 'A-Za-z0-9.\n-' '_')
      # The tag cannot be read back into the name ("/" became "_"): say both.
      label="{\"scenario\":\"$name\",\"fsync\":\"$fsync\","
      sed "1s|^{|$label|" "$dir/result.json" >"$BENCH_OUT/$tag.json"
      if [ -s "$dir/latency.json" ]; then
        sed "1s|^{|$label|" "$dir/latency.json" >"$BENCH_OUT/$tag.latency.json"
      fi
    fi
    result=ok
    if [ $status != 0 ]; then
      FAILED=1
      result="FAILED ($(json "$dir/result.json" lost) lost, \
$(json "$dir/result.json" duplicates) dup)"
      echo "run.sh: $name, fsync $fsync failed (exit $status):" >&2
      cat "$dir/bench.log" >&2
      echo "run.sh: broker log tail:" >&2
      tail -5 "$dir/broker.log" >&2
    fi
    if [ ! -s "$dir/result.json" ]; then
      ROWS+=("$name|$fsync|-|-|-|-|-|-|-|$rss_mb|FAILED (no result)")
    else
      f="$dir/result.json"
      ROWS+=("$name|$fsync|$(json "$f" publish_msgs_per_s)|$(json "$f" \
deliver_msgs_per_s)|$(json "$f" deliver_mb_per_s)|$(json "$f" e2e_us \
p50)|$(json "$f" e2e_us p99)|$(json "$f" e2e_us p999)|$(json "$f" e2e_us \
max)|$rss_mb|$result")
    fi
    rm -rf "$dir"
  done
done

echo
echo "tern-bench standard scenarios ($(date -u '+%Y-%m-%d %H:%M UTC'), \
$(nproc) CPUs, $TRANSPORT): window 1000, prefetch 1000, an ack per message;"
echo "S1/S2/S4 publish $BATCH messages per frame, S1 b1 and S3 one; MB/s is \
payload MB (10^6 B) delivered per second; latency publish -> delivery in us."
echo
printf '| %-13s | %-6s | %11s | %12s | %8s | %8s | %8s | %8s | %8s | %7s | %s |\n' \
  scenario fsync "publish/s" "delivered/s" "MB/s" "e2e p50" "p99" "p99.9" \
  "max" "RSS MB" result
printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
  ------------- ------ ----------- ------------ -------- -------- -------- \
  -------- -------- ------- ------
for row in "${ROWS[@]}"; do
  IFS='|' read -r name fsync pub del mb p50 p99 p999 max rss result <<<"$row"
  fmt() { awk -v v="$1" 'BEGIN { if (v ~ /^[0-9.]+$/) printf "%.0f", v; else printf "%s", v }'; }
  fmt1() { awk -v v="$1" 'BEGIN { if (v ~ /^[0-9.]+$/) printf "%.1f", v; else printf "%s", v }'; }
  printf '| %-13s | %-6s | %11s | %12s | %8s | %8s | %8s | %8s | %8s | %7s | %s |\n' \
    "$name" "$fsync" "$(fmt "$pub")" "$(fmt "$del")" "$(fmt1 "$mb")" \
    "$(fmt "$p50")" "$(fmt "$p99")" "$(fmt "$p999")" "$(fmt "$max")" \
    "$rss" "$result"
done
exit $FAILED
