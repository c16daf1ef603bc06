"""Paper-scale presets on the CPU (``rayzer bench paper-forward``): build, one forward pass.

For each preset (default: the explicit-3D models' paper presets ``erayzer-dl3dv`` and
``nas3r-re10k``): build the model with its paper configuration on the CPU (random weights, seed
0), run **one forward pass** without gradients in fp32 on random images at the preset's own view
counts and image size (inputs = the first ``data.num_input_views`` views, targets the rest), and
check what comes out: the target renders ``(B, Vt, 3, H, W)``, the cameras of all views, and,
for models with depth / Gaussians, the input depth ``(B, Vi, 1, H, W)`` and one Gaussian per
input pixel; all finite. Reported per preset: parameters, build and forward time (wall and
process CPU seconds), forward FLOPs (:func:`rayzer.bench.flops.count_flops`, counted in a second
pass: the counting mode slows the pass it watches), and the peak resident memory of the process.

Each preset runs in its own fresh process (``spawn``), so the peak memory is that preset's
alone and one preset's failure (recorded as an error string) does not hide the others. The
command exits with 2 if any preset failed or gave a wrong or non-finite output.

This is a smoke test of the paper-scale code path, not a speed benchmark: the CUDA paths of
the same presets (bf16, flash attention, gsplat, a training step) are ``rayzer bench cuda``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import resource
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from rayzer.utils.report import machine_info, markdown_table, write_report

#: The explicit-3D models' paper-scale presets (issue 18 item 3).
DEFAULT_PRESETS = ("erayzer-dl3dv", "nas3r-re10k")


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def _output_problems(out: Any, model: Any, b: int, vi: int, vt: int, h: int, w: int) -> list[str]:
    """What is wrong with a forward output of ``b`` samples, ``vi`` + ``vt`` views of h × w."""
    problems = []

    def check(name: str, tensor: torch.Tensor | None, shape: tuple[int, ...]) -> None:
        if tensor is None:
            problems.append(f"{name} missing")
        elif tuple(tensor.shape) != shape:
            problems.append(f"{name} shape {tuple(tensor.shape)}, expected {shape}")
        elif not bool(torch.isfinite(tensor).all()):
            problems.append(f"{name} not finite")

    check("render", out.render, (b, vt, 3, h, w))
    caps = model.capabilities
    if caps.predicts_cameras:
        check("cameras.c2w", out.cameras.c2w, (b, vi + vt, 4, 4))
    if caps.outputs_depth:
        check("input_depth", out.input_depth, (b, vi, 1, h, w))
    if caps.outputs_gaussians:
        n = out.scene.num_gaussians if out.scene is not None else None
        if n != vi * h * w:
            problems.append(f"{n} Gaussians, expected one per input pixel ({vi * h * w})")
    return problems


def forward_row(
    preset: str, overrides: Sequence[str] = (), batch: int = 1, threads: int = 1
) -> dict[str, Any]:
    """Build ``preset``'s model on the CPU and run one forward pass (module docstring).

    Returns the result row; ``ok`` is True when the output has the expected shapes and is finite
    (``problems`` says what is wrong otherwise).
    """
    from rayzer.bench.flops import count_flops
    from rayzer.bench.speed import random_batch
    from rayzer.config import load_config
    from rayzer.models import build_model

    torch.set_num_threads(threads)
    cfg = load_config(preset, list(overrides))
    vi, vt, size = cfg.data.num_input_views, cfg.data.num_target_views, cfg.data.image_size
    torch.manual_seed(0)
    start = _clock()
    model = build_model(cfg.model).eval()
    build_wall, build_cpu = _since(start)
    images = random_batch(batch, vi + vt, size, "cpu")
    inputs, targets = torch.arange(vi), torch.arange(vi, vi + vt)
    with torch.no_grad():
        start = _clock()
        out = model(images, inputs, targets)
        forward_wall, forward_cpu = _since(start)
        problems = _output_problems(out, model, batch, vi, vt, *cfg.data.image_hw)
        del out
        flops = count_flops(lambda: model(images, inputs, targets))
    return {
        "preset": preset,
        "model": cfg.model.name,
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
        "batch": batch,
        "input_views": vi,
        "target_views": vt,
        "image_size": size,
        "threads": threads,
        "build_s": build_wall,
        "build_cpu_s": build_cpu,
        "forward_s": forward_wall,
        "forward_cpu_s": forward_cpu,
        "forward_tflop": flops / 1e12,
        # ru_maxrss is in KiB on Linux: the peak of this process (one preset per process).
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "ok": not problems,
        "problems": problems,
    }


def _row_or_error(preset: str, overrides: Sequence[str], batch: int, threads: int) -> dict:
    try:
        return forward_row(preset, overrides, batch, threads)
    except Exception as err:  # recorded, so that one preset does not hide the others
        return {
            "preset": preset,
            "ok": False,
            "error": f"{type(err).__name__}: {err}",
            "traceback": traceback.format_exc(limit=8),
        }


def run(
    presets: Sequence[str],
    overrides: Sequence[str] = (),
    batch: int = 1,
    threads: int = 1,
) -> dict[str, Any]:
    """One fresh ``spawn`` process per preset (its own peak memory); the result JSON."""
    rows = []
    context = multiprocessing.get_context("spawn")
    for preset in presets:
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
            rows.append(pool.submit(_row_or_error, preset, overrides, batch, threads).result())
    return {
        "benchmark": "paper_forward_cpu",
        "overrides": list(overrides),
        "machine": {**machine_info(), "cpu_threads": threads},
        "load_average": list(_load_average()),
        "rows": rows,
        "failures": [
            f"{r['preset']}: {r.get('error') or '; '.join(r['problems'])}"
            for r in rows
            if not r["ok"]
        ],
    }


def _load_average() -> tuple[float, ...]:
    try:
        return tuple(round(x, 2) for x in os.getloadavg())
    except OSError:  # not available on this platform
        return ()


COLUMNS = [
    "preset",
    "params_M",
    "input_views",
    "target_views",
    "image_size",
    "build_cpu_s",
    "forward_s",
    "forward_cpu_s",
    "forward_tflop",
    "peak_rss_gib",
    "ok",
]


def to_markdown(result: dict[str, Any]) -> str:
    rows = [{**r, "ok": "yes" if r["ok"] else "NO"} for r in result["rows"]]
    text = markdown_table(rows, COLUMNS)
    text += (
        f"\n\nfp32, no gradients, batch {rows[0].get('batch', '?') if rows else '?'}, "
        f"{result['machine']['cpu_threads']} thread(s); load average at the end "
        f"{' / '.join(str(x) for x in result['load_average']) or 'n/a'}."
    )
    for failure in result["failures"]:
        text += f"\n\n**failed**: {failure}"
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--presets",
        nargs="+",
        default=list(DEFAULT_PRESETS),
        help=f"presets or YAML files (default: {' '.join(DEFAULT_PRESETS)})",
    )
    parser.add_argument("--batch", type=int, default=1, help="samples in the forward pass")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override for every preset (repeatable), e.g. data.image_size=128",
    )
    parser.add_argument("--out", type=Path, default=None, help="folder for paper_forward.json/.md")


def main(args: argparse.Namespace) -> None:
    """``rayzer bench paper-forward``: exits with 2 when a preset failed (after writing)."""
    if args.batch < 1 or args.threads < 1:
        raise ValueError("--batch and --threads must be >= 1")
    result = run(args.presets, args.overrides, args.batch, args.threads)
    write_report(args.out, "paper_forward", result, to_markdown(result))
    if result["failures"]:
        raise ValueError("paper-forward failed: " + "; ".join(result["failures"]))
