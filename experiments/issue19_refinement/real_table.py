"""Item 3 of issue 19 on the posed real scenes: model alone vs model + refinement vs pycolmap.

python real_table.py RUN_DIR [--scenes a,b] [--windows 2] [--steps 150] [--size 128]
One JSON line per 8-frame consecutive window (frames in capture order): median relative
rotation / translation-direction errors against the scenes' cameras (gauge-free), registered
views, seconds. The model's depth and cameras are predicted at its training size; refinement
runs at --size (the depth resampled); pycolmap gets the stored JPEGs (<= 512 px).
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rayzer.eval.colmap_reference import ColmapFailed, run_colmap
from rayzer.geometry import relative_pose_errors
from rayzer.infer.model import load_model
from rayzer.infer.predict import (
    as_images,
    build_scene,
    predict_cameras,
    render_scene_with_depth,
)
from rayzer.refine import RefineConfig, refine_cameras

REAL = Path("/work/shared/data/real")
p = argparse.ArgumentParser()
p.add_argument("run")
p.add_argument("--scenes", default="fox_instantngp,middlebury_templeSparseRing,nerf_synthetic_lego")
p.add_argument("--windows", type=int, default=2)
p.add_argument("--steps", type=int, default=150)
p.add_argument("--size", type=int, default=128)
p.add_argument("--no-colmap", action="store_true")
p.add_argument("--spread", action="store_true", help="8 frames evenly over the capture")
a = p.parse_args()
torch.set_num_threads(1)
model = load_model(a.run, device="cpu")


def med(pred, gt):
    e = relative_pose_errors(pred.double(), gt.double())
    return round(float(e["rot_deg"].median()), 2), round(float(e["trans_deg"].median()), 2)


for name in a.scenes.split(","):
    meta = json.loads((REAL / name / "cameras.json").read_text())
    frames = meta["frames"]
    n = len(frames)
    starts = np.linspace(0, n - 8, a.windows).round().astype(int).tolist()
    if a.spread:
        starts = [-1]
    for s in starts:
        if s < 0:
            picks = np.linspace(0, n - 1, 8).round().astype(int).tolist()
            win = [frames[i] for i in picks]
        else:
            win = frames[s : s + 8]
        files = [REAL / name / f["file"] for f in win]
        gt = torch.tensor(np.array([f["c2w"] for f in win]), dtype=torch.float64)
        row = {"scene": name, "frames": f"{s}-{s + 7}" if s >= 0 else "spread"}
        row["identity"] = med(torch.eye(4).repeat(8, 1, 1), gt)
        t = time.time()
        x = as_images([str(f) for f in files], model)
        cams = predict_cameras(model, x)
        scene = build_scene(model, x, cams)
        _, depth = render_scene_with_depth(model, scene, cams)
        row["model"] = med(cams.c2w, gt)
        row["model_s"] = round(time.time() - t, 1)
        # refinement at --size: images re-read at that size, intrinsics scaled
        big = as_images([str(f) for f in files], model) if a.size == cams.height else None
        if big is None:
            from rayzer.data.images import load_image_files

            views = load_image_files([str(f) for f in files], a.size, model.patch_size)
            big = torch.from_numpy(views.images).permute(0, 3, 1, 2).float() / 255
        hb, wb = big.shape[-2:]
        K = cams.K.clone() * torch.tensor([wb / cams.width, hb / cams.height] * 2)
        d = F.interpolate(depth.clone(), size=(hb, wb), mode="bilinear")[:, 0]
        t = time.time()
        res = refine_cameras(big, cams.c2w, K, d, config=RefineConfig(steps=a.steps))
        row["refined"] = med(res.c2w, gt)
        row["refine_s"] = round(time.time() - t, 1)
        row["refine_psnr"] = [round(res.psnr_before, 2), round(res.psnr_after, 2)]
        row["refine_stopped"] = res.stopped
        if not a.no_colmap:
            t = time.time()
            with tempfile.TemporaryDirectory() as work:
                try:
                    col = run_colmap(files, work, max_image_size=512, num_threads=1)
                    idx = [i for i, f in enumerate(files) if f.name in col.c2w]
                    pred = torch.tensor(np.array([col.c2w[files[i].name] for i in idx]))
                    row["colmap_registered"] = len(idx)
                    row["colmap"] = med(pred, gt[idx])
                    row["model_on_colmap_views"] = med(cams.c2w[idx], gt[idx])
                except ColmapFailed as exc:
                    row["colmap_registered"] = 0
                    row["colmap"] = str(exc)[:120]
            row["colmap_s"] = round(time.time() - t, 1)
        print(json.dumps(row), flush=True)
