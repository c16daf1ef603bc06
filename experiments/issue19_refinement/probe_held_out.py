"""rayzer.refine.held_out_psnr on the probe scene (perturbed start): python probe_held_out.py 64"""

import json
import math
import sys
import time

import torch

from rayzer.data.synthetic.clip import SynthConfig, render_clip
from rayzer.geometry import axis_angle_to_matrix, make_c2w
from rayzer.refine import RefineConfig, held_out_psnr

size = int(sys.argv[1]) if len(sys.argv) > 1 else 64
torch.set_num_threads(1)
clip = render_clip(
    21, SynthConfig(family="orbit", frames=24, height=size, width=size), list(range(0, 24, 3))
)
v = 8
g = torch.Generator().manual_seed(1)
rv = torch.randn(v, 3, generator=g)
rv = rv / rv.norm(dim=-1, keepdim=True) * math.radians(3)
tr = torch.randn(v, 3, generator=g) * 0.05 * float(clip.depth.median())
pert = clip.c2w @ make_c2w(axis_angle_to_matrix(rv), tr)
pert[v // 2] = clip.c2w[v // 2]
Kp = clip.K.clone()
Kp[:, :2] *= 1.05
for view in [2, 5]:
    t = time.time()
    fig = held_out_psnr(clip.images, pert, Kp, clip.depth, view, config=RefineConfig())
    print(json.dumps(fig.summary() | {"size": size, "s": round(time.time() - t, 1)}), flush=True)
