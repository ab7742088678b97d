#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# Computes the reference token ids hard-coded in tests/test-tokenizer-spm.c.
# Run by hand (CI never runs it):
#
#   pip install sentencepiece tokenizers
#   python3 tools/make-spm-vectors.py [SHARED_DIR]
#
# Mistral ids come from Hugging Face `tokenizers` (encode without special
# tokens); tok105 ids from the `sentencepiece` library on tok105.model.
import json
import sys

import sentencepiece as spm
from tokenizers import Tokenizer

shared = sys.argv[1] if len(sys.argv) > 1 else "../shared"

MISTRAL_STRINGS = [
    "Hello world",
    " Hello world",
    "Hello  world",
    "   leading and trailing   ",
    "line one\nline two\n\n",
    "\t tab\tbetween",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "llama \U0001f999 emoji \U0001f600!",
    "w048 7tuijk dsdfhu",
    "\u043d\u0435\u0449\u043e \u043d\u0430 \u0411\u044a\u043b\u0433\u0430\u0440\u0441\u043a\u0438",
    "int main(void) { return 0; }",
    "3.14159 + 2 = 5.14159",
    "\u2581already a metaspace",
    " ",
    "a",
]


def c_string(s):
    out = []
    for b in s.encode("utf-8"):
        c = chr(b)
        if c == '"' or c == "\\":
            out.append("\\" + c)
        elif 32 <= b < 127:
            out.append(c)
        else:
            out.append("\\%03o" % b)
    return '"' + "".join(out) + '"'


def main():
    tok = Tokenizer.from_file(f"{shared}/models/tokenizers/hf/mistral-7b-v0.1/tokenizer.json")
    print("/* Mistral-7B-v0.1 tokenizer.json, Hugging Face tokenizers, no special tokens */")
    for s in MISTRAL_STRINGS:
        ids = tok.encode(s, add_special_tokens=False).ids
        if "\u2581" not in s:  # U+2581 in the input decodes as a space
            assert tok.decode(ids) == s, (s, tok.decode(ids))
        print("  { %s, { %s, -1 } }," % (c_string(s), ", ".join(str(i) for i in ids)))

    sp = spm.SentencePieceProcessor(model_file=f"{shared}/models/babyllama-105/tok105.model")
    print("/* tok105.model, sentencepiece */")
    for s in ["Once upon a time", "Zoo", "Lily's mom said, \"Let's go!\""]:
        print("  { %s, { %s, -1 } }," % (c_string(s), ", ".join(str(i) for i in sp.encode(s))))


if __name__ == "__main__":
    main()
