#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# Writes tests/fixtures/hf/<model>/attentions.json: the full attention maps
# Hugging Face transformers computes (eager attention, float32,
# output_attentions=True) for the fixture's own token sequence, so that the
# engine's captured tiles can be held to an independent implementation.
# Run by hand after tools/make-hf-fixtures.py (CI never runs it):
#
#   python3 tools/make-attention-fixture.py [MODEL_DIR ...]
#
# attentions.json = {"tokens": [...], "attentions": [layer][head][query][key]
# (float32 values, 9 significant digits), "versions": {...}}
import json
import platform
import sys

import torch
import transformers

DEFAULT = ["tests/fixtures/hf/llama-rope-none", "tests/fixtures/hf/mistral-sliding-window"]


def main(dirs):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    for d in dirs:
        expected = json.load(open(f"{d}/expected.json"))
        tokens = expected["tokens"]
        model = transformers.AutoModelForCausalLM.from_pretrained(
            d, attn_implementation="eager", dtype=torch.float32)
        model.eval()
        with torch.no_grad():
            out = model(torch.tensor([tokens]), output_attentions=True)
        maps = [[[[float(f"{p:.9g}") for p in row] for row in head] for head in layer[0].tolist()]
                for layer in out.attentions]
        logits_diff = (out.logits[0] - torch.tensor(expected["logits"])).abs().max().item()
        assert logits_diff < 1e-5, f"{d}: logits moved by {logits_diff}"
        doc = {
            "tokens": tokens,
            "attentions": maps,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "python": platform.python_version()},
        }
        with open(f"{d}/attentions.json", "w") as f:
            json.dump(doc, f, separators=(",", ":"))
        print(f"{d}: {len(maps)} layers x {len(maps[0])} heads x {len(tokens)}^2")


if __name__ == "__main__":
    main(sys.argv[1:] or DEFAULT)
