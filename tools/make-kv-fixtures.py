#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# Writes tests/fixtures/kv/: a tiny multi-head Llama (tiny-mha, written by
# transformers) and kv-policies.json, the logits, kept positions and scores
# of KV-cache eviction policies run by an independent float64 torch forward
# with an explicit per-layer cache, on which each policy acts as its
# authors' code does (methods.md section 3):
#
#   streaming-llm  mit-han-lab/streaming-llm StartRecentKVCache + pos_shift
#   h2o            FMInference/H2O H2OKVCache_LayerWise (real drop)
#   snapkv         FasterDecoding/SnapKV SnapKVCluster.update_kv
#   pyramidkv      Zefan-Cai/PyramidKV PyramidKVCluster.update_kv
#   lacache        GATECH-EIC/LaCache ppl/lacache/kv_cache.py LaCache.__call__
#   think          SalesforceAIResearch/ThinK key_pruner_query_driven (alone,
#                  without token selection; channel scores of the query heads
#                  of a KV head summed)
#   lm-infinite    Glaciohound/LM-Infinite models/llama.py + lambda_attention.py
#                  (convert_llama_model: limit_distance = local_branch); per
#                  row the rule its four modes compute: keys p - j < local at
#                  their true distance, global keys beyond at the distance
#                  cap (query rotated at local, key unrotated), others hidden.
#                  The reference keeps every key; the engine evicts those no
#                  later query can see, which changes no logit.
#
# LaCache is transcribed with one deviation, which the engine shares: where
# the reference's arithmetic would repeat tokens (a first eviction smaller
# than its one-time compensation), nothing is evicted.
#
# With grouped-query attention the selection is Longscope's documented
# adaptation (scores summed over the query heads of a KV head); on tiny-mha
# (one query head per KV head) it is the reference's. Tokens are fixed
# (teacher-forced). The forward without a policy is checked against
# transformers. tests/test-kv.c holds the engine to this file. Run by hand
# (CI never runs it):
#
#   python3 tools/make-kv-fixtures.py
import json
import math
import os
import platform

import torch
import transformers
from safetensors.torch import load_file

ROOT = "tests/fixtures"
OUT = os.path.join(ROOT, "kv", "kv-policies.json")


def make_tiny_mha():
    path = os.path.join(ROOT, "kv", "tiny-mha")
    torch.manual_seed(1234)
    cfg = transformers.LlamaConfig(
        hidden_size=64, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=4, head_dim=16, vocab_size=128, rms_norm_eps=1e-6,
        rope_theta=10000.0, max_position_embeddings=128, tie_word_embeddings=False,
        initializer_range=0.2, torch_dtype="float32")
    transformers.LlamaForCausalLM(cfg).save_pretrained(path, safe_serialization=True)
    gen = os.path.join(path, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)
    return path


class Model:
    """A Llama / Qwen2 forward in float64 with an explicit cache."""

    def __init__(self, path):
        cfg = json.load(open(os.path.join(path, "config.json")))
        w = {k: v.to(torch.float64) for k, v in load_file(os.path.join(path, "model.safetensors")).items()}
        self.w = w
        self.L = cfg["num_hidden_layers"]
        self.H = cfg["num_attention_heads"]
        self.Hkv = cfg["num_key_value_heads"]
        self.G = self.H // self.Hkv
        self.dim = cfg["hidden_size"]
        self.hd = cfg.get("head_dim") or self.dim // self.H
        self.eps = cfg["rms_norm_eps"]
        # transformers 5 writes rope_parameters.rope_theta, older versions rope_theta
        theta = cfg.get("rope_theta") or (cfg.get("rope_parameters") or {}).get("rope_theta")
        assert theta is not None, path
        self.inv_freq = 1.0 / theta ** (torch.arange(0, self.hd, 2, dtype=torch.float64) / self.hd)
        self.lm_head = w.get("lm_head.weight", w["model.embed_tokens.weight"])

    def rope(self, x, pos):
        # x (..., hd) rotated at integer position pos (rotate_half layout)
        ang = pos * self.inv_freq
        cos = torch.cat([torch.cos(ang), torch.cos(ang)])
        sin = torch.cat([torch.sin(ang), torch.sin(ang)])
        h = self.hd // 2
        rot = torch.cat([-x[..., h:], x[..., :h]], dim=-1)
        return x * cos + rot * sin

    def norm(self, x, weight):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + self.eps) * weight

    def lin(self, name, x):
        y = x @ self.w[name + ".weight"].T
        if name + ".bias" in self.w:
            y = y + self.w[name + ".bias"]
        return y


class LaCache:
    """The index logic of LaCache.__call__, on slot numbers."""

    def __init__(self, n_layers, capacity, sink, span, overlap):
        self.L, self.cache_size, self.start = n_layers, capacity, sink
        self.span, self.overlap = span, overlap
        self.cursor = sink
        self.compensated = False

    def __call__(self, seq_len):
        """Per layer, the slots kept (ascending), or None: nothing evicted."""
        L, S, O = self.L, self.span, self.overlap
        if seq_len <= self.cache_size:
            return None
        before = 1 + math.ceil((L - S) / (S - O))
        after = min(math.ceil(S / (S - O)), before)
        reduce = before - after
        if not self.compensated:
            self.cache_size += reduce // 2
            self.compensated = True
        need = seq_len - self.cache_size
        if need <= 0:
            return None
        room = self.cache_size - self.cursor - L
        can = (room // after) * reduce
        startover = need > can
        increment = room if startover else math.ceil(need / reduce) * after
        ladders = max(0, increment // after)
        if startover:
            once = ((self.cache_size - self.start - L) // after) * reduce
            remaining = need - can
            times = math.ceil(remaining / once)
            before_so = before + (times - 1) * (before - 1)
            reduce_so = before_so - after
            increment_so = math.ceil(remaining / reduce_so) * after
            ladders_so = increment_so // after
        keep = []
        for i in range(L):
            idx = list(range(self.cursor))
            idx += [self.cursor + i % (reduce + 1) + before * j + k
                    for j in range(ladders) for k in range(after)]
            idx += list(range(self.cursor + before * ladders, seq_len))
            if startover:
                sel = list(range(self.start))
                sel += [self.start + i % (reduce_so + 1) + before_so * j + times * k
                        for j in range(ladders_so) for k in range(after)]
                sel += list(range(self.start + before_so * ladders_so, len(idx)))
                idx = sorted(idx[t] for t in sel if t < len(idx))
            keep.append(idx)
        self.cursor = self.start + increment_so if startover else self.cursor + increment
        return keep


def check_ladder_example():
    """methods.md 3.5's worked example: L = 8, span 4, overlap 0, cache 24,
    start 2, after 80 tokens fed one at a time."""
    lc = LaCache(8, 24, 2, 4, 0)
    pos = [list(range(0)) for _ in range(8)]
    for t in range(80):
        pos = [p + [t] for p in pos]
        keep = lc(len(pos[0]))
        if keep is not None:
            pos = [[pos[i][j] for j in keep[i]] for i in range(8)]
    even = [0, 1, 2, 18, 32, 40, 46, 50, 54, 58] + list(range(60, 72, 2)) + list(range(72, 80))
    odd = [0, 1, 17, 31, 39, 45, 49, 53, 57] + list(range(59, 72, 2)) + list(range(72, 80))
    print("lacache example, layer 0:", pos[0])
    print("lacache example, layer 1:", pos[1])
    assert pos[0] == even and pos[1] == odd
    return pos


class Run:
    """One stream through a model under a policy."""

    def __init__(self, model, policy):
        self.m = model
        self.p = policy
        self.kind = policy["kind"]
        self.pos_shift = self.kind in ("streaming-llm", "lacache")
        if self.kind == "lacache":
            self.ladder = LaCache(model.L, policy["capacity"], policy["sink"], policy["span"],
                                  policy["overlap"])
        L, H = model.L, model.H
        # per layer: keys (Hkv, n, hd), values, original positions (Hkv, n)
        self.k = [torch.zeros(model.Hkv, 0, model.hd, dtype=torch.float64) for _ in range(L)]
        self.v = [torch.zeros(model.Hkv, 0, model.hd, dtype=torch.float64) for _ in range(L)]
        self.pos = [torch.zeros(model.Hkv, 0, dtype=torch.long) for _ in range(L)]
        self.hh = [torch.zeros(H, 0, dtype=torch.float64) for _ in range(L)]   # h2o, per query head
        self.stream = 0
        self.n_evals = 0
        self.margin = math.inf
        self.pooled = None
        self.last_q = []
        self.pruned = None

    def evaluate(self, tokens):
        m, n = self.m, len(tokens)
        x = m.w["model.embed_tokens.weight"][torch.tensor(tokens)]
        votes = []
        for l in range(m.L):
            pre = f"model.layers.{l}."
            h = m.norm(x, m.w[pre + "input_layernorm.weight"])
            q = m.lin(pre + "self_attn.q_proj", h).view(n, m.H, m.hd)
            k = m.lin(pre + "self_attn.k_proj", h).view(n, m.Hkv, m.hd)
            v = m.lin(pre + "self_attn.v_proj", h).view(n, m.Hkv, m.hd)
            base = self.k[l].shape[1]          # slots in use before this evaluation
            for i in range(n):
                qpos = base + i if self.pos_shift else self.stream + i
                q[i] = m.rope(q[i], qpos)
                if not self.pos_shift:
                    k[i] = m.rope(k[i], self.stream + i)
            self.k[l] = torch.cat([self.k[l], k.transpose(0, 1)], dim=1)
            self.v[l] = torch.cat([self.v[l], v.transpose(0, 1)], dim=1)
            self.pos[l] = torch.cat([self.pos[l], torch.arange(self.stream, self.stream + n).repeat(m.Hkv, 1)], dim=1)
            keys = self.k[l]
            if self.pos_shift:   # pre-RoPE keys rotated at their slot
                keys = torch.stack([m.rope(keys[:, j], j) for j in range(keys.shape[1])], dim=1)
            total = base + n
            kpos = self.pos[l][0]                                   # original positions
            qpos = torch.arange(self.stream, self.stream + n)
            out = torch.zeros(n, m.H, m.hd, dtype=torch.float64)
            probs = torch.zeros(m.H, n, total, dtype=torch.float64)
            for hq in range(m.H):
                kv = hq // m.G
                s = (q[:, hq] @ keys[kv].T) / math.sqrt(m.hd)          # (n, total)
                mask = torch.arange(total)[None, :] > (base + torch.arange(n))[:, None]
                if self.kind == "lm-infinite":
                    far = (qpos[:, None] - kpos[None, :]) >= self.p["local"]
                    glob = far & (kpos[None, :] < self.p["global"])
                    # stationary: the query (before RoPE) rotated at `local`, the key unrotated
                    q_raw = torch.stack([m.rope(q[i, hq], -int(qpos[i])) for i in range(n)])
                    q_stat = m.rope(q_raw, self.p["local"])
                    k_raw = torch.stack([m.rope(self.k[l][kv, j], -int(kpos[j]))
                                         for j in range(total)])
                    stat = (q_stat @ k_raw.T) / math.sqrt(m.hd)
                    s = torch.where(glob, stat, s)
                    mask = mask | (far & ~glob)
                s = s.masked_fill(mask, -math.inf)
                p = torch.softmax(s, dim=-1)
                probs[hq] = p
                out[:, hq] = p @ self.v[l][kv]
            if self.kind == "think" and self.n_evals == 0:
                self.last_q.append(q[-32:].clone())              # (rows, H, hd) after RoPE
            if self.kind == "h2o":
                self.hh[l] = torch.cat([self.hh[l], torch.zeros(m.H, n, dtype=torch.float64)], dim=1)
                self.hh[l] += probs.sum(1)
            votes.append(probs)
            x = x + m.lin(pre + "self_attn.o_proj", out.reshape(n, m.H * m.hd))
            h = m.norm(x, m.w[pre + "post_attention_layernorm.weight"])
            g = m.lin(pre + "mlp.gate_proj", h)
            x = x + m.lin(pre + "mlp.down_proj", torch.nn.functional.silu(g) * m.lin(pre + "mlp.up_proj", h))
        logits = m.norm(x, m.w["model.norm.weight"]) @ m.lm_head.T
        self.stream += n
        self.policy(votes, n)
        self.n_evals += 1
        return logits

    def top(self, score, k):
        """The k best of score (1-D), ties to the lower index, in position order; notes the margin."""
        order = sorted(range(len(score)), key=lambda j: (-float(score[j]), j))
        if 0 < k < len(order):
            # the gap between the last kept and the best evicted score; exact
            # ties (max pooling repeats a window's maximum) go by position in
            # both implementations, so the next distinct score counts
            a = float(score[order[k - 1]])
            below = [float(score[j]) for j in order[k:] if float(score[j]) < a]
            if below:
                self.margin = min(self.margin, a - below[0])
        return sorted(order[:k])

    def keep(self, l, per_head):
        """Compact layer l to the kept slots of each KV head (lists of equal length)."""
        idx = torch.tensor(per_head, dtype=torch.long)            # (Hkv, n_keep)
        hd = self.m.hd
        self.k[l] = torch.gather(self.k[l], 1, idx[:, :, None].expand(-1, -1, hd))
        self.v[l] = torch.gather(self.v[l], 1, idx[:, :, None].expand(-1, -1, hd))
        self.pos[l] = torch.gather(self.pos[l], 1, idx)
        if self.kind == "h2o":
            qidx = idx.repeat_interleave(self.m.G, dim=0)
            self.hh[l] = torch.gather(self.hh[l], 1, qidx)

    def group_sum(self, per_query):
        m = self.m
        return per_query.view(m.Hkv, m.G, -1).sum(1)

    def policy(self, votes, n):
        p, m = self.p, self.m
        self.pooled = None
        self.pruned = None
        if self.kind == "streaming-llm":
            for l in range(m.L):
                length = self.k[l].shape[1]
                if length > p["sink"] + p["recent"]:
                    slots = list(range(p["sink"])) + list(range(length - p["recent"], length))
                    self.keep(l, [slots] * m.Hkv)
        elif self.kind == "think" and self.n_evals == 0:
            # key_pruner_query_driven: score = mean(q^2) over the last 32
            # queries x mean(k^2) over the keys; drop the int(d * ratio)
            # lowest channels of all but the last `recent` keys
            self.pruned = []
            drop = int(m.hd * p["ratio"])
            for l in range(m.L):
                qn = (self.last_q[l] ** 2).mean(0)                   # (H, hd)
                qn = qn.view(m.Hkv, m.G, m.hd).sum(1)                # summed over the group
                kn = (self.k[l] ** 2).mean(1)                        # (Hkv, hd)
                score = qn * kn
                old = self.k[l].shape[1] - p["recent"]
                per = []
                for kv in range(m.Hkv):
                    order = sorted(range(m.hd), key=lambda c: (float(score[kv, c]), c))
                    lowest = sorted(order[:drop])
                    if 0 < drop < m.hd:
                        gap = float(score[kv, order[drop]] - score[kv, order[drop - 1]])
                        self.margin = min(self.margin, gap / float(score[kv, order[drop]]))
                    if old > 0:
                        self.k[l][kv, :old, lowest] = 0.0
                    per.append(lowest if old > 0 else [])
                self.pruned.append(per)
        elif self.kind == "lm-infinite":
            for l in range(m.L):
                pos = self.pos[l][0].tolist()
                slots = [j for j, pj in enumerate(pos)
                         if pj < p["global"] or self.stream - pj < p["local"]]
                if len(slots) < len(pos):
                    self.keep(l, [slots] * m.Hkv)
        elif self.kind == "lacache":
            keep = self.ladder(self.k[0].shape[1])
            if keep is not None:
                for l in range(m.L):
                    self.keep(l, [keep[l]] * m.Hkv)
        elif self.kind == "h2o":
            for l in range(m.L):
                length = self.k[l].shape[1]
                if length > p["heavy"] + p["recent"]:
                    score = self.group_sum(self.hh[l])
                    cand = length - p["recent"]
                    self.keep(l, [self.top(score[kv, :cand], p["heavy"]) + list(range(cand, length))
                                  for kv in range(m.Hkv)])
        elif self.kind in ("snapkv", "pyramidkv") and self.n_evals == 0:
            C, w, K = p["capacity"], p["window"], p["kernel"]
            if n < C:
                return
            self.pooled = []
            for l in range(m.L):
                budget = C - w
                if self.kind == "pyramidkv" and n >= (C - w) * 2:
                    min_num = (C - w) // p["beta"]
                    max_num = (C - w) * 2 - min_num
                    if max_num >= n - w:
                        max_num = n - w
                        min_num = (C - w) * 2 - max_num
                    steps = (max_num - min_num) // (m.L - 1)
                    budget = max_num - l * steps
                vote = votes[l][:, n - w:, : n - w].sum(1)            # (H, n - w)
                v = self.group_sum(vote)[:, None, :]                  # (Hkv, 1, n - w)
                if p["pooling"] == "avg":
                    pooled = torch.nn.functional.avg_pool1d(v, K, stride=1, padding=K // 2)
                else:
                    pooled = torch.nn.functional.max_pool1d(v, K, stride=1, padding=K // 2)
                pooled = pooled[:, 0, :]
                self.pooled.append(pooled.tolist())
                self.keep(l, [self.top(pooled[kv], budget) + list(range(n - w, n))
                              for kv in range(m.Hkv)])

    def kept(self):
        return [[sorted(self.pos[l][kv].tolist()) for kv in range(self.m.Hkv)] for l in range(self.m.L)]

    def scores(self):
        out = []
        for l in range(self.m.L):
            s = self.group_sum(self.hh[l])
            per = []
            for kv in range(self.m.Hkv):
                pairs = sorted(zip(self.pos[l][kv].tolist(), s[kv].tolist()))
                per.append([v for _, v in pairs])
            out.append(per)
        return out


def check_forward(path, model):
    """The float64 forward without a policy against transformers (float32)."""
    hf = transformers.AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32,
                                                           attn_implementation="eager")
    g = torch.Generator().manual_seed(9)
    tokens = torch.randint(3, model.lm_head.shape[0], (20,), generator=g).tolist()
    ours = Run(model, {"kind": "full"}).evaluate(tokens)
    with torch.no_grad():
        theirs = hf(torch.tensor([tokens])).logits[0].to(torch.float64)
    diff = (ours - theirs).abs().max().item()
    print(f"{path}: float64 forward vs transformers {diff:.2e}")
    assert diff < 1e-4
    return diff


def tokens_for(seed, n, vocab):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, vocab, (n,), generator=g).tolist()


CASES = [
    ("streaming-llm-1", "kv/tiny-mha", {"kind": "streaming-llm", "sink": 2, "recent": 6}, [1] * 20),
    ("streaming-llm-chunks", "kv/tiny-mha", {"kind": "streaming-llm", "sink": 2, "recent": 6},
     [4, 4, 4, 4, 1, 1, 1, 1]),
    ("streaming-llm-qwen2", "hf/qwen2-bf16", {"kind": "streaming-llm", "sink": 1, "recent": 5}, [1] * 14),
    ("h2o-mha", "kv/tiny-mha", {"kind": "h2o", "heavy": 3, "recent": 3}, [12] + [1] * 10),
    ("h2o-chunks", "kv/tiny-mha", {"kind": "h2o", "heavy": 3, "recent": 3}, [5, 5, 2, 1, 1, 1, 1]),
    ("h2o-gqa", "hf/llama-rope-none", {"kind": "h2o", "heavy": 3, "recent": 4}, [14] + [1] * 8),
    ("snapkv-avg", "kv/tiny-mha", {"kind": "snapkv", "capacity": 12, "window": 4, "kernel": 3,
                                   "pooling": "avg"}, [24] + [1] * 6),
    ("snapkv-max-gqa", "hf/llama-rope-none", {"kind": "snapkv", "capacity": 10, "window": 3,
                                              "kernel": 5, "pooling": "max"}, [22] + [1] * 5),
    ("snapkv-short", "kv/tiny-mha", {"kind": "snapkv", "capacity": 12, "window": 4, "kernel": 3,
                                     "pooling": "avg"}, [10] + [1] * 3),
    ("pyramidkv", "kv/tiny-mha", {"kind": "pyramidkv", "capacity": 10, "window": 2, "kernel": 3,
                                  "pooling": "max", "beta": 4}, [30] + [1] * 4),
    ("pyramidkv-mid", "kv/tiny-mha", {"kind": "pyramidkv", "capacity": 10, "window": 2, "kernel": 3,
                                      "pooling": "max", "beta": 4}, [14] + [1] * 3),
    ("lacache-1", "kv/tiny-mha", {"kind": "lacache", "capacity": 10, "sink": 2, "span": 2,
                                  "overlap": 0}, [1] * 40),
    ("lacache-compensated", "kv/tiny-mha", {"kind": "lacache", "capacity": 12, "sink": 1,
                                            "span": 1, "overlap": 0}, [16] + [1] * 24),
    ("lacache-gqa", "hf/llama-rope-none", {"kind": "lacache", "capacity": 8, "sink": 1, "span": 1,
                                           "overlap": 0}, [6, 6] + [1] * 12),
    ("lm-infinite", "kv/tiny-mha", {"kind": "lm-infinite", "global": 2, "local": 6},
     [20] + [1] * 8),
    ("lm-infinite-chunks", "kv/tiny-mha", {"kind": "lm-infinite", "global": 3, "local": 5},
     [4, 4, 4, 4, 3] + [1] * 6),
    ("lm-infinite-gqa", "hf/llama-rope-none", {"kind": "lm-infinite", "global": 1, "local": 7},
     [18] + [1] * 6),
    ("think", "kv/tiny-mha", {"kind": "think", "ratio": 0.4, "recent": 4}, [40] + [1] * 6),
    ("think-gqa", "hf/llama-rope-none", {"kind": "think", "ratio": 0.5, "recent": 3}, [20] + [1] * 4),
    ("full", "kv/tiny-mha", {"kind": "full"}, [10, 1, 1, 1]),
]


def main():
    ladder_example = check_ladder_example()
    make_tiny_mha()
    models, checks = {}, {}
    for _, rel, _, _ in CASES:
        if rel not in models:
            path = os.path.join(ROOT, rel)
            models[rel] = Model(path)
            checks[rel] = check_forward(path, models[rel])
    cases = []
    for i, (name, rel, policy, sizes) in enumerate(CASES):
        model = models[rel]
        run = Run(model, policy)
        stream = tokens_for(100 + i, sum(sizes), model.lm_head.shape[0])
        evals, at = [], 0
        for n in sizes:
            toks = stream[at:at + n]
            at += n
            logits = run.evaluate(toks)
            e = {"tokens": toks, "logits": logits.tolist()}
            if policy["kind"] != "full":
                e["kept"] = run.kept()
            if policy["kind"] == "h2o":
                e["scores"] = run.scores()
            if run.pooled is not None:
                e["pooled"] = run.pooled
            if run.pruned is not None:
                e["pruned"] = run.pruned
            evals.append(e)
        margin = None if run.margin == math.inf else run.margin
        print(f"{name}: {len(evals)} evaluations, margin {margin}")
        assert margin is None or margin > 1e-6, name
        cases.append({"name": name, "model": rel, "policy": policy, "evals": evals,
                      "min_margin": margin})
    out = {
        "generator": "tools/make-kv-fixtures.py",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version()},
        "forward_vs_transformers": checks,
        "lacache_example": {"n_layers": 8, "capacity": 24, "sink": 2, "span": 4, "overlap": 0,
                            "tokens": 80, "kept": ladder_example},
        "cases": cases,
    }
    with open(OUT, "w") as f:
        json.dump(out, f)
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
