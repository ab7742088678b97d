#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# Writes tests/fixtures/selective-attention.json: logits (and, for the first
# case, attention maps) that Hugging Face transformers computes (eager
# attention, float32) when the attention logits are multiplied by the
# position-aware temperature of Selective Attention (Zhang et al., NeurIPS
# 2024), as umich-sota/selective_attention applies it: after q.k/sqrt(d),
# before the causal mask and the softmax, per layer,
#
#   position:  logits[i][j] *= 1 + alpha * ln(i + 1)
#   log-n:     logits[i][j] *= max(1, ln(i + 1) / ln(L))
#
# The engine's selective-attention plugin is held to it by
# tests/test-plugin.c. Run by hand (CI never runs it):
#
#   python3 tools/make-selective-attention-fixture.py
import json
import math
import platform

import torch
import transformers
from transformers.models.llama import modeling_llama
from transformers.models.mistral import modeling_mistral

OUT = "tests/fixtures/selective-attention.json"

CASES = [
    {"model": "llama-rope-none", "attentions": True,
     "plugin": {"id": "selective-attention", "alpha": 0.2, "form": "position",
                "train_length": 0, "first_layer": 0, "last_layer": -1}},
    {"model": "mistral-sliding-window", "attentions": False,
     "plugin": {"id": "selective-attention", "alpha": 0.1, "form": "log-n",
                "train_length": 8, "first_layer": 1, "last_layer": -1}},
]

current = {}


def temperature(n_queries, plugin):
    n = torch.arange(1, n_queries + 1, dtype=torch.float32)
    if plugin["form"] == "position":
        return 1 + plugin["alpha"] * torch.log(n)
    return torch.clamp(torch.log(n) / math.log(plugin["train_length"]), min=1.0)


def selective_eager(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    plugin, n_layers = current["plugin"], current["n_layers"]
    key = modeling_llama.repeat_kv(key, module.num_key_value_groups)
    value = modeling_llama.repeat_kv(value, module.num_key_value_groups)
    w = torch.matmul(query, key.transpose(2, 3)) * scaling
    last = plugin["last_layer"] if plugin["last_layer"] >= 0 else n_layers - 1
    if plugin["first_layer"] <= module.layer_idx <= last:
        # no KV cache: query row i is position i
        w = w * temperature(query.shape[-2], plugin)[:, None]
    if attention_mask is not None:
        w = w + attention_mask
    w = torch.nn.functional.softmax(w, dim=-1, dtype=torch.float32)
    out = torch.matmul(w, value).transpose(1, 2).contiguous()
    return out, w


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    modeling_llama.eager_attention_forward = selective_eager
    modeling_mistral.eager_attention_forward = selective_eager
    cases = []
    for case in CASES:
        d = f"tests/fixtures/hf/{case['model']}"
        tokens = json.load(open(f"{d}/expected.json"))["tokens"]
        model = transformers.AutoModelForCausalLM.from_pretrained(
            d, attn_implementation="eager", dtype=torch.float32)
        model.eval()
        current["plugin"] = case["plugin"]
        current["n_layers"] = model.config.num_hidden_layers
        with torch.no_grad():
            out = model(torch.tensor([tokens]), output_attentions=case["attentions"])
        doc = {"model": case["model"], "plugin": case["plugin"], "tokens": tokens,
               "logits": [[float(f"{x:.9g}") for x in row] for row in out.logits[0].tolist()]}
        if case["attentions"]:
            doc["attentions"] = [[[[float(f"{p:.9g}") for p in row] for row in head]
                                  for head in layer[0].tolist()] for layer in out.attentions]
        cases.append(doc)
        print(f"{case['model']}: {len(tokens)} tokens, {case['plugin']['form']}")
    with open(OUT, "w") as f:
        json.dump({"cases": cases,
                   "versions": {"torch": torch.__version__,
                                "transformers": transformers.__version__,
                                "python": platform.python_version()}},
                  f, separators=(",", ":"))


if __name__ == "__main__":
    main()
