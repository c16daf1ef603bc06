"""Diagnostic: the RayZer camera estimator on the CNN probe's task (2 views: view, canonical).

python est_probe.py pose [pair] [stem] [pool] [corr]    # env: SEED, STEPS, LR, CAM_LAYERS
"""

import os
import sys
import time

import torch

from rayzer.geometry import matrix_to_axis_angle, matrix_to_rot6d
from rayzer.models import ModelConfig, RayZer

torch.set_num_threads(1)
torch.manual_seed(int(os.environ.get("SEED", "0")))
tr = torch.load("cache/orbitc_32_train.pt")
te = torch.load("cache/orbitc_32_test.pt")
mode = sys.argv[1]  # "yaw" (loss on yaw of predicted R) or "pose" (rot6d + t)
extra = dict(
    cam_pair_canonical="pair" in sys.argv,
    cam_conv_stem="stem" in sys.argv,
    cam_readout="token+pool"
    if "pool" in sys.argv
    else "token+grid"
    if "grid" in sys.argv
    else "token",
    cam_correlation="corr" in sys.argv,
)


def batch(d, n, g):
    N, F = d["images"].shape[:2]
    clip = torch.randint(0, N, (n,), generator=g)
    c = torch.randint(6, F - 6, (n,), generator=g)
    i = c + torch.randint(-5, 6, (n,), generator=g)
    imgs = (
        torch.stack((d["images"][clip, i], d["images"][clip, c]), 1).float() / 255
    )  # canonical = index 1
    rel = torch.linalg.inv(d["c2w"][clip, c]) @ d["c2w"][clip, i]
    return imgs, rel


m = RayZer(
    ModelConfig(
        dim=128,
        num_heads=4,
        patch_size=8,
        cam_layers=int(os.environ.get("CAM_LAYERS", "3")),  # CAM_LAYERS=0: no attention
        scene_layers=1,
        dec_layers=1,
        num_scene_tokens=8,
        **extra,
    )
)
opt = torch.optim.Adam(m.parameters(), float(os.environ.get("LR", "1e-3")))  # LR=… to vary
g = torch.Generator().manual_seed(0)
xt, rt = batch(te, 256, torch.Generator().manual_seed(1))
yt = torch.rad2deg(matrix_to_axis_angle(rt[:, :3, :3])[:, 1])
t0 = time.time()
for it in range(int(os.environ.get("STEPS", "1501"))):
    x, rel = batch(tr, 32, g)
    p = m.predict_cameras(x).c2w[:, 0]
    if mode == "yaw":
        loss = (
            (
                torch.rad2deg(matrix_to_axis_angle(p[:, :3, :3])[:, 1]) / 10
                - torch.rad2deg(matrix_to_axis_angle(rel[:, :3, :3])[:, 1]) / 10
            )
            .square()
            .mean()
        )
    else:
        loss = (matrix_to_rot6d(p[:, :3, :3]) - matrix_to_rot6d(rel[:, :3, :3])).square().mean() + (
            p[:, :3, 3] - rel[:, :3, 3]
        ).square().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if it % 250 == 0:
        with torch.no_grad():
            pt = m.predict_cameras(xt).c2w[:, 0]
            e = (torch.rad2deg(matrix_to_axis_angle(pt[:, :3, :3])[:, 1]) - yt).abs()
        print(
            it,
            round(loss.item(), 3),
            "test yaw median err",
            round(e.median().item(), 2),
            "(|yaw| med",
            round(yt.abs().median().item(), 1),
            ")",
            round(time.time() - t0),
            flush=True,
        )
