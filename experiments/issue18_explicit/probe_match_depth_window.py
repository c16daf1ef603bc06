"""Are the SIFT matches that fail probe_matches.py's depth test wrong, or is the test's
nearest-pixel depth lookup to blame (a keypoint on an occlusion edge reading the other side's
depth)? Re-scores the adjacent-pair matches of probe_matches.py's first configuration with the
best depth in a (2r+1)² window of the matching-size depth map, r = 0 (probe_matches.py's test),
1, 2, 4, and reports the quantiles of the nearest-pixel reprojection error.

Usage: python experiments/issue18_explicit/probe_match_depth_window.py [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from rayzer.data.matches import match_views
from rayzer.data.synthetic import SynthConfig, render_clip
from rayzer.geometry import project_points

RADII = (0, 1, 2, 4)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clips", type=int, default=16)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--match-scale", type=int, default=4)
    p.add_argument("--tol", type=float, default=1.0, help="pixels at --size")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    size, scale = args.size, args.match_scale
    big_size = size * scale
    consistent = dict.fromkeys(RADII, 0)
    nearest_errors = []
    for seed in range(1_000_000, 1_000_000 + args.clips):
        frames = list(range(0, 24, 3))
        clip = render_clip(seed, SynthConfig(height=size, width=size), frames=frames)
        big = render_clip(seed, SynthConfig(height=big_size, width=big_size), frames=frames)
        m = match_views(big.images, max_matches=64, out_size=(size, size))
        c2w, K = clip.c2w.double(), clip.K.double()
        for q, (a, b) in enumerate(m.pairs.tolist()):
            ok = m.valid[q]
            if b != a + 1 or not ok.any():
                continue
            uv = m.uv[q][ok].double()
            xy = (uv[:, :2] - K[a, 2:]) / K[a, :2]
            ray = torch.cat((xy, torch.ones_like(xy[:, :1])), -1)
            base = (uv[:, :2] * scale).floor().long()
            for r in RADII:
                best = torch.full((len(uv),), float("inf"), dtype=torch.float64)
                for di in range(-r, r + 1):
                    for dj in range(-r, r + 1):
                        ij = (base + torch.tensor([dj, di])).clamp(0, big_size - 1)
                        z = big.depth[a].double()[ij[:, 1], ij[:, 0]]
                        points = (ray * z[:, None]) @ c2w[a, :3, :3].T + c2w[a, :3, 3]
                        proj, zb = project_points(points, c2w[b], K[b])
                        err = (proj - uv[:, 2:]).norm(dim=-1)
                        err = torch.where((zb > 0) & torch.isfinite(z), err, torch.inf)
                        best = torch.minimum(best, err)
                        if r == 0:
                            nearest_errors.append(err)
                consistent[r] += int((best < args.tol).sum())
    errors = torch.cat(nearest_errors)
    out = {
        "setting": vars(args),
        "matches": len(errors),
        "consistent_fraction_by_window_radius": {
            str(r): consistent[r] / max(len(errors), 1) for r in RADII
        },
        "nearest_pixel_error_quantiles_px": {
            str(q): float(errors.quantile(q)) for q in (0.25, 0.5, 0.75, 0.9)
        },
    }
    print(json.dumps(out, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
