"""Command-line entry point: ``rayzer <command> …``. It only parses and dispatches."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any


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


#: The top-level commands and their one-line help, in ``rayzer --help`` order.
COMMANDS = {
    "data": "datasets: synthesise, convert, check, overlap statistics, evaluation indices",
    "train": "train a registered model (RayZer, LVSM, …; multi-process under torchrun)",
    "infer": "cameras, renders, novel views and COLMAP / nerfstudio exports for your photos",
    "serve": "local web demo (Gradio)",
    "demo": "held-out synthetic scenes: predicted cameras, renders, metrics, novel-view video",
    "eval": "evaluate a checkpoint: novel views, poses, probing, interpolation, COLMAP",
    "bench": "benchmarks (JSON + Markdown output)",
}


def build_parser(only: str | None = None, *, overview: bool = False) -> argparse.ArgumentParser:
    """The ``rayzer`` parser. It only assembles the subcommands; each command's module defines
    its arguments (``add_arguments``) and its entry point (imported when the parser is built).

    ``only``: build just that command (a key of :data:`COMMANDS`), so running it does not
    import every other command's modules (the benchmarks alone were ~0.1 s of each ``rayzer
    infer`` start); None: all of them. ``overview``: the commands' names and help without their
    arguments, importing none of them (``rayzer --help``, ``rayzer`` alone, an unknown command:
    2 s of ``import torch`` otherwise).
    """
    parser = argparse.ArgumentParser(
        prog="rayzer",
        description="Self-supervised multi-view 3D vision (RayZer, LVSM, E-RayZer, NAS3R).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    if overview:
        for name, help in COMMANDS.items():
            sub.add_parser(name, help=help)
        return parser
    if only in (None, "data"):
        from rayzer.data import cli as data_cli

        _register(sub, "data", COMMANDS["data"], data_cli.add_arguments)
    if only in (None, "train"):
        from rayzer.train import cli as train_cli

        _register(
            sub,
            "train",
            COMMANDS["train"],
            train_cli.add_arguments,
            train_cli.main,
            description=train_cli.DESCRIPTION,
        )
    _add_infer_commands(sub, only)
    if only in (None, "eval"):
        from rayzer.eval import cli as eval_cli

        _register(
            sub,
            "eval",
            COMMANDS["eval"],
            eval_cli.add_arguments,
            eval_cli.main,
            description=eval_cli.DESCRIPTION,
        )
    if only in (None, "bench"):
        _register(sub, "bench", COMMANDS["bench"], _add_bench_commands)
    return parser


def _add_infer_commands(sub: argparse._SubParsersAction, only: str | None = None) -> None:
    """``rayzer infer``, ``rayzer serve`` and ``rayzer demo`` (``only``: see build_parser)."""
    from rayzer.infer import cli as infer_cli
    from rayzer.infer import demo_cli

    if only in (None, "infer"):
        _register(
            sub,
            "infer",
            COMMANDS["infer"],
            infer_cli.add_arguments,
            infer_cli.main,
            description=infer_cli.DESCRIPTION,
        )
    if only in (None, "serve"):
        _register(
            sub,
            "serve",
            COMMANDS["serve"],
            infer_cli.add_serve_arguments,
            infer_cli.serve_main,
            description=infer_cli.SERVE_DESCRIPTION,
        )
    if only in (None, "demo"):
        _register(
            sub,
            "demo",
            COMMANDS["demo"],
            demo_cli.add_arguments,
            demo_cli.main,
            description=demo_cli.DESCRIPTION,
        )


def _add_bench_commands(parser: argparse.ArgumentParser) -> None:
    """The ``rayzer bench`` subcommands, each registered by its benchmark module."""
    from rayzer.bench import cuda as cuda_bench
    from rayzer.bench import data as data_bench
    from rayzer.bench import infer as infer_bench
    from rayzer.bench import paper_forward as paper_forward_bench
    from rayzer.bench import quality as quality_bench
    from rayzer.bench import real_cameras as real_cameras_bench
    from rayzer.bench import reliability as reliability_bench
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
        "infer",
        "rayzer infer end to end: wall / CPU time and peak memory per model (and source tree)",
        infer_bench.add_arguments,
        infer_bench.main,
        description=infer_bench.__doc__,
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
        "paper-forward",
        "paper-scale presets on the CPU: build, one forward pass, output shapes and finiteness",
        paper_forward_bench.add_arguments,
        paper_forward_bench.main,
        description=paper_forward_bench.__doc__,
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
    _register(
        bench,
        "real-cameras",
        "camera accuracy on posed real scenes: model, model + refinement, pycolmap",
        real_cameras_bench.add_arguments,
        real_cameras_bench.main,
        description=real_cameras_bench.DESCRIPTION,
    )
    _register(
        bench,
        "reliability",
        "faults as figures: SIGKILL / signals / full disk / lock, corrupt checkpoints, bad "
        "input, serve, DDP",
        reliability_bench.add_arguments,
        reliability_bench.main,
        description=reliability_bench.DESCRIPTION,
        **raw,
    )


#: Commands whose OpenMP threads sleep instead of spinning while they wait (OMP_WAIT_POLICY=
#: PASSIVE, unless the user set a policy). A spinning thread stalls the others when the cores are
#: shared with other work: with 2 threads on a loaded 2-core machine E-RayZer's default video took
#: 261 s instead of 19 s (docs/benchmarks/infer) and `rayzer demo` 47-59 s instead of 12-16 s,
#: while on an idle machine the demo takes the same time either way (5.2 s). Training is left
#: out: there an idle 2-thread tiny-cpu step took 1.44-1.55 s spinning and 1.84-1.87 s passive.
#: OpenMP reads the variable once, when torch loads it, so it is set before anything imports torch.
PASSIVE_WAIT_COMMANDS = ("infer", "demo", "serve", "eval")


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; the exit code (2: a clear error, 130: interrupted)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in PASSIVE_WAIT_COMMANDS and "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    command = argv[0] if argv[:1] and argv[0] in COMMANDS else None
    parser = build_parser(command, overview=command is None)
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
