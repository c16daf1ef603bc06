"""Does the depth-warping term prefer the true cameras to the identity? Walk the input views'
cameras from identity to the truth and evaluate the term (no training, no rendering).

For held-out orbit clips (8 frames, every `--stride`-th of 24, inputs = even views as in the
landscape probe), the term of :func:`rayzer.models.warp_loss.input_warp_loss` is evaluated at
cameras C(α) (``probe_landscape.walk``: every input view rotated by α × its true rotation
relative to the canonical view and moved by α × its true translation), with the true focal and
one of these depths of the input views:

- ``true``: the exact z-depth (translation in the same unit);
- ``flat``: one constant depth per clip (the true median), what an untrained depth head
  roughly gives;
- ``RUN``: a network's own depth of the inputs (a run folder / checkpoint, or
  untrained:PRESET), predicted at its own cameras; the translation in its unit (ratio of
  medians).

Also the rotation-only path (``rot``: translation 0 at every α). Lower is better; α = 0 is the
identity, α = 1 the truth.

Usage (repo root): python experiments/issue18_explicit/probe_warp_landscape.py [RUN ...]
    [--clips 8] [--size 32] [--stride 3] [--out experiments/issue18_explicit/warp_landscape]
Prints a JSON line per (depth, path) and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from probe_landscape import walk

from rayzer.checkpoints import load_trained_model
from rayzer.config import load_config
from rayzer.data.synthetic import SynthConfig, render_clip
from rayzer.geometry import normalize_scene_scale
from rayzer.models.registry import build_model
from rayzer.models.warp_loss import input_warp_loss

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)


def load(run: str, size: int):
    if run.startswith("untrained:"):
        cfg = load_config(run.removeprefix("untrained:"), [f"data.image_size={size}"])
        torch.manual_seed(0)
        return build_model(cfg.model).eval()
    return load_trained_model(run).model.eval()


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="*")
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--stride", type=int, default=3)
    p.add_argument("--out", default=str(Path(__file__).with_name("warp_landscape")))
    args = p.parse_args()
    torch.set_num_threads(1)
    models = {run: load(run, args.size) for run in args.runs}
    inputs = torch.arange(0, 8, 2)
    values: dict[tuple[str, str], list[list[float]]] = {}
    for i in range(args.clips):
        clip = render_clip(
            1_000_000 + i, SynthConfig(family="orbit", frames=24, height=args.size, width=args.size)
        )
        frames = torch.arange(0, 8 * args.stride, args.stride)
        truth, norm = normalize_scene_scale(clip.c2w[frames].double())  # canonical = view 4
        images = clip.images[frames][inputs][None]
        K = (clip.K[frames][inputs] / args.size).float()[None]
        true_depth = (clip.depth[frames][inputs] * float(norm)).float()[None, :, None]
        depths = {
            "true": (true_depth, 1.0),
            "flat": (torch.full_like(true_depth, true_depth.median()), 1.0),
        }
        for run, model in models.items():
            own = model(
                {"image": clip.images[frames][None]}, inputs[None], inputs[None]
            ).input_depth
            depths[run] = (own.float(), float(own.median() / true_depth.median()))
        for name, (depth, scale) in depths.items():
            for path in ("full", "rot"):
                row = []
                for a in ALPHAS:
                    cams = walk(truth, a, scale if path == "full" else 0.0).float()[inputs][None]
                    row.append(float(input_warp_loss(images, depth, cams, K)))
                values.setdefault((name, path), []).append(row)
    rows, lines = [], ["| depth | path | " + " | ".join(f"α = {a:g}" for a in ALPHAS) + " |"]
    lines.append("|---|---|" + "---|" * len(ALPHAS))
    for (name, path), per_clip in values.items():
        mean = [sum(c[j] for c in per_clip) / len(per_clip) for j in range(len(ALPHAS))]
        rows.append(
            {"depth": name, "path": path, "clips": len(per_clip)}
            | dict(zip(map(str, ALPHAS), mean))
        )
        print(json.dumps(rows[-1]), flush=True)
        lines.append(f"| {name} | {path} | " + " | ".join(f"{m:.4f}" for m in mean) + " |")
    Path(args.out + ".json").write_text(json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
