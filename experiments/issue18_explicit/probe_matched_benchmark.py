"""A classical, label-free camera reference on the orbit benchmark's own held-out scenes (issue 18).

How close do classical cameras from feature matches
(:func:`rayzer.refine.matched_cameras.cameras_from_matches`: SIFT, essential matrices, rotation
averaging, bundle adjustment) come to issue 18's target (median relative rotation error <= 5°)
on the scenes and views of ``rayzer bench quality``, when the synthetic views are rendered at
64, 128 or 256 px? (The synthetic renderer renders any size, so a label-free teacher could
match at 4x and supervise the 64 px network.) No training; the truth is used only to score.

Test set: :func:`rayzer.eval.synthetic_test_set.synthetic_test_sets` with the benchmark's
settings (docs/benchmarks/side-by-side-orbit/quality.json: the first 32 TEST_SEEDS, 4 input + 4
target views, 24-frame clips, 24-frame span, ``even`` protocol, protocol seed 0), only the
image size changed. All 8 views of each scene go to the matcher (the benchmark scores all 8).

Priors: every view starts at the identity camera (what an unregistered view keeps, so it
scores as the identity-pose baseline) with the true focal held (``true_focal_fixed``: no focal
search, the bundle adjustment keeps it), the true focal as a prior only (``true_focal``: no
focal search, the bundle adjustment refines it, the library's default) or the true focal x
``--off`` plus the focal search (``off_focal_search``, then refined).

Scores (:mod:`rayzer.eval.camera_metrics`, the benchmark's pairwise definitions over all view
pairs): median rotation / translation-direction error, RPA@5/15/30, AUC@10, the share of views
registered, the focal error |f - f_true| / f_true (f = fx / W), wall and CPU seconds per scene. Also the
pairwise errors over pairs of registered views only (what a teacher that drops unregistered
views would hand on).

Usage: python experiments/issue18_explicit/probe_matched_benchmark.py [--family orbit]
    [--sizes 64 128 256] [--scenes 32] [--off 1.25] [--modes ...] [--min-inliers 20]
    [--out FILE.json] [--md FILE.md]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from rayzer.data.synthetic import SynthConfig
from rayzer.eval.camera_metrics import (
    cat_pose_errors,
    pairwise_summary,
    pose_errors,
    summarize_pose_errors,
)
from rayzer.eval.synthetic_test_set import synthetic_test_sets
from rayzer.geometry import rotation_error_deg
from rayzer.geometry.pose_metrics import pair_indices
from rayzer.refine.matched_cameras import MatchConfig, cameras_from_matches

BENCHMARK = Path(__file__).resolve().parents[2] / "docs/benchmarks/side-by-side-orbit/quality.json"
MODES = ("true_focal_fixed", "true_focal", "off_focal_search")


def benchmark_settings() -> dict:
    """The test-set settings the orbit benchmark used (its JSON's ``test_set``)."""
    ts = json.loads(BENCHMARK.read_text())["test_set"]
    keys = ("num_scenes", "num_input_views", "num_target_views", "frames_per_clip", "span")
    return {k: ts[k] for k in keys} | {
        "synth": ts["synth"],
        "protocol_seed": ts["protocol_seed"],
        "even_frames": ts["protocols"]["even"]["frames"],
    }


def test_set(family: str, size: int, scenes: int, bench: dict) -> list:
    """The benchmark's ``even`` samples of ``family`` rendered at ``size`` px."""
    synth = SynthConfig(
        family=family,
        frames=bench["frames_per_clip"],
        height=size,
        width=size,
        **bench["synth"],
    )
    return synthetic_test_sets(
        synth,
        scenes,
        bench["num_input_views"],
        bench["num_target_views"],
        span=bench["span"],
        protocols=("even",),
        seed=bench["protocol_seed"],
    )["even"]


def solve(sample, size: int, mode: str, off: float, min_inliers: int) -> dict:
    """Cameras of one sample's views from their matches, and their errors."""
    v = sample.images.shape[0]
    photos = (sample.images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    boxes = [(0.0, 0.0, float(size), float(size))] * v
    start = torch.eye(4).repeat(v, 1, 1)
    K = sample.K.float().clone()
    if mode == "off_focal_search":
        K[:, :2] *= off
    cfg = MatchConfig(
        focal_search=mode == "off_focal_search",
        refine_focal=mode != "true_focal_fixed",
        min_inliers=min_inliers,
    )
    t0, c0 = time.perf_counter(), time.process_time()
    res = cameras_from_matches(list(photos), boxes, start, K, (size, size), anchor=0, config=cfg)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    gt_focal = float(sample.K[:, 0].double().mean()) / size
    pred_focal = float(res.K[:, 0].double().mean()) / size
    if res.num_registered:  # the solved (shared) focal of the registered views
        pred_focal = float(res.K[res.registered, 0].double().mean()) / size
    err = pose_errors(res.c2w, sample.c2w, pred_focal, gt_focal)
    reg = res.registered
    ii, jj = pair_indices(v)  # the pair order of the errors
    both = reg[ii] & reg[jj]
    return {
        "errors": err,
        "both_registered": both,
        "row": {
            "scene": sample.name,
            "registered": int(reg.sum()),
            "pairs_kept": res.report.get("pairs_kept"),
            "focal_pred": round(pred_focal, 4),
            "focal_true": round(gt_focal, 4),
            "rot_err_deg_median": round(float(err.rot_deg.median()), 3),
            "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu_seconds, 2),
            "warning": res.report.get("warning"),
        },
    }


def pair_report(sample, size: int, min_inliers: int) -> list[dict]:
    """Every pair's essential-matrix pose (true focal, the module's matching) against the
    truth: inliers, true relative rotation, rotation and translation-direction errors."""
    from rayzer.refine.pair_geometry import detect_features, match_pairs, pair_poses

    cfg = MatchConfig(min_inliers=min_inliers)
    photos = (sample.images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    feats = [detect_features(p, (1.0, 0.0, 0.0), cfg.max_side) for p in photos]
    fx, fy, cx, cy = (float(x) for x in sample.K[0])
    posed = pair_poses(
        feats, match_pairs(feats, cfg.ratio), (fx, fy, cx, cy), cfg.threshold_px, min_inliers
    )
    gt = sample.c2w.double()
    rows = []
    for p in posed:
        if p.R is None or p.t is None:  # no pose from this pair's matches
            continue
        rel = torch.linalg.inv(gt[p.j]) @ gt[p.i]  # x_j = R x_i + t, as PairGeometry
        true_t = rel[:3, 3] / rel[:3, 3].norm().clamp_min(1e-12)
        est_t = torch.from_numpy(p.t) / max(float(np.linalg.norm(p.t)), 1e-12)
        rows.append(
            {
                "pair": f"{p.i}-{p.j}",
                "inliers": p.num_inliers,
                "kept": p.num_inliers >= min_inliers,
                "true_rotation_deg": round(
                    float(rotation_error_deg(torch.eye(3)[None].double(), rel[None, :3, :3])), 1
                ),
                "rotation_error_deg": round(
                    float(rotation_error_deg(torch.from_numpy(p.R)[None], rel[None, :3, :3])), 1
                ),
                "trans_dir_error_deg": round(
                    math.degrees(math.acos(max(-1.0, min(1.0, float(true_t @ est_t))))), 1
                ),
            }
        )
    return rows


def summarise(results: list[dict], views: int) -> dict:
    """Pooled scores of one (size, mode) over its scenes."""
    err = cat_pose_errors([r["errors"] for r in results])
    out = summarize_pose_errors(err)
    both = torch.cat([r["both_registered"] for r in results])
    reg_pairs = pairwise_summary(err.rot_deg[both], err.trans_deg[both]) if both.any() else None
    rows = [r["row"] for r in results]
    return {
        "scenes": len(rows),
        "views_registered_share": sum(r["registered"] for r in rows) / (views * len(rows)),
        "scenes_all_registered": sum(r["registered"] == views for r in rows),
        "scenes_none_registered": sum(r["registered"] == 0 for r in rows),
        "seconds_per_scene_median": float(np.median([r["seconds"] for r in rows])),
        "seconds_total": round(sum(r["seconds"] for r in rows), 1),
        "cpu_seconds_total": round(sum(r["cpu_seconds"] for r in rows), 1),
        "all_pairs": out,
        "registered_pairs": reg_pairs,
        "per_scene": rows,
    }


def table(result: dict) -> str:
    """Markdown table of one family's results."""
    head = (
        "| size | focal prior | views registered | rot. err. median (°) | trans.-dir. err. "
        "median (°) | RPA @5/15/30 | AUC@10 | focal rel. err. median | registered pairs: rot. "
        "median (°) / RPA@5 (pairs) | s/scene (median) |\n" + "|---" * 10 + "|\n"
    )
    lines = []
    ident = result["identity"]
    lines.append(
        f"| any | identity cameras | — | {ident['rot_err_deg_median']:.2f} | — | "
        f"{_rpa(ident)} | {ident['auc']['@10']:.3f} | — | — | — |"
    )
    for key, r in result["runs"].items():
        size, mode = key.split("/")
        a, p = r["all_pairs"], r["registered_pairs"]
        prior = {
            "true_focal_fixed": "true, held",
            "true_focal": "true, refined by BA",
            "off_focal_search": f"true x {result['setting']['off']} + search, refined",
        }[mode]
        regp = (
            f"{p['rot_err_deg_median']:.2f} / {p['rpa']['@5']:.2f} ({p['num_pairs']})"
            if p
            else "— (0)"
        )
        lines.append(
            f"| {size} | {prior} | {r['views_registered_share']:.0%} | "
            f"{a['rot_err_deg_median']:.2f} | {a['trans_dir_err_deg_median']:.2f} | {_rpa(a)} | "
            f"{a['auc']['@10']:.3f} | {a['focal_rel_err_median']:.3f} | {regp} | "
            f"{r['seconds_per_scene_median']:.2f} |"
        )
    return head + "\n".join(lines) + "\n"


def _rpa(s: dict) -> str:
    return " / ".join(f"{s['rpa'][k]:.2f}" for k in ("@5", "@15", "@30"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", default="orbit", choices=("orbit", "walk"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--scenes", type=int, default=None, help="default: the benchmark's 32")
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--off", type=float, default=1.25, help="focal prior = true focal x this")
    ap.add_argument(
        "--min-inliers",
        type=int,
        default=MatchConfig.min_inliers,
        help="MatchConfig.min_inliers (pose inliers a pair needs to count)",
    )
    ap.add_argument(
        "--pairs",
        type=int,
        default=None,
        metavar="SCENE",
        help="instead: every pair's essential-matrix pose of scene SCENE (0-based) at each size",
    )
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--md", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    import cv2

    cv2.setNumThreads(1)
    bench = benchmark_settings()
    scenes = args.scenes or bench["num_scenes"]
    views = bench["num_input_views"] + bench["num_target_views"]
    result: dict = {
        "setting": {
            "family": args.family,
            "sizes": args.sizes,
            "scenes": scenes,
            "modes": args.modes,
            "off": args.off,
            "benchmark": {k: v for k, v in bench.items() if k != "even_frames"},
            "match_config": MatchConfig(min_inliers=args.min_inliers).__dict__,
        },
        "runs": {},
    }
    if args.pairs is not None:
        for size in args.sizes:
            sample = test_set(args.family, size, args.pairs + 1, bench)[args.pairs]
            rows = pair_report(sample, size, args.min_inliers)
            print(f"### {sample.name}, {size} px: every pair's essential matrix (true focal)\n")
            print(
                "| pair | inliers | kept | true rotation (°) | rotation error (°) | "
                "trans.-dir. error (°) |\n|---|---|---|---|---|---|"
            )
            for r in rows:
                print(" | ".join(["", *(str(v) for v in r.values()), ""]).strip())
            print()
        return
    t_all = time.perf_counter()
    for size in args.sizes:
        t0 = time.perf_counter()
        samples = test_set(args.family, size, scenes, bench)
        render_s = time.perf_counter() - t0
        frames = [s.frame_index.tolist() for s in samples]
        if args.family == "orbit" and frames != bench["even_frames"][:scenes]:
            raise SystemExit("the frames differ from the benchmark's even protocol")
        if "identity" not in result:
            ident = cat_pose_errors(
                [pose_errors(torch.eye(4).repeat(views, 1, 1), s.c2w) for s in samples]
            )
            result["identity"] = pairwise_summary(ident.rot_deg, ident.trans_deg)
            result["frames"] = frames
        for mode in args.modes:
            runs = [solve(s, size, mode, args.off, args.min_inliers) for s in samples]
            r = summarise(runs, views)
            r["render_seconds"] = round(render_s, 1)
            result["runs"][f"{size}/{mode}"] = r
            a = r["all_pairs"]
            print(
                f"{args.family} {size}px {mode}: registered {r['views_registered_share']:.0%}, "
                f"rot median {a['rot_err_deg_median']:.2f}°, trans-dir median "
                f"{a['trans_dir_err_deg_median']:.2f}°, RPA@5 {a['rpa']['@5']:.2f}, "
                f"AUC@10 {a['auc']['@10']:.3f}, {r['seconds_total']} s",
                flush=True,
            )
    result["wall_seconds"] = round(time.perf_counter() - t_all, 1)
    text = json.dumps(result, indent=1)
    print(text if args.out is None else f"wrote {args.out}")
    if args.out is not None:
        args.out.write_text(text + "\n")
    md = f"### {args.family} ({scenes} scenes, `even`, all {views} views)\n\n" + table(result)
    print(md)
    if args.md is not None:
        args.md.write_text(md)


if __name__ == "__main__":
    main()
