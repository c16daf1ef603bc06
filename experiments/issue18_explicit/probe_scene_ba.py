"""Is the true camera reachable by the render loss itself? Per-scene bundle adjustment with no
network: per-input-pixel Gaussians and the cameras of one clip optimised directly with Adam.

For each clip (8 frames, every ``--stride``-th of 24, inputs = even views, targets = odd views,
canonical = view 4 as in the models and :func:`rayzer.geometry.normalize_scene_scale`; true
cameras at unit scene scale) every input pixel carries one Gaussian: its z-depth along the
pixel's ray of its (current) input camera (log-parameterised), colour (sigmoid, starts at the
pixel's colour), opacity (sigmoid), three log standard deviations (start: ``--init-scale`` px)
and a fixed identity rotation (``--free-rotation``: a free quaternion). The Gaussians are
rendered with :func:`rayzer.render.rasterize` (white background, as the explicit models) at
the target cameras (``--render-inputs``: at the input cameras too), and the loss is the MSE:
the explicit models' training objective with unlimited per-scene freedom. ``--fixed-color``
keeps every colour at its pixel's (only geometry, opacity and size can explain the targets);
``--depth-grid G`` replaces the per-pixel depth by a smooth one (a G × G log-depth grid per input
view, bilinearly upsampled; ignored by the true-depth rows, whose depth is exact per pixel).

Cameras: every view but the canonical one gets a pose update in its own frame,
``c2w = c2w_start @ [R(ω) | s·τ]`` with ``s`` the starting median depth (the parameterisation of
:mod:`rayzer.refine.bundle`, built from the same :func:`rayzer.geometry.make_c2w` and
:func:`rayzer.geometry.axis_angle_to_matrix`). The start ``C(α)`` rotates every view by α × its
true rotation relative to the canonical view and moves it by α × its true translation
(``probe_landscape.walk``): α = 0 is the identity (every camera at the canonical pose), α = 1
the truth. The focal is the true one (``--free-focal``: one shared focal scale, free).

Rows (``--rows``; one change each, same clips, steps and seeds):

* ``truth``: cameras fixed at the truth, depth from a constant (the true median input depth):
  the best the scene branch can do;
* ``identity``: cameras free from the identity, depth from the constant;
* ``alpha0.33`` / ``alpha0.5`` / ``alpha0.8``: cameras free from α × truth;
* ``identity-true-depth``: cameras free from the identity, Gaussians at the exact depth (fixed;
  colour, opacity, scale free);
* ``truth-true-depth``: cameras and depth at the truth (the appearance-only ceiling).

Figures at the steps ``--evals`` (after that many Adam updates): median pairwise relative
rotation error and translation-direction error of the 8 views (:mod:`rayzer.eval`'s
``pose_errors``; identity poses give the ``identity`` row's step-0 value), target PSNR at the
current cameras (the training objective; clamped to [0, 1]), depth AbsRel / δ<1.25 of the 4 input
views' Gaussian z-depths against the exact depth after per-image median scaling
(:func:`rayzer.eval.depth_metrics.median_scaled_depth_errors`).

Usage (repo root): python experiments/issue18_explicit/probe_scene_ba.py
    [--rows truth,identity,...] [--clips 4] [--size 32] [--steps 400] [--evals 0,50,100,200,400]
    [--stride 3] [--family orbit] [--render-inputs] [--free-focal] [--free-rotation] [--fixed-color] [--depth-grid G]
    [--out experiments/issue18_explicit/scene_ba]
    python experiments/issue18_explicit/probe_scene_ba.py --table OUT.json [...]   (one table over the files)
Prints one JSON line per (row, clip), writes ``OUT.json`` (all rows) and prints a Markdown table
of the means over clips.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from rayzer.data.synthetic import SynthConfig, render_clip
from rayzer.eval.camera_metrics import pairwise_summary, pose_errors
from rayzer.eval.depth_metrics import median_scaled_depth_errors
from rayzer.geometry import axis_angle_to_matrix, camera_rays, make_c2w, normalize_scene_scale
from rayzer.render import rasterize

sys.path.insert(0, str(Path(__file__).parent))
from probe_landscape import walk  # the same C(α) as the landscape probe

INPUTS = torch.arange(0, 8, 2)
TARGETS = torch.arange(1, 8, 2)
CANONICAL = 4  # the middle of 8 views, an input (normalize_scene_scale's default)
WHITE = torch.ones(3)


@dataclass(frozen=True)
class Row:
    """One experimental condition: where the cameras start, whether they move, the depth."""

    alpha: float  # start C(α): 0 identity, 1 truth
    free_cameras: bool
    true_depth: bool  # Gaussians at the exact depth, held fixed


ROWS = {
    "truth": Row(1.0, False, False),
    "identity": Row(0.0, True, False),
    "alpha0.33": Row(0.33, True, False),
    "alpha0.5": Row(0.5, True, False),
    "alpha0.8": Row(0.8, True, False),
    "identity-true-depth": Row(0.0, True, True),
    "truth-true-depth": Row(1.0, False, True),
}


@dataclass
class Settings:
    steps: int
    evals: list[int]
    render_inputs: bool
    free_focal: bool
    free_rotation: bool
    fixed_color: bool
    depth_grid: int
    opacity: float
    init_scale: float
    lr_depth: float
    lr_color: float
    lr_opacity: float
    lr_scale: float
    lr_rotation: float
    lr_pose: float
    lr_focal: float


class SceneBA(torch.nn.Module):
    """Per-pixel Gaussians of the input views + pose updates of the views of one clip.

    Shapes: ``images (8, 3, H, W)``, ``c2w_start (8, 4, 4)``, ``K (8, 4)`` pixel intrinsics,
    ``depth0 (4, H, W)`` starting z-depth of the input views (the exact one when fixed).
    """

    def __init__(
        self,
        images: Tensor,
        c2w_start: Tensor,
        K: Tensor,
        depth0: Tensor,
        *,
        free_cameras: bool,
        fix_depth: bool,
        settings: Settings,
    ) -> None:
        super().__init__()
        v, _, h, w = images.shape
        self.h, self.w = h, w
        self.register_buffer("c2w_start", c2w_start)
        self.register_buffer("K", K)
        self.scale = float(depth0.median())  # translation unit: the starting median depth
        colour = images[INPUTS].permute(0, 2, 3, 1).reshape(-1, 3)  # (N, 3), view-major
        n = colour.shape[0]
        if (
            settings.depth_grid and not fix_depth
        ):  # a smooth log-depth: a G × G grid per view, upsampled
            grid = F.adaptive_avg_pool2d(depth0.log()[:, None], settings.depth_grid)
            self.log_depth = torch.nn.Parameter(grid, requires_grad=not fix_depth)
        else:  # one free depth per pixel
            self.log_depth = torch.nn.Parameter(depth0.log(), requires_grad=not fix_depth)
        self.color_logit = torch.nn.Parameter(
            torch.logit(colour.clamp(0.02, 0.98)), requires_grad=not settings.fixed_color
        )
        self.opacity_logit = torch.nn.Parameter(
            torch.full((n,), math.log(settings.opacity / (1 - settings.opacity)))
        )
        # σ = init_scale pixels at that depth, in world units (0.5: the exact scene renders its
        # targets best at 32 px; 1 px blurs the inputs, 0.3 px leaves holes in the targets)
        footprint = settings.init_scale * depth0 / K[INPUTS, 0, None, None]
        self.log_scale = torch.nn.Parameter(footprint.log().reshape(-1, 1).repeat(1, 3))
        quat = torch.zeros(n, 4)
        quat[:, 0] = 1.0
        self.quat = torch.nn.Parameter(quat, requires_grad=settings.free_rotation)
        self.rotvec = torch.nn.Parameter(torch.zeros(v, 3), requires_grad=free_cameras)
        self.trans = torch.nn.Parameter(torch.zeros(v, 3), requires_grad=free_cameras)
        self.log_focal = torch.nn.Parameter(
            torch.zeros(()), requires_grad=free_cameras and settings.free_focal
        )
        moving = torch.ones(v, 1)
        moving[CANONICAL] = 0.0  # the canonical view holds the rigid-motion gauge
        self.register_buffer("moving", moving)

    def cameras(self) -> tuple[Tensor, Tensor]:
        """Current ``c2w (8, 4, 4)`` and ``K (8, 4)``."""
        delta = make_c2w(
            axis_angle_to_matrix(self.rotvec * self.moving), self.trans * self.moving * self.scale
        )
        f = self.log_focal.exp()
        return self.c2w_start @ delta, torch.cat((self.K[:, :2] * f, self.K[:, 2:]), dim=-1)

    def depth(self) -> Tensor:
        """``(4, H, W)`` z-depth of the input views' Gaussians."""
        log_depth = self.log_depth
        if log_depth.ndim == 4:
            log_depth = F.interpolate(
                log_depth, size=(self.h, self.w), mode="bilinear", align_corners=False
            )[:, 0]
        return log_depth.exp()

    def render(self, views: Tensor) -> Tensor:
        """``(len(views), 3, H, W)`` rendered at the current cameras of ``views``."""
        c2w, K = self.cameras()
        origins, dirs = camera_rays(c2w[INPUTS], K[INPUTS], self.h, self.w, normalize_dirs=False)
        means = (origins + self.depth()[..., None] * dirs).reshape(-1, 3)
        out = rasterize(
            means[None],
            self.quat[None],
            self.log_scale.exp()[None],
            torch.sigmoid(self.opacity_logit)[None],
            torch.sigmoid(self.color_logit)[None],
            c2w[views][None],
            K[views][None],
            self.w,
            self.h,
            background=WHITE,
            backend="torch",
        )
        return out.rgb[0]


def psnr(pred: Tensor, target: Tensor) -> float:
    return float(-10 * F.mse_loss(pred.clamp(0, 1), target).log10())


def figures(model: SceneBA, images: Tensor, truth: Tensor, depth_true: Tensor) -> dict:
    with torch.no_grad():
        c2w, _ = model.cameras()
        pair = pairwise_summary(*_pair_errors(c2w, truth))
        depth = median_scaled_depth_errors(model.depth(), depth_true)
        return {
            "rot_err_deg": pair["rot_err_deg_median"],
            "trans_dir_err_deg": pair["trans_dir_err_deg_median"],
            "target_psnr": psnr(model.render(TARGETS), images[TARGETS]),
            "depth_abs_rel": float(depth["abs_rel"].mean()),
            "depth_delta_1_25": float(depth["delta_1_25"].mean()),
            "focal_scale": float(model.log_focal.exp()),
        }


def _pair_errors(c2w: Tensor, truth: Tensor) -> tuple[Tensor, Tensor]:
    err = pose_errors(c2w, truth)
    return err.rot_deg, err.trans_deg


def load_clip(
    seed: int, size: int, stride: int, family: str
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``images (8, 3, H, W)``, true ``c2w (8, 4, 4)`` (canonical view 4, unit scene scale),
    ``K (8, 4)`` pixels, exact ``depth (8, H, W)`` in the same unit."""
    clip = render_clip(seed, SynthConfig(family=family, frames=24, height=size, width=size))
    frames = torch.arange(0, 8 * stride, stride)
    c2w, norm = normalize_scene_scale(clip.c2w[frames].double())
    depth = clip.depth[frames] * float(norm)
    return clip.images[frames], c2w.float(), clip.K[frames].float(), depth.float()


def run_row(name: str, seed: int, data: tuple, settings: Settings) -> dict:
    row = ROWS[name]
    images, truth, K, depth_true = data
    torch.manual_seed(0)
    start = walk(truth.double(), row.alpha, 1.0).float()
    if row.true_depth:
        depth0 = depth_true[INPUTS]
    else:  # constant: the true median input depth (the truth's unit; scale is free anyway)
        depth0 = torch.full_like(depth_true[INPUTS], float(depth_true[INPUTS].median()))
    model = SceneBA(
        images,
        start,
        K,
        depth0,
        free_cameras=row.free_cameras,
        fix_depth=row.true_depth,
        settings=settings,
    )
    groups = [
        ("log_depth", settings.lr_depth),
        ("color_logit", settings.lr_color),
        ("opacity_logit", settings.lr_opacity),
        ("log_scale", settings.lr_scale),
        ("quat", settings.lr_rotation),
        ("rotvec", settings.lr_pose),
        ("trans", settings.lr_pose),
        ("log_focal", settings.lr_focal),
    ]
    params = dict(model.named_parameters())
    opt = torch.optim.Adam(
        [{"params": [params[k]], "lr": lr} for k, lr in groups if params[k].requires_grad]
    )
    views = torch.cat((TARGETS, INPUTS)) if settings.render_inputs else TARGETS
    curve, t0 = {}, time.perf_counter()
    for step in range(settings.steps + 1):
        if step in settings.evals:
            curve[step] = figures(model, images, truth, depth_true[INPUTS])
        if step == settings.steps:
            break
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model.render(views), images[views])
        loss.backward()
        opt.step()
    return {
        "row": name,
        "seed": seed,
        "seconds": round(time.perf_counter() - t0, 1),
        "curve": {str(k): v for k, v in curve.items()},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--rows", default="truth,identity,alpha0.33,alpha0.5,alpha0.8,identity-true-depth"
    )
    p.add_argument("--clips", type=int, default=4)
    p.add_argument("--first-seed", type=int, default=1_000_000, help="held-out test seeds")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--evals", default="0,50,100,200,400")
    p.add_argument("--stride", type=int, default=3, help="frames 0, s, …, 7s of the 24-frame clip")
    p.add_argument("--family", default="orbit", choices=("orbit", "walk"))
    p.add_argument("--render-inputs", action="store_true", help="loss on inputs + targets")
    p.add_argument("--free-focal", action="store_true")
    p.add_argument("--free-rotation", action="store_true")
    p.add_argument(
        "--fixed-color", action="store_true", help="colours stay the input pixels' (not free)"
    )
    p.add_argument(
        "--depth-grid", type=int, default=0, help="G > 0: log-depth on a G × G grid per view"
    )
    p.add_argument("--opacity", type=float, default=0.5, help="starting opacity")
    p.add_argument("--init-scale", type=float, default=0.5, help="starting σ, pixels")
    p.add_argument("--lr-depth", type=float, default=1e-2, help="log z-depth")
    p.add_argument("--lr-color", type=float, default=2e-2, help="colour logits")
    p.add_argument("--lr-opacity", type=float, default=5e-2)
    p.add_argument("--lr-scale", type=float, default=1e-2, help="log standard deviations")
    p.add_argument("--lr-rotation", type=float, default=1e-2)
    p.add_argument("--lr-pose", type=float, default=5e-3, help="radians / starting median depths")
    p.add_argument("--lr-focal", type=float, default=2e-3, help="log focal")
    p.add_argument("--out", default=str(Path(__file__).with_name("scene_ba")))
    p.add_argument("--table", nargs="+", metavar="JSON", help="only print the tables of results")
    args = p.parse_args()
    if args.table:  # one table over all the files (e.g. runs over different clips)
        missing = [path for path in args.table if not Path(path).is_file()]
        if missing:
            p.error(f"no such results file: {', '.join(missing)}")
        saved = [json.loads(Path(path).read_text()) for path in args.table]
        evals = [int(s) for s in saved[0]["setup"]["evals"].split(",")]
        print(markdown([r for f in saved for r in f["results"]], evals))
        return
    torch.set_num_threads(1)
    unknown = [r for r in args.rows.split(",") if r not in ROWS]
    if unknown:
        p.error(f"unknown rows {unknown}; choose from {list(ROWS)}")
    settings = Settings(
        steps=args.steps,
        evals=[int(s) for s in args.evals.split(",")],
        render_inputs=args.render_inputs,
        free_focal=args.free_focal,
        free_rotation=args.free_rotation,
        fixed_color=args.fixed_color,
        depth_grid=args.depth_grid,
        opacity=args.opacity,
        init_scale=args.init_scale,
        lr_depth=args.lr_depth,
        lr_color=args.lr_color,
        lr_opacity=args.lr_opacity,
        lr_scale=args.lr_scale,
        lr_rotation=args.lr_rotation,
        lr_pose=args.lr_pose,
        lr_focal=args.lr_focal,
    )
    setup = {k: v for k, v in vars(args).items() if k not in ("out",)}
    results = []
    for i in range(args.clips):
        seed = args.first_seed + i
        data = load_clip(seed, args.size, args.stride, args.family)
        for name in args.rows.split(","):
            res = run_row(name, seed, data, settings)
            print(json.dumps(res), flush=True)
            results.append(res)
            Path(args.out + ".json").write_text(
                json.dumps({"setup": setup, "results": results}, indent=1) + "\n"
            )
    print(markdown(results, settings.evals))


def markdown(results: list[dict], evals: list[int]) -> str:
    """Means over clips: rotation error / target PSNR / depth AbsRel at every eval step."""
    lines = [
        "| row | clips | " + " | ".join(f"step {s}: rot° / PSNR / AbsRel" for s in evals) + " |",
        "|---|---|" + "---|" * len(evals),
    ]
    for name in dict.fromkeys(r["row"] for r in results):
        rows = [r for r in results if r["row"] == name]
        cells = []
        for s in evals:
            vals = [r["curve"][str(s)] for r in rows if str(s) in r["curve"]]
            mean = {k: sum(v[k] for v in vals) / len(vals) for k in vals[0]}
            cells.append(
                f"{mean['rot_err_deg']:.1f} / {mean['target_psnr']:.2f} / {mean['depth_abs_rel']:.3f}"
            )
        lines.append(f"| {name} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
