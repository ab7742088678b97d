#!/bin/sh
# gpu-bundle.sh BUILD_DIR [BUNDLE_DIR]: the CUDA test and benchmark programs
# of a CUDA build, with the shared libraries they need that a bare GPU
# machine lacks (GLib, json-c, OpenBLAS and their dependencies; not the C
# library, and not CUDA's, so that the GPU machine's own runtime and cuBLAS
# are used; the C++ and OpenMP runtimes go to lib/fallback, used there only
# when the machine lacks them). tools/gpu-check.sh runs the bundle there:
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
du -sh "$out" | awk '{ print "gpu-bundle.sh: " $2 " holds " $1 " (a device call carries at most 64 MiB)" }'
