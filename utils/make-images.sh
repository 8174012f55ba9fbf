#!/usr/bin/env bash
# Regenerate the README pictures from real traces:
#
#   images/diagram-test.png   HTML diagram of a traced test (TestTryCommitToDCLeader)
#   images/diagram-repl.png   HTML diagram of a traced REPL session (utils/testdata/session.txt)
#   images/table-example.png  the terminal table of the test's election and overwritten entry
#   images/web-page.png       the live page in headless Chromium (TestLivePageInChromium)
#
# Needs headless chromium (see screenshot.sh). Run from anywhere.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd -P)
cd "$root"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/make-images.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p images
go build -o "$tmp/utils" ./utils
go build -o "$tmp/repl" .

# A traced test: a leader cut off takes a command that never commits.
test=TestTryCommitToDCLeader
RAFT_DEBUG=json go test -count=1 -v -run "^$test\$" ./raft/ >"$tmp/test.log" 2>&1 || true
"$tmp/utils" -test "$test" -no-table -html "$tmp/test.html" "$tmp/test.log"
utils/screenshot.sh "$tmp/test.html" images/diagram-test.png 1600 650

# A traced REPL session: crash, disconnect, partition, heal, transfer.
"$tmp/repl" -keep-going -trace "$tmp/repl.trace" <utils/testdata/session.txt >/dev/null
"$tmp/utils" -no-table -html "$tmp/repl.html" "$tmp/repl.trace"
utils/screenshot.sh "$tmp/repl.html" images/diagram-repl.png 1600 800

# The table: from the old leader's reconnection, heartbeats hidden: its
# stale AppendEntries are refused, it steps down, its uncommitted entry is
# truncated and replaced.
from=$(grep -m1 '"text":"fault: reconnect"' "$tmp/test.log" | sed 's/.*"time":"\([^"]*\)".*/\1/')
table_flags=(-test "$test" -no-heartbeats -from "$from" -width 150)
"$tmp/utils" "${table_flags[@]}" -color never "$tmp/test.log" >"$tmp/table.txt"
"$tmp/utils" "${table_flags[@]}" -no-table -table-html "$tmp/table.html" "$tmp/test.log"
# Size the window to the text: DejaVu Sans Mono at 13px is 7.83 px a
# character and about 15.2 px a line; the rest is the window frame.
cols=$(head -n 1 "$tmp/table.txt" | LC_ALL=C.UTF-8 wc -m)
rows=$(wc -l <"$tmp/table.txt")
width=$(( (cols * 783 + 99) / 100 + 90 ))
height=$(( (rows + 1) * 152 / 10 + 110 ))
utils/screenshot.sh "$tmp/table.html" images/table-example.png "$width" "$height"

# The live page (web), as headless Chromium shows it at the end of its test:
# a leader crashed by a click, another elected, a write from the page in
# every log.
RAFT_PAGE_SCREENSHOT="$root/images/web-page.png" go test -tags browser -count=1 -run '^TestLivePageInChromium$' . >"$tmp/web.log" 2>&1 ||
	{ cat "$tmp/web.log"; exit 1; }
echo "wrote images/web-page.png"
