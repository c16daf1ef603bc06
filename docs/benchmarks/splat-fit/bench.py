"""Benchmark of ``rayzer infer --fit``: input-view and leave-one-out PSNR before/after, seconds.

Runs :func:`rayzer.infer.pipeline.run_inference` once per (checkpoint, image folder, size) with
the Gaussian fit on, keeps each run's output folder (video, gaussians.ply, summary.json) under
``--out``, and prints the figures as JSON and as a Markdown table (also written to
``--out/results.json`` / ``results.md``). ``--fit-size N`` fits the Gaussians to the photos at N
px while the model runs at ``--size`` (``rayzer infer --fit-size``). **CPU s** is
``time.process_time()`` of this process around the fit (``fit_scene``) and the leave-one-out
figure (``held_out_fit_psnr``) and the whole run: with ``--threads 1`` the figure that does not
depend on other jobs on a shared machine; the 1-minute load average before / after each run is
given too.

    python docs/benchmarks/splat-fit/bench.py --ckpt /work/runs/sbs/erayzer /work/runs/sbs/nas3r \
        --images /work/shared/data/real/fox_instantngp/images --size 64 --steps 100 \
        --fit-cameras --threads 1 --out /tmp/splat-fit
    python docs/benchmarks/splat-fit/bench.py --ckpt /work/runs/sbs/erayzer \
        --images /work/runs/h2/fit128/fox_consec/images --size 64 --fit-size 128 --steps 100 \
        --threads 1 --out /tmp/splat-fit-128
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


class _CpuClock:
    """Process CPU seconds of every call of ``rayzer.refine.splat``'s ``fit_scene`` and
    ``held_out_fit_psnr`` (which ``rayzer.infer.fit_predicted`` looks up at each call); the
    leave-one-out fit's inner ``fit_scene`` is counted under ``held_out`` only."""

    def __init__(self) -> None:
        import rayzer.refine.splat as splat

        self.splat = splat
        self.real = {"fit_scene": splat.fit_scene, "held_out_fit_psnr": splat.held_out_fit_psnr}
        self.cpu: dict[str, float] = {}
        self.depth = 0

    def _timed(self, name: str):
        real = self.real[name]

        def call(*args, **kwargs):
            self.depth += 1
            c0 = time.process_time()
            try:
                return real(*args, **kwargs)
            finally:
                self.depth -= 1
                if self.depth == 0:
                    key = "fit" if name == "fit_scene" else "held_out"
                    self.cpu[key] = self.cpu.get(key, 0.0) + time.process_time() - c0

        return call

    def __enter__(self) -> _CpuClock:
        for name in self.real:
            setattr(self.splat, name, self._timed(name))
        return self

    def __exit__(self, *exc) -> None:
        for name, fn in self.real.items():
            setattr(self.splat, name, fn)


def _row(ckpt: Path, images: Path, size: int, summary: dict) -> dict:
    fit = summary["fit"]
    held = fit.get("held_out", {})
    return {
        "model": ckpt.name,
        "images": str(images),
        "views": summary["input"]["used"],
        "size": size,
        "fit_size": fit.get("fit_size"),
        "steps": fit["steps"],
        "cameras_fitted": fit["cameras_fitted"],
        "train_psnr_before": fit["train_psnr_before"],
        "train_psnr_after": fit["train_psnr_after"],
        "held_out_view": held.get("view"),
        "held_out_psnr_before": held.get("psnr_before"),
        "held_out_psnr_after": held.get("psnr_after"),
        # the headline above (since the left-out camera fit: that camera fitted to its image
        # with the scene frozen); at the placed camera (predicted / following its neighbour):
        "held_out_headline": held.get("headline"),
        "held_out_placed_before": (held.get("placed") or {}).get("psnr_before"),
        "held_out_placed_after": (held.get("placed") or {}).get("psnr_after"),
        "fit_seconds": fit["seconds"],
        "held_out_seconds": held.get("seconds"),
        "scene_kept": fit["scene"],
        "stopped": fit["stopped"],
        "rejected": fit["rejected"],
        "infer_total_seconds": summary["timings_s"]["total"],
        "torch_threads": summary["torch_threads"],
    }


def _rotation_errors(out: Path, gt_file: Path, model_c2w) -> dict:
    """Median relative rotation error (degrees, all view pairs) of the model's cameras and of
    the written ones against a posed scene's ``cameras.json`` (frames matched by file name)."""
    import torch

    from rayzer.geometry import relative_pose_errors

    gt = {Path(f["file"]).name: f["c2w"] for f in json.loads(gt_file.read_text())["frames"]}
    frames = json.loads((out / "cameras.json").read_text())["frames"]
    names = [Path(f["source_file"]).name for f in frames]
    truth = torch.tensor([gt[n] for n in names], dtype=torch.float64)
    written = torch.tensor([f["c2w"] for f in frames], dtype=torch.float64)

    def median(c2w) -> float:
        return round(float(relative_pose_errors(c2w, truth)["rot_deg"].median()), 2)

    return {"rot_err_model_deg": median(model_c2w.double()), "rot_err_written_deg": median(written)}


def _markdown(rows: list[dict]) -> str:
    head = (
        "| model | images | views | px | fit px | steps | cameras | train PSNR before → after | "
        "held-out PSNR before → after | placed camera: before → after | fit s (CPU s) | "
        "held-out s (CPU s) | infer s (CPU s) | load | kept | rot. err. model → written (°) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )

    def gain(before, after) -> str:
        return f" ({after - before:+.2f})" if before is not None and after is not None else ""

    lines = [
        f"| {r['model']} | {Path(r['images']).parent.name}/{Path(r['images']).name} | "
        f"{r['views']} | {r['size']} | {'x'.join(map(str, r.get('fit_size') or [])) or '–'} | "
        f"{r['steps']} | {'yes' if r['cameras_fitted'] else 'no'} | "
        f"{r['train_psnr_before']} → {r['train_psnr_after']} | "
        f"{r['held_out_psnr_before']} → {r['held_out_psnr_after']}"
        f"{gain(r['held_out_psnr_before'], r['held_out_psnr_after'])} | "
        f"{r.get('held_out_placed_before', '–')} → {r.get('held_out_placed_after', '–')}"
        f"{gain(r.get('held_out_placed_before'), r.get('held_out_placed_after'))} | "
        f"{r['fit_seconds']} ({r.get('fit_cpu_seconds', '–')}) | "
        f"{r['held_out_seconds']} ({r.get('held_out_cpu_seconds', '–')}) | "
        f"{r.get('wall_seconds', '–')} ({r.get('cpu_seconds', '–')}) | "
        f"{r.get('load_before', '–')}–{r.get('load_after', '–')} | {r['scene_kept']} | "
        f"{r.get('rot_err_model_deg', '–')} → {r.get('rot_err_written_deg', '–')} |"
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
    p.add_argument("--fit-size", type=int, help="fit at this short side (default: --size)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--gt-cameras",
        type=Path,
        help="a posed scene's cameras.json: also report the median relative rotation error of "
        "the model's and the written cameras",
    )
    args = p.parse_args()

    import torch

    from rayzer.infer.model import load_model
    from rayzer.infer.pipeline import run_inference
    from rayzer.infer.predict import predict_cameras

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in args.size:
        for ckpt in args.ckpt:
            for images in args.images:
                name = f"{ckpt.name}_{images.parent.name}_{size}px"
                if args.fit_size is not None:
                    name += f"_fit{args.fit_size}px"
                load = os.getloadavg()[0]
                t0, c0 = time.perf_counter(), time.process_time()
                with _CpuClock() as clock:
                    result = run_inference(
                        images,
                        ckpt=ckpt,
                        out=args.out / name,
                        overwrite=True,
                        size=size,
                        max_views=args.max_views,
                        fit=args.steps,
                        fit_cameras=args.fit_cameras,
                        fit_size=args.fit_size,
                    )
                cpu = time.process_time() - c0
                row = _row(ckpt, images, size, result.summary)
                row["fit_cpu_seconds"] = round(clock.cpu.get("fit", 0.0), 1)
                row["held_out_cpu_seconds"] = round(clock.cpu.get("held_out", 0.0), 1)
                row["cpu_seconds"] = round(cpu, 1)
                if args.gt_cameras is not None:
                    model = load_model(ckpt, torch.device("cpu"))
                    model_cams = predict_cameras(model, result.views)
                    row.update(_rotation_errors(result.out, args.gt_cameras, model_cams.c2w))
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
