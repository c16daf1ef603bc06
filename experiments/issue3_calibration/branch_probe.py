"""Diagnostic: what does a model on each translation branch do per pixel?

For saved ``learn.py --save`` models, renders the held-out test clips (even protocol) and
records, per target pixel, the sweep's expected inverse depth (in the model's own units,
normalised by its mean camera distance so that models are comparable) and the share of the
colour that came from the sweep (gate × coverage) rather than the regressed colour. Prints the
means and writes a PNG: for a few clips, target | render | inverse depth | sweep share, one
block per model.

python branch_probe.py OUT.png model_a.pt [model_b.pt ...]
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

import rayzer.models.readouts as readouts
from rayzer.models import ModelConfig, RayZer
from rayzer.nn.epipolar import MIN_DEPTH

torch.set_num_threads(1)
out_png, paths = sys.argv[1], sys.argv[2:]
stash: dict[str, torch.Tensor] = {}
original_softmax = torch.softmax


def load_test(size: int, span: int, v: int):
    d = torch.load("cache/orbit_64_test_64_24.pt")
    imgs = d["images"][:16]
    n, frames = imgs.shape[:2]
    imgs = F.interpolate(imgs.flatten(0, 1).float(), size=(size, size), mode="area")
    imgs = imgs.unflatten(0, (n, frames)) / 255
    fr = torch.linspace(0, span - 1, v).round().long() + (frames - span) // 2
    return imgs[:, fr]


def probe(path: str):
    saved = torch.load(path)
    a = saved["args"]
    model = RayZer(ModelConfig(**saved["cfg"])).eval()
    model.load_state_dict(saved["state"])
    v = a["vin"] + a["vt"]
    imgs = load_test(a["size"], a["eval_span"], v)
    inp = torch.linspace(0, v - 1, a["vin"]).round().long()
    tgt = torch.tensor([i for i in range(v) if i not in inp.tolist()])
    sweep = model.decoder.sweep
    gate_fn = readouts._gated

    def spy_gated(geometric, regress, coverage=None):
        stash["share"] = torch.sigmoid(regress[:, :, 3:4] + readouts.GATE_OFFSET) * coverage
        return gate_fn(geometric, regress, coverage)

    def spy_softmax(x, dim=None, **kw):
        out = original_softmax(x, dim=dim, **kw)
        if x.ndim == 4 and x.shape[-1] == sweep.num_depths and dim == -1:
            stash["prob"] = out  # (B, Vt, HW, D): the depth distribution
        return out

    readouts._gated, torch.softmax = spy_gated, spy_softmax
    try:
        with torch.no_grad():
            out = model(imgs, inp, tgt)
    finally:
        readouts._gated, torch.softmax = gate_fn, original_softmax
    h = w = a["size"]
    inv = torch.linspace(1.0 / sweep.near, 0.0, sweep.num_depths)
    exp_inv = (stash["prob"] * inv).sum(-1).unflatten(-1, (h, w))  # (B, Vt, H, W)
    t = out.cameras.c2w[..., :3, 3].norm(dim=-1).sum(1) / (v - 1)  # mean camera distance
    exp_inv = exp_inv * t[:, None, None, None].clamp_min(MIN_DEPTH)  # scale-free
    share = stash["share"][:, :, 0]
    mse = ((out.render - imgs[:, tgt]) ** 2).flatten(2).mean(-1)
    stats = {
        "model": path,
        "psnr": (-10 * torch.log10(mse)).mean().item(),
        "sweep_share_mean": share.mean().item(),
        # 1/D for a uniform depth distribution, 1 for a single depth per pixel
        "depth_max_prob_mean": stash["prob"].max(-1).values.mean().item(),
        "depth_entropy_over_log_d": (
            -(stash["prob"] * stash["prob"].clamp_min(1e-12).log()).sum(-1).mean()
            / np.log(sweep.num_depths)
        ).item(),
        "inv_depth_x_baseline_mean": exp_inv.mean().item(),
        "inv_depth_centre_minus_border": (
            exp_inv[..., h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].mean() - exp_inv.mean()
        ).item(),
    }
    return stats, imgs[:, tgt], out.render, exp_inv, share


rows = []
for path in paths:
    stats, target, render, exp_inv, share = probe(path)
    print(json.dumps(stats))
    for i in range(3):
        d = exp_inv[i, 0] / exp_inv[i, 0].max().clamp_min(1e-6)
        tiles = [
            target[i, 0],
            render[i, 0].clamp(0, 1),
            d.expand(3, -1, -1),
            share[i, 0].expand(3, -1, -1),
        ]
        rows.append(torch.cat(tiles, dim=2))
grid = torch.cat(rows, dim=1).permute(1, 2, 0).numpy()
Image.fromarray((np.clip(grid, 0, 1) * 255).astype("uint8")).resize(
    (grid.shape[1] * 4, grid.shape[0] * 4), Image.NEAREST
).save(out_png)
print("wrote", out_png)
