#!/usr/bin/env bash
# Runs the whole test suite twice: a normal build (build-test/, the CUDA
# kernels compiled by nvcc when it is installed; their suite skips without a
# GPU) and a build with AddressSanitizer + UndefinedBehaviorSanitizer
# (build-asan/) in which the CUDA kernels run on the CPU emulator
# (kernels/cuda/emu/), so that the cuda suite runs everywhere. A third
# build without the GUI (build-nogui/, as on a headless server without GTK)
# runs the suites that differ there: the command line's and the GTK-free ui ones.
# Benchmarks never run here (meson test --benchmark runs them).
set -uo pipefail
cd "$(dirname "$0")/.."

tools/setup.sh --deps-only || exit 1

passed=0 failed=0 skipped=0 status=0
# run_suite DIR [MESON SETUP OPTIONS...]; $TEST_ARGS: meson test's own (suites)
run_suite () {
  local dir=$1; shift
  if [ ! -d "$dir" ]; then
    meson setup "$dir" "$@" || return 1
  else
    meson configure "$dir" "$@" >/dev/null || return 1   # an older checkout's options
  fi
  ninja -C "$dir" || return 1
  local log="$dir/meson-logs/run-tests.txt"
  # shellcheck disable=SC2086
  meson test -C "$dir" --print-errorlogs --num-processes 2 --timeout-multiplier 3 ${TEST_ARGS:-} \
    2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local ok fail skip timeout
  ok=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$log" | tail -1)
  fail=$(sed -n 's/^Fail: *\([0-9]*\).*/\1/p' "$log" | tail -1)
  timeout=$(sed -n 's/^Timeout: *\([0-9]*\).*/\1/p' "$log" | tail -1)
  skip=$(sed -n 's/^Skipped: *\([0-9]*\).*/\1/p' "$log" | tail -1)
  passed=$((passed + ${ok:-0}))
  failed=$((failed + ${fail:-0} + ${timeout:-0}))
  skipped=$((skipped + ${skip:-0}))
  return "$rc"
}

run_suite build-test --buildtype=debugoptimized || status=1
run_suite build-asan --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false \
  -Demulate_cuda=true || status=1
TEST_ARGS="--suite cli --suite ui" run_suite build-nogui --buildtype=debugoptimized \
  -Dgui=disabled -Dcuda=disabled || status=1

echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] || status=1
exit "$status"
