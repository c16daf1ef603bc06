"""Guided matching and track length, one window: one full solve from the focal the benchmark's
solve reached (as solve_probe.py, no focal search), then each variant solved again from that
solve's cameras (guided.py). Prints the first solve's tracks (points, observations per point,
track lengths, conflicting tracks dropped) and each variant's errors.

python guided_probe.py WIN F_MODEL_PX [band:ratio[:consistent[:min_len]] ...]
  e.g. fox:20 79.451 0:0:0:2 0:0:0:3 2:0.8:1
consistent 1: the guided tracks refuse a match that would meet a view twice (0: such tracks
dropped whole, as the library); min_len: tracks with fewer views left out of the second solve.
Band 0: a control, the first solve's own tracks solved again the same way (two more
bundle-adjustment passes from its cameras). Rows appended to guided.jsonl in probe.out_dir().
ROOTSIFT=1 in the environment: every descriptor as RootSIFT (L1-normalised, square root:
COLMAP's default) before any matching, first solve included.
"""

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from guided import Tracks, guided_solve, keypoints_near_projections, resolve, track_figures
from probe import HW, PYC, append_row, cams, load, med_rot

import rayzer.refine.matched_cameras as mc
from rayzer.refine.pair_geometry import detect_features, match_pairs, pair_poses


def row(name, sol, cpu, extra):
    C, reg = cams(sol, 8)
    out = {
        "win": win,
        "f0": fm,
        "variant": name + (" [RootSIFT]" if rootsift else ""),
        "reg": len(reg),
        "all": med_rot(C, gt, reg),
        "f": round(sol.rec.f / rho, 3) if sol.rec else None,
        "after": sol.after,
        "cpu": round(cpu, 1),
        **extra,
    }
    pv = PYC.get(win)
    if pv and all(k in reg for k in pv):
        out["on_pyc"] = med_rot(C, gt, pv)
    print(json.dumps(out), flush=True)
    append_row("guided.jsonl", out)


win, fm = sys.argv[1], float(sys.argv[2])
variants = [[float(x) for x in a.split(":")] for a in sys.argv[3:]]
variants = [v + [1.0, 2.0][len(v) - 2 :] for v in variants]  # defaults: consistent, min_len 2
cfg = mc.MatchConfig()
photos, box, gt, _ = load(win)
rho, maps = mc._working_frame([box] * 8, HW)
t = time.process_time()
feats = [detect_features(p, m, cfg.max_side) for p, m in zip(photos, maps, strict=True)]
rootsift = os.environ.get("ROOTSIFT") == "1"
if rootsift:
    for x in feats:
        x.desc = np.sqrt(x.desc / np.maximum(x.desc.sum(1, keepdims=True), 1e-12)).astype(
            np.float32
        )
matched = match_pairs(feats, cfg.ratio)
c = np.array([rho * HW[1] / 2, rho * HW[0] / 2])
f = fm * rho
posed = pair_poses(feats, matched, (f, f, c[0], c[1]), cfg.threshold_px, cfg.min_inliers)
sol = mc._solve(feats, posed, f, c, 8, 4, cfg)
first = Tracks(sol.kept)
assert first.obs == mc._Tracks(sol.kept).obs  # the library's tracks
figures = {**track_figures(sol.rec, cfg), "tracks": len(first.obs),
           "conflicts": first.conflicts, "conflict_obs": first.conflict_obs,
           "two_view_points_elsewhere": keypoints_near_projections(sol.rec, feats, c)}  # fmt: skip
row("first", sol, time.process_time() - t,
    {"tracks": figures, "keypoints": [len(x.uv) for x in feats]})  # fmt: skip
for band, ratio, consistent, min_len in variants:
    t = time.process_time()
    if band == 0:
        tracks = mc._Tracks(sol.kept)
        tracks.obs = [o for o in tracks.obs if len(o) >= min_len]
        out = resolve(feats, sol, tracks, c, cfg)
        row(f"control: first tracks, min_len {min_len:g}", out, time.process_time() - t,
            {"guided": track_figures(out.rec, cfg)})  # fmt: skip
        continue
    out, info = guided_solve(feats, sol, c, cfg, band, ratio, 0.7, bool(consistent), int(min_len))
    name = f"guided {band:g} px, ratio {ratio:g}, consistent {consistent:g}, min_len {min_len:g}"
    row(name, out, time.process_time() - t, {"guided": info})
