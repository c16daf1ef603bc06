"""Diagnostic: pooled vs position-aware (flattened) readout of the camera estimator's pair tokens."""

import os
import sys
import time

import torch
import torch.nn as nn

from rayzer.geometry import matrix_to_axis_angle
from rayzer.models import ModelConfig, RayZer

torch.set_num_threads(1)
torch.manual_seed(0)
tr = torch.load("cache/orbitc_32_train.pt")
te = torch.load("cache/orbitc_32_test.pt")
readout = sys.argv[1]  # pool | flatten


def batch(d, n, g):
    N, F = d["images"].shape[:2]
    clip = torch.randint(0, N, (n,), generator=g)
    c = torch.randint(6, F - 6, (n,), generator=g)
    i = c + torch.randint(-5, 6, (n,), generator=g)
    imgs = torch.stack((d["images"][clip, i], d["images"][clip, c]), 1).float() / 255
    rel = torch.linalg.inv(d["c2w"][clip, c]) @ d["c2w"][clip, i]
    return imgs, torch.rad2deg(matrix_to_axis_angle(rel[:, :3, :3])[:, 1])


m = RayZer(
    ModelConfig(
        dim=128,
        num_heads=4,
        patch_size=8,
        cam_layers=1,
        scene_layers=1,
        dec_layers=1,
        num_scene_tokens=8,
        cam_pair_canonical=True,
        cam_conv_stem=True,
    )
)
from rayzer.nn import ConvStem  # noqa: E402

m.cam_patch = ConvStem(6, 8, 128)
n_tok = 16
if os.environ.get("ACT") == "relu":
    for k, mod in enumerate(m.cam_patch.net):
        if isinstance(mod, nn.GELU):
            m.cam_patch.net[k] = nn.ReLU()
print(m.cam_patch.net)
head = nn.Sequential(
    nn.Linear(128 * (n_tok if readout == "flatten" else 1), 128), nn.ReLU(), nn.Linear(128, 1)
)
net = nn.Sequential(
    nn.Conv2d(6, 32, 3, stride=2, padding=1),
    nn.ReLU(),
    nn.Conv2d(32, 64, 3, stride=2, padding=1),
    nn.ReLU(),
    nn.Conv2d(64, 128, 3, stride=2, padding=1),
    nn.ReLU(),
    nn.Conv2d(128, 128, 1),
    nn.Flatten(),
    nn.Linear(128 * 16, 128),
    nn.ReLU(),
    nn.Linear(128, 1),
)
params = list(net.parameters())
opt = torch.optim.Adam(params, 1e-3)
pos = None


def predict(x):
    torch.arange(2)[None].expand(x.shape[0], -1)
    return net(torch.cat((x[:, 0], x[:, 1]), 1)).squeeze(1) * 10


g = torch.Generator().manual_seed(0)
xt, yt = batch(te, 256, torch.Generator().manual_seed(1))
t0 = time.time()
for it in range(int(os.environ.get("STEPS", "1001"))):
    x, y = batch(tr, 32, g)
    loss = ((predict(x) - y) / 10).square().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if it % 250 == 0:
        with torch.no_grad():
            e = (predict(xt) - yt).abs()
        print(
            readout,
            it,
            round(loss.item(), 3),
            "test yaw median err",
            round(e.median().item(), 2),
            round(time.time() - t0),
            flush=True,
        )
