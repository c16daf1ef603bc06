"""Gaussian rasterizer benchmark (``rayzer bench render``).

Scenes are *pixel-aligned*, like E-RayZer / NAS3R predictions: every pixel of ``--inputs`` views
of ``S × S`` pixels places one Gaussian on a smooth random surface along its ray (so
``N = inputs · S²``), with a footprint of about ``--scale-px`` pixels (σ) in its view, random
rotations, opacities in [0.5, 1] and colours; the scene is rendered into ``--targets`` nearby
views of the same size.

Reported per size: forward and forward+backward seconds (median of ``--repeats``, fp32, after a
warm-up), peak memory (max RSS of a fresh subprocess per size: ``resource.getrusage``, which sees
torch's allocations; tracemalloc does not), and Gaussian-pixel pairs per second (pairs = those
with alpha >= 1/255 that were composited), next to the dense brute-force reference's forward
time at the smallest size. ``--device cuda`` adds the gsplat backend (timings and its largest
difference from the torch backend) when CUDA and gsplat are available.

Targets (2-core CPU, 4 inputs, 4 targets, forward+backward): 64 px ≤ 0.15 s,
128 px ≤ 0.8 s, 256 px ≤ 5 s and ≤ 4 GiB.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from rayzer.utils.report import machine_info, markdown_table, write_report

TARGETS_S = {64: 0.15, 128: 0.8, 256: 5.0}
TARGET_PEAK_MIB = {256: 4096.0}


def pixel_aligned_scene(
    size: int,
    inputs: int = 4,
    targets: int = 4,
    *,
    scale_px: float = 0.5,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Keyword arguments of :func:`rayzer.render.rasterize` for one pixel-aligned scene (B = 1)."""
    from rayzer.geometry import look_at, unproject_depth

    g = torch.Generator().manual_seed(seed)

    def cams(angles: torch.Tensor) -> torch.Tensor:
        eye = torch.stack(
            (3.0 * torch.sin(angles), 0.3 * torch.cos(3 * angles), -3.0 * torch.cos(angles)), -1
        )
        return look_at(eye, torch.zeros(3), torch.tensor([0.0, -1.0, 0.0]))

    f = 1.1 * size
    K1 = torch.tensor([f, f, size / 2, size / 2])
    c2w_in = cams(torch.linspace(-0.25, 0.25, inputs))
    c2w_tg = cams(torch.linspace(-0.2, 0.2, targets) + 0.03)
    # A smooth random surface: depth = 3 + a few low-frequency bumps (per input view).
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    amp = torch.rand(inputs, 4, generator=g) * 0.3
    freq = 1 + torch.rand(inputs, 4, generator=g) * 3
    phase = torch.rand(inputs, 4, generator=g) * 6.28
    depth = 3.0 + sum(
        amp[:, k, None, None]
        * torch.sin(freq[:, k, None, None] * (xs + ys * (k - 1.5)) + phase[:, k, None, None])
        for k in range(4)
    )
    means = unproject_depth(depth, c2w_in, K1.expand(inputs, 4))  # (inputs, S, S, 3)
    means = means.reshape(1, -1, 3)
    n = means.shape[1]
    px_world = depth.reshape(1, -1, 1) / f  # world size of one pixel at that depth
    scales = scale_px * px_world * (0.6 + 0.8 * torch.rand(1, n, 3, generator=g))
    quats = torch.randn(1, n, 4, generator=g)
    opacities = 0.5 + 0.5 * torch.rand(1, n, generator=g)
    colors = torch.rand(1, n, 3, generator=g)
    out = {
        "means": means,
        "quats": quats,
        "scales": scales,
        "opacities": opacities,
        "colors": colors,
        "c2w": c2w_tg[None],
        "K": K1.expand(1, targets, 4).clone(),
    }
    out = {k: v.to(device=device, dtype=dtype) for k, v in out.items()}
    out["width"] = out["height"] = size
    return out


def fit_synthetic(
    size: int = 32, steps: int = 150, seed: int = 3, log_every: int = 0
) -> dict[str, float]:
    """Fit pixel-aligned Gaussians to 8 views of a built-in synthetic orbit clip (true cameras)
    and measure PSNR on 4 held-out views (frames 2, 5, 8, 11 of 12).

    Initialisation: one Gaussian per training pixel at its true depth, coloured by the pixel,
    σ = 0.7 px footprint, opacity 0.88. Adam on means, scales, rotations, opacities, colours;
    L1 loss on 4 random training views per step.
    """
    from rayzer.data.synthetic import SynthConfig, render_clip
    from rayzer.geometry import unproject_depth
    from rayzer.render import rasterize

    clip = render_clip(seed, SynthConfig(family="orbit", frames=12, height=size, width=size))
    test = [2, 5, 8, 11]
    train = [i for i in range(12) if i not in test]
    img, c2w, K = clip.images, clip.c2w, clip.K
    depth = clip.depth[train]
    means = unproject_depth(depth, c2w[train], K[train]).reshape(1, -1, 3)
    ok = torch.isfinite(means).all(-1)[0]  # plain backgrounds have infinite depth
    means = means[:, ok]
    n = means.shape[1]
    fx = K[train][:, 0].repeat_interleave(size * size)
    px = (depth.reshape(-1) / fx)[ok][None, :, None]
    colors = img[train].permute(0, 2, 3, 1).reshape(1, -1, 3)[:, ok]
    p = {
        "means": means.clone(),
        "log_scales": torch.log(0.7 * px.expand(1, n, 3)).clone(),
        "quats": torch.tensor([1.0, 0, 0, 0]).expand(1, n, 4).clone(),
        "opacity_logits": torch.full((1, n), 2.0),
        "color_logits": torch.logit(colors.clamp(0.02, 0.98)),
    }
    for v in p.values():
        v.requires_grad_()
    opt = torch.optim.Adam(
        [
            {"params": [p["means"]], "lr": 1e-3},
            {"params": [p["log_scales"], p["opacity_logits"], p["quats"]], "lr": 2e-2},
            {"params": [p["color_logits"]], "lr": 3e-2},
        ]
    )

    def render(idx: list[int]) -> torch.Tensor:
        return rasterize(
            p["means"], p["quats"], p["log_scales"].exp(), torch.sigmoid(p["opacity_logits"]),
            torch.sigmoid(p["color_logits"]), c2w[idx][None], K[idx][None], size, size,
        ).rgb[0]  # fmt: skip

    def psnr(idx: list[int]) -> float:
        with torch.no_grad():
            return -10 * math.log10(float((render(idx) - img[idx]).square().mean()))

    g = torch.Generator().manual_seed(0)
    init = psnr(test)
    t0 = time.perf_counter()
    for it in range(steps):
        sel = [train[i] for i in torch.randperm(len(train), generator=g)[:4].tolist()]
        loss = (render(sel) - img[sel]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log_every and it % log_every == 0:
            print(f"fit step {it}: loss {float(loss):.4f}", file=sys.stderr)
    return {
        "size": size,
        "steps": steps,
        "gaussians": n,
        "train_psnr": psnr(train),
        "test_psnr_init": init,
        "test_psnr": psnr(test),
        "fit_s": time.perf_counter() - t0,
    }


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_backend(
    scene: dict[str, Any], backend: str, repeats: int, device: str
) -> dict[str, float]:
    """Median forward (with autograd on, as in training) and forward+backward seconds."""
    from rayzer.render import rasterize

    names = ("means", "quats", "scales", "opacities", "colors", "c2w", "K")
    fwd, both = [], []
    for i in range(repeats + 1):  # the first run is a warm-up
        inputs = {k: (scene[k].clone().requires_grad_() if k in names else scene[k]) for k in scene}
        _sync(device)
        t0 = time.perf_counter()
        out = rasterize(**inputs, backend=backend)
        _sync(device)
        t1 = time.perf_counter()
        (out.rgb.sum() + out.depth.sum() + out.alpha.sum()).backward()
        _sync(device)
        t2 = time.perf_counter()
        if i:
            fwd.append(t1 - t0)
            both.append(t2 - t0)
    return {
        "forward_s": statistics.median(fwd),
        "fwd_bwd_s": statistics.median(both),
        "fwd_bwd_min_s": min(both),
    }


def pair_stats(scene: dict[str, Any]) -> dict[str, int]:
    """Intersections, evaluated and composited Gaussian-pixel pairs of the torch backend."""
    from rayzer.render import composite_torch, project_gaussians

    s = scene
    W, H = s["width"], s["height"]
    with torch.no_grad():
        p = project_gaussians(
            s["means"], s["quats"], s["scales"], s["c2w"], s["K"], W, H, opacities=s["opacities"]
        )
        n_img, n = p.depths.shape[1], s["means"].shape[1]
        feats = torch.cat((s["colors"][:, None].expand(1, n_img, n, 3), p.depths[..., None]), -1)
        stats: dict[str, int] = {}
        composite_torch(
            p.means2d.reshape(n_img, n, 2), p.conics.reshape(n_img, n, 3),
            s["opacities"].expand(n_img, n), feats.reshape(n_img, n, 4), p.depths.reshape(n_img, n),
            p.extents.reshape(n_img, n, 2), W, H, stats=stats,
        )  # fmt: skip
    return stats


def measure_size(size: int, args: argparse.Namespace) -> dict[str, Any]:
    """One row (run in a fresh process by :func:`run`, so max RSS is this size's own)."""
    device = args.device
    scene = pixel_aligned_scene(
        size, args.inputs, args.targets, scale_px=args.scale_px, device=device
    )
    row: dict[str, Any] = {
        "size": size,
        "gaussians": scene["means"].shape[1],
        "targets": args.targets,
    }
    if device == "cpu":
        row.update(pair_stats(scene))
    backends = ["torch"] + (["gsplat"] if device == "cuda" else [])
    for backend in backends:
        t = time_backend(scene, backend, args.repeats, device)
        prefix = "" if backend == "torch" else "gsplat_"
        row.update({prefix + k: v for k, v in t.items()})
    if "pairs" in row:
        row["mpairs_per_s"] = row["pairs"] / row["fwd_bwd_s"] / 1e6
    if device == "cuda":
        from rayzer.render import rasterize

        with torch.no_grad():
            a = rasterize(**scene, backend="torch")
            b = rasterize(**scene, backend="gsplat")
        row["gsplat_max_abs_diff_rgb"] = float((a.rgb - b.rgb).abs().max())
        row["gsplat_max_abs_diff_alpha"] = float((a.alpha - b.alpha).abs().max())
        row["peak_mem_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        row["peak_mem_mib"] = _rss_mib()
    if size in args.reference_sizes:
        from rayzer.render import rasterize

        with torch.no_grad():
            t0 = time.perf_counter()
            ref = rasterize(**scene, backend="reference")
            row["reference_forward_s"] = time.perf_counter() - t0
            out = rasterize(**scene, backend="torch")
        row["reference_max_abs_diff_rgb"] = float((out.rgb - ref.rgb).abs().max())
    row["target_fwd_bwd_s"] = TARGETS_S.get(size)
    row["target_peak_mib"] = TARGET_PEAK_MIB.get(size)
    return row


def _isolated(size: int, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "rayzer.bench.render",
        "--single",
        str(size),
        "--device",
        args.device,
    ]
    cmd += [
        "--inputs",
        str(args.inputs),
        "--targets",
        str(args.targets),
        "--repeats",
        str(args.repeats),
    ]
    cmd += ["--scale-px", str(args.scale_px), "--reference-sizes", *map(str, args.reference_sizes)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"
        return {"size": size, "error": tail}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device here")
    rows = [_isolated(size, args) for size in args.sizes]
    result: dict[str, Any] = {
        "benchmark": "gaussian_rasterizer",
        "device": args.device,
        "inputs": args.inputs,
        "targets": args.targets,
        "scale_px": args.scale_px,
        "peak_memory": "max RSS of a fresh process per size (CPU) / torch.cuda.max_memory_allocated",
        "machine": machine_info(),
        "rows": rows,
    }
    if args.fit_steps > 0:
        result["fit"] = fit_synthetic(args.fit_size, args.fit_steps)
    return result


def to_markdown(result: dict[str, Any]) -> str:
    cols = ["size", "gaussians", "forward_s", "fwd_bwd_s", "target_fwd_bwd_s", "peak_mem_mib"]
    cols += [
        "pairs",
        "candidates",
        "mpairs_per_s",
        "reference_forward_s",
        "reference_max_abs_diff_rgb",
    ]
    if result["device"] == "cuda":
        cols += ["gsplat_forward_s", "gsplat_fwd_bwd_s", "gsplat_max_abs_diff_rgb"]
    text = markdown_table(result["rows"], cols)
    if "fit" in result:
        f = result["fit"]
        text += (
            f"\n\nsynthetic fit ({f['size']} px, {f['gaussians']} Gaussians, {f['steps']} steps, "
            f"{f['fit_s']:.0f} s): held-out PSNR {f['test_psnr_init']:.2f} -> {f['test_psnr']:.2f} dB "
            f"(train {f['train_psnr']:.2f} dB)"
        )
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--inputs", type=int, default=4, help="input views (N = inputs x size²)")
    parser.add_argument("--targets", type=int, default=4, help="rendered views")
    parser.add_argument("--scale-px", type=float, default=0.5, help="Gaussian σ in input pixels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference-sizes", type=int, nargs="*", default=[64])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--fit-steps", type=int, default=0, help="also fit a synthetic clip (150: ~28 dB)"
    )
    parser.add_argument("--fit-size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=None, help="folder for render.json / render.md")


def main(args: argparse.Namespace) -> None:
    result = run(args)
    write_report(args.out, "render", result, to_markdown(result))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    parser.add_argument("--single", type=int, default=None, help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.single is not None:
        print(json.dumps(measure_size(ns.single, ns)))
    else:
        main(ns)
