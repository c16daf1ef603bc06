"""Arguments and handler of ``rayzer train`` (registered by :mod:`rayzer.cli`; the work is done
by :func:`rayzer.train.run_training`, imported only when the command runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = (
    "Train a model from a config preset or method (`--list` shows the registered "
    "models and the presets; `model.name=…` picks the model). Under `torchrun "
    "--nproc_per_node N` it runs DDP automatically. SIGTERM/SIGINT checkpoint at the next "
    "step and exit 0."
)


class ListModels(argparse.Action):
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


def add_arguments(train: argparse.ArgumentParser) -> None:
    """Register ``rayzer train``'s arguments."""
    train.add_argument(
        "--config",
        help="preset or method name (e.g. tiny-cpu, lvsm-tiny-cpu) or a YAML file",
    )
    train.add_argument("--list", action=ListModels, help="list models and presets, then exit")
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
    train.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model (= train.compile=true): model steps 1.10-1.16x faster on "
        "the CPU (whole training steps ~1.03x) after a first step that compiles (0.5-2 min with a "
        "warm TORCHINDUCTOR_CACHE_DIR, up to ~25 min cold)",
    )
    train.add_argument(
        "--compile-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an inductor option of --compile (implies it; = train.compile_options.KEY=VALUE), "
        "repeatable. cpp_wrapper=true: paper-decoder steps 1.02-1.08x faster than the plain "
        "compile on the CPU (9 of 9 A/B rounds, docs/benchmarks/speed run 6), same warm compile "
        "time",
    )


def main(args: argparse.Namespace) -> None:
    """``rayzer train``: run the training; say how to continue when it stopped early."""
    from rayzer.train import run_training

    overrides, resume = list(args.overrides), args.resume
    if args.compile or args.compile_option:
        overrides.append("train.compile=true")
    for option in args.compile_option:
        key, sep, _ = option.partition("=")
        if not key or not sep:  # a ValueError: rayzer's clear error, exit 2
            raise ValueError(f"--compile-option {option!r}: expected KEY=VALUE")
        overrides.append(f"train.compile_options.{option}")
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
