#!/usr/bin/env bash
# compare-groups.sh runs this project's many-group benchmark and dragonboat
# with as many shards (bench/dragonboat-shards, a module of its own) on the
# same workloads, alternating them run for run in one sitting, and appends
# every JSON line (with the 1-minute load average added as "loadavg") to a
# file. hashicorp/raft has one group per process, so it is not in it.
#
#   bench/compare-groups.sh RESULTS.jsonl RUNS 'FLAGS' ['FLAGS' ...]
#
# FLAGS go to both, e.g. '-groups 48 -clients 64 -store disk'; this
# project's runs over TCP (-transport tcp), as dragonboat's do.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 3 ]; then
  echo "usage: bench/compare-groups.sh RESULTS.jsonl RUNS 'FLAGS' ['FLAGS' ...]   e.g. bench/compare-groups.sh out.jsonl 3 '-groups 48 -clients 64 -store disk'" >&2
  exit 2
fi
out=$1 runs=$2
case $runs in '' | *[!0-9]*) echo "bench/compare-groups.sh: RUNS must be a number, not '$runs'" >&2; exit 2 ;; esac
shift 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "bench/compare-groups.sh: building dragonboat-shards and this project" >&2
(cd bench/dragonboat-shards && go build -o "$tmp/dragonboat-shards" .)
go build -o "$tmp/rc" .
for ((r = 1; r <= runs; r++)); do
  for flags in "$@"; do
    # shellcheck disable=SC2086 # FLAGS are words
    for cmd in "$tmp/rc bench -transport tcp -failovers 0 $flags" "$tmp/dragonboat-shards $flags"; do
      line=$($cmd)
      load=$(cut -d' ' -f1 /proc/loadavg)
      echo "${line%\}},\"loadavg\":$load}" >>"$out"
      echo "run $r: ${cmd##*/} → $(echo "$line" | grep -o '"ops_per_sec":[0-9.]*')" >&2
    done
  done
done
