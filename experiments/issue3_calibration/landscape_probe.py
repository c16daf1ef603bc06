"""Diagnostic: is a trained RayZer stuck in a local minimum of its own loss, or does the loss
prefer its (wrong) cameras? Renders the held-out test clips of ``learn.py`` with the model's
predicted cameras, with those cameras edited (rotation angles scaled, translations scaled or
reversed), and with the ground-truth cameras (relative to the canonical view, centres rescaled
to the predicted cameras' mean distance, predicted or true focal). Prints test PSNR per variant.

python landscape_probe.py runs/model.pt [--size 32]
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F
from saved_model import load_saved

from rayzer.geometry import axis_angle_to_matrix, make_c2w, matrix_to_axis_angle
from rayzer.models.views import gather_views

p = argparse.ArgumentParser()
p.add_argument("ckpt")
p.add_argument("--test", default="cache/orbit_64_test_64_24.pt")
p.add_argument("--threads", type=int, default=1)
args = p.parse_args()
torch.set_num_threads(args.threads)

model, train_args = load_saved(args.ckpt)
size, vin, vt = train_args["size"], train_args["vin"], train_args["vt"]
V = vin + vt

d = torch.load(args.test)
imgs = d["images"]
n, frames = imgs.shape[:2]
if imgs.shape[-1] != size:
    imgs = F.interpolate(imgs.flatten(0, 1).float(), size=(size, size), mode="area").unflatten(
        0, (n, frames)
    )
else:
    imgs = imgs.float()
imgs = imgs / 255
K_true = d["K"] * (size / d["images"].shape[-1])
span = train_args["eval_span"]
fr = torch.linspace(0, span - 1, V).round().long() + (frames - span) // 2
imgs, c2w_gt, K_true = imgs[:, fr], d["c2w"][:, fr], K_true[:, fr]
inp = torch.linspace(0, V - 1, vin).round().long()
tgt = torch.tensor([i for i in range(V) if i not in inp.tolist()])
c = V // 2


def render_psnr(c2w: torch.Tensor, K_norm: torch.Tensor) -> float:
    out = []
    for s in range(0, n, 16):
        b = slice(s, s + 16)
        scene = model.reconstruct(
            imgs[b][:, inp], c2w[b][:, inp], K_norm[b][:, inp], inp.expand(len(imgs[b]), -1)
        )
        r = model.render(scene, c2w[b][:, tgt], K_norm[b][:, tgt], size, size)
        mse = ((r - gather_views(imgs[b], tgt.expand(len(r), -1))) ** 2).flatten(-3).mean(-1)
        out.append(-10 * torch.log10(mse.clamp_min(1e-10)))
    return torch.cat(out).mean().item()


with torch.no_grad():
    cams = model.predict_cameras(imgs)
    pred_c2w, pred_K = cams.c2w, cams.K_norm
    R, t = pred_c2w[..., :3, :3], pred_c2w[..., :3, 3]
    pred_dist = t.norm(dim=-1).sum(1) / (V - 1)  # mean over non-canonical views

    rel_gt = torch.linalg.inv(c2w_gt[:, c : c + 1]) @ c2w_gt
    gt_dist = rel_gt[..., :3, 3].norm(dim=-1).sum(1) / (V - 1)
    gt_scaled = rel_gt.clone()
    gt_scaled[..., :3, 3] *= (pred_dist / gt_dist)[:, None, None]
    K_gt = K_true / size  # (fx, fy, cx, cy) in pixels → normalised

    res = {"predicted": render_psnr(pred_c2w, pred_K)}
    for s in (0.0, 0.5, 1.5, 2.0):
        Rs = axis_angle_to_matrix(matrix_to_axis_angle(R) * s)
        res[f"rot x{s}"] = render_psnr(make_c2w(Rs, t), pred_K)
    for s in (0.0, 0.5, 2.0, -1.0):
        res[f"trans x{s}"] = render_psnr(make_c2w(R, t * s), pred_K)
    res["gt cams, predicted focal"] = render_psnr(gt_scaled, pred_K)
    res["gt cams, true focal"] = render_psnr(gt_scaled, K_gt)
    # At the scale of learn.py's --oracle-steps (its normalise_cams: centres divided by their
    # mean distance over all V views), the scale a renderer trained with the true cameras knows.
    gt_unit = rel_gt.clone()
    gt_unit[..., :3, 3] /= rel_gt[..., :3, 3].norm(dim=-1).mean(1)[:, None, None]
    res["gt cams at unit scale, true focal"] = render_psnr(gt_unit, K_gt)
    res["predicted mean distance"] = pred_dist.mean().item()
    res["gt rotations + predicted translations"] = render_psnr(
        make_c2w(gt_scaled[..., :3, :3], t), pred_K
    )
    res["predicted rotations + gt translations"] = render_psnr(
        make_c2w(R, gt_scaled[..., :3, 3]), pred_K
    )
    res["pred focal / true focal"] = (pred_K[..., 0].mean() / K_gt[..., 0].mean()).item()

    # The straight path from the estimator's cameras to the truth (unit scale, true focal): is
    # there a barrier between them? Each predicted path is first given the sense of the truth
    # (it or its mirror, whichever rotation set is closer: a diagnostic use of the labels), and
    # rotations are interpolated as axis-angle vectors.
    aa = matrix_to_axis_angle(R)
    aa_gt = matrix_to_axis_angle(gt_unit[..., :3, :3])
    mirrored = (aa - aa_gt).norm(dim=-1).mean(1) > (-aa - aa_gt).norm(dim=-1).mean(1)
    flip = torch.where(mirrored[:, None, None], -1.0, 1.0)
    aa_s = aa * flip
    t_s = t * torch.where(mirrored[:, None, None], t.new_tensor([-1.0, -1, 1]), t.new_ones(3))
    res["share of paths mirrored to the truth's sense"] = mirrored.float().mean().item()
    res["predicted, truth's sense"] = render_psnr(make_c2w(axis_angle_to_matrix(aa_s), t_s), pred_K)
    for k in (1.5, 2.0, 2.5):
        res[f"truth's sense, rot and trans x{k}"] = render_psnr(
            make_c2w(axis_angle_to_matrix(aa_s * k), t_s * k), pred_K
        )
    for a in (0.25, 0.5, 0.75, 1.0):
        aa_a = (1 - a) * aa_s + a * aa_gt
        t_a = (1 - a) * t_s + a * gt_unit[..., :3, 3]
        K_a = (1 - a) * pred_K + a * K_gt
        res[f"path to the truth, {a:.2f}"] = render_psnr(
            make_c2w(axis_angle_to_matrix(aa_a), t_a), K_a
        )
print(json.dumps({k: round(v, 3) for k, v in res.items()}, indent=1))
