"""One full solve at a fixed starting focal (no search), knobs varied: cheap probes of the final
reconstruction. python solve_probe.py WIN F_MODEL_PX [key=value ...]"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe import HW, PYC, append_row, cams, load, med_rot, out_dir

import rayzer.refine.matched_cameras as mc
from rayzer.refine.pair_geometry import detect_features, match_pairs, pair_poses

win = sys.argv[1]
fm = float(sys.argv[2])
kv = dict(a.split("=", 1) for a in sys.argv[3:])
special = {k: kv.pop(k) for k in list(kv) if k.startswith("_")}
cfg = mc.MatchConfig(**{k: eval(x) for k, x in kv.items()})
photos, box, gt, folder = load(win)
rho, maps = mc._working_frame([box] * 8, HW)
t = time.process_time()
contrast = float(special.get("_contrast", 0.02))
feats = [detect_features(p, m, 1024, contrast) for p, m in zip(photos, maps)]
matched = match_pairs(feats, cfg.ratio, int(special.get("_maxm", 2000)))
if special.get("_cross"):  # keep mutual nearest neighbours only (COLMAP's cross check)
    import cv2

    bf = cv2.BFMatcher(cv2.NORM_L2)
    for p in matched:
        if not len(p.matches):
            continue
        back = bf.match(feats[p.j].desc, feats[p.i].desc)
        best = {m.queryIdx: m.trainIdx for m in back}
        keep = [best.get(int(b)) == int(a) for a, b in p.matches]
        p.matches = p.matches[np.array(keep, dtype=bool)]
c = np.array([rho * HW[1] / 2, rho * HW[0] / 2])
if "_cx" in special:  # principal point in photo px of the crop frame
    c = np.array([float(special["_cx"]), float(special["_cy"])])
f = fm * rho
posed = pair_poses(feats, matched, (f, f, c[0], c[1]), cfg.threshold_px, cfg.min_inliers)
sol = mc._solve(feats, posed, f, c, 8, 4, cfg)
C, reg = cams(sol, 8)
out = {
    "win": win,
    "f0": fm,
    "knobs": sys.argv[3:],
    "reg": len(reg),
    "all": med_rot(C, gt, reg),
    "f": round(sol.rec.f / rho, 3) if sol.rec else None,
    "planar": len(sol.planar),
    "after": sol.after,
    "cpu": round(time.process_time() - t, 1),
}
pv = PYC.get(win)
if pv and all(k in reg for k in pv):
    out["on_pyc"] = med_rot(C, gt, pv)
try:
    P = torch.load(out_dir() / f"pyc_{win.replace(':', '_')}_SIMPLE_RADIAL.pt")
    com = [k for k in P["reg"] if k in reg]
    out["vs_pyc"] = med_rot(C, P["c2w"], com)
except FileNotFoundError:
    pass
print(json.dumps(out), flush=True)
append_row("results.jsonl", out)
