#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# Writes the state-space-model reference fixtures under tests/fixtures/ssm/.
# Run by hand (CI never runs it):
#
#   pip install -r tools/requirements-fixtures.txt
#   python3 tools/make-ssm-fixtures.py [OUT_DIR]      (default tests/fixtures/ssm)
#
# It reads the shared Mamba-1 checkpoint models/random/tiny-mamba from
# $LSC_SHARED_DIR (default ../shared beside the repository, as the C tests do;
# --shared DIR overrides) and writes
#
#   tiny-mamba2/config.json        a random-initialised Mamba2ForCausalLM built
#                                  with transformers' own classes (hidden 64,
#                                  expand 2, 8 heads of 16, n_groups 2, state
#                                  16, conv 4, 2 layers, vocab 112, tied), in
#                                  the classic layout: torch_dtype (not dtype),
#                                  time_step_limit [0.0, Infinity] (not
#                                  transformers 5's {"__float__": "Infinity"})
#   tiny-mamba2/model.safetensors  from save_pretrained(safe_serialization=True)
#   tiny-mamba2/expected.json      name, description, tokens, logits
#                                  [pos][vocab], argmax [pos], dt [layer][T][H]
#                                  (Delta after softplus(dt + dt_bias)), A
#                                  [layer][H] (= -exp(A_log)), longmamba {...}
#                                  (a LongMamba filtered prefill, methods.md
#                                  2.3), versions
#   tiny-mamba-dt.json             for the shared tiny-mamba (Mamba-1): tokens,
#                                  dt [layer][T][E], A [layer][E][N],
#                                  logits_last [vocab], versions
#
# All floats are float32 values printed with 9 significant digits (LongMamba
# values come from a float64 forward and are printed the same way).
#
# Everything runs on the CPU with fixed seeds and one thread, so a second run
# with the versions in tools/requirements-fixtures.txt writes identical bytes.
# Before expected.json / tiny-mamba-dt.json are written the script checks that
#   - an independent float64 NumPy Mamba-2 forward (plain sequential scan,
#     mamba_ssm semantics: the gated RMSNorm multiplies by SiLU(z) first and
#     normalises per group of E/G channels) that reads only config.json and
#     model.safetensors agrees with transformers (< 1e-4), both for this G=2
#     model and for an in-memory G=1 model where the group question cannot
#     arise; the Delta it computes agrees with transformers' too,
#   - from_pretrained() of the written folder reproduces the logits (< 1e-5),
#   - the LongMamba filtered logits of the NumPy forward agree with
#     transformers run with the same filter (dt forced to -inf, so Delta = 0,
#     for the dropped tokens of global heads) and the kept masks are equal,
#     every Delta is clear of its threshold (so a float32 engine takes the same
#     keep decisions) and every tA_prod is clear of c,
#   - an independent float64 NumPy Mamba-1 forward (methods.md 7.1) agrees with
#     transformers (< 1e-4), and transformers agrees with the shared
#     reference-logits.json,
#   - the argmax is not constant.
#
# LongMamba choices for the test (methods.md 2.3 has them from an offline
# calibration over 2000-token windows): tA_prod from this sequence's own
# vanilla Delta; c the first of C_CANDIDATES that leaves every layer 2+
# global and 2+ local heads; threshold = the mean over t of the vanilla Delta
# (the median can tie: layer-0 Delta depends on the token alone); b 1,
# slow_factor 0.
#
# transformers 5.23's MambaRMSNormGated normalises per group (group_size =
# intermediate_size // n_groups), as mamba_ssm does, so for the G=2 model the
# expected logits are transformers' own; the script still measures how much
# normalising over all E would change them (recorded in the description).
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
from transformers import Mamba2Config, Mamba2ForCausalLM, MambaForCausalLM

# ---------------------------------------------------------------------------
# The Mamba-2 model.

MAMBA2_NAME = "tiny-mamba2"
VOCAB = 112
SEQ_LEN = 64
TOKEN_MAX = 104          # token ids drawn from 0..104 (the tiny tokenizers' 105 pieces)

MAMBA2 = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    expand=2,              # intermediate 128
    head_dim=16,
    num_heads=8,
    n_groups=2,            # G > 1 on purpose: heads 0..3 use group 0, heads 4..7 group 1
    state_size=16,
    conv_kernel=4,
    num_hidden_layers=2,
    tie_word_embeddings=True,
    use_conv_bias=True,
    use_bias=False,
    layer_norm_epsilon=1e-5,
    residual_in_fp32=True,
    chunk_size=16,         # 4 chunks of 16 for 64 tokens: HF's inter-chunk path is used
    time_step_min=0.001,
    time_step_max=0.1,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)

# Random weights (own generator, every tensor overwritten): normal with these
# standard deviations; the rest is described in INIT_DESC.
STD = {
    "embeddings.weight": 0.3,
    "mixer.in_proj.weight": 0.2,
    "mixer.conv1d.weight": 0.4,
    "mixer.conv1d.bias": 0.2,
    "mixer.out_proj.weight": 0.1,
}

INIT_DESC = (
    "Random weights: embeddings normal std 0.3, in_proj 0.2, conv1d weight 0.4 and bias 0.2, "
    "out_proj 0.1; A_log = log(uniform(1, 16)); dt_bias = softplus^-1(exp(uniform(ln 1e-3, "
    "ln 1e-1))) (the usual mamba init: softplus(dt_bias) spans [1e-3, 1e-1]); D = "
    "uniform(0.5, 2); every RMSNorm weight (block norm, mixer.norm, norm_f) 1 + 0.2*normal.")

# LongMamba (methods.md 2.3).
LM_B = 1.0
LM_SLOW = 0.0

# The Mamba-1 checkpoint.
MAMBA1_REL = os.path.join("models", "random", "tiny-mamba")
MAMBA1_SEQ = 1           # reference-logits.json sequences[1] (64 tokens)


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


def fmt(v):
    return float(f"{float(v):.9g}")


def fmt_nd(a):
    """Nested lists of 9-significant-digit floats."""
    a = np.asarray(a)
    if a.ndim == 0:
        return fmt(a)
    return [fmt_nd(x) for x in a]


def check(cond, msg):
    if not cond:
        raise SystemExit(msg)


# ---------------------------------------------------------------------------
# JSON writer: nested lists one row per line, the innermost list of numbers on
# one line (json.dump(indent=...) would put every number on its own line).

def _dumps(v, depth):
    pad = "  " * depth
    if isinstance(v, dict):
        items = [f"{pad}  {json.dumps(k)}: {_dumps(x, depth + 1)}" for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(v, list) and any(isinstance(x, (list, dict)) for x in v):
        items = [pad + "  " + _dumps(x, depth + 1) for x in v]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(v, separators=(",", ":"), allow_nan=False)


def write_json(path, doc):
    text = _dumps(doc, 0) + "\n"
    assert json.loads(text) == doc
    with open(path, "w") as f:
        f.write(text)


# ---------------------------------------------------------------------------
# Independent float64 references: they read only config.json and the tensors.

def softplus(v):
    return np.logaddexp(0.0, v)


def silu(v):
    return v / (1.0 + np.exp(-v))


def rms(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def causal_conv(xs, w, b):
    """Depthwise causal conv: y[t,c] = b[c] + sum_k w[c,0,k] xs[t-(K-1)+k, c]."""
    T = xs.shape[0]
    K = w.shape[-1]
    pad = np.concatenate([np.zeros((K - 1, xs.shape[1])), xs], axis=0)
    y = np.zeros_like(xs) if b is None else np.broadcast_to(b, xs.shape).copy()
    for k in range(K):
        y += w[:, 0, k][None, :] * pad[k:k + T]
    return y


def embed_weight(W):
    for name in ("backbone.embeddings.weight", "backbone.embedding.weight"):
        if name in W:
            return W[name]
    raise KeyError("backbone.embeddings.weight")


def ref_mamba2(cfg, weights, tokens, norm="group", lm=None):
    """Mamba-2 forward, methods.md 7.2, with a plain sequential scan.

    norm: "group" (mamba_ssm: gated RMSNorm per group of E/G channels) or
    "all" (one RMS over all E channels). lm: None, or a LongMamba filter
    {global [L][H], threshold [L][H], b, slow_factor}. Returns logits and,
    per layer, Delta as computed from the layer's input (softplus(dt +
    dt_bias), clamped to time_step_limit), the Delta used by the scan (after
    the filter), and the kept mask [T][H]."""
    W = {k: v.astype(np.float64) for k, v in weights.items()}
    D_ = cfg["hidden_size"]
    E = int(cfg["expand"] * D_)
    H, P = cfg["num_heads"], cfg["head_dim"]
    G, N = cfg["n_groups"], cfg["state_size"]
    eps = cfg["layer_norm_epsilon"]
    lo, hi = decode_floats(cfg.get("time_step_limit", (0.0, math.inf)))
    assert H * P == E and H % G == 0
    group_of_head = np.arange(H) // (H // G)
    T = len(tokens)
    emb = embed_weight(W)
    x = emb[tokens]
    dts, used, kept = [], [], []
    for layer in range(cfg["num_hidden_layers"]):
        p = f"backbone.layers.{layer}."
        h = rms(x, W[p + "norm.weight"], eps)
        zxbcdt = h @ W[p + "mixer.in_proj.weight"].T
        if p + "mixer.in_proj.bias" in W:
            zxbcdt = zxbcdt + W[p + "mixer.in_proj.bias"]
        conv_dim = E + 2 * G * N
        d_mlp = (zxbcdt.shape[1] - 2 * E - 2 * G * N - H) // 2
        assert d_mlp == 0
        z = zxbcdt[:, :E]
        xBC = zxbcdt[:, E:E + conv_dim]
        dt = zxbcdt[:, E + conv_dim:]
        xBC = silu(causal_conv(xBC, W[p + "mixer.conv1d.weight"], W.get(p + "mixer.conv1d.bias")))
        xs = xBC[:, :E].reshape(T, H, P)
        Bm = xBC[:, E:E + G * N].reshape(T, G, N)
        Cm = xBC[:, E + G * N:].reshape(T, G, N)
        delta = np.clip(softplus(dt + W[p + "mixer.dt_bias"]), lo, hi)        # [T, H]
        keep = np.ones((T, H), dtype=bool)
        d_used = delta.copy()
        if lm is not None:
            glob = np.asarray(lm["global"][layer], dtype=bool)
            thr = np.asarray(lm["threshold"][layer], dtype=np.float64)
            keep = ~glob[None, :] | (delta > thr[None, :] * lm["b"])
            d_used = np.where(keep, delta, delta * lm["slow_factor"])
        A = -np.exp(W[p + "mixer.A_log"])                                    # [H]
        Dskip = W[p + "mixer.D"]
        S = np.zeros((H, P, N))
        y = np.zeros((T, H, P))
        for t in range(T):
            Bh = Bm[t, group_of_head]                                        # [H, N]
            Ch = Cm[t, group_of_head]
            S = (np.exp(d_used[t] * A)[:, None, None] * S
                 + d_used[t][:, None, None] * xs[t][:, :, None] * Bh[:, None, :])
            y[t] = np.einsum("hpn,hn->hp", S, Ch) + Dskip[:, None] * xs[t]
        u = y.reshape(T, E) * silu(z)                                        # gate first
        gs = E // G if norm == "group" else E
        u = u.reshape(T, E // gs, gs)
        u = u / np.sqrt((u * u).mean(-1, keepdims=True) + eps)
        u = u.reshape(T, E) * W[p + "mixer.norm.weight"]
        out = u @ W[p + "mixer.out_proj.weight"].T
        if p + "mixer.out_proj.bias" in W:
            out = out + W[p + "mixer.out_proj.bias"]
        x = x + out
        dts.append(delta)
        used.append(d_used)
        kept.append(keep)
    x = rms(x, W["backbone.norm_f.weight"], eps)
    head = W.get("lm_head.weight", emb)
    return x @ head.T, dts, used, kept


def ref_mamba1(cfg, weights, tokens):
    """Mamba-1 forward, methods.md 7.1 (HF MambaMixer.slow_forward)."""
    W = {k: v.astype(np.float64) for k, v in weights.items()}
    D_ = cfg["hidden_size"]
    E = cfg.get("intermediate_size") or int(cfg.get("expand", 2) * D_)
    N = cfg.get("state_size", 16)
    R = cfg.get("time_step_rank", "auto")
    R = math.ceil(D_ / 16) if R == "auto" else R
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    T = len(tokens)
    emb = embed_weight(W)
    x = emb[tokens]
    dts = []
    for layer in range(cfg["num_hidden_layers"]):
        p = f"backbone.layers.{layer}.mixer."
        h = rms(x, W[f"backbone.layers.{layer}.norm.weight"], eps)
        xz = h @ W[p + "in_proj.weight"].T
        if p + "in_proj.bias" in W:
            xz = xz + W[p + "in_proj.bias"]
        xs, z = xz[:, :E], xz[:, E:]
        xs = silu(causal_conv(xs, W[p + "conv1d.weight"], W.get(p + "conv1d.bias")))
        proj = xs @ W[p + "x_proj.weight"].T
        dlt, Bm, Cm = proj[:, :R], proj[:, R:R + N], proj[:, R + N:R + 2 * N]
        delta = softplus(dlt @ W[p + "dt_proj.weight"].T + W[p + "dt_proj.bias"])   # [T, E]
        A = -np.exp(W[p + "A_log"])                                                # [E, N]
        S = np.zeros((E, N))
        y = np.zeros((T, E))
        for t in range(T):
            S = np.exp(delta[t][:, None] * A) * S + (delta[t] * xs[t])[:, None] * Bm[t][None, :]
            y[t] = S @ Cm[t]
        y = (y + W[p + "D"] * xs) * silu(z)
        out = y @ W[p + "out_proj.weight"].T
        if p + "out_proj.bias" in W:
            out = out + W[p + "out_proj.bias"]
        x = x + out
        dts.append(delta)
    x = rms(x, W["backbone.norm_f.weight"], eps)
    head = W.get("lm_head.weight", emb)
    return x @ head.T, dts


# ---------------------------------------------------------------------------
# transformers side.

def forward(model, tokens):
    with torch.no_grad():
        out = model(input_ids=torch.tensor([tokens]), use_cache=False)
    return out.logits[0].float().numpy()


def mamba2_forward_hooked(model, tokens, lm=None):
    """transformers' Mamba-2 forward; records Delta = softplus(dt + dt_bias)
    (float32, clamped, exactly what mamba2_chunk_scan computes) per layer from
    the in_proj output. With lm, applies the LongMamba filter: for global
    heads, the dt of tokens whose Delta is not above threshold*b is replaced
    by -inf, so that HF's softplus gives Delta = 0 (slow_factor 0 only)."""
    cfg = model.config
    H = cfg.num_heads
    lo, hi = cfg.time_step_limit
    dts, kept, handles = [], [], []
    for layer, block in enumerate(model.backbone.layers):
        mixer = block.mixer

        def hook(module, inputs, output, layer=layer, mixer=mixer):
            dt = output[0, :, -H:]
            delta = torch.clamp(torch.nn.functional.softplus(dt + mixer.dt_bias), lo, hi)
            dts.append(delta.detach().numpy().copy())
            if lm is None:
                return None
            assert lm["slow_factor"] == 0.0
            glob = torch.tensor(lm["global"][layer])
            thr = torch.tensor(np.asarray(lm["threshold"][layer]) * lm["b"], dtype=torch.float64)
            keep = ~glob[None, :] | (delta.double() > thr[None, :])
            kept.append(keep.numpy().copy())
            out = output.clone()
            out[0, :, -H:] = torch.where(keep, dt, torch.full_like(dt, -math.inf))
            return out
        handles.append(mixer.in_proj.register_forward_hook(hook))
    try:
        logits = forward(model, tokens)
    finally:
        for hd in handles:
            hd.remove()
    return logits, dts, kept


def mamba1_forward_hooked(model, tokens):
    """transformers' Mamba-1 forward; records Delta = softplus(dt_proj(delta))
    per layer, computed from the x_proj output the way MambaMixer does."""
    dts, handles = [], []
    for block in model.backbone.layers:
        mixer = block.mixer

        def hook(module, inputs, output, mixer=mixer):
            ts = output[..., :mixer.time_step_rank]                     # [1, T, R]
            step = mixer.dt_proj.weight @ ts.transpose(1, 2)            # [1, E, T]
            step = step + mixer.dt_proj.bias.float()[..., None]
            dts.append(torch.nn.functional.softplus(step)[0].T.detach().numpy().copy())
        handles.append(mixer.x_proj.register_forward_hook(hook))
    try:
        logits = forward(model, tokens)
    finally:
        for hd in handles:
            hd.remove()
    return logits, dts


def build_mamba2(name, **overrides):
    kwargs = dict(MAMBA2)
    kwargs.update(overrides)
    torch.manual_seed(seed_of(name))
    config = Mamba2Config(**kwargs)
    model = Mamba2ForCausalLM(config)
    gen = torch.Generator().manual_seed(seed_of(name) + 1)
    tmin, tmax = config.time_step_min, config.time_step_max
    with torch.no_grad():
        for pname, p in model.named_parameters():
            suffix = next((s for s in STD if pname.endswith(s)), None)
            if suffix is not None:
                p.copy_(STD[suffix] * torch.randn(p.shape, generator=gen))
            elif pname.endswith("mixer.A_log"):
                p.copy_(torch.log(1.0 + 15.0 * torch.rand(p.shape, generator=gen)))
            elif pname.endswith("mixer.dt_bias"):
                dt = torch.exp(torch.rand(p.shape, generator=gen)
                               * (math.log(tmax) - math.log(tmin)) + math.log(tmin))
                p.copy_(dt + torch.log(-torch.expm1(-dt)))
            elif pname.endswith("mixer.D"):
                p.copy_(0.5 + 1.5 * torch.rand(p.shape, generator=gen))
            elif pname.endswith("norm.weight") or pname.endswith("norm_f.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                raise SystemExit(f"{name}: no initialisation rule for {pname}")
    model.eval()
    return model


def mamba2_tokens(name):
    g = torch.Generator().manual_seed(seed_of(name) + 2)
    rest = torch.randint(0, TOKEN_MAX + 1, (SEQ_LEN - 1,), generator=g)
    return [1] + rest.tolist()


def decode_floats(v):
    """transformers 5 writes inf as {"__float__": "Infinity"}; json.load of
    the classic layout gives float("inf") directly."""
    if isinstance(v, dict):
        if set(v) == {"__float__"}:
            return float(v["__float__"].replace("Infinity", "inf"))
        return {k: decode_floats(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [decode_floats(x) for x in v]
    return v


def legacy_config(cfg):
    """Rewrite transformers 5's config.json layout into the classic one that
    checkpoints on the Hub use and transformers 5 still reads back: dtype ->
    torch_dtype, and time_step_limit [0.0, {"__float__": "Infinity"}] ->
    [0.0, Infinity] (json.dump's spelling, which transformers 4 wrote and
    json-c and Python's json read)."""
    cfg = decode_floats(dict(cfg))
    if "dtype" in cfg:
        cfg["torch_dtype"] = cfg.pop("dtype")
    return dict(sorted(cfg.items()))


def state_dict_numpy(model):
    sd = {k: v.detach().float().numpy().copy() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    return sd


# Round values of c tried in turn (0.05 is LongMamba's default).
C_CANDIDATES = (0.05, 0.1, 0.02, 0.2, 0.01, 0.005, 0.002, 0.001)


def choose_c(log_tA):
    """The first of C_CANDIDATES that leaves every layer at least two global
    and two local heads with every tA_prod at least a factor 1.2 away from c;
    failing that, the geometric midpoint of the widest such gap between
    tA_prod values, rounded to 2 significant digits. Returns c and the
    smallest |ln tA_prod - ln c|."""
    def ok(c):
        lc = math.log(c)
        n_glob = (log_tA > lc).sum(axis=1)
        margin = float(np.abs(log_tA - lc).min())
        return n_glob.min() >= 2 and (log_tA.shape[1] - n_glob).min() >= 2 and \
            margin > math.log(1.2), margin
    for c in C_CANDIDATES:
        good, margin = ok(c)
        if good:
            return c, margin
    allv = np.sort(log_tA.ravel())
    gaps = sorted(((b - a, float(f"{math.exp(0.5 * (a + b)):.2g}"))
                   for a, b in zip(allv[:-1], allv[1:])), reverse=True)
    for _, c in gaps:
        good, margin = ok(c)
        if good:
            return c, margin
    raise SystemExit(f"no c gives every layer 2+ global and 2+ local heads: {np.exp(log_tA)}")


# ---------------------------------------------------------------------------

def make_mamba2(out_root):
    name = MAMBA2_NAME
    model = build_mamba2(name)
    cfg_obj = model.config
    L = cfg_obj.num_hidden_layers
    tokens = mamba2_tokens(name)
    logits, hf_dts, _ = mamba2_forward_hooked(model, tokens)
    argmax = logits.argmax(-1)
    check(len(set(argmax.tolist())) >= 4, f"{name}: argmax nearly constant: {argmax.tolist()}")
    check(float(np.std(logits, axis=-1).min()) > 0.1, f"{name}: logits nearly constant")

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
    cfg = legacy_config(cfg)
    check(cfg.get("architectures") == ["Mamba2ForCausalLM"] and cfg["model_type"] == "mamba2",
          f"{name}: unexpected config.json {cfg}")
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)     # time_step_limit [0.0, Infinity]
        f.write("\n")

    # Round trip.
    reloaded = Mamba2ForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    rt = float(np.abs(forward(reloaded, tokens) - logits).max())
    check(rt < 1e-5, f"{name}: from_pretrained logits differ by {rt}")

    # Independent float64 forward from the files alone.
    with open(os.path.join(out, "config.json")) as f:
        file_cfg = json.load(f)
    weights = safetensors.numpy.load_file(os.path.join(out, "model.safetensors"))
    check("lm_head.weight" not in weights, f"{name}: tied model wrote lm_head.weight")
    ref, ref_dts, _, _ = ref_mamba2(file_cfg, weights, tokens)
    rd = float(np.abs(ref - logits).max())
    check(rd < 1e-4, f"{name}: float64 reference differs from transformers by {rd}")
    dt_rel = max(float((np.abs(a - b) / b).max()) for a, b in zip(hf_dts, ref_dts))
    check(dt_rel < 1e-4, f"{name}: Delta differs from transformers' by {dt_rel} (relative)")

    # The group question: what normalising over all E would give instead.
    ref_all, _, _, _ = ref_mamba2(file_cfg, weights, tokens, norm="all")
    group_sens = float(np.abs(ref_all - ref).max())
    check(group_sens > 1e-2, f"{name}: logits barely depend on the norm grouping ({group_sens})")

    # The same NumPy code against an in-memory G=1 model.
    g1 = build_mamba2(name + "-g1", n_groups=1)
    g1_logits = forward(g1, tokens)
    g1_ref, _, _, _ = ref_mamba2(legacy_config(g1.config.to_dict()), state_dict_numpy(g1), tokens)
    g1_rd = float(np.abs(g1_ref - g1_logits).max())
    check(g1_rd < 1e-4, f"{name}: G=1 float64 reference differs from transformers by {g1_rd}")

    # LongMamba filtered prefill.
    A32 = [(-torch.exp(blk.mixer.A_log.float())).detach().numpy() for blk in model.backbone.layers]
    A64 = [-np.exp(weights[f"backbone.layers.{i}.mixer.A_log"].astype(np.float64)) for i in range(L)]
    log_tA = np.array([A64[i] * ref_dts[i].sum(0) for i in range(L)])        # [L, H]
    c, c_margin = choose_c(log_tA)
    glob = log_tA > math.log(c)
    # The mean, not the median: in layer 0 Delta depends on the token alone (dt
    # comes from in_proj, not through the conv), so repeated tokens give equal
    # Delta values and the median of 64 can be one of them exactly.
    thr = np.array([np.mean(ref_dts[i], axis=0) for i in range(L)])          # [L, H]
    thr = np.array([[fmt(v) for v in row] for row in thr])                    # as written
    lm = dict(**{"global": glob.tolist(), "threshold": thr.tolist()}, b=LM_B, slow_factor=LM_SLOW)
    lm_logits, lm_dts, lm_used, lm_kept = ref_mamba2(file_cfg, weights, tokens, lm=lm)
    # Every Delta of a global head clear of its threshold (relative gap).
    gaps = [np.abs(lm_dts[i][:, glob[i]] / (thr[i][glob[i]] * LM_B) - 1.0).min() for i in range(L)]
    thr_margin = float(min(gaps))
    check(thr_margin > 1e-4, f"{name}: a Delta is within {thr_margin} of its threshold")
    hf_lm_logits, _, hf_kept = mamba2_forward_hooked(model, tokens, lm=lm)
    lm_rd = float(np.abs(hf_lm_logits - lm_logits).max())
    check(lm_rd < 1e-4, f"{name}: LongMamba logits differ from transformers by {lm_rd}")
    check(all((a == b).all() for a, b in zip(hf_kept, lm_kept)),
          f"{name}: transformers and NumPy keep different tokens")
    lm_effect = float(np.abs(lm_logits - ref).max())
    check(lm_effect > 1e-2, f"{name}: the LongMamba filter barely changes the logits ({lm_effect})")
    # Layer 1 sees the filtered layer 0: its Delta must differ from vanilla.
    later = float(np.abs(lm_dts[1] - ref_dts[1]).max())
    check(later > 1e-6, f"{name}: layer 1 Delta does not depend on the filter")
    n_glob = glob.sum(1).tolist()
    frac_kept = [float(lm_kept[i][:, glob[i]].mean()) for i in range(L)]

    mc = cfg_obj
    E = int(mc.expand * mc.hidden_size)
    description = (
        f"Random-initialised Mamba2ForCausalLM (transformers' own classes): hidden "
        f"{mc.hidden_size}, expand {mc.expand} (intermediate E = {E}), {mc.num_heads} heads of "
        f"head_dim {mc.head_dim}, n_groups {mc.n_groups} (head h uses group h // "
        f"{mc.num_heads // mc.n_groups} for B and C), state_size {mc.state_size}, conv_kernel "
        f"{mc.conv_kernel} (conv over x, B and C: {E + 2 * mc.n_groups * mc.state_size} channels, "
        f"with bias), {mc.num_hidden_layers} layers, vocab {mc.vocab_size}, tied embeddings (no "
        f"lm_head.weight tensor), no in_proj/out_proj bias, layer_norm_epsilon "
        f"{mc.layer_norm_epsilon:g}, time_step_limit (0, inf), float32, {len(tokens)} tokens "
        f"(first 1, the rest uniform in 0..{TOKEN_MAX}). " + INIT_DESC + " in_proj output "
        f"splits as [z {E}, xBC {E + 2 * mc.n_groups * mc.state_size}, dt {mc.num_heads}]; "
        "Delta = softplus(dt + dt_bias) per head; A = -exp(A_log); sequential scan S_h = "
        "exp(Delta_h A_h) S_h + Delta_h outer(x_h, B_g), y_h = S_h C_g + D_h x_h; gated "
        "RMSNorm as mamba_ssm (norm_before_gate=False): u = y * silu(z), normalised per group "
        f"of E/G = {E // mc.n_groups} channels, times mixer.norm.weight. transformers "
        f"{transformers.__version__}'s MambaRMSNormGated also normalises per group "
        f"(group_size = intermediate_size // n_groups), so these logits are transformers' own "
        f"forward (chunk_size {mc.chunk_size}, use_cache false); normalising over all E instead "
        f"would change them by up to {group_sens:.2f}. An independent float64 NumPy forward "
        f"from config.json + model.safetensors differs from these float32 logits by at most "
        f"{rd:.1e} (and by {g1_rd:.1e} on an in-memory n_groups 1 model). "
        "dt [layer][T][H] is Delta after softplus (transformers, float32); A [layer][H] = "
        "-exp(A_log) in float32. "
        "longmamba: a LongMamba filtered prefill (methods.md 2.3, slow_factor 0), computed "
        "with the float64 NumPy forward: tA_prod[l][h] = exp(A_h * sum over all "
        f"{len(tokens)} tokens of the vanilla Delta[l][t][h]) (this sequence's own vanilla run, "
        f"not an offline calibration; log_tA_prod is the exponent, better conditioned than "
        f"tA_prod, which underflows float32 for some heads); global[l][h] = tA_prod > c with c = {c:g} "
        f"(global heads per layer {n_glob}; every tA_prod at least a factor "
        f"{math.exp(c_margin):.2f} from c); threshold[l][h] = mean over t of the vanilla "
        f"Delta[l][t][h] (not the median: in layer 0 Delta depends on the token alone, so "
        f"repeated tokens tie and the median can equal a Delta); the "
        "filtered forward recomputes Delta from each layer's actual input (layer 1 sees the "
        "filtered layer 0) and, for global heads only, sets Delta[l][t][h] = 0 unless Delta > "
        "threshold * b (b 1; kept then true); local heads unchanged and kept all true. "
        "kept [layer][head][token]; longmamba.dt [layer][T][H] is the Delta the filtered scan "
        "used (0 where dropped). Every Delta of a global head is at least a relative "
        f"{thr_margin:.1e} from its threshold, so a float32 engine drops the same tokens. "
        f"transformers with the same filter (dt := -inf for dropped tokens) agrees to "
        f"{lm_rd:.1e}; the filter changes the logits by up to {lm_effect:.2f}.")
    doc = {
        "name": name,
        "description": description,
        "tokens": tokens,
        "logits": fmt_nd(logits),
        "argmax": [int(a) for a in argmax],
        "dt": [fmt_nd(d) for d in hf_dts],
        "A": [fmt_nd(a) for a in A32],
        "longmamba": {
            "c": c,
            "b": LM_B,
            "slow_factor": LM_SLOW,
            "log_tA_prod": fmt_nd(log_tA),
            "tA_prod": fmt_nd(np.exp(log_tA)),
            "global": glob.tolist(),
            "threshold": thr.tolist(),
            "logits": fmt_nd(lm_logits),
            "argmax": [int(a) for a in lm_logits.argmax(-1)],
            "kept": [k.T.tolist() for k in lm_kept],
            "dt": [fmt_nd(d) for d in lm_used],
        },
        "versions": versions(),
    }
    write_json(os.path.join(out, "expected.json"), doc)
    sizes = {f: os.path.getsize(os.path.join(out, f)) for f in sorted(os.listdir(out))}
    return dict(name=name, sizes=sizes, roundtrip=rt, ref=rd, dt_rel=dt_rel, g1=g1_rd,
                group_sens=group_sens, c=c, c_margin=math.exp(c_margin), n_glob=n_glob,
                frac_kept=frac_kept, thr_margin=thr_margin, lm_rd=lm_rd, lm_effect=lm_effect,
                tA=np.exp(log_tA), n_params=sum(p.numel() for p in model.parameters()))


def make_mamba1_dt(out_root, shared):
    src = os.path.join(shared, MAMBA1_REL)
    with open(os.path.join(src, "reference-logits.json")) as f:
        ref_doc = json.load(f)
    seq = ref_doc["sequences"][MAMBA1_SEQ]
    tokens = seq["tokens"][:SEQ_LEN]
    check(len(tokens) == SEQ_LEN, f"tiny-mamba: sequence {MAMBA1_SEQ} has {len(tokens)} tokens")
    model = MambaForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
    logits, hf_dts = mamba1_forward_hooked(model, tokens)
    ref_logits = np.asarray(seq["logits"], dtype=np.float64)[:SEQ_LEN]
    vs_ref = float(np.abs(logits - ref_logits).max())
    vs_ref_rel = vs_ref / float(np.abs(ref_logits).max())
    check(vs_ref_rel < 1e-4, f"tiny-mamba: transformers differs from reference-logits.json by "
          f"{vs_ref} ({vs_ref_rel} of max|logit|)")

    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    weights = safetensors.numpy.load_file(os.path.join(src, "model.safetensors"))
    ref, ref_dts = ref_mamba1(cfg, weights, tokens)
    rd = float(np.abs(ref - logits).max())
    check(rd < 1e-4, f"tiny-mamba: float64 reference differs from transformers by {rd}")
    dt_rel = max(float((np.abs(a - b) / b).max()) for a, b in zip(hf_dts, ref_dts))
    check(dt_rel < 1e-4, f"tiny-mamba: Delta differs from transformers' by {dt_rel} (relative)")
    A32 = [(-torch.exp(blk.mixer.A_log.float())).detach().numpy() for blk in model.backbone.layers]

    doc = {
        "name": "tiny-mamba-dt",
        "description": (
            f"Mamba-1 Delta for {MAMBA1_REL} (the shared checkpoint, read from "
            f"LSC_SHARED_DIR, not copied here): transformers MambaForCausalLM, float32, "
            f"use_cache false, over the {len(tokens)} tokens of reference-logits.json "
            f"sequences[{MAMBA1_SEQ}]. dt [layer][T][E] = softplus(dt_proj(delta)) (dt_proj "
            f"with its bias; delta = the first time_step_rank outputs of x_proj), A "
            f"[layer][E][N] = -exp(A_log) in float32, logits_last [vocab] = the logits at the "
            f"last position. transformers agrees with reference-logits.json to {vs_ref:.1e} "
            f"(max|diff|); an independent float64 NumPy forward (methods.md 7.1) agrees with "
            f"transformers to {rd:.1e} on the logits and {dt_rel:.1e} (relative) on Delta."),
        "tokens": tokens,
        "dt": [fmt_nd(d) for d in hf_dts],
        "A": [fmt_nd(a) for a in A32],
        "logits_last": fmt_nd(logits[-1]),
        "versions": versions(),
    }
    path = os.path.join(out_root, "tiny-mamba-dt.json")
    write_json(path, doc)
    return dict(name="tiny-mamba-dt.json", vs_ref=vs_ref, vs_ref_rel=vs_ref_rel, ref=rd,
                dt_rel=dt_rel, size=os.path.getsize(path), shape=(len(hf_dts),) + hf_dts[0].shape)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(
        description="Write the SSM reference fixtures (tests/fixtures/ssm/).")
    ap.add_argument("out", nargs="?", default=None,
                    help="output folder (default: tests/fixtures/ssm beside this script)")
    ap.add_argument("--shared", default=None,
                    help="shared data folder holding models/random/tiny-mamba (default: "
                         "$LSC_SHARED_DIR, else ../shared beside the repository)")
    args = ap.parse_args()
    out_root = os.path.normpath(args.out or os.path.join(here, "..", "tests", "fixtures", "ssm"))
    shared = args.shared or os.environ.get("LSC_SHARED_DIR") or os.path.join(here, "..", "..",
                                                                              "shared")
    shared = os.path.normpath(shared)
    os.makedirs(out_root, exist_ok=True)

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    try:
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    except Exception:
        pass

    m2 = make_mamba2(out_root)
    m1 = make_mamba1_dt(out_root, shared)

    print("self-checks (max |diff|)")
    print(f"  {m2['name']}: from_pretrained round trip {m2['roundtrip']:.1e}, float64 NumPy vs "
          f"transformers {m2['ref']:.1e} (G=2), {m2['g1']:.1e} (G=1 model), Delta "
          f"{m2['dt_rel']:.1e} (relative)")
    print(f"  {m2['name']}: per-group vs all-E gated norm changes logits by "
          f"{m2['group_sens']:.3f}")
    print(f"  {m2['name']} LongMamba: c = {m2['c']:g} (tA_prod >= x{m2['c_margin']:.2f} from c), "
          f"global heads per layer {m2['n_glob']}, kept fraction in global heads "
          f"{[round(v, 3) for v in m2['frac_kept']]}, min Delta/threshold gap "
          f"{m2['thr_margin']:.1e}, NumPy vs transformers {m2['lm_rd']:.1e}, filter effect "
          f"{m2['lm_effect']:.3f}")
    for i, row in enumerate(m2["tA"]):
        print(f"    layer {i} tA_prod: " + " ".join(f"{v:.3g}" for v in row))
    print(f"  {m1['name']}: transformers vs reference-logits.json {m1['vs_ref']:.1e} "
          f"({m1['vs_ref_rel']:.1e} of max|logit|), float64 NumPy vs transformers "
          f"{m1['ref']:.1e}, Delta {m1['dt_rel']:.1e} (relative), dt shape {m1['shape']}")
    print()
    print(f"{'file':34} {'bytes':>8}")
    grand = 0
    for f, s in m2["sizes"].items():
        print(f"{m2['name'] + '/' + f:34} {s:8d}")
        grand += s
    print(f"{m1['name']:34} {m1['size']:8d}")
    grand += m1["size"]
    print(f"total {grand} bytes ({grand / 1024:.0f} KiB) in {out_root}; "
          f"{m2['name']} has {m2['n_params']} parameters")
    print("versions:", json.dumps(versions()))


if __name__ == "__main__":
    main()
