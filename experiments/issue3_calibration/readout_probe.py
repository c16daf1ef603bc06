"""Diagnostic: the model's camera-token path on the CNN probe's task (signed yaw of view pairs).

python readout_probe.py flatten|pool            # pair + ConvStem tokens (+ positions), GELU
python readout_probe.py flatten --no-pos        # without the position embedding
python readout_probe.py flatten --layernorm     # per-token LayerNorm over the stem output
python readout_probe.py flatten --relu          # the stem's GELUs swapped for ReLU
python readout_probe.py flatten --cnn [--reseed]  # control: cnn_probe.py --stride2 --proj's
                                                   # CNN through this data/loss path
"""

import argparse
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from rayzer.geometry import matrix_to_axis_angle
from rayzer.models import ModelConfig, RayZer

p = argparse.ArgumentParser()
p.add_argument("readout", choices=["pool", "flatten"])
p.add_argument("--no-pos", action="store_true")
p.add_argument("--layernorm", action="store_true")
p.add_argument("--relu", action="store_true")
p.add_argument("--cnn", action="store_true")
p.add_argument("--reseed", action="store_true", help="torch.manual_seed(0) right before the CNN")
p.add_argument("--steps", type=int, default=int(os.environ.get("STEPS", "1001")))
args = p.parse_args()

torch.set_num_threads(1)
torch.manual_seed(0)
tr = torch.load("cache/orbitc_32_train.pt")
te = torch.load("cache/orbitc_32_test.pt")


def batch(d, n, g):
    """(n, 2, 3, H, W) [view, canonical] images and their signed relative yaw in degrees."""
    N, Fr = d["images"].shape[:2]
    clip = torch.randint(0, N, (n,), generator=g)
    c = torch.randint(6, Fr - 6, (n,), generator=g)
    i = c + torch.randint(-5, 6, (n,), generator=g)
    imgs = torch.stack((d["images"][clip, i], d["images"][clip, c]), 1).float() / 255
    rel = torch.linalg.inv(d["c2w"][clip, c]) @ d["c2w"][clip, i]
    return imgs, torch.rad2deg(matrix_to_axis_angle(rel[:, :3, :3])[:, 1])


cfg = ModelConfig(
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
m = RayZer(cfg)
if args.relu:
    for k, mod in enumerate(m.cam_patch.net):
        if isinstance(mod, nn.GELU):
            m.cam_patch.net[k] = nn.ReLU()
n_tok = 16
if args.cnn:
    if args.reseed:
        torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(6, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(128, 128, 1), nn.Flatten(),
        nn.Linear(128 * n_tok, 128), nn.ReLU(), nn.Linear(128, 1),
    )  # fmt: skip
    params = list(net.parameters())
else:
    width = 128 * (n_tok if args.readout == "flatten" else 1)
    head = nn.Sequential(nn.Linear(width, 128), nn.ReLU(), nn.Linear(128, 1))
    params = list(m.cam_patch.parameters()) + list(head.parameters())
opt = torch.optim.Adam(params, 1e-3)


def predict(x):
    if args.cnn:
        return net(torch.cat((x[:, 0], x[:, 1]), 1)).squeeze(1) * 10
    if args.no_pos or args.layernorm:
        pairs = torch.cat((x, x[:, 1:2].expand_as(x)), 2)
        t = m.cam_patch(pairs)[:, 0]
        if args.layernorm:
            t = F.layer_norm(t, (cfg.dim,))
    else:
        positions = torch.arange(2)[None].expand(x.shape[0], -1)
        t = m.camera_input_tokens(x, positions)[:, 0]  # view 0 paired with the canonical view
    f = t.flatten(1) if args.readout == "flatten" else t.mean(1)
    return head(f).squeeze(1) * 10


g = torch.Generator().manual_seed(0)
xt, yt = batch(te, 256, torch.Generator().manual_seed(1))
t0 = time.time()
for it in range(args.steps):
    x, y = batch(tr, 32, g)
    loss = ((predict(x) - y) / 10).square().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if it % 250 == 0:
        with torch.no_grad():
            e = (predict(xt) - yt).abs()
        print(
            args.readout,
            it,
            round(loss.item(), 3),
            "test yaw median err",
            round(e.median().item(), 2),
            round(time.time() - t0),
            flush=True,
        )
