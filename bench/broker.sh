# Shell helpers shared by bench/run.sh and bench/replay-vs-live.sh: start a
# broker ($BROKER) on a free loopback port, stop it by its PID, read
# tern-bench JSON. Sourced, not run.

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() {
  local _ port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 40000))
    if ! port_in_use "$port"; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

# start_broker FSYNC DIR: sets BROKER_PID and PORT, or returns 1.
# $BROKER_EXTRA: more tern-broker flags (a word list), e.g. TLS's;
# $BROKER_HTTP: its --http (default off).
start_broker() {
  local fsync=$1 dir=$2 _
  for _ in 1 2 3; do
    PORT=$(pick_port) || return 1
    # shellcheck disable=SC2086  # $BROKER_EXTRA is a word list
    "$BROKER" --listen "127.0.0.1:$PORT" --data "$dir/data" --fsync "$fsync" \
      --http "${BROKER_HTTP:-off}" ${BROKER_EXTRA:-} >"$dir/broker.log" 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 1 100); do  # up to 10 s
      if ! kill -0 "$BROKER_PID" 2>/dev/null; then
        wait "$BROKER_PID" 2>/dev/null
        BROKER_PID=
        break  # exited, e.g. the port was taken meanwhile: next port
      fi
      if port_in_use "$PORT"; then return 0; fi
      sleep 0.1
    done
    if [ -n "$BROKER_PID" ]; then
      echo "$(basename "$0"): broker did not start listening within 10 s" >&2
      stop_broker >/dev/null
      return 1
    fi
  done
  echo "$(basename "$0"): broker failed to start; its log:" >&2
  cat "$dir/broker.log" >&2
  return 1
}

# stop_broker: prints the broker's peak RSS in kB, stops it (SIGTERM, then
# SIGKILL after 10 s) and waits for it.
stop_broker() {
  local hwm _
  hwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' \
    "/proc/$BROKER_PID/status" 2>/dev/null)
  kill -TERM "$BROKER_PID" 2>/dev/null
  for _ in $(seq 1 100); do
    kill -0 "$BROKER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$BROKER_PID" 2>/dev/null; then
    echo "$(basename "$0"): broker ignored SIGTERM for 10 s; killing it" >&2
    kill -KILL "$BROKER_PID" 2>/dev/null
  fi
  wait "$BROKER_PID" 2>/dev/null
  BROKER_PID=
  echo "${hwm:-0}"
}

# A top-level number from a tern-bench JSON line, or a percentile of one of
# its latency objects: json FILE KEY, json FILE OBJECT KEY.
json() {
  if [ $# = 2 ]; then
    sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$1"
  else
    sed -n "s/.*\"$2\":{[^}]*\"$3\":\([^,}]*\).*/\1/p" "$1"
  fi
}

# scrape PORT SECONDS: GETs /metrics from 127.0.0.1:PORT every SECONDS, as
# a Prometheus server would, until killed.
scrape() {
  while :; do
    if exec 3<>"/dev/tcp/127.0.0.1/$1"; then
      printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3
      cat <&3 >/dev/null
      exec 3>&-
    fi 2>/dev/null
    sleep "$2"
  done
}
