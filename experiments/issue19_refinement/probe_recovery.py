import math
import time

import torch

from rayzer.data.synthetic.clip import SynthConfig, render_clip
from rayzer.geometry import axis_angle_to_matrix, make_c2w, relative_pose_errors
from refine import RefineConfig, refine_scene

size = 48
clip = render_clip(
    21,
    SynthConfig(family="orbit", frames=24, height=size, width=size),
    frames=list(range(0, 24, 3)),
)
imgs, c2w, K, depth = clip.images, clip.c2w, clip.K, clip.depth
v = 8
g = torch.Generator().manual_seed(1)
rv = torch.randn(v, 3, generator=g)
rv = rv / rv.norm(dim=-1, keepdim=True) * math.radians(3)
scale = float(depth.median())
tr = torch.randn(v, 3, generator=g) * 0.05 * scale
pert = c2w @ make_c2w(axis_angle_to_matrix(rv), tr)
pert[v // 2] = c2w[v // 2]
Kp = K.clone()
Kp[:, :2] *= 1.05


def e(x):
    d = relative_pose_errors(x, c2w)
    return {k: round(float(y.median()), 2) for k, y in d.items()}


print("pert", e(pert))
for lr in [5e-4, 1e-3]:
    for start, name in [(c2w, "truth"), (pert, "pert")]:
        t = time.time()
        res = refine_scene(
            imgs,
            start,
            K if name == "truth" else Kp,
            depth,
            config=RefineConfig(
                steps=120,
                levels=(48,),
                refine_depth=False,
                lr_rotation=lr,
                lr_translation=lr,
                lr_focal=lr,
            ),
        )
        print(
            lr,
            name,
            e(res.c2w),
            "focal",
            round(float(res.K[0, 0] / K[0, 0]), 4),
            "%.0fs" % (time.time() - t),
            [round(h[2], 5) for h in res.history[::20]],
        )
