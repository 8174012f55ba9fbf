#!/usr/bin/env bash
# compare.sh runs the baselines (hashicorp/raft, dragonboat) and this
# project's bench on the same workloads, alternating them run for run in one
# sitting, and appends every JSON result line (with the 1-minute load
# average added as "loadavg") to a file that bench/plot turns into the
# table of medians and the throughput plot.
#
#   bench/compare.sh RESULTS.jsonl RUNS 'FLAGS' ['FLAGS' ...]
#
# Each FLAGS is one workload, passed to every program, e.g. '-clients 16'
# or '-clients 16 -store disk' (-store disk becomes -store bolt for
# hashicorp's). RUNS is how many times each program runs each workload.
# HASHICORP_BENCH and DRAGONBOAT_BENCH are the baselines' directories
# (default: ../shared/bench/hashicorp and ../shared/bench/dragonboat beside
# the repository); a baseline that is not there is left out, and said so.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
if [ $# -lt 3 ]; then
  echo "usage: bench/compare.sh RESULTS.jsonl RUNS 'FLAGS' ['FLAGS' ...]   e.g. bench/compare.sh out.jsonl 5 '-clients 16'" >&2
  exit 2
fi
out=$1 runs=$2
case $runs in '' | *[!0-9]*) echo "bench/compare.sh: RUNS must be a number, not '$runs'" >&2; exit 2 ;; esac
shift 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The baselines: each is a directory with its main.go, built here.
baselines=()
for b in hashicorp dragonboat; do
  var=$(echo "$b" | tr a-z A-Z)_BENCH
  dir=${!var:-$repo/../shared/bench/$b}
  if [ ! -f "$dir/main.go" ]; then
    echo "bench/compare.sh: the $b baseline is not in $dir (it needs its main.go there): left out;" >&2
    echo "  put ../shared/bench/$b beside the repository, or set $var to its directory" >&2
    continue
  fi
  echo "bench/compare.sh: building the $b baseline in $dir" >&2
  (cd "$dir" && go build -o "$tmp/$b" .)
  baselines+=("$b")
done
if [ ${#baselines[@]} -eq 0 ]; then
  echo "bench/compare.sh: no baseline to compare with: see above" >&2
  exit 2
fi

# This project's bench: through `go run . bench` once main.go wires it,
# otherwise through a throwaway main that calls bench.Run.
if grep -qs 'bench.Run' main.go; then
  go build -o "$tmp/rc" . && rc=("$tmp/rc" bench)
else
  mkdir "$tmp/main"
  cat >"$tmp/main/main.go" <<'GO'
package main

import (
	"os"

	"raft-consensus/bench"
)

func main() { os.Exit(bench.Run(os.Args[1:], os.Stdout, os.Stderr)) }
GO
  cp go.sum "$tmp/main/"
  printf 'module benchmain\n\ngo 1.26\n\nrequire raft-consensus v0.0.0\n\nreplace raft-consensus => %s\n' "$repo" >"$tmp/main/go.mod"
  (cd "$tmp/main" && go mod tidy >/dev/null 2>&1 && go build -o "$tmp/rc" .)
  rc=("$tmp/rc")
fi

record() {
  local load line
  line=$("$@")
  load=$(cut -d' ' -f1 /proc/loadavg)
  echo "${line%\}},\"loadavg\":$load}" | tee -a "$out"
}

for i in $(seq "$runs"); do
  for flags in "$@"; do
    for b in "${baselines[@]}"; do
      f=$flags
      [ "$b" = hashicorp ] && f=${flags//-store disk/-store bolt}
      # shellcheck disable=SC2086
      record "$tmp/$b" $f
    done
    # shellcheck disable=SC2086
    record "${rc[@]}" $flags
  done
done
