#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Runs a GUI test program under a private Xvfb server:
#   test-gui.sh PROGRAM [ARGS...]
# Prints a TAP skip and exits 0 when Xvfb is not installed.
set -eu

if ! command -v Xvfb >/dev/null 2>&1; then
  echo "1..0 # SKIP Xvfb is not installed (tools/setup.sh installs it)"
  exit 0
fi

dir=$(mktemp -d)
trap 'kill "$xvfb_pid" 2>/dev/null || true; rm -rf "$dir"' EXIT INT TERM
# -displayfd: the server picks a free display and writes its number.
Xvfb -displayfd 3 -screen 0 1600x1000x24 -nolisten tcp 3>"$dir/display" 2>"$dir/xvfb.log" &
xvfb_pid=$!
i=0
while [ ! -s "$dir/display" ]; do
  i=$((i + 1))
  if [ "$i" -gt 100 ] || ! kill -0 "$xvfb_pid" 2>/dev/null; then
    echo "Bail out! Xvfb did not start:"
    sed 's/^/# /' "$dir/xvfb.log"
    exit 1
  fi
  sleep 0.1
done

DISPLAY=":$(head -n 1 "$dir/display")"
export DISPLAY
unset WAYLAND_DISPLAY
"$@"
