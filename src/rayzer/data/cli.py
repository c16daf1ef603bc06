"""``rayzer data …``: the dataset subcommands, each with its arguments next to its entry point.

The work is done by the modules each entry point names, imported only when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``data`` subcommands on the ``rayzer data`` parser."""
    sub = parser.add_subparsers(dest="data_command", required=True)
    for add in (_add_synth, _add_convert, _add_check, _add_overlap, _add_make_index):
        add(sub)


def _add_synth(sub: argparse._SubParsersAction) -> None:
    """Register ``rayzer data synth``."""
    synth = sub.add_parser("synth", help="render a built-in synthetic scene to a scene folder")
    synth.add_argument("--family", choices=["orbit", "walk"], default="orbit")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--frames", type=int, default=24)
    synth.add_argument("--size", type=int, default=64, help="image height = width in pixels")
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    synth.set_defaults(func=synth_main)


def synth_main(args: argparse.Namespace) -> None:
    """``rayzer data synth``: render a built-in synthetic scene."""
    from rayzer.data.synthetic import synth_command

    out = synth_command(
        family=args.family,
        seed=args.seed,
        frames=args.frames,
        size=args.size,
        out=args.out,
        overwrite=args.overwrite,
    )
    print(f"wrote {out}")


def _add_convert(sub: argparse._SubParsersAction) -> None:
    """Register ``rayzer data convert``."""
    conv = sub.add_parser(
        "convert",
        help="convert COLMAP / nerfstudio / LLFF / RealEstate10K / images / video to scene folders",
        description="Convert a dataset to scene folders (images/ + cameras.json, OpenCV c2w, pixel "
        "intrinsics). The format is auto-detected unless --format is given; the source's world "
        "frame, scale and file names are kept. Output is written atomically.",
    )
    conv.add_argument("--input", type=Path, required=True, help="source file or folder")
    conv.add_argument("--output", type=Path, required=True, help="scene (or dataset) folder")
    conv.add_argument(
        "--format",
        help="scene | nerfstudio (dl3dv, instant-ngp, nerf-synthetic) | llff | colmap | re10k | "
        "re10k-json (lvsm, rayzer-json) | video | images (default: auto-detect)",
    )
    conv.add_argument(
        "--images", type=Path, help="image folder (colmap/nerfstudio/llff), e.g. images_4"
    )
    conv.add_argument(
        "--split", help="transforms_<split>.json (nerfstudio) or split folder (re10k)"
    )
    conv.add_argument("--scenes", help="comma-separated scene keys to convert (re10k, re10k-json)")
    conv.add_argument("--limit", type=int, help="convert at most N scenes (re10k, re10k-json)")
    conv.add_argument("--stride", type=int, help="video: keep every k-th frame")
    conv.add_argument("--num-frames", type=int, help="video: keep N evenly spaced frames")
    conv.add_argument("--max-frames", type=int, help="video: keep at most N frames")
    conv.add_argument("--max-side", type=int, help="downscale so the longer side is <= N pixels")
    conv.add_argument("--overwrite", action="store_true", help="replace an existing output")
    conv.set_defaults(func=convert_main)


def convert_main(args: argparse.Namespace) -> None:
    """``rayzer data convert``: any supported source to scene folders."""
    from rayzer.data.convert import convert

    scenes = [s for s in args.scenes.split(",") if s] if args.scenes else None
    try:
        result = convert(
            args.input,
            args.output,
            args.format,
            images=args.images,
            split=args.split,
            scenes=scenes,
            limit=args.limit,
            stride=args.stride,
            num_frames=args.num_frames,
            max_frames=args.max_frames,
            max_side=args.max_side,
            overwrite=args.overwrite,
            log=print,
        )
    except FileExistsError as err:
        raise ValueError(str(err)) from None
    print(f"converted {len(result.scenes)} scene(s) from {result.format} to {result.output}")


def _add_check(sub: argparse._SubParsersAction) -> None:
    """Register ``rayzer data check``."""
    check = sub.add_parser(
        "check", help="validate scene folders and print a summary (exit code != 0 on errors)"
    )
    check.add_argument("dir", type=Path, help="a scene folder or a folder of scene folders")
    check.add_argument(
        "--no-decode", action="store_true", help="read image headers only (faster, less thorough)"
    )
    check.set_defaults(func=check_main)


def check_main(args: argparse.Namespace) -> None:
    """``rayzer data check``: validate scene folders."""
    from rayzer.data.check import check_dataset, format_report

    reports = check_dataset(args.dir, decode=not args.no_decode)
    print(format_report(reports))
    bad = [r for r in reports if not r.ok]
    if bad:
        errors = sum(len(r.errors) for r in bad)
        raise ValueError(f"{args.dir}: {errors} error(s) in {len(bad)} scene(s)")


def _add_overlap(sub: argparse._SubParsersAction) -> None:
    """Register ``rayzer data overlap``."""
    overlap = sub.add_parser(
        "overlap",
        help="compute and cache each scene's overlap-vs-frame-gap statistics (overlap.json)",
        description="Compute each scene folder's overlap-vs-frame-gap curve (E-RayZer's "
        "visual-overlap curriculum, data.view_sampler=overlap) and cache it as overlap.json in "
        "the scene folder. auto: geometric where the scene has cameras.json AND depth/ (which "
        "surfaces a frame sees, and what hides them, needs depth), label-free image matching "
        "otherwise. Scenes whose cache is fresh are skipped. Progress on stderr, a table (or "
        "--json) on stdout; exit code != 0 if any scene failed.",
    )
    overlap.add_argument("path", type=Path, help="a scene folder or a folder of scene folders")
    overlap.add_argument(
        "--method", choices=["auto", "geometric", "image"], default="auto", help="default: auto"
    )
    overlap.add_argument("--force", action="store_true", help="recompute fresh caches too")
    overlap.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    overlap.add_argument("--plot", type=Path, help="write a figure of the curves (PNG)")
    overlap.add_argument(
        "--jobs", type=int, default=1, help="scenes computed in parallel processes (default 1)"
    )
    overlap.set_defaults(func=overlap_main)


def overlap_main(args: argparse.Namespace) -> None:
    """``rayzer data overlap``: cache overlap-vs-frame-gap statistics."""
    from rayzer.data.overlap_cache import overlap_command

    results = overlap_command(args.path, args.method, args.force, args.json, args.plot, args.jobs)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        listing = "".join(f"\n  {r.path}: {r.error}" for r in failed)
        raise ValueError(f"overlap failed for {len(failed)} of {len(results)} scene(s):{listing}")


def _add_make_index(sub: argparse._SubParsersAction) -> None:
    """Register ``rayzer data make-index``."""
    index = sub.add_parser(
        "make-index",
        help="write an evaluation index {scene: {context, target}} (pixelSplat / LVSM / RayZer)",
    )
    index.add_argument("--data", type=Path, required=True, help="scene folder(s) or any source")
    index.add_argument("--out", type=Path, required=True, help="index JSON to write")
    index.add_argument("--protocol", choices=["even", "random"], default="even")
    index.add_argument(
        "--style",
        choices=["pixelsplat", "rayzer-dl3dv"],
        default="pixelsplat",
        help="default view counts: pixelsplat 2+3, rayzer-dl3dv 16+8",
    )
    index.add_argument("--context", type=int, help="context (input) views per scene")
    index.add_argument("--target", type=int, help="target views per scene")
    index.add_argument("--span", type=int, help="window length in frames (default: whole scene)")
    index.add_argument("--seed", type=int, default=0, help="seed of the random protocol")
    index.set_defaults(func=make_index_main)


def make_index_main(args: argparse.Namespace) -> None:
    """``rayzer data make-index``: write an evaluation index."""
    from rayzer.data.protocols import make_index, summarize_index

    index = make_index(
        args.data,
        args.out,
        args.protocol,
        args.context,
        args.target,
        style=args.style,
        seed=args.seed,
        span=args.span,
    )
    print(f"wrote {args.out}: {summarize_index(index)}")
