"""Speed benchmark: training-step time, images/s, FLOP utilisation and peak memory.

For each configuration a full training step (forward, backward, AdamW update) of the
self-supervised RayZer objective is timed on random images. FLOPs are counted by PyTorch's
flop counter (attention included, see :mod:`rayzer.bench.flops`) and compared with this
machine's fp32 matmul peak, measured in the same run. Each configuration runs in a fresh
subprocess so that its peak memory (max RSS on CPU, ``max_memory_allocated`` on CUDA) is its own.

Run ``rayzer bench speed --help`` for options.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from rayzer.bench.flops import count_flops
from rayzer.config import load_config
from rayzer.models import build_model
from rayzer.utils.report import machine_info, markdown_table, write_report


def measure_matmul_peak(size: int = 2048, repeats: int = 10, device: str = "cpu") -> float:
    """Best achieved fp32 GFLOP/s of a square matmul (the utilisation denominator)."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    best = float("inf")
    for _ in range(repeats + 2):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def random_batch(batch: int, views: int, size: int, device: str) -> dict[str, torch.Tensor]:
    """Random images (B, V, 3, S, S) with cameras on a line (for models that read them)."""
    c2w = torch.eye(4, device=device).repeat(batch, views, 1, 1)
    c2w[..., 0, 3] = torch.linspace(-1.0, 1.0, views, device=device)
    K = torch.tensor([size, size, size / 2, size / 2], device=device).expand(batch, views, 4)
    return {"image": torch.rand(batch, views, 3, size, size, device=device), "c2w": c2w, "K": K}


def time_training_step(
    preset: str,
    num_views: int | None,
    batch_size: int | None,
    steps: int,
    warmup: int,
    device: str,
    overrides: list[str],
) -> dict[str, Any]:
    """Time ``steps`` training steps (forward, the model's own loss, backward, AdamW) of the
    model ``preset`` configures, on random images; returns a result row."""
    cfg = load_config(preset, overrides)
    b = batch_size or cfg.train.batch_size
    v = num_views or cfg.data.num_views
    v_in = max(1, round(v * cfg.data.num_input_views / cfg.data.num_views))
    v_in = min(v_in, v - 1)
    size = cfg.data.image_size
    torch.manual_seed(0)
    rss_before = _rss_mib()
    model = build_model(cfg.model).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), fused=device == "cuda")
    batch = random_batch(b, v, size, device)
    perm = torch.randperm(v)
    inp, tgt = perm[:v_in].sort().values, perm[v_in:].sort().values
    use_bf16 = device == "cuda"

    def step() -> None:
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=use_bf16):
            loss = model.loss(model(batch, inp, tgt), batch, None)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    flops = count_flops(step)  # also the first warm-up step
    for _ in range(max(warmup - 1, 0)):
        step()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    step_time = statistics.median(times)
    peak_mib = (
        torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else _rss_mib() - rss_before
    )
    return {
        "config": Path(preset).name.removesuffix(".yaml"),
        "device": device,
        "dtype": "bf16-autocast" if use_bf16 else "fp32",
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
        "batch": b,
        "views": v,
        "input_views": v_in,
        "target_views": v - v_in,
        "image_size": size,
        "grad_checkpointing": cfg.model.grad_checkpointing,
        "step_s": step_time,
        "step_s_all": times,
        "images_per_s": b * v / step_time,
        "gflop_per_step": flops / 1e9,
        "achieved_gflops": flops / step_time / 1e9,
        "peak_mem_mib": peak_mib,
        "model": asdict(cfg.model),
        "model_name": cfg.model.name,
    }


def _run_isolated(args: list[str]) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter so its peak memory is its own."""
    cmd = [sys.executable, "-m", "rayzer.bench.speed", "--single", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {
            "error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed",
            "args": args,
        }
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    peak = measure_matmul_peak(device=device)
    print(f"fp32 matmul peak: {peak:.1f} GFLOP/s", file=sys.stderr)

    common = ["--device", device, "--steps", str(args.steps), "--warmup", str(args.warmup)]
    # Paper-scale configs: batch 1 and fewer timed steps (a step takes minutes on a CPU).
    paper = ["--device", device, "--steps", str(args.paper_steps), "--warmup", "1", "--batch", "1"]
    rows: list[dict[str, Any]] = []
    for preset in args.configs:
        extra = common if preset == args.configs[0] else paper
        if preset != args.configs[0] and args.paper_views:
            extra = [*extra, "--views", str(args.paper_views)]
        print(f"timing {preset} …", file=sys.stderr)
        rows.append({"section": "configs", **_run_isolated(["--preset", preset, *extra])})
    for v in args.scaling_views:
        print(f"timing {args.configs[0]} with {v} views …", file=sys.stderr)
        rows.append(
            {
                "section": "view_scaling",
                **_run_isolated(["--preset", args.configs[0], "--views", str(v), *common]),
            }
        )
    for row in rows:
        if "achieved_gflops" in row:
            row["flop_utilisation"] = row["achieved_gflops"] / peak
    return {
        "benchmark": "speed",
        "matmul_peak_gflops": peak,
        "machine": machine_info(),
        "rows": rows,
    }


def to_markdown(result: dict[str, Any]) -> str:
    cols = [
        "section",
        "config",
        "params_M",
        "batch",
        "views",
        "image_size",
        "step_s",
        "images_per_s",
        "gflop_per_step",
        "achieved_gflops",
        "flop_utilisation",
        "peak_mem_mib",
    ]
    head = f"fp32 matmul peak measured in this run: {result['matmul_peak_gflops']:.1f} GFLOP/s\n\n"
    return head + markdown_table(result["rows"], cols)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["tiny-cpu", "dl3dv"],
        help="presets or YAML files; the first one is also used for the view-scaling sweep",
    )
    parser.add_argument("--scaling-views", nargs="*", type=int, default=[4, 8, 16, 32])
    parser.add_argument(
        "--paper-views",
        type=int,
        default=None,
        help="views for the non-first configs (default: preset)",
    )
    parser.add_argument("--steps", type=int, default=3, help="timed steps per row (median)")
    parser.add_argument(
        "--paper-steps", type=int, default=1, help="timed steps of the paper-scale configs"
    )
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--out", type=Path, default=None, help="folder for speed.json / speed.md")


def command(args: argparse.Namespace) -> None:
    """``rayzer bench speed``: run the benchmark and write ``speed.json`` / ``speed.md``."""
    result = run(args)
    write_report(args.out, "speed", result, to_markdown(result))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--preset", help=argparse.SUPPRESS)
    parser.add_argument("--views", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.single:
        device = args.device if args.device != "auto" else "cpu"
        row = time_training_step(
            args.preset, args.views, args.batch, args.steps, args.warmup, device, []
        )
        print(json.dumps(row))
        return
    result = run(args)
    write_report(args.out, "speed", result, to_markdown(result))


if __name__ == "__main__":
    main()
