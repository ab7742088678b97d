#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Rewrites a CUDA source of kernels/cuda for the CPU emulator (meson
-Dcuda_emulator=true): the two constructs a C++ compiler cannot read.

  k<<<grid, block, smem, stream>>> (args);
      -> lsc_emu_launch ("k", [=] () { k (args); }, grid, block, smem, stream);
  extern __shared__ T name[];
      -> T *name = (T *) lsc_emu_dynamic_shared ();

Line breaks are kept, and a #line directive names the original file, so
compiler messages and sanitizer reports point into the .cu source.

usage: translate.py INPUT.cu OUTPUT.cpp
"""
import re
import sys

LAUNCH = re.compile(r'([A-Za-z_]\w*(?:\s*<[^<>;()]*>)?)\s*<<<')
SHARED = re.compile(r'extern\s+__shared__\s+(\w+)\s+(\w+)\s*\[\s*\]\s*;')


def closing(text, i, open_ch, close_ch):
    """Index just past the bracket that closes the one at text[i]."""
    depth = 0
    for j in range(i, len(text)):
        if text[j] == open_ch:
            depth += 1
        elif text[j] == close_ch:
            depth -= 1
            if depth == 0:
                return j + 1
    raise ValueError('unbalanced %s at offset %d' % (open_ch, i))


def translate(text, path):
    out, pos = [], 0
    for m in LAUNCH.finditer(text):
        if m.start() < pos:
            continue
        end_cfg = text.index('>>>', m.end())
        config = text[m.end():end_cfg]
        j = end_cfg + 3
        while text[j].isspace():
            j += 1
        if text[j] != '(':
            raise ValueError('%s: no arguments after the launch of %s' % (path, m.group(1)))
        end_args = closing(text, j, '(', ')')
        kernel = m.group(1)
        out.append(text[pos:m.start()])
        out.append('lsc_emu_launch ("%s", [=] () { %s %s; }, %s)'
                   % (kernel, kernel, text[j:end_args], config))
        pos = end_args
    out.append(text[pos:])
    text = ''.join(out)
    return SHARED.sub(r'\1 *\2 = (\1 *) lsc_emu_dynamic_shared ();', text)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, encoding='utf-8') as f:
        text = f.read()
    body = translate(text, src)
    with open(dst, 'w', encoding='utf-8') as f:
        f.write('#line 1 "%s"\n' % src)
        f.write(body)


if __name__ == '__main__':
    main()
