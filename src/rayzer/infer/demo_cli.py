"""Arguments and handler of ``rayzer demo`` (registered by :mod:`rayzer.cli`; the work is done by
:mod:`rayzer.infer.demo`).

Kept free of heavy imports at module level: the CLI parser is built on every ``rayzer`` call.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rayzer.bundled import CKPT_HELP

# Defaults live here (not in rayzer.infer.demo, which imports torch) so building the parser stays cheap.
DEFAULT_OUT = Path("outputs") / "demo"
DEFAULT_FRAMES = 60
DEFAULT_FPS = 15.0

DESCRIPTION = (
    "Render held-out built-in synthetic scenes (never seen in training), predict their cameras "
    "with the bundled RayZer (or --ckpt), render the target views and a novel-view video along "
    "a path through the predicted cameras, and compare with the ground truth and the "
    "copy-nearest / mean-of-inputs baselines. Writes summary.json, cameras.json (+ "
    "cameras_gt.json), targets/ and renders/, novel_views.mp4 / .gif, contact_sheet.png and "
    "cameras.png; with a model that outputs depth and 3D Gaussians (--ckpt explicit: the "
    "bundled one; or an E-RayZer / NAS3R run) also depth/, depth_grid.png, points.ply and "
    "gaussians.ply, and the depth in the contact sheet. RayZer has neither, so beside it the "
    "bundled explicit-3D model runs on the same scene(s) into explicit/ (--no-explicit: not). "
    "With --scenes N > 1 one folder per scene under scenes/. Outputs are written to a "
    "temporary folder and moved to --out only when complete."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})"
    )
    p.add_argument("--ckpt", help=CKPT_HELP)
    p.add_argument(
        "--family",
        choices=["orbit", "walk"],
        help="synthetic scene family (default: the one the model was trained on)",
    )
    p.add_argument("--scenes", type=int, default=1, help="number of held-out scenes (default 1)")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="first held-out scene: clip seed 1000000 + SEED (default 0, the first scene of "
        "`rayzer bench quality`)",
    )
    p.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help="novel-view video frames")
    p.add_argument("--fps", type=float, default=DEFAULT_FPS, help="novel-view video frame rate")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument(
        "--no-explicit",
        action="store_true",
        help="do not run the bundled explicit-3D model beside a model without depth and "
        "Gaussians (no explicit/ folder; saves a few seconds)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines (errors only)")


def main(args: argparse.Namespace) -> None:
    from rayzer.infer.demo import run_demo
    from rayzer.infer.pipeline import InferenceError

    def say(msg: str) -> None:
        print(f"rayzer demo: {msg}", file=sys.stderr, flush=True)

    try:
        result = run_demo(
            args.out,
            ckpt=args.ckpt,
            family=args.family,
            scenes=args.scenes,
            seed=args.seed,
            frames=args.frames,
            fps=args.fps,
            device=args.device,
            overwrite=args.overwrite,
            explicit=not args.no_explicit,
            log=None if args.quiet else say,
        )
    except InferenceError as err:  # a failed stage: a clean error, not a traceback
        raise ValueError(str(err)) from err
    s = result.summary
    psnr, pose = s["psnr"], s["pose"]
    focal = pose.get("focal", {})
    print(
        f"wrote {result.out}: {len(s['scenes'])} held-out {s['data']['family']} scene(s); PSNR "
        f"{s['model'].get('title', 'RayZer')} {_num(psnr['rayzer'])} dB vs copy-nearest {_num(psnr['copy'])} dB, mean of "
        f"inputs {_num(psnr['mean_inputs'])} dB; median rotation error "
        f"{_num(pose['rot_err_deg_median'], 1)} deg (identity "
        f"{_num(pose['identity_rot_err_deg_median'], 1)} deg); focal "
        f"{_num(focal.get('predicted_px'), 1)} px (true {_num(focal.get('true_px'), 1)} px); "
        f"{s['total_s']:.1f} s"
    )
    for line in made_by_lines(s):
        print(line)


def made_by_lines(s: dict) -> list[str]:
    """Which model made which outputs, from summary.json (one line per model)."""
    lines = [f"  {_model_label(s['model'])}: {', '.join(_top_level(s['outputs'], s))}"]
    extra = s.get("explicit", {})
    if "folder" in extra:
        pose = extra["pose"]
        lines.append(
            f"  {_model_label(extra['model'])}: {extra['folder']}/ (depth maps: depth/, "
            f"depth_grid.png; Gaussians: gaussians.ply, novel_views.mp4; points.ply; its own "
            f"cameras and renders) — PSNR {_num(extra['psnr'])} dB, median rotation error "
            f"{_num(pose['rot_err_deg_median'], 1)} deg (identity "
            f"{_num(pose['identity_rot_err_deg_median'], 1)} deg)"
        )
    elif not (s["model"]["outputs_depth"] or s["model"]["outputs_gaussians"]):
        lines.append(f"note: {s['notes']['depth_gaussians']}")
    return lines


def _model_label(info: dict) -> str:
    name = info.get("bundled_name")
    return f"{info.get('title', info.get('name'))} ({'bundled ' + name if name else 'checkpoint'})"


def _top_level(outputs: list[str], s: dict) -> list[str]:
    """The main model's outputs (those outside the explicit model's folder), each scene file
    named once: ``scenes/<scene>/images/`` for every scene's ``images/`` (``--scenes N``)."""
    folder = s.get("explicit", {}).get("folder")
    names = []
    for f in outputs:
        if folder and f.startswith(f"{folder}/"):
            continue
        if f.startswith("scenes/"):  # scenes/<name>/<file>
            f = "scenes/<scene>/" + f.split("/", 2)[2]
        names.append(f)
    return list(dict.fromkeys(names))  # in order, without repeats


def _num(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"
