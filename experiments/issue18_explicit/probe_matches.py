"""How many SIFT matches (rayzer.data.matches.match_views) do the views of a held-out orbit clip
give, and how many are right? No training; the truth is used only to score.

For each clip (test seeds 1 000 000 …) the 8 views, frames 0, s, …, 7s, are rendered at the
model's size S and at `--match-scale` × S; matches are computed on the larger render and scaled
to S. A match (u_a → u_b) is *consistent* when the true depth at u_a (the nearest pixel of the
size-S depth map), lifted through the true camera a and projected into camera b, lands within
`--tol` pixels (at size S) of u_b (the matched point itself is lifted, with the large render's
depth at its nearest pixel). Also reported: the share whose Sampson distance at the true cameras
is below `--tol` (what the epipolar loss sees: a wrong match on its epipolar line passes) and the
median Sampson error (pixels² at size S). Adjacent pairs = views i, i+1.

Usage: python experiments/issue18_explicit/probe_matches.py [--clips 16] [--size 32]
    [--match-scale 4] [--stride 3] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from rayzer.data.matches import match_views
from rayzer.data.synthetic import SynthConfig, render_clip
from rayzer.geometry import project_points
from rayzer.geometry.epipolar import fundamental_matrix, relative_pose, sampson_error


def score_clip(
    seed: int, size: int, scale: int, stride: int, tol: float, max_matches: int, max_gap: int
):
    frames = list(range(0, 8 * stride, stride))
    clip = render_clip(seed, SynthConfig(height=size, width=size), frames=frames)
    big = clip
    if scale != 1:
        big = render_clip(seed, SynthConfig(height=size * scale, width=size * scale), frames=frames)
    t0 = time.perf_counter()
    m = match_views(big.images, max_matches=max_matches, out_size=(size, size), max_gap=max_gap)
    seconds = time.perf_counter() - t0
    c2w, K = clip.c2w.double(), clip.K.double()
    rows = []
    for p, (a, b) in enumerate(m.pairs.tolist()):
        ok = m.valid[p]
        n = int(ok.sum())
        row = {"a": a, "b": b, "adjacent": b == a + 1, "matches": n}
        if n:
            uv = m.uv[p][ok].double()
            # lift the exact matched point with the large render's depth at its nearest pixel
            k = big.images.shape[-1] / size
            ij = (uv[:, :2] * k).floor().long().clamp(0, big.images.shape[-1] - 1)
            z = big.depth[a].double()[ij[:, 1], ij[:, 0]]
            xy = (uv[:, :2] - K[a, 2:]) / K[a, :2]
            cam = torch.cat((xy, torch.ones_like(xy[:, :1])), -1) * z[:, None]
            pts = cam @ c2w[a, :3, :3].T + c2w[a, :3, 3]
            proj, zb = project_points(pts, c2w[b], K[b])
            dist = (proj - uv[:, 2:]).norm(dim=-1)
            good = (dist < tol) & (zb > 0) & torch.isfinite(z)
            R, t = relative_pose(c2w[a], c2w[b])
            s = sampson_error(uv[:, :2], uv[:, 2:], fundamental_matrix(R, t, K[a], K[b], eps=0.0))
            row |= {
                "consistent": int(good.sum()),
                "epipolar_ok": int((s.sqrt() < tol).sum()),
                "sampson_median": float(s.median()),
            }
        rows.append(row)
    return rows, seconds


def summarise(rows: list[dict], label: str) -> dict:
    n = [r["matches"] for r in rows]
    good = sum(r.get("consistent", 0) for r in rows)
    epi = sum(r.get("epipolar_ok", 0) for r in rows)
    with_m = [r for r in rows if r["matches"]]
    return {
        "pairs": label,
        "num_pairs": len(rows),
        "pairs_with_matches": len(with_m),
        "matches_per_pair_mean": sum(n) / max(len(n), 1),
        "matches_per_pair_median": float(torch.tensor(n, dtype=torch.float64).median()) if n else 0,
        "consistent_fraction": good / max(sum(n), 1),
        "epipolar_ok_fraction": epi / max(sum(n), 1),
        "sampson_median_of_pairs": float(
            torch.tensor([r["sampson_median"] for r in with_m]).median()
        )
        if with_m
        else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clips", type=int, default=16)
    p.add_argument("--first-seed", type=int, default=1_000_000)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--match-scale", type=int, default=4)
    p.add_argument("--stride", type=int, default=3)
    p.add_argument("--tol", type=float, default=1.0, help="pixels at --size")
    p.add_argument("--max-matches", type=int, default=64)
    p.add_argument("--max-gap", type=int, default=2, help="match views at most this far apart")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    rows, seconds = [], []
    for seed in range(args.first_seed, args.first_seed + args.clips):
        r, s = score_clip(
            seed, args.size, args.match_scale, args.stride, args.tol, args.max_matches, args.max_gap
        )
        rows += [x | {"seed": seed} for x in r]
        seconds.append(s)
    summary = [
        summarise([r for r in rows if r["adjacent"]], "adjacent"),
        summarise([r for r in rows if r["b"] - r["a"] <= args.max_gap], f"gap ≤ {args.max_gap}"),
    ]
    setting = vars(args) | {"match_seconds_per_clip_mean": sum(seconds) / len(seconds)}
    out = {"setting": setting, "summary": summary, "pairs": rows}
    print(json.dumps({"setting": setting, "summary": summary}))
    print(
        "| size | match scale | stride | pairs | pairs with matches | matches/pair mean "
        "(median) | consistent | Sampson < tol² | median Sampson (px²) | match s/clip |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for s in summary:
        print(
            f"| {args.size} | {args.match_scale}× | {args.stride} | {s['pairs']} "
            f"({s['num_pairs']}) | {s['pairs_with_matches']} | {s['matches_per_pair_mean']:.1f} "
            f"({s['matches_per_pair_median']:.0f}) | {100 * s['consistent_fraction']:.1f} % | "
            f"{100 * s['epipolar_ok_fraction']:.1f} % | "
            f"{s['sampson_median_of_pairs']:.3f} | {setting['match_seconds_per_clip_mean']:.2f} |"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
