"""Diagnostic: correlation tokens (rayzer.nn.CorrelationTokens) of (view, canonical) pairs read by
a small head, on the CNN probe's task. Separates the features from the camera estimator's head.

    python corr_probe.py yaw|pose [--head mean|flat] [--ln] [--last-std S] [--seed S]
"""

import argparse
import time

import torch
import torch.nn as nn

from rayzer.geometry import make_c2w, matrix_to_axis_angle, matrix_to_rot6d, rot6d_to_matrix
from rayzer.nn import CorrelationTokens

p = argparse.ArgumentParser()
p.add_argument("target", choices=["yaw", "pose"])
p.add_argument("--head", choices=["mean", "flat"], default="mean")
p.add_argument("--ln", action="store_true")
p.add_argument("--last-std", type=float, default=0.0)  # 0: PyTorch default init
p.add_argument("--seed", type=int, default=0)
p.add_argument("--steps", type=int, default=1001)
args = p.parse_args()
torch.set_num_threads(1)
torch.manual_seed(args.seed)
tr = torch.load("cache/orbitc_32_train.pt")
te = torch.load("cache/orbitc_32_test.pt")


def batch(d, n, g):
    N, F = d["images"].shape[:2]
    clip = torch.randint(0, N, (n,), generator=g)
    c = torch.randint(6, F - 6, (n,), generator=g)
    i = c + torch.randint(-5, 6, (n,), generator=g)
    imgs = torch.stack((d["images"][clip, i], d["images"][clip, c]), 1).float() / 255
    rel = torch.linalg.inv(d["c2w"][clip, c]) @ d["c2w"][clip, i]
    return imgs, rel


d = 128
corr = CorrelationTokens(8, d)
n_out = 1 if args.target == "yaw" else 9
feat = d * 16 if args.head == "flat" else d
head = nn.Sequential(
    nn.LayerNorm(feat) if args.ln else nn.Identity(),
    nn.Linear(feat, d),
    nn.GELU(),
    nn.Linear(d, n_out),
)
if args.last_std:
    nn.init.normal_(head[-1].weight, std=args.last_std)
    nn.init.zeros_(head[-1].bias)
model = nn.ModuleList([corr, head])
opt = torch.optim.Adam(model.parameters(), 1e-3)
ident = torch.tensor([1.0, 0, 0, 0, 1, 0])


def predict(x):
    t = corr(x, reference=1)[:, 0]  # (B, N, d) tokens of the view vs the canonical
    f = t.flatten(1) if args.head == "flat" else t.mean(1)
    return head(f)


def yaw_deg(rel):
    return torch.rad2deg(matrix_to_axis_angle(rel[:, :3, :3])[:, 1])


g = torch.Generator().manual_seed(0)
xt, rt = batch(te, 256, torch.Generator().manual_seed(1))
yt = yaw_deg(rt)
t0 = time.time()
for it in range(args.steps):
    x, rel = batch(tr, 32, g)
    out = predict(x)
    if args.target == "yaw":
        loss = (out[:, 0] - yaw_deg(rel) / 10).square().mean()
    else:
        loss = (ident + out[:, :6] - matrix_to_rot6d(rel[:, :3, :3])).square().mean() + (
            out[:, 6:] - rel[:, :3, 3]
        ).square().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if it % 250 == 0:
        with torch.no_grad():
            o = predict(xt)
            if args.target == "yaw":
                pred = o[:, 0] * 10
            else:
                pred = yaw_deg(make_c2w(rot6d_to_matrix(ident + o[:, :6]), o[:, 6:]))
            e = (pred - yt).abs()
        print(
            it,
            round(loss.item(), 3),
            "test yaw err",
            round(e.median().item(), 2),
            round(time.time() - t0),
            flush=True,
        )
