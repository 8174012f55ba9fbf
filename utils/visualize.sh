#!/usr/bin/env bash
# Run one Go test with tracing on and draw its timing diagram.
#
#   utils/visualize.sh -t TestName [-p ./raft/] [-o DIR] [-k] [-- extra go test flags]
#
# Prints the test's events as a table (one column per node) and writes
# DIR/TestName.html, a swim-lane diagram (DIR defaults to the current
# directory). -k keeps the raw log as DIR/TestName.log. Exits with the test's
# status, after drawing: a failing test is when the diagram matters most.
set -eu

usage() {
	cat >&2 <<'EOF'
usage: utils/visualize.sh -t TestName [-p ./raft/] [-o DIR] [-k] [-- go test flags]
  -t NAME  the test to run (required; anchored: -run "^NAME$")
  -p PKG   package to test, relative to the module root (default ./raft/)
  -o DIR   where to write NAME.html (default: the current directory)
  -k       keep the test output as DIR/NAME.log
EOF
	exit 2
}

test_name=
pkg=./raft/
out_dir=.
keep=0
while getopts ":t:p:o:kh" opt; do
	case $opt in
	t) test_name=$OPTARG ;;
	p) pkg=$OPTARG ;;
	o) out_dir=$OPTARG ;;
	k) keep=1 ;;
	h) usage ;;
	:) echo "$0: -$OPTARG needs a value" >&2; usage ;;
	*) echo "$0: unknown option -$OPTARG" >&2; usage ;;
	esac
done
shift $((OPTIND - 1))
[ "${1:-}" = "--" ] && shift

if [ -z "$test_name" ]; then
	echo "$0: no test name: give one with -t TestName" >&2
	usage
fi
case $test_name in
*[!A-Za-z0-9_/]*) echo "$0: test name '$test_name' has characters a Go test name cannot" >&2; exit 2 ;;
esac
command -v go >/dev/null 2>&1 || { echo "$0: go is not on PATH" >&2; exit 1; }

# Paths given by the caller are relative to where they called from; the go
# commands run from the module root.
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd -P)
root=$(cd "$(dirname "$0")/.." && pwd -P)
base=$(printf '%s' "$test_name" | tr '/' '_')
html=$out_dir/$base.html

log=$(mktemp "${TMPDIR:-/tmp}/visualize.XXXXXX")
cleanup() { [ "$keep" = 1 ] || rm -f "$log"; }
trap cleanup EXIT

cd "$root"
echo "running: RAFT_DEBUG=json go test -v -count=1 -run '^$test_name\$' $pkg $*" >&2
status=0
RAFT_DEBUG=json go test -v -count=1 -run "^${test_name}\$" "$pkg" "$@" >"$log" 2>&1 || status=$?

if grep -q '^testing: warning: no tests to run' "$log"; then
	echo "$0: no test matches '^$test_name\$' in $pkg" >&2
	exit 1
fi
if ! grep -q "^=== RUN   $test_name\$" "$log"; then
	echo "$0: the test did not run (build failure?); go test said:" >&2
	tail -n 30 "$log" >&2
	exit 1
fi

render=0
go run ./utils -test "$test_name" -html "$html" "$log" || render=$?
if [ "$keep" = 1 ]; then
	cp "$log" "$out_dir/$base.log"
	echo "log: $out_dir/$base.log" >&2
fi
if [ "$render" != 0 ]; then
	echo "$0: could not draw the diagram (see above)" >&2
	[ "$status" != 0 ] && exit "$status"
	exit "$render"
fi
echo "diagram: $html (open it in a browser)" >&2
if [ "$status" != 0 ]; then
	echo "$0: $test_name FAILED (exit $status)" >&2
fi
exit "$status"
