#!/bin/bash
# Compares builds fairly on a shared, noisy machine: runs bench/run.sh on
# each build in turn, ROUNDS times (default 5), and prints every figure and
# the median per scenario and build.
#
#   bench/compare.sh OLD_BUILD NEW_BUILD        # e.g. /tmp/old/build build
#
# Each BUILD holds tern-broker and tern-bench (they must speak the same
# protocol). Environment: ROUNDS; COMPARE_ONLY, the scenarios (run.sh's
# BENCH_ONLY prefixes, default "S1 256B" and "S2"); BENCH_FSYNC (default
# always) and anything else run.sh reads.
set -u
[ $# -ge 2 ] || { sed -n 2,12p "$0"; exit 2; }
ROUNDS=${ROUNDS:-5}
IFS=',' read -r -a ONLY <<<"${COMPARE_ONLY:-S1 256B,S2}"
export BENCH_FSYNC=${BENCH_FSYNC:-always}
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
for round in $(seq "$ROUNDS"); do
  for build in "$@"; do
    for only in "${ONLY[@]}"; do
      echo "round $round, $build, $only, $(date -u +%T) UTC, load $(cut -d' ' -f1 /proc/loadavg)" >&2
      BENCH_ONLY="$only" "$(dirname "$0")/run.sh" "$build" 2>/dev/null |
        grep '^| S' | sed "s|^|$build |" >>"$OUT"
    done
  done
done
# Table rows: | name | fsync | published/s | delivered/s | ... | rss MiB | status |
awk -F'|' '
  { build = $1; sub(/ +$/, "", build); name = $2; gsub(/^ +| +$/, "", name)
    key = name " | " build; pub[key] = pub[key] " " $4 + 0; del[key] = del[key] " " $5 + 0
    if (!(key in seen)) { seen[key] = 1; order[++n] = key } }
  function median(list,   a, k, i, j, t) {
    k = split(list, a, " ")
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2 }
  END { printf "%-40s %-60s %12s %12s\n", "scenario | build", "published/s, each run", "median", "delivered"
        for (i = 1; i <= n; i++) { k = order[i]
          printf "%-40s %-60s %12d %12d\n", k, pub[k], median(pub[k]), median(del[k]) } }' "$OUT"
