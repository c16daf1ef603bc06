"""Diagnostic: can a small CNN regress the signed relative yaw between a view and the canonical view?

Variants used in the README (all 1,500 steps, batch 32, Adam 1e-3):
    python cnn_probe.py                          # first conv stride 1, ReLU, widths 32/64/64/64
    python cnn_probe.py --stride2                # all convs stride 2 (the ConvStem layout)
    python cnn_probe.py --stride2 --act gelu     # same with GELU
    python cnn_probe.py --stride2 --proj         # + a 1x1 projection to 128 (cnn_v1)
    python cnn_probe.py --stride2 --wide         # widths 32/64/128 (cnn_v2)
    python cnn_probe.py --stride2 --proj --seed 1
"""

import argparse
import time

import torch
import torch.nn as nn

from rayzer.geometry import matrix_to_axis_angle

p = argparse.ArgumentParser()
p.add_argument("--stride2", action="store_true", help="first conv stride 2 (else stride 1)")
p.add_argument("--act", choices=["relu", "gelu"], default="relu")
p.add_argument("--proj", action="store_true", help="1x1 projection to 128 after the last conv")
p.add_argument("--wide", action="store_true", help="last conv 128 channels instead of 64")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--steps", type=int, default=1501)
args = p.parse_args()

torch.set_num_threads(1)
torch.manual_seed(args.seed)
tr = torch.load("cache/orbitc_32_train.pt")
te = torch.load("cache/orbitc_32_test.pt")


def batch(d, n, g):
    """(n, 6, H, W) [view ‖ canonical] pairs and their signed relative yaw in degrees."""
    N, F = d["images"].shape[:2]
    clip = torch.randint(0, N, (n,), generator=g)
    c = torch.randint(6, F - 6, (n,), generator=g)
    i = c + torch.randint(-5, 6, (n,), generator=g)
    a = d["images"][clip, i].float() / 255
    b = d["images"][clip, c].float() / 255
    rel = torch.linalg.inv(d["c2w"][clip, c]) @ d["c2w"][clip, i]
    yaw = matrix_to_axis_angle(rel[:, :3, :3])[:, 1]  # rotation about camera y (≈ vertical)
    return torch.cat((a, b), 1), torch.rad2deg(yaw)


def build_net() -> nn.Sequential:
    act = nn.ReLU if args.act == "relu" else nn.GELU
    last = 128 if args.wide else 64
    if args.stride2:  # 32 → 16 → 8 → 4
        convs = [(6, 32, 2), (32, 64, 2), (64, last, 2)]
    else:  # 32 → 32 → 16 → 8 → 4
        convs = [(6, 32, 1), (32, 64, 2), (64, 64, 2), (64, last, 2)]
    layers: list[nn.Module] = []
    for cin, cout, stride in convs:
        layers += [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), act()]
    feat = last
    if args.proj:
        layers.append(nn.Conv2d(last, 128, 1))
        feat = 128
    layers += [nn.Flatten(), nn.Linear(feat * 16, 128), nn.ReLU(), nn.Linear(128, 1)]
    return nn.Sequential(*layers)


net = build_net()
opt = torch.optim.Adam(net.parameters(), 1e-3)
g = torch.Generator().manual_seed(0)
xt, yt = batch(te, 512, torch.Generator().manual_seed(1))
print("test |yaw| median", yt.abs().median().item())
t0 = time.time()
for it in range(args.steps):
    x, y = batch(tr, 32, g)
    loss = (net(x).squeeze(1) - y / 10).square().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if it % 250 == 0:
        with torch.no_grad():
            pred = net(xt).squeeze(1)
        err = (pred * 10 - yt).abs().median().item()
        sign = ((pred > 0) == (yt > 0)).float().mean().item()
        print(
            it,
            round(loss.item(), 3),
            "test median abs err",
            round(err, 2),
            "sign acc",
            round(sign, 3),
            round(time.time() - t0),
            flush=True,
        )
