"""Where should the left-out view's camera go after a leave-one-out fit with cameras refined?

One :func:`rayzer.refine.splat.held_out_fit_psnr` fit (view ``V // 2 + 1`` left out, cameras
refined, the model's canonical view held, as ``rayzer infer --fit --fit-cameras``) on a scene
dumped by ``fit128.py dump``; then the left-out view rendered from the fitted Gaussians at
its stale predicted pose (the library before 9fac9f4) and following each other view's camera
change (``change = fitted_j @ inv(start_j)``, applied as ``change @ c2w_left``; 9fac9f4
followed the view with the nearest predicted centre, 7c7f4d5 its neighbour in input order).
Its image is used only to score. Prints one JSON line (docs/benchmarks/splat-fit/README.md,
"The left-out view's camera"):

    python held_out_camera.py /work/runs/h2/fit128/nas3r_64.pt 64
"""

from __future__ import annotations

import json
import os
import sys
import time

import torch

import rayzer.refine.splat as splat
from rayzer.refine.splat import SplatFitConfig, held_out_fit_psnr


def _rot_deg(a: torch.Tensor, b: torch.Tensor) -> float:
    r = a[:3, :3].T @ b[:3, :3]
    return float(torch.rad2deg(torch.arccos(((r.trace() - 1) / 2).clamp(-1, 1))))


def main() -> None:
    path, size = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(1)
    d = torch.load(path, weights_only=False)
    images, scene = d["photos"][size], d["scene"]
    v = images.shape[0]
    view, anchor = (v // 2 + 1) % v, d["canonical"]
    calls = []
    real = splat.render_views

    def recording(sc, c2w, K, h, w, **kw):  # the held-out figure's renders (the last: after)
        calls.append((sc, c2w.clone(), K.clone(), h, w, kw))
        return real(sc, c2w, K, h, w, **kw)

    splat.render_views = recording
    cfg = SplatFitConfig(steps=100, refine_cameras=True)
    torch.manual_seed(0)
    c0, load0 = time.process_time(), os.getloadavg()[0]
    # camera_steps=0: the placement is what is measured here; since 3474105 the library also
    # fits the left-out camera to its image, which would change 'before' / 'after_library'
    held = held_out_fit_psnr(
        images, scene, view, config=cfg, anchor=anchor, background=d["background"],
        near=d["near"], camera_steps=0,
    )  # fmt: skip
    fitted_scene, _, K_after, hh, ww, kw = calls[-1]  # the left-out view after, at its placement
    c2w_stale = scene.c2w[0, view : view + 1].float()  # its predicted pose
    target = images[view : view + 1].float()

    def psnr_at(c2w: torch.Tensor) -> float:
        return round(splat._psnr(real(fitted_scene, c2w, K_after, hh, ww, **kw), target), 3)

    others = [i for i in range(v) if i != view]
    start, fitted = scene.c2w[0].float(), held.result.c2w.float()
    per_view = {}
    for k, j in enumerate(others):
        change = fitted[k] @ torch.linalg.inv(start[j])
        per_view[j] = {
            "centre_dist": round(float(torch.linalg.norm(start[j, :3, 3] - start[view, :3, 3])), 5),
            "pred_rot_to_view_deg": round(_rot_deg(start[j], start[view]), 3),
            "fit_rot_change_deg": round(_rot_deg(start[j], fitted[k]), 3),
            "psnr_following": psnr_at(change @ c2w_stale),
        }
    row = {
        "scene": path,
        "model": d["model"],
        "size": size,
        "anchor": anchor,
        "view": view,
        "before": round(held.psnr_before, 3),
        "after_library": round(held.psnr_after, 3),
        "after_stale_pose": psnr_at(c2w_stale),
        "per_view": per_view,
        "stopped": held.result.stopped,
        "cpu_s": round(time.process_time() - c0, 1),
        "load": [round(load0, 2), round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
