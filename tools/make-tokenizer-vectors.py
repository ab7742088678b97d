#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Reference token ids for tests/test-tokenizer-bpe.c, from Hugging Face's
`tokenizers` library (pip install tokenizers; no torch needed).

Usage: tools/make-tokenizer-vectors.py [SHARED_DIR]   (default ../shared)

Prints C initialisers; the test hard-codes them, so CI needs no Python.
"""
import os
import sys

from tokenizers import Tokenizer

QWEN3_STRINGS = [
    "Hello world",
    " Hello World!",
    "<|im_start|>user\nWhat's 1234567 + 89?<|im_end|>\n<|im_start|>assistant\n",
    "I'm here, they're gone; we'll see. IT'S OK",
    "F\u00fchrer caf\u00e9 na\u00efve",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3068\u4e2d\u6587\u3002",
    "emoji: \U0001f999\U0001f680\U0001f468\u200d\U0001f469\u200d\U0001f467 done",
    "   leading spaces and trailing   ",
    "tabs\tand\r\nCRLF\n\n\nnewlines",
    "e\u0301 (decomposed) vs \u00e9",
    "<think>\nreasoning\n</think>\n\nanswer",
    "code: for (int i = 0; i < 10; i++) { x += a[i]; }",
    "\u00d6<|endoftext|>after",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
    "    \n    ",
    "\u00a0non-breaking\u3000ideographic space",
]

MISTRAL_STRINGS = [
    "Hello world",
    "  two leading spaces",
    "\u65e5\u672c\u8a9e \U0001f999",
    "<s>inline</s>",
]


def c_string(s):
    out = []
    for b in s.encode("utf-8"):
        c = chr(b)
        if c == "\\":
            out.append("\\\\")
        elif c == '"':
            out.append('\\"')
        elif 0x20 <= b < 0x7F:
            out.append(c)
        else:
            out.append("\\%03o" % b)
    return '"' + "".join(out) + '"'


def dump(name, tok, strings):
    print("static const LscTokVector %s[] = {" % name)
    for s in strings:
        ids = tok.encode(s, add_special_tokens=False).ids
        assert tok.decode(ids, skip_special_tokens=False) is not None
        print("  { %s,\n    { %s, -1 } }," % (c_string(s), ", ".join(str(i) for i in ids)))
    print("};")


def main():
    shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "shared")
    hf = os.path.join(shared, "models", "tokenizers", "hf")
    dump("qwen3_vectors", Tokenizer.from_file(os.path.join(hf, "qwen3", "tokenizer.json")), QWEN3_STRINGS)
    mistral = Tokenizer.from_file(os.path.join(hf, "mistral-7b-v0.1", "tokenizer.json"))
    dump("mistral_vectors", mistral, MISTRAL_STRINGS)
    print("/* mistral with BOS: %s */" % mistral.encode("Hello world").ids)
    print("/* mistral decode: %r */" % [mistral.decode(mistral.encode(s).ids) for s in MISTRAL_STRINGS])


if __name__ == "__main__":
    main()
