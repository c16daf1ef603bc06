"""Diagnostic: can a saved ``learn.py`` RayZer's renderer tell a camera path from its mirror image?

The mirror of a path (relative to the canonical view) turns every rotation the other way
(axis-angle negated) and moves every centre to the other side (x and y of the centre negated,
z kept): an orbit in the opposite direction around the same fixation point, the depth-reversal
(Necker) twin of the true path under weak perspective. Per held-out clip, the script reports the
sense of the predicted rotations (right when the predicted and true axes agree), and the test
PSNR with the model's cameras, their mirror, the ground truth and its mirror.

python mirror_probe.py MODEL.pt [--test cache/...pt]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from rayzer.geometry import axis_angle_to_matrix, make_c2w, matrix_to_axis_angle
from rayzer.models import ModelConfig, RayZer
from rayzer.models.views import gather_views

p = argparse.ArgumentParser()
p.add_argument("ckpt")
p.add_argument("--test", default="cache/orbit_64_test_64_24.pt")
args = p.parse_args()
torch.set_num_threads(1)

saved = torch.load(args.ckpt)
ta = saved["args"]
model = RayZer(ModelConfig(**saved["cfg"]))
model.load_state_dict(saved["state"])
model.eval()
size, vin, vt = ta["size"], ta["vin"], ta["vt"]
V = vin + vt
d = torch.load(args.test)
n, frames = d["images"].shape[:2]
imgs = F.interpolate(d["images"].flatten(0, 1).float(), size=(size, size), mode="area")
imgs = imgs.unflatten(0, (n, frames)) / 255
span = ta["eval_span"]
fr = torch.linspace(0, span - 1, V).round().long() + (frames - span) // 2
imgs, c2w_gt, K_gt = imgs[:, fr], d["c2w"][:, fr], d["K"][:, fr] / d["images"].shape[-1]
inp = torch.linspace(0, V - 1, vin).round().long()
tgt = torch.tensor([i for i in range(V) if i not in inp.tolist()])
c = V // 2


def mirror(c2w: torch.Tensor) -> torch.Tensor:
    R, t = c2w[..., :3, :3], c2w[..., :3, 3]
    return make_c2w(axis_angle_to_matrix(-matrix_to_axis_angle(R)), t * t.new_tensor([-1, -1, 1]))


def necker_twin(c2w: torch.Tensor) -> torch.Tensor:
    """Depth-reversal twin under weak perspective: rotations conjugated by the reflection
    S = diag(1, 1, -1) of the canonical camera's depth axis (yaw and pitch reversed, roll kept),
    each centre placed so that it sees the fixation point f = (0, 0, d) at the same distance
    and in the same direction of its own frame as before. d is estimated from the path: a camera
    that turned by θ while fixating a point at distance d has moved by the chord 2 d sin(θ / 2)."""
    R, c = c2w[..., :3, :3], c2w[..., :3, 3]
    S = torch.diag(c2w.new_tensor([1.0, 1.0, -1.0]))
    R2 = S @ R @ S
    theta = matrix_to_axis_angle(R).norm(dim=-1)
    chord = c.norm(dim=-1)
    ok = theta > 1e-3
    d_views = torch.where(ok, chord / (2 * torch.sin(theta / 2)).clamp_min(1e-6), torch.nan)
    d = torch.nanmedian(d_views, dim=-1).values.nan_to_num(1.0).clamp(0.1, 100.0)
    f = torch.zeros_like(c)
    f[..., 2] = d[..., None]
    c2 = f - (R2 @ (R.transpose(-1, -2) @ (f - c)[..., None]))[..., 0]
    return make_c2w(R2, c2)


def per_clip_psnr(c2w: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    out = []
    for s in range(0, n, 16):
        b = slice(s, s + 16)
        m = len(imgs[b])
        scene = model.reconstruct(imgs[b][:, inp], c2w[b][:, inp], K[b][:, inp], inp.expand(m, -1))
        r = model.render(scene, c2w[b][:, tgt], K[b][:, tgt], size, size)
        mse = ((r - gather_views(imgs[b], tgt.expand(m, -1))) ** 2).flatten(-3).mean(-1)
        out.append((-10 * torch.log10(mse.clamp_min(1e-10))).mean(1))
    return torch.cat(out)


with torch.no_grad():
    cams = model.predict_cameras(imgs)
    pred, K = cams.c2w, cams.K_norm
    gt = torch.linalg.inv(c2w_gt[:, c : c + 1]) @ c2w_gt
    scale = pred[..., :3, 3].norm(dim=-1).sum(1) / gt[..., :3, 3].norm(dim=-1).sum(1)
    gt[..., :3, 3] *= scale[:, None, None]
    keep = [i for i in range(V) if i != c]
    cos = (
        F.normalize(matrix_to_axis_angle(pred[:, keep, :3, :3]), dim=-1)
        * F.normalize(matrix_to_axis_angle(gt[:, keep, :3, :3]), dim=-1)
    ).sum(-1)
    right = (cos > 0).float().mean(1) > 0.5
    res = {
        "own": per_clip_psnr(pred, K),
        "own mirrored": per_clip_psnr(mirror(pred), K),
        "gt (pred. focal)": per_clip_psnr(gt, K),
        "gt mirrored": per_clip_psnr(mirror(gt), K),
        "own twin": per_clip_psnr(necker_twin(pred), K),
        "gt twin": per_clip_psnr(necker_twin(gt), K),
    }
print(f"{args.ckpt}: {int(right.sum())} of {n} clips with the right sense of rotation")
for name, v in res.items():
    print(
        f"  {name:18s} all {v.mean():.2f} dB | right-sense clips {v[right].mean():.2f} | "
        f"wrong-sense clips {v[~right].mean():.2f}"
    )
best = torch.maximum(res["own"], res["own mirrored"])
pick = res["own mirrored"] > res["own"]
pick_twin = res["own twin"] > res["own"]
print(
    f"  twin instead: {torch.maximum(res['own'], res['own twin']).mean():.2f} dB; picked on "
    f"{int(pick_twin[right].sum())} right-sense and {int(pick_twin[~right].sum())} wrong-sense clips"
)
print(
    f"  picking the better of own / mirrored per clip: {best.mean():.2f} dB; mirror picked on "
    f"{int(pick[right].sum())} right-sense and {int(pick[~right].sum())} wrong-sense clips"
)
