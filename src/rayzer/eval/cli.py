"""Arguments and handler of ``rayzer eval`` (registered by :mod:`rayzer.cli`; the work is
done by :func:`rayzer.eval.run.run_eval`, imported only when the command runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rayzer.bundled import CKPT_HELP
from rayzer.utils.logs import command_logging, set_threads

DESCRIPTION = (
    "Evaluate a checkpoint (default: the bundled model) on scene folders or any dataset `rayzer "
    "data convert` reads: novel-view PSNR / SSIM / LPIPS (VGG, Alex) per scene and mean, with "
    "target cameras estimated with and without the target images; pose metrics on posed "
    "scenes (pairwise errors, AUC, RPA, aligned R@ / t@, focal); optional pose probing, "
    "interpolation and a COLMAP reference. Writes metrics.json, metrics.md and per-scene grids "
    "to --out (atomically: a failed run leaves nothing there)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", help=CKPT_HELP)
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help="scene folder, folder of scene folders, or any `rayzer data convert` source",
    )
    p.add_argument("--format", help="source format of --data (default: auto-detect)")
    p.add_argument(
        "--protocol",
        default="even",
        help="even | random | erayzer (E-RayZer: 5 + 5 of 10 frames over 97, or --span) | nas3r "
        "(NAS3R: 2 context + 3 targets, one target per pass, overlap tags) | INDEX.json "
        "(pixelSplat / LVSM / RayZer index file)",
    )
    p.add_argument(
        "--context", type=int, help="context views (default: the model's training count)"
    )
    p.add_argument("--target", type=int, help="target views (default: the model's training count)")
    p.add_argument("--span", type=int, help="window of frames to draw views from (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random protocol and probe")
    p.add_argument(
        "--size",
        type=int,
        help="square input side S (default: the training size, H x W for a non-square run)",
    )
    p.add_argument("--out", type=Path, help="output folder (default: outputs/eval/<data name>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument(
        "--lpips", default="vgg,alex", help="LPIPS nets: vgg,alex (default), vgg, alex or none"
    )
    p.add_argument("--probe", action="store_true", help="pose probing (RayZer Table 6)")
    p.add_argument(
        "--probe-train",
        type=Path,
        help="scenes to train the probe on (default: every other evaluated posed scene)",
    )
    p.add_argument("--probe-samples", type=int, default=4, help="probe samples per scene")
    p.add_argument("--probe-steps", type=int, default=1000, help="probe optimisation steps")
    p.add_argument("--interp", action="store_true", help="pose interpolation (RayZer Table 5)")
    p.add_argument(
        "--interp-frames", type=int, default=8, help="in-between frames per scene (--interp)"
    )
    p.add_argument(
        "--colmap",
        action="store_true",
        help="COLMAP reference (needs pycolmap); for model vs model + refinement vs pycolmap on "
        "windows of posed real scenes see `rayzer bench real-cameras`",
    )
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--max-scenes", type=int, help="evaluate only the first N scenes")
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: its own)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> None:
    from rayzer.eval.run import log, run_eval

    restore_logging = command_logging(log, args.quiet)
    try:
        set_threads(args.threads)
        result = run_eval(
            args.data,
            ckpt=args.ckpt,
            out=args.out,
            protocol=args.protocol,
            num_context=args.context,
            num_target=args.target,
            span=args.span,
            seed=args.seed,
            size=args.size,
            lpips=args.lpips,
            probe=args.probe,
            probe_train=args.probe_train,
            probe_samples=args.probe_samples,
            probe_steps=args.probe_steps,
            interp=args.interp,
            interp_frames=args.interp_frames,
            colmap=args.colmap,
            device=args.device,
            max_scenes=args.max_scenes,
            format=args.format,
            overwrite=args.overwrite,
            progress=None if not args.quiet else False,
        )
    except (FileNotFoundError, ValueError):
        raise
    except (FileExistsError, OSError) as err:  # reported as a clean error by the CLI
        raise ValueError(str(err)) from err
    finally:
        restore_logging()
    s = result.metrics["summary"]
    first = next(iter(s))
    print(
        f"wrote {result.out}: {s[first]['num_scenes']} scene(s), {first} PSNR "
        f"{_fmt(s[first]['psnr'])} dB"
        + "".join(f", {name} {_fmt(v['psnr'])} dB" for name, v in s.items() if name != first)
    )


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"
