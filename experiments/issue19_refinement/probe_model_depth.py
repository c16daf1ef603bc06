"""Refinement from a trained model's prediction (cameras + rendered depth) on synthetic orbits.

python probe_model_depth.py RUN_DIR [--seeds 21,5] : model cameras vs refined, and refined with
the model's depth but the true cameras perturbed (depth quality alone).
"""

import argparse
import json
import math
import time

import torch

from rayzer.data.synthetic.clip import SynthConfig, render_clip
from rayzer.geometry import axis_angle_to_matrix, make_c2w, relative_pose_errors
from rayzer.infer.model import load_model
from rayzer.infer.predict import build_scene, predict_cameras, render_scene_with_depth
from rayzer.refine import RefineConfig, refine_cameras

p = argparse.ArgumentParser()
p.add_argument("run")
p.add_argument("--seeds", default="21")
p.add_argument("--steps", type=int, default=150)
a = p.parse_args()
torch.set_num_threads(1)
model = load_model(a.run, device="cpu")
size = model.image_size


def err(x, gt):
    d = relative_pose_errors(x, gt)
    return round(float(d["rot_deg"].median()), 2), round(float(d["trans_deg"].median()), 2)


for seed in [int(s) for s in a.seeds.split(",")]:
    clip = render_clip(
        seed, SynthConfig(family="orbit", frames=24, height=size, width=size), list(range(0, 24, 3))
    )
    cams = predict_cameras(model, clip.images)
    scene = build_scene(model, clip.images, cams)
    _, depth = render_scene_with_depth(model, scene, cams)
    depth = depth[:, 0]
    aligned = depth * (clip.depth.median() / depth.median())  # the model's depth has its own scale
    rel = ((aligned - clip.depth).abs() / clip.depth).median()
    row = {
        "run": a.run.split("/")[-1],
        "seed": seed,
        "depth_rel_err_median_scale_aligned": round(float(rel), 3),
    }
    row["model_rot_tdir"] = err(cams.c2w, clip.c2w)
    row["model_focal"] = round(float(cams.K[0, 0] / clip.K[0, 0]), 3)
    t = time.time()
    res = refine_cameras(clip.images, cams.c2w, cams.K, depth, config=RefineConfig(steps=a.steps))
    row["refined_rot_tdir"] = err(res.c2w, clip.c2w)
    row["refined_focal"] = round(float(res.K[0, 0] / clip.K[0, 0]), 3)
    row["psnr"] = [round(res.psnr_before, 2), round(res.psnr_after, 2)]
    row["stopped"] = res.stopped
    row["s"] = round(time.time() - t, 1)
    # The model's depth with the true cameras perturbed (3°, 5 %, focal 5 %), seed 1.
    v = 8
    g = torch.Generator().manual_seed(1)
    rv = torch.randn(v, 3, generator=g)
    rv = rv / rv.norm(dim=-1, keepdim=True) * math.radians(3)
    tr = torch.randn(v, 3, generator=g) * 0.05 * float(clip.depth.median())
    pert = clip.c2w @ make_c2w(axis_angle_to_matrix(rv), tr)
    pert[v // 2] = clip.c2w[v // 2]
    Kp = clip.K.clone()
    Kp[:, :2] *= 1.05
    # the model's depth is in its own scale: rescale it to the true median for this check
    d2 = depth * (clip.depth.median() / depth.median())
    res2 = refine_cameras(clip.images, pert, Kp, d2, config=RefineConfig(steps=a.steps))
    row["pert_with_model_depth"] = [err(pert, clip.c2w), err(res2.c2w, clip.c2w)]
    print(json.dumps(row), flush=True)
