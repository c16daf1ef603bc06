import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe import HW, load

import rayzer.refine.matched_cameras as mc
from rayzer.refine.pair_geometry import detect_features, match_pairs, pair_poses

win = sys.argv[1]
fmodel = float(sys.argv[2])
photos, box, gt, folder = load(win)
rho, maps = mc._working_frame([box] * 8, HW)
t = time.process_time()
feats = [detect_features(p, m, 1024) for p, m in zip(photos, maps)]
matched = match_pairs(feats, 0.8)
f = fmodel * rho
c = np.array([rho * HW[1] / 2, rho * HW[0] / 2])
posed = pair_poses(feats, matched, (f, f, c[0], c[1]), 1.5, 20)
print("cpu", time.process_time() - t)
planar = [f"{p.i}-{p.j}" for p in posed if p.homography_ratio > 1.0]
print("planar at", fmodel, planar)
print("matches", sum(len(p.matches) for p in posed), "inliers", sum(p.num_inliers for p in posed))
kept = [p for p in posed if p.num_inliers >= 20 and p.homography_ratio <= 1.0]
# tracks with conflicts
parent = {}


def find(a):
    while parent.setdefault(a, a) != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


for p in kept:
    for k in p.inliers:
        a = find((p.i, int(p.matches[k, 0])))
        b = find((p.j, int(p.matches[k, 1])))
        if a != b:
            parent[a] = b
groups = {}
for n in list(parent):
    groups.setdefault(find(n), []).append(n)
ok = [g for g in groups.values() if len({v for v, _ in g}) == len(g)]
bad = [g for g in groups.values() if len({v for v, _ in g}) != len(g)]
print("tracks ok", len(ok), "obs", sum(map(len, ok)), "mean len", np.mean([len(g) for g in ok]))
print(
    "conflicting tracks dropped",
    len(bad),
    "obs lost",
    sum(map(len, bad)),
    "sizes",
    sorted(map(len, bad))[-10:],
)
