#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# Writes a random-initialised Mamba-1 checkpoint of the mamba-130m shape
# (hidden 768, 24 layers, state 16, vocab 50280, tied embeddings; 129 M
# parameters, 517 MB of f32 safetensors) for benchmarking the Mamba forward
# pass without downloading one. Not a test fixture: nothing is committed.
#
#   python3 tools/make-random-mamba.py /tmp/mamba130m
#   cp ../shared/models/random/tiny-mamba/tokenizer.model /tmp/mamba130m/   # for batch jobs
#   build/tests/bench-forward --model /tmp/mamba130m --prefill 2048 --decode 32
import sys

import torch
from transformers import MambaConfig, MambaForCausalLM

out = sys.argv[1] if len(sys.argv) > 1 else "mamba130m"
torch.manual_seed(0)
config = MambaConfig(hidden_size=768, num_hidden_layers=24, vocab_size=50280, state_size=16,
                     expand=2, conv_kernel=4, use_conv_bias=True, use_bias=False,
                     tie_word_embeddings=True)
MambaForCausalLM(config).save_pretrained(out, safe_serialization=True)
print(f"wrote {out}")
