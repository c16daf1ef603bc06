"""Camera recovery of the depth-warping BA (warp.py) on the probe_recovery.py scene.

python probe_warp.py --size 64 --steps 200 [--depth exact|noisy|blur|scaled] [--key value ...]
Prints one JSON line per start (perturbed, truth).
"""

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F
from warp import WarpConfig, refine_warp

from rayzer.data.synthetic.clip import SynthConfig, render_clip
from rayzer.geometry import axis_angle_to_matrix, make_c2w, relative_pose_errors

p = argparse.ArgumentParser()
p.add_argument("--size", type=int, default=64)
p.add_argument("--steps", type=int, default=200)
p.add_argument("--depth", default="exact")
p.add_argument("--starts", default="pert,truth")
p.add_argument("--seed", type=int, default=21)
p.add_argument("--rot", type=float, default=3.0)
p.add_argument("--focal", type=float, default=1.05)
p.add_argument("--pseed", type=int, default=1)
p.add_argument("--set", nargs="*", default=[], help="WarpConfig overrides key=value")
a = p.parse_args()
torch.set_num_threads(1)

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
tr = torch.randn(v, 3, generator=g) * 0.05 * scale
pert = c2w @ make_c2w(axis_angle_to_matrix(rv), tr)
pert[v // 2] = c2w[v // 2]
Kp = K.clone()
Kp[:, :2] *= a.focal

gd = torch.Generator().manual_seed(2)
if a.depth == "noisy":  # 10 % multiplicative noise, smooth at 1/8 resolution
    n = torch.randn(v, 1, 8, 8, generator=gd) * 0.1
    depth = depth * torch.exp(F.interpolate(n, size=depth.shape[-2:], mode="bilinear")[:, 0])
elif a.depth == "blur":  # depth at 1/8 resolution, upsampled (edges smeared)
    lo = F.interpolate(depth[:, None], size=(a.size // 8, a.size // 8), mode="area")
    depth = F.interpolate(lo, size=depth.shape[-2:], mode="bilinear")[:, 0]
elif a.depth == "noisyblur":
    lo = F.interpolate(depth[:, None], size=(a.size // 8, a.size // 8), mode="area")
    depth = F.interpolate(lo, size=depth.shape[-2:], mode="bilinear")[:, 0]
    n = torch.randn(v, 1, 8, 8, generator=gd) * 0.1
    depth = depth * torch.exp(F.interpolate(n, size=depth.shape[-2:], mode="bilinear")[:, 0])

kw = {}
for s in a.set:
    k, val = s.split("=")
    cur = getattr(WarpConfig, k)
    if isinstance(cur, bool):
        kw[k] = val.lower() in ("1", "true", "yes")
    elif isinstance(cur, tuple):
        kw[k] = tuple(int(x) for x in val.split(","))
    else:
        kw[k] = type(cur)(val)
cfg = WarpConfig(steps=a.steps, **kw)


def err(x):
    d = relative_pose_errors(x, c2w)
    return round(float(d["rot_deg"].median()), 3), round(float(d["trans_deg"].median()), 3)


for name in a.starts.split(","):
    start, Ks = (pert, Kp) if name == "pert" else (c2w, K)
    t = time.time()
    res = refine_warp(imgs, start, Ks, depth, cfg)
    print(
        json.dumps(
            {
                "start": name,
                "seed": a.seed,
                "pseed": a.pseed,
                "rot": a.rot,
                "size": a.size,
                "depth": a.depth,
                "cfg": kw,
                "steps": a.steps,
                "rot_before": err(start)[0],
                "rot_after": err(res.c2w)[0],
                "tdir_before": err(start)[1],
                "tdir_after": err(res.c2w)[1],
                "focal": round(float(res.K[0, 0] / K[0, 0]), 4),
                "loss": [round(h[2], 5) for h in res.history[:: max(1, a.steps // 5)]],
                "final": round(res.history[-1][2], 5),
                "evals": len(res.history),
                "seconds": round(time.time() - t, 1),
            }
        ),
        flush=True,
    )
