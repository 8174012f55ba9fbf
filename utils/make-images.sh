#!/usr/bin/env bash
# Regenerate the README pictures from the synthetic example trace:
#
#   images/diagram-example.png  the HTML swim-lane diagram
#   images/table-example.png    the terminal table
#
# Needs headless chromium (see screenshot.sh). Run from anywhere.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd -P)
cd "$root"
log=utils/diagram/testdata/cluster5.log
test=TestPartitionedLeaderRecovers
tmp=$(mktemp -d "${TMPDIR:-/tmp}/make-images.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p images

go build -o "$tmp/utils" ./utils

"$tmp/utils" -test "$test" -no-table -html "$tmp/diagram.html" "$log"
utils/screenshot.sh "$tmp/diagram.html" images/diagram-example.png 1600 650

# The table of the second election, during the partition: node 0 times out,
# wins a pre-vote, and node 3 on the minority side tries too.
table_flags=(-test "$test" -from 14:03:21.70 -to 14:03:21.7196 -no-heartbeats -width 150)
"$tmp/utils" "${table_flags[@]}" -color never "$log" >"$tmp/table.txt"
"$tmp/utils" "${table_flags[@]}" -no-table -table-html "$tmp/table.html" "$log"
# Size the window to the text: DejaVu Sans Mono at 13px is 7.83 px a
# character and about 15.2 px a line; the rest is the window frame.
prompt="\$ go run ./utils ${table_flags[*]} $log"
cols=$(head -n 1 "$tmp/table.txt" | LC_ALL=C.UTF-8 wc -m)
[ "${#prompt}" -gt "$cols" ] && cols=${#prompt}
rows=$(wc -l <"$tmp/table.txt")
width=$(( (cols * 783 + 99) / 100 + 90 ))
height=$(( (rows + 1) * 152 / 10 + 110 ))
utils/screenshot.sh "$tmp/table.html" images/table-example.png "$width" "$height"
