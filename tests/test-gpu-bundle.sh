#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The GPU machine's kit, here where there is no GPU: tools/gpu-bundle.sh
# packs a CUDA build's test programs with their libraries and the shared
# checkpoints the cuda suite reads (a device machine gets no ../shared), and
# tools/gpu-check.sh runs them from the bundle alone, in each of its modes.
#   test-gpu-bundle.sh SOURCE_ROOT BUILD_DIR
set -u
src=$1 build=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM
n=0 failed=0
check () {   # description, command...
  n=$((n + 1)); what=$1; shift
  if "$@"; then echo "ok $n - $what"; else echo "not ok $n - $what"; failed=1; fi
}
echo "1..6"
cd "$src" || exit 1
shared=${LSC_SHARED_DIR:-$src/../shared}
LSC_SHARED_DIR=$shared tools/gpu-bundle.sh "$build" "$dir/bundle" > "$dir/bundle.log" 2>&1
check "the bundle holds the programs and the packed libraries" \
  test -x "$dir/bundle/bin/test-cuda" -a -x "$dir/bundle/bin/bench-cuda" -a -s "$dir/bundle/lib.tar.gz"
if [ -d "$shared/models" ]; then
  check "the bundle holds the checkpoints the suite opens" \
    test -s "$dir/bundle/shared/models/random/tiny-llama/model.safetensors" \
      -a -s "$dir/bundle/shared/models/stories260K/stories260K.bin"
else
  n=$((n + 1)); echo "ok $n # SKIP test data $shared/models is absent (set LSC_SHARED_DIR)"
fi

# the suite from the bundle alone: its own data, every program's line
env -u LSC_SHARED_DIR OUT="$dir/logs" sh tools/gpu-check.sh "$dir/bundle" > "$dir/check.log" 2>&1
check "the suite's mode passes without a device" test $? -eq 0
check "it reads the bundle's data and reports each program" \
  sh -c "grep -q '^shared data: $dir/bundle/shared' '$dir/check.log' \
         && grep -q '^test-cuda  *exit   0' '$dir/check.log' \
         && grep -q '^test-estimate  *exit   0' '$dir/check.log'"

# a sanitizer that finds a race in one test: that test is named, the run fails
mkdir "$dir/cs"
cat > "$dir/cs/compute-sanitizer" <<'CS'
#!/bin/sh
tool=$2; shift 4
case "$*" in *ssm-scan*) echo "========= Race reported under $tool"; exit 9 ;; esac
exec "$@"
CS
chmod +x "$dir/cs/compute-sanitizer"
PATH="$dir/cs:$PATH" OUT="$dir/logs" sh tools/gpu-check.sh "$dir/bundle" --sanitize \
  > "$dir/sanitize.log" 2>&1
check "--sanitize fails when a sanitizer reports, naming the test under each tool" \
  sh -c "test $? -eq 1 && test \$(grep -c 'not ok - /cuda/kernels/ssm-scan exited with 9' \
         '$dir/sanitize.log') -eq 3 && grep -q '^racecheck  *exit   1 .* 1 failed' '$dir/sanitize.log'"

sh tools/gpu-check.sh "$dir/bundle" --bogus > /dev/null 2>&1
check "an unknown mode is a usage error" test $? -eq 2
[ $failed -eq 0 ] || { cat "$dir/bundle.log" "$dir/check.log" "$dir/sanitize.log" >&2; exit 1; }
