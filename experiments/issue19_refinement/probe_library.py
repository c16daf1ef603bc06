"""rayzer.refine.refine_cameras on the probe_warp.py scene (perturbed and true starts).

python probe_library.py --size 64 [--depth exact|noisy|blur] [--refine-depth] [--steps N]
"""

import argparse
import json
import logging
import math
import time

import torch
import torch.nn.functional as F

from rayzer.data.synthetic.clip import SynthConfig, render_clip
from rayzer.geometry import axis_angle_to_matrix, make_c2w, relative_pose_errors
from rayzer.refine import RefineConfig, refine_cameras

p = argparse.ArgumentParser()
p.add_argument("--size", type=int, default=64)
p.add_argument("--steps", type=int, default=150)
p.add_argument("--depth", default="exact")
p.add_argument("--seed", type=int, default=21)
p.add_argument("--pseed", type=int, default=1)
p.add_argument("--refine-depth", action="store_true")
p.add_argument("--starts", default="pert,truth")
p.add_argument("--depth-prior", type=float, default=0.0)
p.add_argument("--fixed-focal", action="store_true")
p.add_argument("--lr-depth", type=float, default=1e-2)
p.add_argument("--optimizer", default="auto")
p.add_argument("--rot", type=float, default=3.0)
p.add_argument("--trans", type=float, default=0.05)
a = p.parse_args()
torch.set_num_threads(1)
logging.basicConfig(level=logging.INFO, format="%(message)s")

clip = render_clip(
    a.seed,
    SynthConfig(family="orbit", frames=24, height=a.size, width=a.size),
    frames=list(range(0, 24, 3)),
)
imgs, c2w, K, depth = clip.images, clip.c2w, clip.K, clip.depth
v = 8
g = torch.Generator().manual_seed(a.pseed)
rv = torch.randn(v, 3, generator=g)
rv = rv / rv.norm(dim=-1, keepdim=True) * math.radians(a.rot)
scale = float(depth.median())
tr = torch.randn(v, 3, generator=g) * a.trans * scale
pert = c2w @ make_c2w(axis_angle_to_matrix(rv), tr)
pert[v // 2] = c2w[v // 2]
Kp = K.clone()
Kp[:, :2] *= 1.05
gd = torch.Generator().manual_seed(2)
if a.depth == "noisy":  # 10 % multiplicative noise, smooth at 1/8 resolution
    n = torch.randn(v, 1, 8, 8, generator=gd) * 0.1
    depth = depth * torch.exp(F.interpolate(n, size=depth.shape[-2:], mode="bilinear")[:, 0])
elif a.depth == "blur":  # depth at 1/8 resolution, upsampled (edges smeared)
    lo = F.interpolate(depth[:, None], size=(a.size // 8, a.size // 8), mode="area")
    depth = F.interpolate(lo, size=depth.shape[-2:], mode="bilinear")[:, 0]


def err(x):
    d = relative_pose_errors(x, c2w)
    return round(float(d["rot_deg"].median()), 3), round(float(d["trans_deg"].median()), 3)


cfg = RefineConfig(
    steps=a.steps,
    refine_depth=a.refine_depth,
    depth_prior=a.depth_prior,
    lr_depth=a.lr_depth,
    optimizer=a.optimizer,
    refine_focal=not a.fixed_focal,
)
for name in a.starts.split(","):
    start, Ks = (pert, Kp) if name == "pert" else (c2w, K)
    if a.fixed_focal:
        Ks = K
    t = time.time()
    res = refine_cameras(imgs, start, Ks, depth, config=cfg)
    row = {"start": name, "size": a.size, "depth": a.depth, "refine_depth": a.refine_depth}
    row |= {
        "depth_prior": a.depth_prior,
        "fixed_focal": a.fixed_focal,
        "lr_depth": a.lr_depth,
        "optimizer": a.optimizer,
    }
    row |= {"rot": [err(start)[0], err(res.c2w)[0]], "tdir": [err(start)[1], err(res.c2w)[1]]}
    row |= {"focal": round(float(res.K[0, 0] / K[0, 0]), 4)} | res.summary()
    row["wall_s"] = round(time.time() - t, 1)
    print(json.dumps(row), flush=True)
