#!/bin/sh
# gpu-check.sh [BUNDLE_DIR] [--bench | --sanitize]: on a machine with an
# NVIDIA GPU, runs the bundle of tools/gpu-bundle.sh from the repository root.
# One mode per call (each fits a device call's 10 minutes):
#   (none)      the `cuda` suite (kernels against the CPU, whole models,
#               capture, Mamba), one test per process, and the device-memory
#               estimate against the measured peak;
#   --bench     the benchmarks (Llama 1B and Mamba 1.4B shapes);
#   --sanitize  the kernel and capture tests under compute-sanitizer's
#               memcheck, racecheck (shared-memory hazards) and synccheck.
# Writes the full logs under $OUT (or ./gpu-logs) and prints a short table.
# Needs no build tools; the test data is read from LSC_SHARED_DIR, the
# bundle's shared/, ./shared or ../shared.
set -u
bundle=$(cd "${1:-gpu-bundle}" && pwd) || exit 1
mode=${2:-}
logs=${OUT:-gpu-logs}
mkdir -p "$logs"
unpacked=${TMPDIR:-/tmp}/longscope-gpu-bundle
rm -rf "$unpacked" && mkdir -p "$unpacked" && tar xzf "$bundle/lib.tar.gz" -C "$unpacked" || exit 1
# the compiler's runtimes one by one, only those the machine lacks (ours
# may need a newer C library than the machine's own libstdc++ does)
for lib in libstdc++.so.6 libgcc_s.so.1 libgomp.so.1; do
  ldconfig -p 2>/dev/null | grep -q "$lib" || cp "$unpacked/lib/fallback/$lib" "$unpacked/lib/"
done
export LD_LIBRARY_PATH="$unpacked/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export G_TEST_SRCDIR="$PWD/tests" G_TEST_BUILDDIR="$PWD/tests" OMP_WAIT_POLICY=passive
if [ -z "${LSC_SHARED_DIR:-}" ]; then
  for d in "$bundle/shared" shared ../shared; do
    [ -d "$d/models" ] && export LSC_SHARED_DIR="$(cd "$d" && pwd)" && break
  done
fi

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | sed 's/^/device: /'
echo "shared data: ${LSC_SHARED_DIR:-absent (model tests skip)}"

status=0
run () {   # name, program, args...
  name=$1; shift
  "$@" > "$logs/$name.log" 2>&1
  rc=$?
  [ $rc -eq 0 ] || status=1
  ok=$(grep -c '^ok ' "$logs/$name.log"); skip=$(grep -c '^ok .*# SKIP' "$logs/$name.log")
  bad=$(grep -c '^not ok ' "$logs/$name.log")
  printf '%-14s exit %3d   %3d ok (%d skipped)   %d failed\n' "$name" "$rc" "$ok" "$skip" "$bad"
  [ $rc -eq 0 ] || tail -5 "$logs/$name.log" | sed 's/^/    /'
}
# each_test [WRAPPER...]: the test-cuda tests in $tests one at a time, each
# under WRAPPER: a g_error () in one kernel's test must not hide the rest of
# a precious device session
each_test () {
  failed=0
  for t in $tests; do
    "$@" "$bundle/bin/test-cuda" --verbose -p "$t" || { echo "not ok - $t exited with $?"; failed=1; }
  done
  return $failed
}
case "$mode" in
'')
  tests=$("$bundle/bin/test-cuda" -l | grep '^/')
  run test-cuda each_test
  grep -h '^not ok' "$logs"/test-cuda.log | sed 's/^/  /'
  run test-estimate "$bundle/bin/test-estimate" -p /engine/estimate/cuda-memory
  # the measured differences, as the tests print them
  grep -h 'CUDA vs CPU' "$logs"/test-cuda.log | sed 's/^# */  /'
  ;;
--bench)
  # streamed to the log: a run stopped at the call's time limit keeps its rows
  : > "$logs/bench-cuda.log"
  for shape in "--capture 32768,131072" "--shape mamba-1.4b --lengths 4096,32768"; do
    # shellcheck disable=SC2086
    ("$bundle/bin/bench-cuda" $shape 2>&1; echo "bench-cuda exit $?") | tee -a "$logs/bench-cuda.log"
  done
  grep -q '^bench-cuda exit [1-9]' "$logs/bench-cuda.log" && status=1
  ;;
--sanitize)
  cs=$(command -v compute-sanitizer \
       || find "${CUDA_HOME:-/usr/local/cuda}/" /usr/local /opt -name compute-sanitizer -type f \
            -perm -u+x 2>/dev/null | head -1)
  [ -n "$cs" ] || { echo "compute-sanitizer: not found"; exit 1; }
  echo "sanitizer: $cs"
  # the tall tile (a million rows) would take the call's whole time
  tests=$("$bundle/bin/test-cuda" -l | grep -E '^/cuda/(capture|kernels/)' | grep -v tall)
  for tool in memcheck racecheck synccheck; do
    run "$tool" each_test timeout 120 "$cs" --tool "$tool" --error-exitcode 9
    grep -h '^not ok\|=========.*\(Invalid\|Race\|Barrier\|ERROR\)' "$logs/$tool.log" | head -5 | sed 's/^/  /'
  done
  ;;
*)
  echo "gpu-check.sh: unknown mode $mode (--bench or --sanitize)"; exit 2 ;;
esac
exit $status
