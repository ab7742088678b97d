#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# Writes the Hugging Face reference fixtures under tests/fixtures/hf/: tiny
# random-initialised Llama / Mistral / Qwen2 checkpoints built with
# transformers' own classes, and the logits transformers computes for one
# token sequence per model. Run by hand (CI never runs it):
#
#   pip install -r tools/requirements-fixtures.txt
#   python3 tools/make-hf-fixtures.py [OUT_DIR]      (default tests/fixtures/hf)
#
# Each model directory gets exactly three files:
#   config.json        the config, in the classic layout real checkpoints use
#                      (top-level rope_theta, rope_scaling {rope_type, ...} or
#                      null, torch_dtype) -- see legacy_config() below; pass
#                      --native-config to keep transformers 5's own layout
#                      (rope_parameters {rope_theta, rope_type, ...}, dtype)
#   model.safetensors  from save_pretrained(safe_serialization=True)
#   expected.json      name, description, tokens, logits [pos][vocab] (float32
#                      values, 9 significant digits), argmax [pos], versions
#
# Everything runs on the CPU with fixed seeds and one thread, so a second run
# with the versions in tools/requirements-fixtures.txt writes identical bytes.
# Before expected.json is written the script checks that
#   - from_pretrained() of the written folder reproduces the logits (< 1e-5),
#   - an independent float64 NumPy forward pass that reads only config.json and
#     model.safetensors (the formulas a C engine implements, rope types
#     included) agrees with transformers (< 1e-4; the printed value is
#     typically ~1e-6),
#   - sliding-window models really are windowed (logits equal to the
#     unwindowed model up to the window, different after it),
#   - the argmax is not constant.
import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import tempfile

import numpy as np
import safetensors
import safetensors.numpy
import torch
import transformers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

VOCAB = 128

# Shared shape: hidden 64, 2 layers, 4 query heads sharing 2 KV heads (head h
# uses KV head h // 2), head_dim 16, intermediate 64, vocab 128. The models
# that are not about RoPE (and llama3, whose head_dim is explicit) use hidden
# 32 to keep the folder small.
BASE = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    initializer_range=0.2,
    rms_norm_eps=1e-5,
    bos_token_id=1,
    eos_token_id=2,
)

COMMON_DESC = (
    "Random weights (normal std 0.2, RMSNorm weights 1 + 0.2*normal so that a "
    "norm-weight mistake shows), float32, eager attention; logits are "
    "transformers' forward over the whole token sequence in one call "
    "(position_ids 0..n-1, causal mask). Head h of the 4 query heads uses KV "
    "head h // 2. RoPE is the rotate_half (NeoX) layout: pair (i, i + d/2).")

MODELS = [
    dict(
        name="llama-rope-none",
        cls=(LlamaConfig, LlamaForCausalLM),
        seq_len=48,
        config=dict(max_position_embeddings=128, rope_theta=10000.0, tie_word_embeddings=False,
                    rms_norm_eps=1e-6),
        description=(
            "Plain Llama: default RoPE, rope_theta 10000, inv_freq[i] = theta^(-2i/d), "
            "no rope_scaling, untied lm_head, rms_norm_eps 1e-6, no biases."),
    ),
    dict(
        name="llama-rope-linear",
        cls=(LlamaConfig, LlamaForCausalLM),
        seq_len=48,
        config=dict(max_position_embeddings=128, rope_theta=10000.0, tie_word_embeddings=True,
                    rope_scaling={"rope_type": "linear", "factor": 4.0}),
        description=(
            "Llama with rope_scaling linear, factor 4: inv_freq[i] = theta^(-2i/d) / 4 "
            "for every position (equivalently positions divided by 4); no attention "
            "scaling (cos/sin multiplied by 1)."),
    ),
    dict(
        name="llama-rope-dynamic",
        cls=(LlamaConfig, LlamaForCausalLM),
        seq_len=64,
        config=dict(max_position_embeddings=32, rope_theta=10000.0, tie_word_embeddings=True,
                    rope_scaling={"rope_type": "dynamic", "factor": 2.0}),
        description=(
            "Llama with rope_scaling dynamic (NTK), factor 2, max_position_embeddings 32, "
            "64 tokens. For this single whole-sequence forward transformers takes "
            "seq_len = max(position_ids) + 1 = 64 (> 32, so scaling applies) and uses ONE "
            "base for all 64 positions: base' = theta * (factor * seq_len / max_pos - "
            "(factor - 1)) ^ (d / (d - 2)) = 10000 * 3^(16/14), computed in float32, then "
            "inv_freq[i] = base'^(-2i/d); no attention scaling. (With a KV cache, "
            "token-by-token, HF would instead re-derive base' from the growing length and "
            "earlier keys keep the rotation they got; that is not what these logits are.)"),
    ),
    dict(
        name="llama-rope-yarn",
        cls=(LlamaConfig, LlamaForCausalLM),
        seq_len=48,
        config=dict(max_position_embeddings=128, rope_theta=10000.0, tie_word_embeddings=True,
                    rope_scaling={"rope_type": "yarn", "factor": 4.0,
                                  "original_max_position_embeddings": 32}),
        description=(
            "Llama with rope_scaling yarn, factor 4, original_max_position_embeddings 32 "
            "(read from rope_scaling), beta_fast/beta_slow absent (defaults 32/1), "
            "truncate absent (default true): correction range low = max(floor(d*ln(32/"
            "(32*2pi))/(2 ln theta)), 0) = 0, high = min(ceil(d*ln(32/(1*2pi))/(2 ln "
            "theta)), d-1) = 2; ramp[i] = clamp((i - low)/(high - low), 0, 1); "
            "inv_freq[i] = theta^(-2i/d) * ((1 - ramp[i]) + ramp[i] / factor), i.e. i=0 "
            "unscaled, i=1 half/half, i>=2 divided by 4; cos and sin are both multiplied by "
            "attention_factor = 0.1*ln(4) + 1 = 1.138629436 (so q.k grows by its square)."),
    ),
    dict(
        name="llama-rope-llama3",
        cls=(LlamaConfig, LlamaForCausalLM),
        seq_len=48,
        config=dict(hidden_size=32, max_position_embeddings=128, rope_theta=500000.0, head_dim=32,
                    tie_word_embeddings=True,
                    rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                  "high_freq_factor": 4.0,
                                  "original_max_position_embeddings": 48}),
        description=(
            "Llama 3.1-style rope_scaling llama3: factor 8, low_freq_factor 1, "
            "high_freq_factor 4, original_max_position_embeddings 48, rope_theta 500000, "
            "explicit head_dim 32 (hidden 32, 4 heads: q_proj is 32 -> 128, k_proj/v_proj 32 -> 64, o_proj 128 -> 32), tied "
            "embeddings (no lm_head.weight tensor in the file). wavelen = 2pi/inv_freq; "
            "wavelen < 48/4 = 12: unchanged; wavelen > 48/1 = 48: inv_freq / 8; otherwise "
            "smooth = (48/wavelen - 1)/(4 - 1), inv_freq * ((1 - smooth)/8 + smooth). "
            "REGIMES"),
    ),
    dict(
        name="llama-head-dim",
        cls=(LlamaConfig, LlamaForCausalLM),
        seq_len=48,
        config=dict(hidden_size=48, intermediate_size=96, max_position_embeddings=128,
                    head_dim=16, rope_theta=10000.0, attention_bias=False),
        description=(
            "Llama with an explicit head_dim 16 that differs from hidden_size / heads = "
            "48 / 4 = 12: q_proj 48 -> 64, k_proj/v_proj 48 -> 32, o_proj 64 -> 48; "
            "attention scale 1/sqrt(16); RoPE over all 16 dims; intermediate 96."),
    ),
    dict(
        name="mistral-sliding-window",
        cls=(MistralConfig, MistralForCausalLM),
        seq_len=48,
        config=dict(hidden_size=32, max_position_embeddings=128, rope_theta=10000.0,
                    sliding_window=8),
        window_check=dict(sliding_window=None),
        description=(
            "Mistral (hidden 32, 4 heads, no head_dim key: head_dim = 32/4 = 8, untied) with "
            "sliding_window 8 applied in every layer: query at position q "
            "attends to keys k with q - 8 < k <= q (8 keys including itself; "
            "transformers' sliding_window_overlay is kv_idx > q_idx - sliding_window). "
            "Checked when generating: the logits equal those of the same weights with "
            "sliding_window null at positions 0..7 and differ at every position >= 8."),
    ),
    dict(
        name="qwen2-sliding-window",
        cls=(Qwen2Config, Qwen2ForCausalLM),
        seq_len=48,
        config=dict(hidden_size=32, max_position_embeddings=128, rope_theta=10000.0,
                    use_sliding_window=True,
                    sliding_window=8, max_window_layers=1, tie_word_embeddings=False),
        window_check=dict(use_sliding_window=False),
        description=(
            "Qwen2 (hidden 32, head_dim 32/4 = 8, q/k/v biases, no o_proj bias, untied) with use_sliding_window true, "
            "sliding_window 8, max_window_layers 1, 2 layers. transformers sets "
            "layer_types[i] = 'sliding_attention' if i >= max_window_layers else "
            "'full_attention', so layer 0 is full causal attention and layer 1 (index 1) "
            "uses the window q - 8 < k <= q; config.json also carries the resulting "
            "layer_types. Checked when generating: equal to the unwindowed model at "
            "positions 0..7, different at every position >= 8."),
    ),
    dict(
        name="qwen2-bf16",
        cls=(Qwen2Config, Qwen2ForCausalLM),
        seq_len=48,
        bf16=True,
        config=dict(hidden_size=32, max_position_embeddings=128, rope_theta=1000000.0,
                    tie_word_embeddings=True,
                    rms_norm_eps=1e-6),
        description=(
            "Qwen2 (hidden 32, head_dim 8) with BF16 weights in model.safetensors (torch_dtype bfloat16), q/k/v "
            "biases, tied embeddings, rope_theta 1e6, rms_norm_eps 1e-6, no sliding "
            "window. The expected logits are transformers' float32 forward of the "
            "bf16-rounded weights (model upcast to float32 before the forward; "
            "activations never rounded to bf16), so a float32 engine that widens the bf16 "
            "weights exactly (bits << 16) should match to ~1e-5."),
    ),
]


def seed_of(name):
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


def versions():
    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def build(spec):
    cfg_cls, model_cls = spec["cls"]
    kwargs = dict(BASE)
    kwargs.update(spec["config"])
    torch.manual_seed(seed_of(spec["name"]))
    config = cfg_cls(**kwargs, attn_implementation="eager")
    model = model_cls(config)
    gen = torch.Generator().manual_seed(seed_of(spec["name"]) + 1)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            # HF initialises RMSNorm weights to 1 and biases to 0: perturb them so
            # the fixture checks they are read and applied.
            if pname.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif pname.endswith(".bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
    model.eval()
    if spec.get("bf16"):
        model = model.to(torch.bfloat16)
        model.config.dtype = torch.bfloat16
    tokens = torch.randint(0, VOCAB, (spec["seq_len"],),
                           generator=torch.Generator().manual_seed(seed_of(spec["name"]) + 2))
    return config, model, tokens.tolist()


def forward(model, tokens):
    with torch.no_grad():
        out = model(input_ids=torch.tensor([tokens]), use_cache=False)
    return out.logits[0].float().numpy()


def float32_copy(model):
    """A float32 copy (the bf16 model is upcast exactly)."""
    cfg_cls, model_cls = type(model.config), type(model)
    cfg = cfg_cls.from_dict(model.config.to_dict())
    cfg.dtype = torch.float32
    cfg._attn_implementation = "eager"
    m = model_cls(cfg)
    m.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
    if cfg.tie_word_embeddings:
        m.tie_weights()
    return m.eval()


def legacy_config(cfg):
    """Rewrite transformers 5's config.json layout into the classic one that
    checkpoints on the Hub use and transformers 5 still reads back:
    rope_parameters {rope_theta, rope_type, ...} -> top-level rope_theta plus
    rope_scaling {rope_type, ...} (null for the default type); dtype ->
    torch_dtype."""
    cfg = dict(cfg)
    rp = dict(cfg.pop("rope_parameters"))
    cfg["rope_theta"] = rp.pop("rope_theta")
    cfg["rope_scaling"] = None if rp.get("rope_type", "default") == "default" else rp
    if "dtype" in cfg:
        cfg["torch_dtype"] = cfg.pop("dtype")
    return dict(sorted(cfg.items()))


# ---------------------------------------------------------------------------
# Independent float64 reference: reads only config.json + model.safetensors,
# in the classic layout, like the C engine does.

def ref_inv_freq(cfg, head_dim, seq_len):
    theta = float(cfg.get("rope_theta", 10000.0))
    d = head_dim
    i = np.arange(0, d, 2, dtype=np.float64)
    base_inv = theta ** (-i / d)
    rs = cfg.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type", "default"))
    if kind == "default":
        return base_inv, 1.0
    factor = float(rs["factor"])
    if kind == "linear":
        return base_inv / factor, 1.0
    if kind == "dynamic":
        max_pos = cfg["max_position_embeddings"]
        L = max(seq_len, max_pos)
        b = theta * ((factor * L / max_pos) - (factor - 1)) ** (d / (d - 2))
        return b ** (-i / d), 1.0
    if kind == "yarn":
        orig = rs.get("original_max_position_embeddings", cfg["max_position_embeddings"])
        beta_fast = rs.get("beta_fast") or 32
        beta_slow = rs.get("beta_slow") or 1
        att = rs.get("attention_factor")
        mscale, mscale_all_dim = rs.get("mscale"), rs.get("mscale_all_dim")

        def get_mscale(s, m=1.0):
            return 1.0 if s <= 1 else 0.1 * m * math.log(s) + 1.0
        if att is None:
            if mscale and mscale_all_dim:
                att = get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim)
            else:
                att = get_mscale(factor)

        def corr_dim(rot):
            return d * math.log(orig / (rot * 2 * math.pi)) / (2 * math.log(theta))
        low, high = corr_dim(beta_fast), corr_dim(beta_slow)
        if rs.get("truncate", True):
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, d - 1)
        if low == high:
            high += 0.001
        ramp = np.clip((np.arange(d // 2) - low) / (high - low), 0, 1)
        return base_inv / factor * ramp + base_inv * (1 - ramp), att
    if kind == "llama3":
        orig = rs["original_max_position_embeddings"]
        lff, hff = rs["low_freq_factor"], rs["high_freq_factor"]
        wavelen = 2 * math.pi / base_inv
        smooth = (orig / wavelen - lff) / (hff - lff)
        out = np.where(wavelen > orig / lff, base_inv / factor, base_inv)
        medium = ~(wavelen < orig / hff) & ~(wavelen > orig / lff)
        return np.where(medium, (1 - smooth) * base_inv / factor + smooth * base_inv, out), 1.0
    raise ValueError(kind)


def ref_forward(cfg, weights, tokens):
    W = {k: v.astype(np.float64) for k, v in weights.items()}
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    dim = cfg["hidden_size"]
    d = cfg.get("head_dim") or dim // H
    eps = cfg["rms_norm_eps"]
    n = len(tokens)
    mt = cfg["model_type"]
    if mt == "mistral":
        windows = [cfg.get("sliding_window")] * cfg["num_hidden_layers"]
    elif mt == "qwen2":
        sw = cfg.get("sliding_window") if cfg.get("use_sliding_window") else None
        windows = [sw if (sw is not None and i >= cfg["max_window_layers"]) else None
                   for i in range(cfg["num_hidden_layers"])]
    else:
        windows = [None] * cfg["num_hidden_layers"]
    inv_freq, att = ref_inv_freq(cfg, d, n)
    ang = np.arange(n, dtype=np.float64)[:, None] * inv_freq[None, :]
    cos = np.concatenate([np.cos(ang)] * 2, axis=1) * att
    sin = np.concatenate([np.sin(ang)] * 2, axis=1) * att

    def rms(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    def rope(x):  # x [n, heads, d]
        rot = np.concatenate([-x[..., d // 2:], x[..., : d // 2]], axis=-1)
        return x * cos[:, None, :] + rot * sin[:, None, :]

    def lin(x, name):
        y = x @ W[name + ".weight"].T
        return y + W[name + ".bias"] if name + ".bias" in W else y

    x = W["model.embed_tokens.weight"][tokens]
    qpos = np.arange(n)[:, None]
    kpos = np.arange(n)[None, :]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        h = rms(x, W[p + "input_layernorm.weight"])
        q = rope(lin(h, p + "self_attn.q_proj").reshape(n, H, d))
        k = rope(lin(h, p + "self_attn.k_proj").reshape(n, KV, d))
        v = lin(h, p + "self_attn.v_proj").reshape(n, KV, d)
        allowed = kpos <= qpos
        if windows[layer] is not None:
            allowed &= kpos > qpos - windows[layer]
        out = np.zeros((n, H, d))
        for hh in range(H):
            kv = hh // (H // KV)
            s = q[:, hh, :] @ k[:, kv, :].T / math.sqrt(d)
            s = np.where(allowed, s, -np.inf)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            out[:, hh, :] = s @ v[:, kv, :]
        x = x + lin(out.reshape(n, H * d), p + "self_attn.o_proj")
        h = rms(x, W[p + "post_attention_layernorm.weight"])
        g = lin(h, p + "mlp.gate_proj")
        x = x + lin(g / (1 + np.exp(-g)) * lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
    x = rms(x, W["model.norm.weight"])
    head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    return x @ head.T


def load_safetensors_f32(path):
    """NumPy has no bfloat16: widen BF16 tensors by hand (bits << 16)."""
    out = {}
    with open(path, "rb") as f:
        raw = f.read()
    hlen = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + hlen])
    data = raw[8 + hlen:]
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        buf = data[a:b]
        if info["dtype"] == "F32":
            t = np.frombuffer(buf, dtype="<f4")
        elif info["dtype"] == "BF16":
            t = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(info["dtype"])
        out[name] = t.reshape(info["shape"])
    return out


# ---------------------------------------------------------------------------

def fmt(v):
    return float(f"{float(v):.9g}")


def write_expected(path, doc):
    """JSON with one logits row per line (json.dump(indent=...) would put every
    number on its own line)."""
    lines = ["{"]
    keys = list(doc)
    for n, key in enumerate(keys):
        comma = "," if n + 1 < len(keys) else ""
        if key == "logits":
            rows = [json.dumps(r, separators=(",", ":")) for r in doc[key]]
            lines.append('  "logits": [')
            lines += ["    " + r + ("," if j + 1 < len(rows) else "") for j, r in enumerate(rows)]
            lines.append("  ]" + comma)
        else:
            lines.append(f"  {json.dumps(key)}: "
                         f"{json.dumps(doc[key], separators=(', ', ': '))}{comma}")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == doc
    with open(path, "w") as f:
        f.write(text)


def llama3_regimes(spec):
    rs = spec["config"]["rope_scaling"]
    d = spec["config"]["head_dim"]
    theta = spec["config"]["rope_theta"]
    wl = [2 * math.pi * theta ** (2 * i / d) for i in range(d // 2)]
    orig = rs["original_max_position_embeddings"]
    hi = [i for i, w in enumerate(wl) if w < orig / rs["high_freq_factor"]]
    lo = [i for i, w in enumerate(wl) if w > orig / rs["low_freq_factor"]]
    mid = [i for i in range(d // 2) if i not in hi and i not in lo]
    return (f"With d = 32 the pair indices i (inv_freq = 500000^(-2i/32)) fall as: "
            f"unchanged i in {hi}, smoothed i in {mid}, divided by 8 i = {lo[0]}..{lo[-1]}.")


def make_one(spec, out_root, native):
    name = spec["name"]
    config, model, tokens = build(spec)
    bf16 = spec.get("bf16", False)
    f32 = float32_copy(model) if bf16 else model
    logits = forward(f32, tokens)
    argmax = logits.argmax(-1)
    if len(set(argmax.tolist())) < 4:
        raise SystemExit(f"{name}: argmax nearly constant: {argmax.tolist()}")

    notes = []
    if "window_check" in spec:
        cfg_cls, model_cls = spec["cls"]
        kwargs = dict(BASE)
        kwargs.update(spec["config"])
        kwargs.update(spec["window_check"])
        unwin = model_cls(cfg_cls(**kwargs, attn_implementation="eager"))
        unwin.load_state_dict(model.state_dict())
        unwin.eval()
        other = forward(unwin, tokens)
        diff = np.abs(other - logits).max(-1)
        w = spec["config"]["sliding_window"]
        if diff[:w].max() > 1e-6 or diff[w:].min() < 1e-4:
            raise SystemExit(f"{name}: the sliding window is not applied as expected: "
                             f"per-position max diff vs unwindowed {diff.tolist()}")
        notes.append(f"window: max|diff| vs unwindowed pos<{w} {diff[:w].max():.1e}, "
                     f"min over pos>={w} {diff[w:].min():.2f}")
    if name == "qwen2-sliding-window":
        lt = list(model.config.layer_types)
        assert lt == ["full_attention", "sliding_attention"], lt
        notes.append(f"layer_types {lt}")

    out = os.path.join(out_root, name)
    if os.path.exists(out):
        shutil.rmtree(out)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        os.makedirs(out)
        shutil.copyfile(os.path.join(tmp, "model.safetensors"),
                        os.path.join(out, "model.safetensors"))
        with open(os.path.join(tmp, "config.json")) as f:
            cfg = json.load(f)
    if not native:
        cfg = legacy_config(cfg)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")

    # Round trip through from_pretrained, in float32.
    _, model_cls = spec["cls"]
    reloaded = model_cls.from_pretrained(out, dtype=torch.float32, attn_implementation="eager")
    reloaded.eval()
    rt = np.abs(forward(reloaded, tokens) - logits).max()
    if rt >= 1e-5:
        raise SystemExit(f"{name}: from_pretrained logits differ by {rt}")

    # Independent float64 reference from the files alone.
    weights = load_safetensors_f32(os.path.join(out, "model.safetensors"))
    ref_cfg = cfg if not native else legacy_config(cfg)
    ref = ref_forward(ref_cfg, weights, tokens)
    rd = np.abs(ref - logits).max()
    if rd >= 1e-4:
        raise SystemExit(f"{name}: float64 reference differs from transformers by {rd}")

    # The fixture must be sensitive to the feature it is about.
    sens = None
    if (ref_cfg.get("rope_scaling") or {}).get("rope_type", "default") != "default":
        plain = dict(ref_cfg, rope_scaling=None)
        sens = np.abs(ref_forward(plain, weights, tokens) - logits).max()
        if sens < 1e-2:
            raise SystemExit(f"{name}: logits barely depend on rope_scaling ({sens})")
        notes.append(f"max|diff| vs the same weights with rope_scaling null: {sens:.2f}")

    description = spec["description"]
    if "REGIMES" in description:
        description = description.replace("REGIMES", llama3_regimes(spec))
    mc = model.config
    hd = getattr(mc, "head_dim", None) or mc.hidden_size // mc.num_attention_heads
    description += (
        f" Shape: {mc.model_type}, hidden {mc.hidden_size}, {mc.num_hidden_layers} layers, "
        f"{mc.num_attention_heads} heads, {mc.num_key_value_heads} KV heads, head_dim {hd}, "
        f"intermediate {mc.intermediate_size}, vocab {mc.vocab_size}, rms_norm_eps "
        f"{mc.rms_norm_eps:g}, tie_word_embeddings {str(bool(mc.tie_word_embeddings)).lower()}"
        f", {len(tokens)} tokens. " + COMMON_DESC +
        f" An independent float64 forward pass from config.json + model.safetensors "
        f"differs from these float32 logits by at most {rd:.1e} (float32 rounding noise).")
    doc = {
        "name": name,
        "description": description,
        "tokens": tokens,
        "logits": [[fmt(v) for v in row] for row in logits],
        "argmax": [int(a) for a in argmax],
        "versions": versions(),
    }
    write_expected(os.path.join(out, "expected.json"), doc)
    sizes = {f: os.path.getsize(os.path.join(out, f)) for f in sorted(os.listdir(out))}
    n_params = sum(p.numel() for p in model.parameters())
    return dict(name=name, n_params=n_params, seq_len=len(tokens), sizes=sizes,
                roundtrip=rt, ref=rd, notes=notes)


def main():
    ap = argparse.ArgumentParser(
        description="Write the Hugging Face reference fixtures (tests/fixtures/hf/).")
    ap.add_argument("out", nargs="?", default=None,
                    help="output folder (default: tests/fixtures/hf beside this script)")
    ap.add_argument("--native-config", action="store_true",
                    help="keep transformers 5's own config.json layout (rope_parameters)")
    ap.add_argument("--only", action="append", help="generate just this model (repeatable)")
    args = ap.parse_args()
    out_root = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                        "..", "tests", "fixtures", "hf")
    out_root = os.path.normpath(out_root)
    os.makedirs(out_root, exist_ok=True)

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    try:
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    except Exception:
        pass

    rows = []
    for spec in MODELS:
        if args.only and spec["name"] not in args.only:
            continue
        rows.append(make_one(spec, out_root, args.native_config))

    print(f"{'name':24} {'n_params':>8} {'seq':>4} {'config':>7} {'weights':>8} "
          f"{'expected':>9} {'total':>8}  {'reload':>7} {'f64 ref':>8}")
    grand = 0
    for r in rows:
        s = r["sizes"]
        tot = sum(s.values())
        grand += tot
        print(f"{r['name']:24} {r['n_params']:8d} {r['seq_len']:4d} {s['config.json']:7d} "
              f"{s['model.safetensors']:8d} {s['expected.json']:9d} {tot:8d}  "
              f"{r['roundtrip']:7.1e} {r['ref']:8.1e}")
        for note in r["notes"]:
            print(f"{'':24}   {note}")
    print(f"total {grand} bytes ({grand / 1024:.0f} KiB) in {out_root}")
    print("versions:", json.dumps(versions()))


if __name__ == "__main__":
    main()
