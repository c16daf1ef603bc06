"""Command-line entry point: ``rayzer <command> …``. It only parses and dispatches."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _data_synth(args: argparse.Namespace) -> None:
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


def _data_convert(args: argparse.Namespace) -> None:
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


def _data_check(args: argparse.Namespace) -> None:
    from rayzer.data.check import check_dataset, format_report

    reports = check_dataset(args.dir, decode=not args.no_decode)
    print(format_report(reports))
    bad = [r for r in reports if not r.ok]
    if bad:
        errors = sum(len(r.errors) for r in bad)
        raise ValueError(f"{args.dir}: {errors} error(s) in {len(bad)} scene(s)")


def _data_overlap(args: argparse.Namespace) -> None:
    from rayzer.data.overlap_cache import overlap_command

    results = overlap_command(args.path, args.method, args.force, args.json, args.plot, args.jobs)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        listing = "".join(f"\n  {r.path}: {r.error}" for r in failed)
        raise ValueError(f"overlap failed for {len(failed)} of {len(results)} scene(s):{listing}")


def _data_make_index(args: argparse.Namespace) -> None:
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


def _bench_speed(args: argparse.Namespace) -> None:
    from rayzer.bench import speed

    result = speed.run(args)
    from rayzer.utils.report import write_report

    write_report(args.out, "speed", result, speed.to_markdown(result))


class _ListModels(argparse.Action):
    """``rayzer train --list``: the registered models and the named presets, then exit."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help=kwargs.get("help"))  # type: ignore[arg-type]

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from rayzer.config import list_methods, list_presets
        from rayzer.models import available_models, model_class

        lines = ["models (model.name=…):"]
        for name in available_models():
            caps = model_class(name).capabilities
            flags = [k for k, v in vars(caps).items() if v]
            lines.append(f"  {name:12s} {', '.join(flags)}")
        lines.append("presets (--config NAME):")
        lines += [f"  {name}" for name in list_presets()]
        lines += [f"  {name:24s} = {what}" for name, what in list_methods().items()]
        parser.exit(message="\n".join(lines) + "\n")


def _train(args: argparse.Namespace) -> None:
    from rayzer.train import run_training

    overrides, resume = list(args.overrides), args.resume
    # `--resume key=value`: argparse took an override as the optional PATH.
    if resume is not None and "=" in resume and not Path(resume).exists():
        overrides.append(resume)
        resume = "auto"
    summary = run_training(args.config, overrides, resume=resume, out=args.out)
    if summary.stopped_by is not None and summary.rank == 0:
        print(
            f"stopped ({summary.stopped_by}) at step {summary.step}; checkpoint "
            f"{summary.checkpoint}; continue with --resume auto --out {summary.out_dir}"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rayzer", description="Self-supervised multi-view 3D vision (RayZer, LVSM)."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser(
        "data", help="datasets: synthesise, convert, check, overlap statistics, evaluation indices"
    ).add_subparsers(dest="data_command", required=True)
    synth = data.add_parser("synth", help="render a built-in synthetic scene to a scene folder")
    synth.add_argument("--family", choices=["orbit", "walk"], default="orbit")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--frames", type=int, default=24)
    synth.add_argument("--size", type=int, default=64, help="image height = width in pixels")
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    synth.set_defaults(func=_data_synth)

    conv = data.add_parser(
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
    conv.set_defaults(func=_data_convert)

    check = data.add_parser(
        "check", help="validate scene folders and print a summary (exit code != 0 on errors)"
    )
    check.add_argument("dir", type=Path, help="a scene folder or a folder of scene folders")
    check.add_argument(
        "--no-decode", action="store_true", help="read image headers only (faster, less thorough)"
    )
    check.set_defaults(func=_data_check)

    overlap = data.add_parser(
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
    overlap.set_defaults(func=_data_overlap)

    index = data.add_parser(
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
    index.set_defaults(func=_data_make_index)

    train = sub.add_parser(
        "train",
        help="train a registered model (RayZer, LVSM, …; multi-process under torchrun)",
        description="Train a model from a config preset or method (`--list` shows the registered "
        "models and the presets; `model.name=…` picks the model). Under `torchrun "
        "--nproc_per_node N` it runs DDP automatically. SIGTERM/SIGINT checkpoint at the next "
        "step and exit 0.",
    )
    train.add_argument(
        "--config",
        help="preset or method name (e.g. tiny-cpu, lvsm-tiny-cpu) or a YAML file",
    )
    train.add_argument("--list", action=_ListModels, help="list models and presets, then exit")
    train.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.steps=100")
    train.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        metavar="PATH|auto",
        help="continue a run: 'auto' (default) = latest checkpoint in the out dir, or a "
        "checkpoint / run directory",
    )
    train.add_argument("--out", type=Path, help="run directory (default: train.out_dir)")
    train.set_defaults(func=_train)

    from rayzer.infer import cli as infer_cli

    infer_parser = sub.add_parser(
        "infer",
        help="cameras, renders, novel views and COLMAP / nerfstudio exports for your photos",
        description=infer_cli.DESCRIPTION,
    )
    infer_cli.add_arguments(infer_parser)
    infer_parser.set_defaults(func=infer_cli.main)
    serve_parser = sub.add_parser(
        "serve", help="local web demo (Gradio)", description=infer_cli.SERVE_DESCRIPTION
    )
    infer_cli.add_serve_arguments(serve_parser)
    serve_parser.set_defaults(func=infer_cli.serve_main)

    from rayzer.infer import demo_cli

    demo_parser = sub.add_parser(
        "demo",
        help="held-out synthetic scenes: predicted cameras, renders, metrics, novel-view video",
        description=demo_cli.DESCRIPTION,
    )
    demo_cli.add_arguments(demo_parser)
    demo_parser.set_defaults(func=demo_cli.main)

    from rayzer.eval import cli as eval_cli

    eval_parser = sub.add_parser(
        "eval",
        help="evaluate a checkpoint: novel views, poses, probing, interpolation, COLMAP",
        description=eval_cli.DESCRIPTION,
    )
    eval_cli.add_arguments(eval_parser)
    eval_parser.set_defaults(func=eval_cli.main)

    bench = sub.add_parser("bench", help="benchmarks (JSON + Markdown output)").add_subparsers(
        dest="bench_command", required=True
    )
    from rayzer.bench import speed

    speed_parser = bench.add_parser("speed", help="training-step time, FLOP utilisation, memory")
    speed.add_arguments(speed_parser)
    speed_parser.set_defaults(func=_bench_speed)

    from rayzer.bench import synth as synth_bench

    synth_parser = bench.add_parser("synth", help="synthetic clip generation time on one core")
    synth_bench.add_arguments(synth_parser)
    synth_parser.set_defaults(func=synth_bench.main)

    from rayzer.bench import render as render_bench

    render_parser = bench.add_parser(
        "render",
        help="Gaussian rasterizer: forward / backward time, memory, pairs/s (64-256 px)",
        description=render_bench.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    render_bench.add_arguments(render_parser)
    render_parser.set_defaults(func=render_bench.main)

    from rayzer.bench import cuda as cuda_bench

    cuda_parser = bench.add_parser(
        "cuda",
        help="GPU check (< 8 min): paper-scale bf16 steps, torch vs gsplat, 1-process NCCL DDP",
        description=cuda_bench.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cuda_bench.add_arguments(cuda_parser)
    cuda_parser.set_defaults(func=cuda_bench.main)

    from rayzer.bench import data as data_bench

    data_parser = bench.add_parser(
        "data",
        help="training-data throughput: decoded samples/s with 0 and 2 DataLoader workers",
        description="Time the training stream (sampler, decoding, resize + crop, collation) on "
        "each --source (synthetic, scene folders, a manifest or RealEstate10K chunks) with each "
        "number of --workers; prints a Markdown table and JSON (data.json / data.md in --out).",
    )
    data_bench.add_arguments(data_parser)
    data_parser.set_defaults(func=data_bench.main)

    from rayzer.bench import quality as quality_bench

    quality_parser = bench.add_parser(
        "quality",
        help="train models on one budget each (or take existing runs), evaluate them side by "
        "side on held-out scenes",
        description="Train a list of models (--models, default RayZer and the LVSM oracle) for "
        "the same wall-clock budget each on the built-in synthetic scenes, or evaluate existing "
        "runs (--runs LABEL=RUN ..., e.g. rayzer=bundled erayzer=runs/e nas3r=runs/n); evaluate "
        "all of them with copy-nearest and mean-of-inputs baselines on one fixed held-out test "
        "set (even and random targets): images, poses (RPA, AUC), depth, focal, step time; "
        "write quality.json, quality.md and quality.png.",
    )
    quality_bench.add_arguments(quality_parser)
    quality_parser.set_defaults(func=quality_bench.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (OSError, ValueError) as err:  # missing / existing files, bad input: no traceback
        print(f"rayzer: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rayzer: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
