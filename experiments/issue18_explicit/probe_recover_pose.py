"""How good is the classical two-view answer on the same matches? For each view pair of
held-out orbit clips (8 views, frames 0, s, …, 7s), the matches of
:func:`rayzer.data.matches.match_views` (SIFT on a `--match-scale` × render) go through OpenCV's
essential-matrix fit (USAC-MAGSAC, the *true* intrinsics: an upper bound for a model that
predicts its focal) and ``recoverPose`` (cheirality); the relative rotation and translation
direction are compared with the truth. No training. If these are accurate, a label-free
relative-pose target (rather than the epipolar error's local descent) is the next lever.

Usage: python experiments/issue18_explicit/probe_recover_pose.py [--clips 16] [--size 32]
    [--match-scale 4] [--stride 3] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch

from rayzer.data.matches import match_views
from rayzer.data.synthetic import SynthConfig, render_clip
from rayzer.geometry import rotation_angle
from rayzer.geometry.epipolar import relative_pose


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clips", type=int, default=16)
    p.add_argument("--first-seed", type=int, default=1_000_000)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--match-scale", type=int, default=4)
    p.add_argument("--stride", type=int, default=3)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    cv2.setRNGSeed(0)
    rows = []
    size, scale = args.size, args.match_scale
    for seed in range(args.first_seed, args.first_seed + args.clips):
        frames = list(range(0, 8 * args.stride, args.stride))
        clip = render_clip(seed, SynthConfig(height=size, width=size), frames=frames)
        big = render_clip(seed, SynthConfig(height=size * scale, width=size * scale), frames=frames)
        m = match_views(big.images, max_matches=64, out_size=(size, size))
        c2w, K = clip.c2w.double(), clip.K.double()
        for q, (a, b) in enumerate(m.pairs.tolist()):
            ok = m.valid[q]
            if int(ok.sum()) < 8:
                continue
            uv = m.uv[q][ok].double().numpy() - 0.5  # OpenCV: pixel centres at integers
            Km = np.array([[K[a, 0], 0, K[a, 2] - 0.5], [0, K[a, 1], K[a, 3] - 0.5], [0, 0, 1]])
            # camera b's frame -> camera a's: x_a ~ R x_b + t, so b is OpenCV's "first" view
            E, mask = cv2.findEssentialMat(uv[:, 2:], uv[:, :2], Km, cv2.USAC_MAGSAC, 0.999, 0.5)
            if E is None or E.shape != (3, 3):
                continue
            _, R_est, t_est, _ = cv2.recoverPose(E, uv[:, 2:], uv[:, :2], Km, mask=mask)
            R_true, t_true = relative_pose(c2w[a], c2w[b])
            R_est = torch.from_numpy(R_est)
            t_est = torch.from_numpy(t_est).ravel()
            rot_err = float(torch.rad2deg(rotation_angle(R_est.T @ R_true)))
            cos = float((t_est / t_est.norm() * t_true / t_true.norm()).sum())
            rows.append(
                {
                    "seed": seed,
                    "a": a,
                    "b": b,
                    "matches": int(ok.sum()),
                    "true_rot_deg": float(torch.rad2deg(rotation_angle(R_true))),
                    "rot_err_deg": rot_err,
                    "trans_dir_err_deg": float(np.degrees(np.arccos(np.clip(cos, -1, 1)))),
                }
            )
    summary = {}
    for gap in (1, 2):
        sel = [r for r in rows if r["b"] - r["a"] == gap]
        rot = torch.tensor([r["rot_err_deg"] for r in sel])
        tr = torch.tensor([r["trans_dir_err_deg"] for r in sel])
        true = torch.tensor([r["true_rot_deg"] for r in sel])
        summary[f"gap{gap}"] = {
            "pairs_estimated": len(sel),
            "pairs_total": args.clips * (8 - gap),
            "true_rot_deg_median": float(true.median()),
            "rot_err_deg_median": float(rot.median()),
            "rot_err_under_5deg": float((rot < 5).float().mean()),
            "trans_dir_err_deg_median": float(tr.median()),
        }
    print(json.dumps(summary))
    print(
        "| view gap | pairs estimated | true rotation (median °) | rotation error (median °) "
        "| share < 5° | translation-direction error (median °) |"
    )
    print("|---|---|---|---|---|---|")
    for gap, s in summary.items():
        print(
            f"| {gap[3:]} | {s['pairs_estimated']} / {s['pairs_total']} | "
            f"{s['true_rot_deg_median']:.1f} | {s['rot_err_deg_median']:.1f} | "
            f"{100 * s['rot_err_under_5deg']:.0f} % | {s['trans_dir_err_deg_median']:.1f} |"
        )
    if args.out:
        out = {"setting": vars(args), "summary": summary, "pairs": rows}
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
