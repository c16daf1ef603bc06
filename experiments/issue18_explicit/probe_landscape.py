"""Is identity a stable point of a trained explicit model? Walk its cameras from its own
prediction towards the truth and watch the photometric loss.

For each held-out orbit clip (8 frames, every `--stride`-th (default 3rd) of 24, inputs = even views, targets = odd
views, canonical = view 4 as in the models), the trained network builds the scene from the
input views at cameras C(α) and renders the targets at C(α), where C(α) rotates every view by
α times its true rotation relative to the canonical view and moves it by α times its true
translation, scaled by ``s`` (the model's unit is set by its depth range, so the true scale is
unknown: several ``s`` are tried; ``s = 0`` means the ratio of the model's median depth of the
input views to the true one). α = 0 are identity cameras (what the trained models
predict); α = 1 the truth in the model's frame. The focal is the model's own prediction
(``--true-focal`` uses the truth; ``--true-depth`` puts E-RayZer's Gaussians at the true depth,
in the unit ``s``, 0 = median depth at the middle of its range). Forward passes only.

Usage (repo root): python experiments/issue18_explicit/probe_landscape.py RUN [RUN ...]
    (RUN: a run folder, a checkpoint, or untrained:PRESET[:key=value,...] for a network at
    initialisation)
    [--clips 8] [--alphas 0,0.25,0.5,0.75,1] [--scales 1,2,4,8] [--true-focal]
Prints a JSON line per (run, s) and a Markdown table of target PSNR against α.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from rayzer.checkpoints import load_trained_model
from rayzer.config import load_config
from rayzer.data.synthetic import SynthConfig, render_clip
from rayzer.geometry import axis_angle_to_matrix, matrix_to_axis_angle, normalize_scene_scale
from rayzer.models.gaussians import pixel_rays
from rayzer.models.registry import build_model


def walk(c2w_true: torch.Tensor, alpha: float, scale: float) -> torch.Tensor:
    """(V, 4, 4) cameras a fraction ``alpha`` of the way from identity to the (scaled) truth."""
    out = torch.eye(4, dtype=c2w_true.dtype).repeat(len(c2w_true), 1, 1)
    out[:, :3, :3] = axis_angle_to_matrix(alpha * matrix_to_axis_angle(c2w_true[:, :3, :3]))
    out[:, :3, 3] = alpha * scale * c2w_true[:, :3, 3]
    return out


def with_true_depth(model, depth: torch.Tensor) -> None:
    """Make E-RayZer place its input Gaussians at ``depth`` (B, Vi, H, W) z-depth, model units,
    whatever its decoder says (colours, scales, opacities stay the network's)."""
    original = type(model)._gaussians

    def patched(raw, c2w, K_norm, images):
        _, _, cos_z = pixel_rays(c2w, K_norm, *images.shape[-2:])
        frac = (depth / cos_z / model.cfg.depth_far).clamp(1e-4, 1 - 1e-4)
        raw = torch.cat((torch.logit(frac)[:, :, None], raw[:, :, 1:]), dim=2)
        return original(model, raw, c2w, K_norm, images)

    model._gaussians = patched


@torch.no_grad()
def landscape(
    run: str,
    clips: int,
    alphas: list[float],
    scales: list[float],
    true_focal: bool,
    stride: int,
    true_depth: bool = False,
):
    if run.startswith("untrained:"):  # the preset's network at its initialisation (seed 0)
        preset, _, overrides = run.removeprefix("untrained:").partition(":")
        cfg = load_config(preset, overrides.split(",") if overrides else [])
        torch.manual_seed(0)
        model, size = build_model(cfg.model).eval(), 64
    else:
        trained = load_trained_model(run)
        model, size = trained.model, trained.config.data.image_size
    inputs, targets = torch.arange(0, 8, 2), torch.arange(1, 8, 2)
    rows = []
    for s in scales:
        psnr = {a: [] for a in alphas}
        coverage = {a: [] for a in alphas}  # share of target pixels with alpha > 0.9
        covered_psnr = {a: [] for a in alphas}  # PSNR over those pixels
        for i in range(clips):
            clip = render_clip(
                1_000_000 + i, SynthConfig(family="orbit", frames=24, height=size, width=size)
            )
            frames = torch.arange(0, 8 * stride, stride)
            images = clip.images[frames][None]
            truth, norm = normalize_scene_scale(clip.c2w[frames].double())  # canonical = view 4
            pred = model.predict_cameras(images)
            scale = s
            if true_depth:  # s = 0: put the median input depth mid-range (far / 2)
                depth_norm = clip.depth[frames][inputs] * float(norm)
                scale = s or float(model.cfg.depth_far / 2 / depth_norm.median())
                with_true_depth(model, (depth_norm * scale).float()[None])
            elif s == 0:  # "auto": the truth in the model's unit, from its own depth of the inputs
                own = model({"image": images}, inputs[None], targets[None]).input_depth
                depth_truth = clip.depth[frames][inputs] * float(norm)
                scale = float(own.median() / depth_truth.median())
            K = (clip.K[frames] / size).float()[None] if true_focal else pred.K_norm
            for a in alphas:
                cams = walk(truth, a, scale).float()[None]
                scene = model.reconstruct(images[:, inputs], cams[:, inputs], K[:, inputs])
                out = model.render(scene, cams[:, targets], K[:, targets], size, size)
                err = (out.rgb.clamp(0, 1) - images[:, targets]).square().mean(2, keepdim=True)
                psnr[a].append(float(-10 * err.mean().log10()))
                if out.alpha is not None:  # how much of the targets the Gaussians cover
                    covered = out.alpha > 0.9
                    coverage[a].append(float(covered.float().mean()))
                    covered_psnr[a].append(float(-10 * err[covered].mean().log10()))
        row = {"run": run, "scale": s, "true_focal": true_focal, "stride": stride}
        row["true_depth"] = true_depth
        row |= {f"coverage@{a}": sum(v) / len(v) for a, v in coverage.items() if v}
        row |= {f"covered_psnr@{a}": sum(v) / len(v) for a, v in covered_psnr.items() if v}
        row |= {f"psnr@{a}": sum(v) / len(v) for a, v in psnr.items()}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--alphas", default="0,0.25,0.5,0.75,1")
    p.add_argument("--scales", default="1,2,4,8")
    p.add_argument("--true-focal", action="store_true")
    p.add_argument(
        "--true-depth", action="store_true", help="E-RayZer: Gaussians at the true depth"
    )
    p.add_argument("--stride", type=int, default=3, help="frames 0, s, …, 7s of the 24-frame clip")
    p.add_argument("--out", default=str(Path(__file__).with_name("landscape")))
    args = p.parse_args()
    torch.set_num_threads(1)
    alphas = [float(a) for a in args.alphas.split(",")]
    scales = [float(s) for s in args.scales.split(",")]
    rows = [
        r
        for run in args.runs
        for r in landscape(
            run, args.clips, alphas, scales, args.true_focal, args.stride, args.true_depth
        )
    ]
    suffix = ("_true_focal" if args.true_focal else "") + ("_true_depth" if args.true_depth else "")
    Path(args.out + suffix + ".json").write_text(json.dumps(rows, indent=1) + "\n")
    head = "| run | s | " + " | ".join(f"α={a:g}" for a in alphas) + " |"
    lines = [head, "|" + "---|" * (len(alphas) + 2)]
    lines += [
        f"| {r['run'].split('/runs/')[-1]} | {r['scale']:g} | "
        + " | ".join(f"{r[f'psnr@{a}']:.2f}" for a in alphas)
        + " |"
        for r in rows
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
