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
(``--true-focal`` uses the truth). Forward passes only.

Usage (repo root): python experiments/issue18_explicit/probe_landscape.py RUN [RUN ...]
    (RUN: a run folder, a checkpoint, or untrained:PRESET for a network at initialisation)
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
from rayzer.models.registry import build_model


def walk(c2w_true: torch.Tensor, alpha: float, scale: float) -> torch.Tensor:
    """(V, 4, 4) cameras a fraction ``alpha`` of the way from identity to the (scaled) truth."""
    out = torch.eye(4, dtype=c2w_true.dtype).repeat(len(c2w_true), 1, 1)
    out[:, :3, :3] = axis_angle_to_matrix(alpha * matrix_to_axis_angle(c2w_true[:, :3, :3]))
    out[:, :3, 3] = alpha * scale * c2w_true[:, :3, 3]
    return out


@torch.no_grad()
def landscape(
    run: str, clips: int, alphas: list[float], scales: list[float], true_focal: bool, stride: int
):
    if run.startswith("untrained:"):  # the preset's network at its initialisation (seed 0)
        cfg = load_config(run.removeprefix("untrained:"))
        torch.manual_seed(0)
        model, size = build_model(cfg.model).eval(), 64
    else:
        trained = load_trained_model(run)
        model, size = trained.model, trained.config.data.image_size
    inputs, targets = torch.arange(0, 8, 2), torch.arange(1, 8, 2)
    rows = []
    for s in scales:
        psnr = {a: [] for a in alphas}
        for i in range(clips):
            clip = render_clip(
                1_000_000 + i, SynthConfig(family="orbit", frames=24, height=size, width=size)
            )
            frames = torch.arange(0, 8 * stride, stride)
            images = clip.images[frames][None]
            truth, norm = normalize_scene_scale(clip.c2w[frames].double())  # canonical = view 4
            pred = model.predict_cameras(images)
            scale = s
            if s == 0:  # "auto": the truth in the model's unit, from its own depth of the inputs
                own = model({"image": images}, inputs[None], targets[None]).input_depth
                true_depth = clip.depth[frames][inputs] * float(norm)
                scale = float(own.median() / true_depth.median())
            K = (clip.K[frames] / size).float()[None] if true_focal else pred.K_norm
            for a in alphas:
                cams = walk(truth, a, scale).float()[None]
                scene = model.reconstruct(images[:, inputs], cams[:, inputs], K[:, inputs])
                render = model.render(scene, cams[:, targets], K[:, targets], size, size).rgb
                mse = (render.clamp(0, 1) - images[:, targets]).square().mean()
                psnr[a].append(float(-10 * mse.log10()))
        row = {"run": run, "scale": s, "true_focal": true_focal, "stride": stride}
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
    p.add_argument("--stride", type=int, default=3, help="frames 0, s, …, 7s of the 24-frame clip")
    p.add_argument("--out", default=str(Path(__file__).with_name("landscape")))
    args = p.parse_args()
    torch.set_num_threads(1)
    alphas = [float(a) for a in args.alphas.split(",")]
    scales = [float(s) for s in args.scales.split(",")]
    rows = [
        r
        for run in args.runs
        for r in landscape(run, args.clips, alphas, scales, args.true_focal, args.stride)
    ]
    suffix = "_true_focal" if args.true_focal else ""
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
