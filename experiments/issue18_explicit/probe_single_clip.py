"""Do the explicit-3D models learn cameras at all? Overfit ONE synthetic orbit clip and track
the predicted cameras' median relative rotation error against the truth (and identity poses).

Usage (from the repo root): python experiments/issue18_explicit/probe_single_clip.py
    [--steps 300] [--size 32] [--variants erayzer,erayzer-noskip,nas3r] [--seed 21]
Prints one JSON line per evaluation and a Markdown table at the end (also written to
--out, default experiments/issue18_explicit/single_clip.{json,md}).
Each step: a random 4 + 4 split of the clip's 8 views (every 3rd of 24 frames), Adam on the
model's own loss (MSE), the preset's learning rate with a 20-step warm-up.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from rayzer.config import load_config
from rayzer.data.matches import match_views
from rayzer.data.synthetic import SynthConfig, render_clip
from rayzer.geometry import normalize_scene_scale, relative_pose_errors
from rayzer.models.registry import build_model

VARIANTS = {
    "erayzer": ("erayzer-tiny-cpu", []),
    "erayzer-noskip": ("erayzer-tiny-cpu", ["model.pixel_color_skip=false"]),
    "nas3r": ("nas3r-tiny-cpu", []),
    # uncovered target pixels cost (x - 0.5)² instead of (x - 1)² (landscape probe: at
    # initialisation the white background is what makes the identity win)
    "erayzer-gray": ("erayzer-tiny-cpu", ["model.background=[0.5,0.5,0.5]"]),
}


def rotation_error(model, images: torch.Tensor, c2w_gt: torch.Tensor) -> tuple[float, float]:
    """(median relative rotation error of the predicted cameras, of identity poses), degrees."""
    with torch.no_grad():
        pred = model.predict_cameras(images[None]).c2w[0]
    err = relative_pose_errors(pred.double(), c2w_gt.double())["rot_deg"].median()
    ident = torch.eye(4, dtype=torch.float64).expand_as(c2w_gt)
    base = relative_pose_errors(ident, c2w_gt.double())["rot_deg"].median()
    return float(err), float(base)


def run(
    name: str,
    steps: int,
    size: int,
    seed: int,
    pyramid: bool = False,
    gt_cameras: bool = False,
    stride: int = 3,
    over_target: float | None = None,
    gt_warmup: int = 0,
    warp: float = 0.0,
    init_seed: int = 0,
    epipolar: float = 0.0,
    match_scale: int = 4,
) -> list[dict]:
    preset, over = VARIANTS[name]
    warp_over = [f"model.warp_loss_weight={warp}"] if warp else []
    # the config refuses the weight without data.epipolar_matches; this script matches the
    # views itself (64 per pair, below), so the stream setting only says so
    epi_over = [f"model.epipolar_loss_weight={epipolar}", "data.epipolar_matches=64"]
    epi_over = epi_over if epipolar else []
    cfg = load_config(preset, [f"data.image_size={size}", *over, *warp_over, *epi_over])
    torch.manual_seed(init_seed)
    model = build_model(cfg.model)
    clip = render_clip(seed, SynthConfig(family="orbit", frames=24, height=size, width=size))
    frames = torch.arange(0, 8 * stride, stride)
    images = clip.images[frames]
    c2w, _ = normalize_scene_scale(clip.c2w[frames].double())
    matches = {}
    if epipolar:  # label-free SIFT matches of the 8 views, on a match_scale × larger render
        big = render_clip(
            seed,
            SynthConfig(
                family="orbit", frames=24, height=size * match_scale, width=size * match_scale
            ),
            frames=frames,
        )
        found = match_views(big.images, max_matches=64, out_size=(size, size))
        matches = {k: v[None] for k, v in found.as_batch_entries().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(1)
    rows, t0 = [], time.perf_counter()
    for step in range(steps + 1):
        if step % 25 == 0:
            model.eval()
            err, base = rotation_error(model, images, c2w)
            rows.append(
                {
                    "variant": name
                    + ("+pyramid" if pyramid else "")
                    + ("+gt-cameras" if gt_cameras else "")
                    + (f"+over-target{over_target:g}" if over_target is not None else "")
                    + (f"+gt-warmup{gt_warmup}" if gt_warmup else "")
                    + (f"+warp{warp:g}" if warp else "")
                    + (f"+init{init_seed}" if init_seed else "")
                    + (f"+epipolar{epipolar:g}" if epipolar else "")
                    + f"/stride{stride}",
                    "step": step,
                    "rot_err_deg": err,
                    "identity_deg": base,
                }
            )
            previous = rows[-2].get("last_psnr") if len(rows) > 1 else None
            extra = {"s": round(time.perf_counter() - t0, 1), "previous_train_psnr": previous}
            print(json.dumps(rows[-1] | extra), flush=True)
            model.train()
        if step == steps:
            break
        for g in opt.param_groups:
            g["lr"] = cfg.train.lr * min(1.0, (step + 1) / 20)
        perm = torch.randperm(8, generator=gen)
        inputs, targets = perm[:4].sort().values[None], perm[4:].sort().values[None]
        model.on_train_step(step, steps)
        batch = {"image": images[None], **matches}
        if gt_cameras or step < gt_warmup:  # the oracle: the true cameras (relative to view 4)
            rel = torch.linalg.inv(c2w[4]) @ c2w
            cams, k = rel.float()[None], (clip.K[frames] / size).float()[None]
            i, t = inputs[0], targets[0]
            scene = model.reconstruct(images[None][:, i], cams[:, i], k[:, i])
            render = model.render(scene, cams[:, t], k[:, t], size, size).rgb
            loss = (render - images[None][:, t]).square().mean()
            terms = {"loss": loss, "psnr": -10 * loss.detach().log10()}
            out = type("Out", (), {"render": render})
        else:
            out = model(batch, inputs, targets)
            terms = model.loss(out, batch, None)
            loss = terms["loss"]
        if pyramid:  # the mean of the MSEs at 1, 1/2, 1/4 and 1/8 of the size
            target = images[None][:, targets[0]]
            render = out.render
            loss = 0.0
            for level in range(4):
                k = 2**level
                a = torch.nn.functional.avg_pool2d(render.flatten(0, 1), k)
                b = torch.nn.functional.avg_pool2d(target.flatten(0, 1), k)
                loss = loss + (a - b).square().mean() / 4
        if over_target is not None:
            # Uncovered pixels show the target itself instead of the background, so they cost
            # nothing but the coverage penalty λ·mean(1 − alpha): the covered pixels decide.
            target = images[None][:, targets[0]]
            alpha, bg = out.rendered.alpha, torch.tensor(model.cfg.background).view(3, 1, 1)
            composite = out.render + (1 - alpha) * (target - bg)
            loss = (composite - target).square().mean() + over_target * (1 - alpha).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        rows[-1]["last_psnr"] = float(terms["psnr"])
        if "warp" in terms:
            rows[-1]["last_warp"] = float(terms["warp"])
        if "epipolar" in terms:
            rows[-1]["last_epipolar"] = float(terms["epipolar"])
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--seed", type=int, default=21)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--pyramid", action="store_true", help="multi-scale MSE instead of the loss")
    p.add_argument("--gt-cameras", action="store_true", help="oracle: train on the true cameras")
    p.add_argument(
        "--gt-warmup",
        type=int,
        default=0,
        help="train on the true cameras for this many steps first, then self-supervised",
    )
    p.add_argument(
        "--over-target",
        type=float,
        help="composite over the target, plus this weight times the uncovered share",
    )
    p.add_argument(
        "--warp",
        type=float,
        default=0.0,
        help="model.warp_loss_weight: the depth-warping term between the input views",
    )
    p.add_argument("--init-seed", type=int, default=0, help="torch seed of the network's weights")
    p.add_argument(
        "--epipolar",
        type=float,
        default=0.0,
        help="model.epipolar_loss_weight: the epipolar error of SIFT matches (our addition)",
    )
    p.add_argument("--match-scale", type=int, default=4, help="match on this × larger render")
    p.add_argument("--stride", type=int, default=3, help="frames 0, s, …, 7s of the 24-frame clip")
    p.add_argument("--out", default=str(Path(__file__).with_name("single_clip")))
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = [
        r
        for v in args.variants.split(",")
        for r in run(
            v,
            args.steps,
            args.size,
            args.seed,
            args.pyramid,
            args.gt_cameras,
            args.stride,
            args.over_target,
            args.gt_warmup,
            args.warp,
            args.init_seed,
            args.epipolar,
            args.match_scale,
        )
    ]
    Path(args.out + ".json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["| variant | step | rotation error (°) | identity (°) |", "|---|---|---|---|"]
    lines += [
        f"| {r['variant']} | {r['step']} | {r['rot_err_deg']:.1f} | {r['identity_deg']:.1f} |"
        for r in rows
        if r["step"] in (0, args.steps // 2, args.steps)
    ]
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
