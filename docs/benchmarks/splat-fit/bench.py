"""Benchmark of ``rayzer infer --fit``: input-view and leave-one-out PSNR before/after, seconds.

Runs :func:`rayzer.infer.pipeline.run_inference` once per (checkpoint, image folder, size) with
the Gaussian fit on, keeps each run's output folder (video, gaussians.ply, summary.json) under
``--out``, and prints the figures as JSON and as a Markdown table (also written to
``--out/results.json`` / ``results.md``).

    python docs/benchmarks/splat-fit/bench.py --ckpt /work/runs/sbs/erayzer /work/runs/sbs/nas3r \
        --images /work/shared/data/real/fox_instantngp/images --size 64 --steps 100 \
        --fit-cameras --threads 1 --out /tmp/splat-fit
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def _row(ckpt: Path, images: Path, size: int, summary: dict) -> dict:
    fit = summary["fit"]
    held = fit.get("held_out", {})
    return {
        "model": ckpt.name,
        "images": str(images),
        "views": summary["input"]["used"],
        "size": size,
        "steps": fit["steps"],
        "cameras_fitted": fit["cameras_fitted"],
        "train_psnr_before": fit["train_psnr_before"],
        "train_psnr_after": fit["train_psnr_after"],
        "held_out_view": held.get("view"),
        "held_out_psnr_before": held.get("psnr_before"),
        "held_out_psnr_after": held.get("psnr_after"),
        "fit_seconds": fit["seconds"],
        "held_out_seconds": held.get("seconds"),
        "scene_kept": fit["scene"],
        "stopped": fit["stopped"],
        "rejected": fit["rejected"],
        "infer_total_seconds": summary["timings_s"]["total"],
        "torch_threads": summary["torch_threads"],
    }


def _markdown(rows: list[dict]) -> str:
    head = (
        "| model | images | views | px | steps | cameras | train PSNR before → after | "
        "held-out PSNR before → after | fit s | held-out s | kept |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['model']} | {Path(r['images']).parent.name}/{Path(r['images']).name} | "
        f"{r['views']} | {r['size']} | {r['steps']} | {'yes' if r['cameras_fitted'] else 'no'} | "
        f"{r['train_psnr_before']} → {r['train_psnr_after']} | "
        f"{r['held_out_psnr_before']} → {r['held_out_psnr_after']} | {r['fit_seconds']} | "
        f"{r['held_out_seconds']} | {r['scene_kept']} |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", type=Path, nargs="+", required=True)
    p.add_argument("--images", type=Path, nargs="+", required=True)
    p.add_argument("--size", type=int, nargs="+", default=[64])
    p.add_argument("--max-views", type=int, default=8)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--fit-cameras", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()

    import torch

    from rayzer.infer.pipeline import run_inference

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in args.size:
        for ckpt in args.ckpt:
            for images in args.images:
                name = f"{ckpt.name}_{images.parent.name}_{size}px"
                load = os.getloadavg()[0]
                t0 = time.perf_counter()
                result = run_inference(
                    images,
                    ckpt=ckpt,
                    out=args.out / name,
                    overwrite=True,
                    size=size,
                    max_views=args.max_views,
                    fit=args.steps,
                    fit_cameras=args.fit_cameras,
                )
                row = _row(ckpt, images, size, result.summary)
                row["wall_seconds"] = round(time.perf_counter() - t0, 1)
                row["load_before"] = round(load, 2)
                row["load_after"] = round(os.getloadavg()[0], 2)
                row["output"] = str(result.out)
                rows.append(row)
                print(json.dumps(row), flush=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    table = _markdown(rows)
    (args.out / "results.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
