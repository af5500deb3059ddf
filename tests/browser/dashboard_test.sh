#!/bin/bash
# The dashboard in a real browser: starts BUILD/tern-broker with HTTP on a
# free loopback port, publishes and consumes for a few seconds with BUILD/tern,
# loads / in headless Chromium and checks that the rendered page names the
# topic and the subscription and shows a non-zero publish rate. Leaves the
# page's DOM and a screenshot in BUILD (dashboard.html, dashboard.png).
#
#   tests/browser/dashboard_test.sh [BUILD]     # make browser-test
set -u
BUILD=${1:-build}
BROKER=$BUILD/tern-broker
TERN=$BUILD/tern
. "$(dirname "$0")/../../bench/broker.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tern-dashboard.XXXXXX") || exit 2
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  [ -n "${BROKER_PID:-}" ] && stop_broker >/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

HTTP_PORT=$(pick_port) || exit 2
BROKER_HTTP=127.0.0.1:$HTTP_PORT
start_broker always "$WORK" || exit 1
SERVER=127.0.0.1:$PORT

# Traffic for about six seconds: a producer and a durable consumer.
(for _ in $(seq 1 30); do seq 1 200 | "$TERN" --server "$SERVER" pub orders >/dev/null 2>&1; sleep 0.2; done) &
PIDS+=($!)
"$TERN" --server "$SERVER" sub orders --subscription dashboard --timeout 8 >/dev/null 2>&1 &
PIDS+=($!)
sleep 3  # two snapshots with traffic: the broker's rates are not zero

browser() {
  timeout 60 chromium --headless --no-sandbox --disable-gpu \
    --disable-dev-shm-usage --virtual-time-budget=3000 "$@" \
    "http://127.0.0.1:$HTTP_PORT/" 2>"$WORK/chromium.log"
}
browser --dump-dom >"$BUILD/dashboard.html"
browser --window-size=1200,700 --screenshot="$BUILD/dashboard.png" >/dev/null

failed=0
check() {  # check WHAT PATTERN: the rendered page must match PATTERN
  if grep -Eq "$2" "$BUILD/dashboard.html"; then
    echo "dashboard: $1: ok"
  else
    echo "dashboard: $1: NOT FOUND" >&2
    failed=1
  fi
}
check "topic orders with a non-zero rate" '<td>orders</td><td>[1-9][0-9,]*</td>'
check "subscription dashboard" '<td class="name">dashboard</td>'
check "overview" '<span>fsync always</span>'
check "no error" '<div id="error"></div>'
if [ $failed != 0 ]; then
  echo "dashboard: page left in $BUILD/dashboard.html; chromium said:" >&2
  tail -5 "$WORK/chromium.log" >&2
  exit 1
fi
echo "dashboard: screenshot in $BUILD/dashboard.png"
