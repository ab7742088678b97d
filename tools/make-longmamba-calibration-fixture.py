#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# Writes tests/fixtures/ssm/longmamba-calibration.json: LongMamba's offline
# calibration ("align targets", methods.md 2.2, load_align_target.py) of the
# Δ recorded in tests/fixtures/ssm/tiny-mamba2/expected.json, computed with
# torch's own topk / clamp / sort / F.interpolate(mode='linear',
# align_corners=False) / cumsum / argmax / gather, so that the C
# lsc_ssm_calibrate () is checked against torch rather than against a second
# reading of its own formulas. Run by hand (CI never runs it):
#
#   python3 tools/make-longmamba-calibration-fixture.py [OUT]
#
# Deterministic (no randomness; CPU, float64). Δ and A are the fixture's
# float32 values (9 significant digits, exact in float32) widened to float64;
# everything after that is float64. Outputs are written with Python's
# shortest round-trip repr.
#
# Per window (sample) and layer, per head c (T = rows of the window):
#   v = min(topk(Δ, max(1, int(T * ratio)))), Δc = clamp(Δ, max=v)
#   dt_sum = Σ Δc, log_tA_prod = A * dt_sum
#   target Lt <= T: threshold 0, alpha 1 (the reference's 1k/2k for T = 2000)
#   else s2 = interpolate(sort_desc(Δc), Lt), k = argmax(cumsum(s2) > dt_sum) + 1,
#        alpha = min(k / Lt, 1), threshold = s2[min(k, Lt - 1)]
# Aggregates over the samples "40a" and "40b": max, and mean (log_tA_prod as
# ln(mean(tA_prod)), the reference averaging tA_prod).
import json
import os
import platform
import sys

import torch
import torch.nn.functional as F

RATIO = 0.15
TARGETS = [32, 64, 100, 256, 1000]
WINDOWS = {"all": (0, 64), "40a": (0, 40), "40b": (24, 64)}
AGG = ["40a", "40b"]


def calibrate(dt, A):
    """dt (T, H) float64, A (H,) float64 -> dict of lists."""
    T, H = dt.shape
    d = dt.t()                                            # (H, T)
    k_top = max(1, int(T * RATIO))
    v = torch.topk(d, k=k_top, dim=1, largest=True, sorted=False).values.min(dim=1, keepdim=True).values
    dc = torch.clamp(d, max=v)
    dt_sum = dc.sum(dim=1)
    out = {"log_tA_prod": (A * dt_sum).tolist(), "dt_sum": dt_sum.tolist(),
           "alpha": [], "threshold": []}
    for lt in TARGETS:
        if lt <= T:
            out["alpha"].append([1.0] * H)
            out["threshold"].append([0.0] * H)
            continue
        s = torch.sort(dc, descending=True, dim=1).values
        s2 = F.interpolate(s.unsqueeze(1), size=lt, mode="linear", align_corners=False).squeeze(1)
        cum = torch.cumsum(s2, dim=1)
        k = torch.argmax((cum > dt_sum.unsqueeze(1)).to(torch.int), dim=1) + 1
        alpha = torch.clamp(k.double() / lt, max=1.0)
        thr = torch.gather(s2, 1, torch.clamp(k, max=lt - 1).unsqueeze(1)).squeeze(1)
        out["alpha"].append(alpha.tolist())
        out["threshold"].append(thr.tolist())
    return out


def aggregate(samples, how):
    res = []
    for layer in range(len(samples[0])):
        e = {"layer": layer}
        for key in ("log_tA_prod", "dt_sum", "alpha", "threshold"):
            x = torch.tensor([s[layer][key] for s in samples], dtype=torch.float64)
            if how == "max":
                y = x.max(dim=0).values
            elif key == "log_tA_prod":
                y = torch.log(torch.exp(x).mean(dim=0))
            else:
                y = x.mean(dim=0)
            e[key] = y.tolist()
        res.append(e)
    return res


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    fx = os.path.join(here, "..", "tests", "fixtures", "ssm")
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(fx, "longmamba-calibration.json")
    with open(os.path.join(fx, "tiny-mamba2", "expected.json")) as f:
        src = json.load(f)
    dt = torch.tensor(src["dt"], dtype=torch.float32).double()     # (L, T, H)
    A = torch.tensor(src["A"], dtype=torch.float32).double()       # (L, H)
    samples = {}
    for name, (a, b) in WINDOWS.items():
        samples[name] = [dict(layer=l, **calibrate(dt[l, a:b], A[l])) for l in range(dt.shape[0])]
    doc = {
        "description": "LongMamba calibration (methods.md 2.2) of tiny-mamba2/expected.json's "
                       "dt [layer][T][H] and A [layer][H], by torch in float64; written by "
                       "tools/make-longmamba-calibration-fixture.py",
        "ratio": RATIO,
        "targets": TARGETS,
        "windows": [{"name": n, "rows": list(r), "per_layer": samples[n]}
                    for n, r in WINDOWS.items()],
        "aggregate_of": AGG,
        "max": aggregate([samples[n] for n in AGG], "max"),
        "mean": aggregate([samples[n] for n in AGG], "mean"),
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
    }
    text = json.dumps(doc, separators=(",", ":"), allow_nan=False)
    with open(out_path, "w") as f:
        f.write(text + "\n")
    print(out_path, len(text) + 1, "bytes")


if __name__ == "__main__":
    main()
