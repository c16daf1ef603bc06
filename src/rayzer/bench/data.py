"""Training-data throughput (``rayzer bench data``): decoded samples per second of the training
stream for each data source and number of DataLoader workers.

A sample is what one training example costs the input pipeline: choose a clip and its views,
read and decode the V images (or render them, for ``synthetic``), resize + centre-crop to
``data.image_size``, normalise the cameras, collate. The stream runs exactly as in
``rayzer train`` (same config, sampler and curriculum, step 0 of the curriculum). The first
``max(1, workers)`` micro-batches (worker start-up, first decode) are timed separately as
``startup_s``; ``samples_per_s`` is measured over the following ``--batches`` micro-batches.
The training process uses one intra-op thread and every worker one thread (as in training).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import torch

from rayzer.utils.report import machine_info, markdown_table, write_report

DEFAULT_CONFIG = "tiny-cpu"


def time_stream(
    data: Any, source: str, workers: int, batches: int, batch_size: int, seed: int = 0
) -> dict[str, Any]:
    """Start-up time and steady samples/s of the stream over ``source`` with ``workers``."""
    from rayzer.data.stream import BatchLayout, TrainStream, make_loader

    # full-size samples only: the benchmark reports the speed at data.image_size
    data = dataclasses.replace(
        data,
        source=source,
        source_weights=[],
        num_workers=workers,
        low_res_size=0,
        low_res_steps=0,
    )
    t0 = time.perf_counter()
    warmup = max(1, workers)
    stream = TrainStream(data, seed, BatchLayout(batch_size), limit=warmup + batches)
    open_s = time.perf_counter() - t0
    loader = make_loader(stream, num_workers=workers)
    t0 = time.perf_counter()
    it = iter(loader)
    for _ in range(warmup):
        next(it)
    startup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    elapsed = time.perf_counter() - t0
    del it  # shuts the workers down
    samples = batches * batch_size
    return {
        "source": source,
        "clips": sum(len(s) for s in stream.sources),
        "skipped": sum(len(s.skipped) for s in stream.sources),
        "workers": workers,
        "image_size": data.image_size,
        "views": data.num_views,
        "batch": batch_size,
        "samples": samples,
        "open_s": open_s,
        "startup_s": startup_s,
        "samples_per_s": samples / elapsed,
        "images_per_s": samples * data.num_views / elapsed,
        "ms_per_sample": 1e3 * elapsed / samples,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from rayzer.config import load_config

    cfg = load_config(args.config or DEFAULT_CONFIG, list(args.overrides))
    sources = args.source or [cfg.data.source]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker does; the training step would use the rest
    try:
        rows = [
            time_stream(cfg.data, source, workers, args.batches, args.batch_size, args.seed)
            for source in sources
            for workers in args.workers
        ]
    finally:
        torch.set_num_threads(threads)
    return {
        "benchmark": "training_data_throughput",
        "config": str(args.config or DEFAULT_CONFIG),
        "overrides": list(args.overrides),
        "threads_per_process": 1,
        "machine": machine_info(),
        "rows": rows,
    }


def to_markdown(result: dict[str, Any]) -> str:
    cols = [
        "source",
        "clips",
        "workers",
        "image_size",
        "views",
        "startup_s",
        "samples_per_s",
        "images_per_s",
        "ms_per_sample",
    ]
    return markdown_table(result["rows"], cols)


DESCRIPTION = (
    "Time the training stream (sampler, decoding, resize + crop, collation) on "
    "each --source (synthetic, scene folders, a manifest or RealEstate10K chunks) with each "
    "number of --workers; prints a Markdown table and JSON (data.json / data.md in --out)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        action="append",
        help="a data.source value to time (repeat for several; default: the config's)",
    )
    parser.add_argument(
        "--config",
        help=f"preset or YAML file for views / size / curriculum (default {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[0, 2], help="DataLoader workers (default 0 2)"
    )
    parser.add_argument("--batches", type=int, default=10, help="timed micro-batches per row")
    parser.add_argument("--batch-size", type=int, default=8, help="samples per micro-batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="folder for data.json / data.md")
    parser.add_argument(
        "overrides", nargs="*", help="dotted config overrides, e.g. data.image_size=128"
    )


def main(args: argparse.Namespace) -> None:
    if args.batches < 1 or args.batch_size < 1 or any(w < 0 for w in args.workers):
        raise ValueError("--batches and --batch-size must be >= 1 and --workers >= 0")
    result = run(args)
    write_report(args.out, "data", result, to_markdown(result))
