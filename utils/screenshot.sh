#!/usr/bin/env bash
# Screenshot a local HTML page with headless Chromium.
#
#   utils/screenshot.sh IN.html OUT.png [width height]
#
# The browser gets a fresh profile and no background networking, so the
# picture depends on the page alone. CHROMIUM overrides the browser binary.
set -eu

usage() {
	echo "usage: $0 IN.html OUT.png [width height]" >&2
	exit 2
}

[ $# -eq 2 ] || [ $# -eq 4 ] || usage
in=$1
out=$2
width=${3:-1600}
height=${4:-900}
case $width$height in *[!0-9]*) usage ;; esac
[ -f "$in" ] || { echo "$0: no such file: $in" >&2; exit 1; }

browser=${CHROMIUM:-}
if [ -z "$browser" ]; then
	for b in chromium chromium-browser google-chrome; do
		if command -v "$b" >/dev/null 2>&1; then
			browser=$(command -v "$b")
			break
		fi
	done
fi
[ -n "$browser" ] || { echo "$0: chromium not found (apt-get install chromium, or set CHROMIUM)" >&2; exit 1; }

abs() { (cd "$(dirname "$1")" && printf '%s/%s\n' "$(pwd -P)" "$(basename "$1")"); }
in_abs=$(abs "$in")
out_dir=$(cd "$(dirname "$out")" && pwd -P)
out_abs=$out_dir/$(basename "$out")

profile=$(mktemp -d "${TMPDIR:-/tmp}/screenshot-profile.XXXXXX")
trap 'rm -rf "$profile"' EXIT

run_browser() {
	if command -v timeout >/dev/null 2>&1; then
		timeout 120 "$@"
	else
		"$@"
	fi
}

rm -f "$out_abs"
# --virtual-time-budget lets the page's script finish before the capture.
run_browser "$browser" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
	--disable-background-networking --disable-quic --no-first-run \
	--disable-component-update --disable-sync --hide-scrollbars \
	--force-device-scale-factor=1 --virtual-time-budget=3000 \
	--user-data-dir="$profile" --window-size="$width,$height" \
	--screenshot="$out_abs" "file://$in_abs" >"$profile/log" 2>&1 || true

if [ ! -s "$out_abs" ]; then
	echo "$0: chromium wrote no screenshot; its output:" >&2
	cat "$profile/log" >&2
	exit 1
fi
echo "wrote $out ($width x $height)"
