#!/bin/sh
# gpu-bundle.sh BUILD_DIR [BUNDLE_DIR]: the CUDA test and benchmark programs
# of a CUDA build, with the shared libraries they need that a bare GPU
# machine lacks (GLib, json-c, OpenBLAS and their dependencies; not the C
# library, and not CUDA's, so that the GPU machine's own runtime and cuBLAS
# are used; the C++ and OpenMP runtimes go to lib/fallback, used there only
# when the machine lacks them), and the test models the `cuda` suite reads
# (../shared does not travel to a device machine; without them the model
# tests skip). tools/gpu-check.sh runs the bundle there:
#
#   meson setup build-cuda -Dcuda=enabled && ninja -C build-cuda
#   tools/gpu-bundle.sh build-cuda gpu-bundle         # here
#   tools/gpu-check.sh gpu-bundle                     # there, carrying gpu-bundle
set -eu
build=${1:?usage: gpu-bundle.sh BUILD_DIR [BUNDLE_DIR]}
out=${2:-gpu-bundle}
progs="tests/test-cuda tests/test-estimate tests/bench-cuda"

rm -rf "$out"
mkdir -p "$out/bin" "$out/lib" "$out/lib/fallback"
for p in $progs; do
  [ -x "$build/$p" ] || { echo "gpu-bundle.sh: $build/$p is missing (a build with -Dcuda=enabled?)" >&2; exit 1; }
  cp "$build/$p" "$out/bin/"
done
for p in $progs; do ldd "$build/$p"; done | awk '$3 ~ /^\// { print $3 }' | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libcuda*|libcublas*|libcudart*) ;;
    # the compiler's runtime: used there only when the machine has none
    libstdc++*|libgcc_s*|libgomp*) cp -L "$lib" "$out/lib/fallback/" ;;
    *) cp -L "$lib" "$out/lib/" ;;
  esac
done
# packed: OpenBLAS alone is 35 MB of the 64 MiB a device call carries
tar czf "$out/lib.tar.gz" -C "$out" lib && rm -rf "$out/lib"
# the checkpoints the suite opens (configs and weights; not the reference
# logits, which only the CPU suites compare against)
shared=${LSC_SHARED_DIR:-}
for d in shared ../shared; do
  [ -n "$shared" ] || { [ -d "$d/models" ] && shared=$d; }
done
if [ -n "$shared" ]; then
  for m in random stories260K; do
    (cd "$shared/models" && find "$m" -type f ! -name reference-logits.json) | while read -r f; do
      mkdir -p "$out/shared/models/$(dirname "$f")"
      cp "$shared/models/$f" "$out/shared/models/$f"
    done
  done
else
  echo "gpu-bundle.sh: no shared test data (LSC_SHARED_DIR, ./shared or ../shared): the model tests will skip there" >&2
fi
du -sh "$out" | awk '{ print "gpu-bundle.sh: " $2 " holds " $1 " (a device call carries at most 64 MiB)" }'
