#!/usr/bin/env bash
# Sets up Longscope on Debian 12: installs the packages it needs (apt),
# builds it in build/, and runs the main job: the GUI on a model when there is
# a display and the GUI is built, otherwise the demo batch job.
#
#   tools/setup.sh              install, build, run the main job
#   tools/setup.sh --deps-only  install the packages only
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential git pkg-config meson ninja-build gettext
  libglib2.0-dev libjson-c-dev libopenblas-dev
  libgtk-4-dev libcairo2-dev libpango1.0-dev
  xvfb xauth desktop-file-utils appstream
)

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
[ "${1:-}" = "--deps-only" ] && exit 0

[ -d build ] || meson setup build --buildtype=release
ninja -C build

# The main job: with a display and the GUI built, the application on the demo
# model (demo:induction, built in); otherwise the demo batch job, which runs
# the stories260K model from ../shared/models. Run uninstalled, the
# application finds its GSettings schema in build/data.
if { [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; } \
   && grep -q '^#define LSC_HAVE_GUI 1' build/config.h; then
  exec build/app/longscope demo:induction
fi
exec build/app/longscope --batch data/demo-job.json --output build/demo-results
