"""Synthetic clip generation time on ONE CPU core (``rayzer bench synth``).

Renders clips of both families (default 24 frames at 64×64 and 128×128) for several seeds and
reports the median / min / max wall time per clip, ms per frame and primary rays per second.
Target: a 24-frame 64×64 clip in ≤ 0.2 s on one core.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from rayzer.utils.report import machine_info, markdown_table, write_report


def time_family(family: str, size: int, frames: int, seeds: list[int]) -> dict[str, Any]:
    """Median / min / max seconds per clip for one family and size."""
    from rayzer.data.synthetic import SynthConfig, render_clip

    cfg = SynthConfig(family=family, frames=frames, height=size, width=size)
    render_clip(seeds[0], cfg)  # warm-up (allocator, caches)
    times = []
    for seed in seeds:
        t0 = time.perf_counter()
        render_clip(seed, cfg)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {
        "family": family,
        "size": size,
        "frames": frames,
        "seeds": len(seeds),
        "median_s": med,
        "min_s": min(times),
        "max_s": max(times),
        "ms_per_frame": 1e3 * med / frames,
        "mrays_per_s": frames * size * size / med / 1e6,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from rayzer.data.synthetic import TRAIN_SEEDS
    from rayzer.data.synthetic.textures import texture_bank

    # One core: the target is stated per core. Threads of numpy's BLAS are not used by the
    # renderer (element-wise numpy), so torch's setting is the one that matters here.
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    texture_bank()
    bank_s = time.perf_counter() - t0
    seeds = list(TRAIN_SEEDS[100 : 100 + args.seeds])
    rows = [time_family(f, s, args.frames, seeds) for f in args.families for s in args.sizes]
    return {
        "benchmark": "synthetic_clip_generation",
        "threads": 1,
        "texture_bank_build_s": bank_s,
        "machine": machine_info(),
        "rows": rows,
    }


def to_markdown(result: dict[str, Any]) -> str:
    cols = ["family", "size", "frames", "median_s", "min_s", "max_s", "ms_per_frame", "mrays_per_s"]
    return (
        markdown_table(result["rows"], cols)
        + f"\n\ntexture bank (built once per process): {result['texture_bank_build_s']:.2f} s"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=7, help="number of seeds per setting")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--families", nargs="+", default=["orbit", "walk"])
    parser.add_argument("--out", type=Path, default=None, help="folder for synth.json / synth.md")


def main(args: argparse.Namespace) -> None:
    result = run(args)
    write_report(args.out, "synth", result, to_markdown(result))
