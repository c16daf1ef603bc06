"""Command-line entry point: ``rayzer <command> …``. It only parses and dispatches."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


class _ListModels(argparse.Action):
    """``rayzer train --list``: the registered models and the named presets, then exit."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help=kwargs.get("help"))  # type: ignore[arg-type]

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from rayzer.config import list_methods, list_presets
        from rayzer.models import available_models, model_class

        lines = ["models (model.name=…):"]
        names = available_models()
        width = max(map(len, names), default=0)
        for name in names:
            caps = model_class(name).capabilities
            flags = [k for k, v in vars(caps).items() if v]
            lines.append(f"  {name:{width}s}  {', '.join(flags) or '(no capability flags)'}")
        lines.append("presets (--config NAME):")
        lines += [f"  {name}" for name in list_presets()]
        methods = list_methods()
        width = max(map(len, methods), default=0)
        lines += [f"  {name:{width}s}  = {what}" for name, what in methods.items()]
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


_TRAIN_DESCRIPTION = (
    "Train a model from a config preset or method (`--list` shows the registered "
    "models and the presets; `model.name=…` picks the model). Under `torchrun "
    "--nproc_per_node N` it runs DDP automatically. SIGTERM/SIGINT checkpoint at the next "
    "step and exit 0."
)


def _add_train_arguments(train: argparse.ArgumentParser) -> None:
    """``rayzer train``'s arguments (kept beside :func:`_train` here: ``rayzer.train`` is the
    library's training package and holds no CLI code)."""
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


def _register(
    sub: argparse._SubParsersAction,
    name: str,
    help: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    func: Callable[[argparse.Namespace], None] | None = None,
    **kwargs: Any,
) -> None:
    """Add subcommand ``name``: its module's ``add_arguments`` fills the parser; ``func`` runs it
    (None: a group whose own subcommands set ``func``)."""
    parser = sub.add_parser(name, help=help, **kwargs)
    add_arguments(parser)
    if func is not None:
        parser.set_defaults(func=func)


def build_parser() -> argparse.ArgumentParser:
    """The ``rayzer`` parser. It only assembles the subcommands; each command's module defines
    its arguments (``add_arguments``) and its entry point (imported when the parser is built)."""
    parser = argparse.ArgumentParser(
        prog="rayzer", description="Self-supervised multi-view 3D vision (RayZer, LVSM)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    from rayzer.data import cli as data_cli

    _register(sub, "data", data_cli.HELP, data_cli.add_arguments)
    _register(
        sub,
        "train",
        "train a registered model (RayZer, LVSM, …; multi-process under torchrun)",
        _add_train_arguments,
        _train,
        description=_TRAIN_DESCRIPTION,
    )
    _add_infer_commands(sub)
    from rayzer.eval import cli as eval_cli

    _register(
        sub,
        "eval",
        "evaluate a checkpoint: novel views, poses, probing, interpolation, COLMAP",
        eval_cli.add_arguments,
        eval_cli.main,
        description=eval_cli.DESCRIPTION,
    )
    _register(sub, "bench", "benchmarks (JSON + Markdown output)", _add_bench_commands)
    return parser


def _add_infer_commands(sub: argparse._SubParsersAction) -> None:
    """``rayzer infer``, ``rayzer serve`` and ``rayzer demo``."""
    from rayzer.infer import cli as infer_cli
    from rayzer.infer import demo_cli

    _register(
        sub,
        "infer",
        "cameras, renders, novel views and COLMAP / nerfstudio exports for your photos",
        infer_cli.add_arguments,
        infer_cli.main,
        description=infer_cli.DESCRIPTION,
    )
    _register(
        sub,
        "serve",
        "local web demo (Gradio)",
        infer_cli.add_serve_arguments,
        infer_cli.serve_main,
        description=infer_cli.SERVE_DESCRIPTION,
    )
    _register(
        sub,
        "demo",
        "held-out synthetic scenes: predicted cameras, renders, metrics, novel-view video",
        demo_cli.add_arguments,
        demo_cli.main,
        description=demo_cli.DESCRIPTION,
    )


def _add_bench_commands(parser: argparse.ArgumentParser) -> None:
    """The ``rayzer bench`` subcommands, each registered by its benchmark module."""
    from rayzer.bench import cuda as cuda_bench
    from rayzer.bench import data as data_bench
    from rayzer.bench import quality as quality_bench
    from rayzer.bench import render as render_bench
    from rayzer.bench import speed
    from rayzer.bench import synth as synth_bench

    bench = parser.add_subparsers(dest="bench_command", required=True)
    raw = {"formatter_class": argparse.RawDescriptionHelpFormatter}
    _register(
        bench,
        "speed",
        "training-step time, FLOP utilisation, memory",
        speed.add_arguments,
        speed.command,
    )
    _register(
        bench,
        "synth",
        "synthetic clip generation time on one core",
        synth_bench.add_arguments,
        synth_bench.main,
    )
    _register(
        bench,
        "render",
        "Gaussian rasterizer: forward / backward time, memory, pairs/s (64-256 px)",
        render_bench.add_arguments,
        render_bench.main,
        description=render_bench.__doc__,
        **raw,
    )
    _register(
        bench,
        "cuda",
        "GPU check (< 8 min): paper-scale bf16 steps, torch vs gsplat, 1-process NCCL DDP",
        cuda_bench.add_arguments,
        cuda_bench.main,
        description=cuda_bench.__doc__,
        **raw,
    )
    _register(
        bench,
        "data",
        "training-data throughput: decoded samples/s with 0 and 2 DataLoader workers",
        data_bench.add_arguments,
        data_bench.main,
        description=data_bench.DESCRIPTION,
    )
    _register(
        bench,
        "quality",
        "train models on one budget each (or take existing runs), evaluate them side by side "
        "on held-out scenes",
        quality_bench.add_arguments,
        quality_bench.main,
        description=quality_bench.DESCRIPTION,
    )


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; the exit code (2: a clear error, 130: interrupted)."""
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
