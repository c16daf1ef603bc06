"""Diagnostic: can gradient descent on the *poses themselves* (free per-clip parameters, no
network) reach the true cameras through a saved model's renderer? If it can while the camera
estimator does not, the estimator's learning is the limit, not the loss landscape.

Starts from the model's predicted cameras on held-out test clips, each path first given the
sense of the truth (its mirror where that is closer: a diagnostic use of the labels), then
optimises every non-canonical view's axis-angle rotation and centre with Adam on the MSE of the
rendered targets (the targets' own images: a diagnostic, never an evaluation protocol). The
focal stays at the model's prediction.

python pose_opt_probe.py MODEL.pt [--clips 16] [--steps 200] [--lr 0.01] [--from-truth | --start-scale K] [--pyramid L]
"""

from __future__ import annotations

import argparse
import json
import math

import torch
import torch.nn.functional as F
from saved_model import load_saved

from rayzer.geometry import axis_angle_to_matrix, make_c2w, matrix_to_axis_angle

p = argparse.ArgumentParser()
p.add_argument("ckpt")
p.add_argument("--test", default="cache/orbit_64_test_64_24.pt")
p.add_argument("--clips", type=int, default=16)
p.add_argument("--steps", type=int, default=200)
p.add_argument("--lr", type=float, default=0.01)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--from-truth", action="store_true")  # start at the true cameras (unit scale)
p.add_argument("--pyramid", type=int, default=0)  # + MSE of 2x..2^L-pooled renders and targets
p.add_argument("--start-scale", type=float, default=1.0)  # start at the prediction's rot and t × k
args = p.parse_args()
torch.set_num_threads(args.threads)

model, a = load_saved(args.ckpt)
model.requires_grad_(False)
size, vin, vt = a["size"], a["vin"], a["vt"]
V, c = vin + vt, (vin + vt) // 2

d = torch.load(args.test)
n = args.clips
imgs = d["images"][:n].float()
frames = imgs.shape[1]
imgs = F.interpolate(imgs.flatten(0, 1), size=(size, size), mode="area").unflatten(0, (n, frames))
imgs = imgs / 255
fr = torch.linspace(0, a["eval_span"] - 1, V).round().long() + (frames - a["eval_span"]) // 2
imgs, c2w_gt = imgs[:, fr], d["c2w"][:n, fr]
inp = torch.linspace(0, V - 1, vin).round().long()
tgt = torch.tensor([i for i in range(V) if i not in inp.tolist()])
rel_gt = torch.linalg.inv(c2w_gt[:, c : c + 1]) @ c2w_gt
rel_gt[..., :3, 3] /= rel_gt[..., :3, 3].norm(dim=-1).mean(1)[:, None, None]  # unit scale
aa_gt = matrix_to_axis_angle(rel_gt[..., :3, :3])

with torch.no_grad():
    cams = model.predict_cameras(imgs)
aa0, t0 = matrix_to_axis_angle(cams.c2w[..., :3, :3]), cams.c2w[..., :3, 3]
mirrored = (aa0 - aa_gt).norm(dim=-1).mean(1) > (-aa0 - aa_gt).norm(dim=-1).mean(1)
aa0 = aa0 * torch.where(mirrored[:, None, None], -1.0, 1.0)
t0 = t0 * torch.where(mirrored[:, None, None], t0.new_tensor([-1.0, -1, 1]), t0.new_ones(3))
aa0, t0 = aa0 * args.start_scale, t0 * args.start_scale
if args.from_truth:  # is the truth a minimum of the loss, or does the descent leave it?
    aa0, t0 = aa_gt.clone(), rel_gt[..., :3, 3].clone()
aa = aa0.clone().requires_grad_()
t = t0.clone().requires_grad_()
keep = torch.ones(1, V, 1)
keep[:, c] = 0  # the canonical view stays the identity
opt = torch.optim.Adam([aa, t], lr=args.lr)


def paths() -> torch.Tensor:
    return make_c2w(axis_angle_to_matrix(aa * keep), t * keep)


def report(step: int, loss: float) -> dict:
    with torch.no_grad():
        R = axis_angle_to_matrix(aa * keep)
        err = torch.linalg.matrix_norm(R - rel_gt[..., :3, :3])  # Frobenius; angle below
        cos = (
            (R.transpose(-1, -2) @ rel_gt[..., :3, :3]).diagonal(dim1=-2, dim2=-1).sum(-1) - 1
        ) / 2
        ang = torch.rad2deg(torch.arccos(cos.clamp(-1, 1)))
        others = [i for i in range(V) if i != c]
        row = {
            "step": step,
            "psnr": -10 * math.log10(loss),
            "rot_err_to_canonical_med": ang[:, others].median().item(),
            "pred_rot_med": torch.rad2deg((aa * keep).norm(dim=-1))[:, others].median().item(),
            "mean_distance": (t * keep).norm(dim=-1)[:, others].mean().item(),
            "frob": err.mean().item(),
        }
    print(json.dumps({k: round(v, 3) for k, v in row.items()}), flush=True)
    return row


target = imgs[:, tgt]
bi, bt = inp.expand(n, -1), tgt.expand(n, -1)
print(
    json.dumps(
        {
            "true_rot_med": torch.rad2deg(aa_gt.norm(dim=-1))[:, [i for i in range(V) if i != c]]
            .median()
            .item(),
            "mirrored_to_truth": mirrored.float().mean().item(),
        }
    )
)
for step in range(args.steps + 1):
    pth = paths()
    scene = model.reconstruct(imgs[:, inp], pth[:, inp], cams.K_norm[:, inp], bi)
    r = model.render(scene, pth[:, tgt], cams.K_norm[:, tgt], size, size)
    loss = F.mse_loss(r, target)
    mse = loss.item()
    for level in range(1, args.pyramid + 1):
        k = 2**level
        loss = loss + F.mse_loss(
            F.avg_pool2d(r.flatten(0, 1), k), F.avg_pool2d(target.flatten(0, 1), k)
        )
    if step % 25 == 0:
        report(step, mse)
    opt.zero_grad()
    loss.backward()
    opt.step()
