"""Command-line entry point: ``rayzer <command> …``. It only parses and dispatches."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _data_synth(args: argparse.Namespace) -> None:
    from rayzer.data.synthetic import synth_command

    out = synth_command(
        family=args.family, seed=args.seed, frames=args.frames, size=args.size, out=args.out
    )
    print(f"wrote {out}")


def _bench_speed(args: argparse.Namespace) -> None:
    from rayzer.bench import speed

    result = speed.run(args)
    from rayzer.bench.report import write_report

    write_report(args.out, "speed", result, speed.to_markdown(result))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rayzer", description="Self-supervised multi-view 3D vision (RayZer, LVSM)."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="datasets: synthesise built-in scenes").add_subparsers(
        dest="data_command", required=True
    )
    synth = data.add_parser("synth", help="render a built-in synthetic scene to a scene folder")
    synth.add_argument("--family", choices=["orbit", "walk"], default="orbit")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--frames", type=int, default=24)
    synth.add_argument("--size", type=int, default=64, help="image height = width in pixels")
    synth.add_argument("--out", type=Path, required=True)
    synth.set_defaults(func=_data_synth)

    bench = sub.add_parser("bench", help="benchmarks (JSON + Markdown output)").add_subparsers(
        dest="bench_command", required=True
    )
    from rayzer.bench import speed

    speed_parser = bench.add_parser("speed", help="training-step time, FLOP utilisation, memory")
    speed.add_arguments(speed_parser)
    speed_parser.set_defaults(func=_bench_speed)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"rayzer: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rayzer: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
