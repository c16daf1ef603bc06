"""Arguments and handler of ``rayzer demo`` (registered by :mod:`rayzer.cli`; the work is done by
:mod:`rayzer.infer.demo`).

Kept free of heavy imports at module level: the CLI parser is built on every ``rayzer`` call.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    "cameras.png; with a model that outputs depth and 3D Gaussians (E-RayZer, NAS3R: --ckpt of "
    "their run) also depth/, points.ply and gaussians.ply, and the depth in the contact sheet "
    "(the bundled RayZer has neither); with --scenes N > 1 one folder per scene under scenes/. "
    "Outputs are written to a temporary folder and moved to --out only when complete."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})"
    )
    p.add_argument(
        "--ckpt",
        type=Path,
        help="checkpoint dir, its model.safetensors, or a training run dir (default: the "
        "bundled model)",
    )
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
    if not (s["model"]["outputs_depth"] or s["model"]["outputs_gaussians"]):
        print(f"note: {s['notes']['depth_gaussians']}")


def _num(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"
