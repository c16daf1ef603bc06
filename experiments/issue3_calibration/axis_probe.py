"""Diagnostic: how a saved ``learn.py`` RayZer's rotations to the canonical view differ from the
truth: angle (predicted vs true), angle between the rotation axes, and the axes themselves in
camera coordinates (x right, y down, z forward). Held-out clips of ``learn.py``'s test.

python axis_probe.py MODEL.pt [MODEL.pt …] [--test cache/...pt]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from rayzer.geometry import matrix_to_axis_angle
from rayzer.models import ModelConfig, RayZer

p = argparse.ArgumentParser()
p.add_argument("ckpts", nargs="+")
p.add_argument("--test", default="cache/orbit_64_test_64_24.pt")
args = p.parse_args()
torch.set_num_threads(1)
d = torch.load(args.test)

for path in args.ckpts:
    saved = torch.load(path)
    ta = saved["args"]
    model = RayZer(ModelConfig(**saved["cfg"]))
    model.load_state_dict(saved["state"])
    model.eval()
    size, V = ta["size"], ta["vin"] + ta["vt"]
    imgs = d["images"]
    n, frames = imgs.shape[:2]
    imgs = F.interpolate(imgs.flatten(0, 1).float(), size=(size, size), mode="area")
    imgs = imgs.unflatten(0, (n, frames)) / 255
    span = ta["eval_span"]
    fr = torch.linspace(0, span - 1, V).round().long() + (frames - span) // 2
    imgs, c2w = imgs[:, fr], d["c2w"][:, fr]
    c = V // 2
    with torch.no_grad():
        pred = model.predict_cameras(imgs).c2w
    gt = torch.linalg.inv(c2w[:, c : c + 1]) @ c2w
    keep = [i for i in range(V) if i != c]
    aa_p = matrix_to_axis_angle(pred[:, keep, :3, :3]).reshape(-1, 3)
    aa_g = matrix_to_axis_angle(gt[:, keep, :3, :3]).reshape(-1, 3)
    ang_p, ang_g = aa_p.norm(dim=-1), aa_g.norm(dim=-1)
    ax_p, ax_g = aa_p / ang_p[:, None].clamp_min(1e-8), aa_g / ang_g[:, None].clamp_min(1e-8)
    cos = (ax_p * ax_g).sum(-1).clamp(-1, 1)
    axis_err = torch.rad2deg(torch.arccos(cos))
    big = ang_g > torch.deg2rad(torch.tensor(5.0))  # axes are defined for real rotations only
    deg = torch.rad2deg
    print(
        f"{path}: angle pred {deg(ang_p).median():.1f}° vs true {deg(ang_g).median():.1f}° "
        f"(ratio {(ang_p / ang_g.clamp_min(1e-6))[big].median():.2f}); axis error median "
        f"{axis_err[big].median():.1f}° (same sense < 90°: {(cos[big] > 0).float().mean():.2f}); "
        f"mean axis pred {ax_p[big].mean(0).tolist()} true {ax_g[big].mean(0).tolist()}"
    )
    # per clip: the share of its non-canonical views whose rotation has the right sense
    per_clip = (cos > 0).float().reshape(n, V - 1)[:, :].mean(1)
    hist = torch.histc(axis_err[big], bins=6, min=0, max=180).long().tolist()
    print(
        f"    axis error histogram (30° bins, views with true rotation > 5°): {hist}; "
        f"clips with >= 75% right-sense views: {(per_clip >= 0.75).float().mean():.2f}, "
        f"<= 25%: {(per_clip <= 0.25).float().mean():.2f}"
    )
