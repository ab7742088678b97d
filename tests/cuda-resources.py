#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Registers, local memory and shared memory of every CUDA kernel, as ptxas
assigns them for each real architecture the build targets; fails when a
kernel keeps more than LOCAL_BUDGET bytes in local memory.

A register array indexed by a value the compiler cannot resolve (a loop it
did not unroll) moves to local memory, which is device memory behind L1:
the fused attention kernel lost 240 to 304 bytes per thread that way, read
and written in its inner loops. Nothing but ptxas reports it, and no test of
results can see it, so this check needs no GPU.

usage: cuda-resources.py NVCC [NVCC ARGUMENTS...] -- SOURCE...
  the arguments the build compiles the kernels with, -gencode pairs included
  (only pairs with real code, code=sm_XX, are compiled: PTX is compiled by
  the driver at run time)
"""
import os
import re
import subprocess
import sys
import tempfile

LOCAL_BUDGET = 32   # bytes of stack frame a kernel may use (a few spilled registers)

FUNC = re.compile(r"Function properties for (\S+)")
STACK = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
USED = re.compile(r"Used (\d+) registers(?:.*?(\d+) bytes smem)?")
ARCH = re.compile(r"for '(sm_\d+)'")


def demangled_names(mangled):
    # _Z16attention_kernelILi64EEv... -> attention_kernel<64> (c++filt is binutils')
    run = subprocess.run(["c++filt"], input="\n".join(mangled), capture_output=True, text=True,
                         check=True)
    return [re.sub(r"^void |\(.*$", "", n) for n in run.stdout.splitlines()]


def report(nvcc, nvcc_args, source):
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [nvcc] + nvcc_args + ["-Xptxas", "-v", "-c", source, "-o", os.path.join(tmp, "k.o")]
        run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"{source}: nvcc failed:\n{run.stderr}")
    rows, arch, func = [], None, None
    for line in run.stderr.splitlines():
        if m := ARCH.search(line):
            arch = m.group(1)
        if m := FUNC.search(line):
            func = m.group(1)
        elif (m := STACK.search(line)) and func:
            stack, spill = int(m.group(1)), int(m.group(2))
        elif (m := USED.search(line)) and func:
            rows.append((os.path.basename(source), arch, func, int(m.group(1)), stack, spill,
                         int(m.group(2) or 0)))
            func = None
    names = demangled_names([r[2] for r in rows])
    return [r[:2] + (n,) + r[3:] for r, n in zip(rows, names)]


def main():
    args = sys.argv[1:]
    if "--" not in args or args.index("--") == 0 or args[-1] == "--":
        sys.exit(__doc__)
    nvcc, nvcc_args = args[0], args[1:args.index("--")]
    sources = args[args.index("--") + 1:]
    # keep the -gencode pairs with real code
    kept, i = [], 0
    while i < len(nvcc_args):
        if nvcc_args[i] == "-gencode":
            if "code=sm_" in nvcc_args[i + 1]:
                kept += nvcc_args[i:i + 2]
            i += 2
        else:
            kept.append(nvcc_args[i])
            i += 1
    if "-gencode" not in kept:
        print("no real architecture among the gencode pairs: nothing to check")
        return 77
    rows = []
    for source in sources:
        rows += report(nvcc, kept, source)
    if not rows:
        sys.exit("ptxas reported no kernels: has its -v output changed?")
    bad = [r for r in rows if r[4] > LOCAL_BUDGET]
    print(f"{'file':24} {'arch':6} {'kernel':32} {'regs':>4} {'stack':>5} {'spill':>5} {'smem':>5}")
    for r in rows:
        mark = "  <- over budget" if r in bad else ""
        print(f"{r[0]:24} {r[1]:6} {r[2]:32} {r[3]:4} {r[4]:5} {r[5]:5} {r[6]:5}{mark}")
    for r in bad:
        print(f"FAIL {r[0]}: {r[2]} ({r[1]}) keeps {r[4]} bytes in local memory "
              f"({r[5]} of them spilled registers); the budget is {LOCAL_BUDGET}",
              file=sys.stderr)
    print(f"{len(rows)} kernels, {len(bad)} over the local-memory budget of {LOCAL_BUDGET} bytes")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
