"""Per-scene photometric bundle adjustment of cameras (test-time refinement).

:func:`refine_cameras` takes the views of one scene, a starting estimate of their cameras and a
depth map per view, and adjusts every camera's pose and one shared focal length so that each
view is reproduced by warping its neighbours with its depth
(:func:`rayzer.geometry.reprojection.reprojection_error`). :func:`refine_scene` does the same for
a Gaussian scene, whose depth is rendered at the starting cameras first.

How (and why):

* The middle view (``anchor``) keeps its pose: it fixes the rigid-motion gauge; the depth maps
  fix the scale, so translations are in the depth's units.
* Pose updates act in each camera's own frame (``c2w @ [R(ω) | s·t]``, ``s`` = median depth) so
  rotations and translations have comparable step sizes.
* Coarse to fine over image sizes (``levels``, the full size last): the coarse levels widen the
  basin of convergence, the full-size level removes the bias that resampled depth brings.
* Cameras only: L-BFGS with a strong-Wolfe line search (the objective is smooth and has ~7 V
  unknowns; it reaches the optimum where first-order steps keep jittering around it).
  With ``refine_depth``: a low-resolution log-depth correction per view is optimised jointly
  with Adam (hundreds of unknowns), the anchor's mean correction held at zero (scale gauge).
* Divergence guard: a non-finite loss, a pose or focal change beyond the config's limits, or a
  final error above the starting one stops the refinement and returns the input cameras
  unchanged, with ``result.stopped`` saying why.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from rayzer.geometry import axis_angle_to_matrix, make_c2w
from rayzer.geometry.reprojection import mean_error, neighbour_views, reprojection_error
from rayzer.refine.depth import clean_depth

log = logging.getLogger("rayzer.refine")

#: Rendered depth counts only where the accumulated opacity reaches this: below it the pixel is
#: mostly background and its expected depth an unreliable blend.
MIN_ALPHA = 0.5

#: ``on_step(done, total)``: progress of a refinement, called after every iteration (a level that
#: ends early once converged counts its remaining iterations as done) and once at the end with
#: ``done == total``. ``total`` is the configured number of iterations.
StepCallback = Callable[[int, int], None]


@dataclass
class RefineConfig:
    """Settings of :func:`refine_cameras`.

    Attributes:
        steps: optimiser iterations in all, split evenly over the levels.
        levels: short-side sizes of the coarse levels; sizes at or above the images' are
            dropped and the full size is always last.
        neighbours: every view is compared with its this many nearest views in capture order.
        refine_focal: also refine one focal scale shared by all views (principal points stay).
        refine_depth: also refine a ``depth_grid × depth_grid`` log-depth correction per view
            (for depth that is not exact); uses Adam with the learning rates below.
        depth_grid: resolution of that correction.
        depth_prior: weight of the mean squared log-depth correction added to the loss (keeps
            the correction from trading off against the focal and the poses).
        optimizer: ``"auto"`` (L-BFGS for cameras only, Adam with ``refine_depth``),
            ``"lbfgs"`` or ``"adam"``.
        lr_pose, lr_focal, lr_depth: Adam steps (radians / median depths / log units) when
            ``refine_depth``; ignored otherwise (L-BFGS).
        occlusion_tolerance: see :func:`~rayzer.geometry.reprojection.reprojection_error`.
        max_rotation_deg, max_translation, max_log_focal, max_log_depth_change: divergence
            limits on the change of any camera (translation in units of the median depth), of
            the log focal and of any log-depth correction.
        converged: a level ends early once its loss improved by less than this fraction over
            the last 5 iterations.
        log_every_s: seconds between progress lines on the ``rayzer.refine`` logger.
    """

    steps: int = 150
    levels: tuple[int, ...] = (16, 32)
    neighbours: int = 4
    refine_focal: bool = True
    refine_depth: bool = False
    depth_grid: int = 8
    depth_prior: float = 0.0
    optimizer: str = "auto"
    lr_pose: float = 3e-3
    lr_focal: float = 3e-3
    lr_depth: float = 1e-2
    occlusion_tolerance: float = 0.05
    max_rotation_deg: float = 20.0
    max_translation: float = 0.5
    max_log_focal: float = math.log(1.5)
    max_log_depth_change: float = math.log(3.0)
    converged: float = 1e-4
    log_every_s: float = 5.0


@dataclass
class RefineResult:
    """Refined cameras of one scene.

    Attributes:
        c2w: ``(V, 4, 4)`` OpenCV camera-to-world; K: ``(V, 4)`` pixel intrinsics of the input
            images (the input cameras themselves when ``stopped``).
        depth: ``(V, H, W)`` the depth used at the input size (corrected when ``refine_depth``).
        psnr_before, psnr_after: PSNR (dB) of the views warped from their neighbours with the
            starting and the refined cameras, over the pixels a neighbour sees (the objective's
            figure, not a held-out one).
        valid_before, valid_after: fraction of pixels in those figures.
        seconds: wall-clock time.
        history: ``(iteration, level size, loss)`` per iteration.
        stopped: None, or why the refinement was abandoned (the input cameras are returned).
        reached_c2w, reached_K: the cameras the refinement itself reached, kept or not: the
            refined ones, or where the optimisation was when it stopped (for judging what a
            stopped refinement would have given; may hold NaN when the loss became non-finite).
            None only when no refinement ran.
    """

    c2w: Tensor
    K: Tensor
    depth: Tensor
    psnr_before: float = math.nan
    psnr_after: float = math.nan
    valid_before: float = math.nan
    valid_after: float = math.nan
    seconds: float = 0.0
    history: list[tuple[int, int, float]] = field(default_factory=list)
    stopped: str | None = None
    reached_c2w: Tensor | None = None
    reached_K: Tensor | None = None

    def summary(self) -> dict[str, object]:
        """JSON-ready figures (for ``summary.json``; a PSNR with no pixel to compare is None)."""
        return {
            "psnr_before": rounded(self.psnr_before, 3),
            "psnr_after": rounded(self.psnr_after, 3),
            "valid_fraction_before": round(self.valid_before, 4),
            "valid_fraction_after": round(self.valid_after, 4),
            "iterations": len(self.history),
            "seconds": round(self.seconds, 2),
            "stopped": self.stopped,
        }


class _Diverged(RuntimeError):
    pass


def _resize(x: Tensor, h: int, w: int) -> Tensor:
    """``(V, C, H, W)`` or ``(V, H, W)`` → bilinear at ``(h, w)`` (antialiased when shrinking)."""
    squeeze = x.ndim == 3
    x = x[:, None] if squeeze else x
    if x.shape[-2:] == (h, w):
        y = x
    else:
        shrink = h < x.shape[-2]
        y = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=shrink)
    return y[:, 0] if squeeze else y


def _resize_depth(depth: Tensor, h: int, w: int) -> Tensor:
    """Depth at ``(h, w)``; unknown pixels (``<= 0``) stay unknown instead of blending in."""
    known = (depth > 0).to(depth.dtype)
    num = _resize(depth * known, h, w)
    den = _resize(known, h, w)
    return torch.where(den > 0.5, num / den.clamp_min(1e-6), torch.zeros_like(num))


def _level_sizes(levels: tuple[int, ...], h: int, w: int) -> list[tuple[int, int]]:
    short = min(h, w)
    sizes = [*sorted({s for s in levels if 0 < s < short}), short]
    return [(max(1, round(h * s / short)), max(1, round(w * s / short))) for s in sizes]


def _check_inputs(images: Tensor, c2w: Tensor, K: Tensor, depth: Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (V, 3, H, W), got {tuple(images.shape)}")
    v = images.shape[0]
    if v < 2:
        raise ValueError(f"refinement needs at least 2 views, got {v}")
    if c2w.shape != (v, 4, 4) or K.shape != (v, 4):
        raise ValueError(
            f"cameras must be c2w ({v}, 4, 4) and K ({v}, 4), got {tuple(c2w.shape)} and "
            f"{tuple(K.shape)}"
        )
    if depth.ndim != 3 or depth.shape[0] != v:
        raise ValueError(f"depth must be ({v}, h, w), got {tuple(depth.shape)}")
    for name, x in (("images", images), ("c2w", c2w), ("K", K)):
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    if not (depth > 0).any():
        raise ValueError("depth has no positive value: nothing to reproject")


def _figures(images: Tensor, depth: Tensor, c2w: Tensor, K: Tensor, nb: Tensor) -> tuple:
    with torch.no_grad():
        err, valid = reprojection_error(images, depth, c2w, K, nb, squared=True)
        if not valid.any():  # no pixel lands in a neighbour: no figure (not a perfect 100 dB)
            return math.nan, 0.0
        mse = float(mean_error(err, valid))
    return -10.0 * math.log10(max(mse, 1e-10)), float(valid.float().mean())


def updated_cameras(
    c2w: Tensor, K: Tensor, rotvec: Tensor, trans: Tensor, log_focal: Tensor | None
) -> tuple[Tensor, Tensor]:
    """The refinement's camera update: ``c2w @ [R(rotvec) | trans]`` (``(V, 4, 4)``, the update
    in each camera's own frame, rotation vectors ``(V, 3)`` in radians, translations ``(V, 3)``
    in world units) and ``K (V, 4)`` (pixel or normalised) with ``fx, fy`` scaled by
    ``exp(log_focal)`` (one shared scale; principal points kept; None: K unchanged).
    Differentiable in every input."""
    new_c2w = c2w @ make_c2w(axis_angle_to_matrix(rotvec), trans)
    if log_focal is None:
        return new_c2w, K
    return new_c2w, torch.cat((K[:, :2] * torch.exp(log_focal), K[:, 2:]), dim=-1)


def rounded(x: float, digits: int) -> float | None:
    """``x`` rounded for JSON, or None when it is not finite (a PSNR with no pixel to compare)."""
    return round(x, digits) if math.isfinite(x) else None


def refine_cameras(
    images: Tensor,
    c2w: Tensor,
    K: Tensor,
    depth: Tensor,
    *,
    config: RefineConfig | None = None,
    anchor: int | None = None,
    held: list[int] | None = None,
    on_step: StepCallback | None = None,
) -> RefineResult:
    """Refine the cameras of one scene by photometric bundle adjustment.

    Args:
        images: ``(V, 3, H, W)`` in [0, 1], V >= 2, in capture order (neighbours are taken in
            that order).
        c2w: ``(V, 4, 4)`` starting OpenCV camera-to-world; K: ``(V, 4)`` pixel intrinsics
            ``(fx, fy, cx, cy)`` of ``H × W`` (a shared focal *scale* is refined).
        depth: ``(V, h, w)`` camera z-depth at any resolution (resampled to ``H × W``);
            ``<= 0``, non-finite or absurdly far values (:func:`~rayzer.refine.depth.clean_depth`)
            mark unknown pixels.
        config: :class:`RefineConfig` (defaults: 150 L-BFGS iterations over 16 px, 32 px and
            the full size, 4 neighbours, focal refined, depth kept).
        anchor: the view whose pose is held (default ``V // 2``).
        held: further views whose poses are held (e.g. all but one, to fit one camera to a
            fixed scene).
        on_step: progress callback (:data:`StepCallback`), e.g. for a progress bar.

    Returns:
        :class:`RefineResult`; on divergence its cameras are the input ones and ``stopped``
        says why (also logged as a warning on ``rayzer.refine``).
    """
    cfg = config or RefineConfig()
    t0 = time.perf_counter()
    # Clones: tensors made under torch.inference_mode() (a model's outputs) cannot enter autograd.
    images, c2w, K = (x.detach().float().clone() for x in (images, c2w, K))
    depth = clean_depth(depth)
    _check_inputs(images, c2w, K, depth)
    v, _, h, w = images.shape
    anchor = v // 2 if anchor is None else anchor
    if not 0 <= anchor < v:
        raise ValueError(f"anchor must be a view index in [0, {v}), got {anchor}")
    bad = [i for i in held or [] if not 0 <= i < v]
    if bad:  # a negative index would silently hold another view
        raise ValueError(f"held views must be view indices in [0, {v}), got {bad}")
    depth = _resize_depth(depth, h, w)
    nb = neighbour_views(v, cfg.neighbours)
    scale = float(depth[depth > 0].median())

    result = RefineResult(c2w, K, depth)
    result.psnr_before, result.valid_before = _figures(images, depth, c2w, K, nb)

    dev = images.device  # the refinement runs where the images are (the model's device)
    rotvec = torch.zeros(v, 3, device=dev, requires_grad=True)
    trans = torch.zeros(v, 3, device=dev, requires_grad=True)
    log_f = torch.zeros((), device=dev, requires_grad=True)
    corr = torch.zeros(v, 1, cfg.depth_grid, cfg.depth_grid, device=dev, requires_grad=True)
    fixed = torch.zeros(v, dtype=torch.bool, device=dev)
    fixed[[anchor, *(held or [])]] = True
    free = (~fixed).float()[:, None]

    def cameras(Kl: Tensor) -> tuple[Tensor, Tensor]:
        return updated_cameras(
            c2w, Kl, rotvec * free, trans * free * scale, log_f if cfg.refine_focal else None
        )

    def corrected(d: Tensor) -> Tensor:
        if not cfg.refine_depth:
            return d
        up = F.interpolate(corr, size=d.shape[-2:], mode="bilinear", align_corners=False)
        return d * torch.exp(up[:, 0])

    def guard(loss: Tensor) -> None:
        if not torch.isfinite(loss):
            raise _Diverged(f"the loss became {loss.item()}")
        rot = float(rotvec.detach().norm(dim=-1).max())
        if math.degrees(rot) > cfg.max_rotation_deg:
            raise _Diverged(
                f"a camera rotated by {math.degrees(rot):.1f}° > {cfg.max_rotation_deg}°"
            )
        tr = float(trans.detach().norm(dim=-1).max())
        if tr > cfg.max_translation:
            raise _Diverged(f"a camera moved by {tr:.2f} > {cfg.max_translation} median depths")
        lf = float(log_f.detach())
        if abs(lf) > cfg.max_log_focal:
            raise _Diverged(f"the focal scale reached {math.exp(lf):.3f}")
        dc = float(corr.detach().abs().max())
        if dc > cfg.max_log_depth_change:
            raise _Diverged(f"a depth correction reached a factor {math.exp(dc):.2f}")

    if cfg.optimizer not in ("auto", "lbfgs", "adam"):
        raise ValueError(f"optimizer must be auto, lbfgs or adam, got {cfg.optimizer!r}")
    use_adam = cfg.optimizer == "adam" or (cfg.optimizer == "auto" and cfg.refine_depth)
    sizes = _level_sizes(cfg.levels, h, w)
    per_level = [cfg.steps // len(sizes)] * len(sizes)
    per_level[-1] += cfg.steps - sum(per_level)
    progress = {"done": 0, "skipped": 0, "last_log": time.perf_counter()}

    def run_level(level: int, lh: int, lw: int, n: int) -> None:
        """``n`` iterations at ``lh × lw`` (fewer once converged); raises _Diverged."""
        level_images = _resize(images, lh, lw)
        level_depth = _resize_depth(depth, lh, lw)
        Kl = K * torch.tensor([lw / w, lh / h, lw / w, lh / h], device=K.device)

        def objective() -> Tensor:
            cams, Ks = cameras(Kl)
            err, valid = reprojection_error(
                level_images, corrected(level_depth), cams, Ks, nb, cfg.occlusion_tolerance
            )
            loss = mean_error(err, valid)
            if cfg.refine_depth:  # the anchor's mean correction holds the scale gauge
                loss = loss + corr[anchor].mean().square() + cfg.depth_prior * corr.square().mean()
            return loss

        if use_adam:
            groups = [{"params": [rotvec, trans], "lr": cfg.lr_pose}]
            groups += [{"params": [log_f], "lr": cfg.lr_focal}]
            groups += [{"params": [corr], "lr": cfg.lr_depth}]
            opt: torch.optim.Optimizer = torch.optim.Adam(groups)
            # cosine decay to 10 % within the level: Adam's steps do not shrink by themselves
            # near the optimum, and a constant step leaves the cameras jittering around it
            schedule = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda i: 0.1 + 0.45 * (1 + math.cos(math.pi * min(i / max(n, 1), 1.0)))
            )
        else:
            opt = torch.optim.LBFGS(
                [rotvec, trans, log_f, *([corr] if cfg.refine_depth else [])],
                lr=1.0,
                max_iter=1,  # one iteration per .step(): progress and guard every step
                max_eval=25,  # the line search's budget (the default, 5/4 max_iter, is 1)
                history_size=20,
                line_search_fn="strong_wolfe",
                tolerance_grad=1e-10,
                tolerance_change=1e-12,
            )
        evaluated: list[Tensor] = []

        def closure() -> Tensor:
            opt.zero_grad(set_to_none=True)
            loss = objective()
            guard(loss)
            loss.backward()
            evaluated.append(loss.detach())
            return loss

        level_losses: list[float] = []
        for _ in range(n):
            if len(level_losses) > 5 and not use_adam:
                gain = (level_losses[-6] - level_losses[-1]) / max(level_losses[-6], 1e-12)
                if gain < cfg.converged:
                    progress["skipped"] += n - len(level_losses)
                    return
            start_loss = float(opt.step(closure).detach())
            if use_adam:
                schedule.step()
            guard(evaluated[-1])
            progress["done"] += 1
            if on_step is not None:
                on_step(min(progress["done"] + progress["skipped"], cfg.steps), cfg.steps)
            result.history.append((progress["done"], min(lh, lw), start_loss))
            level_losses.append(start_loss)
            now = time.perf_counter()
            if now - progress["last_log"] >= cfg.log_every_s:
                progress["last_log"] = now
                left = cfg.steps - progress["done"] - progress["skipped"]
                log.info(
                    "refine: level %d/%d (%d px), step %d/%d, loss %.5f, ETA %.0f s",
                    level + 1,
                    len(sizes),
                    min(lh, lw),
                    progress["done"],
                    cfg.steps,
                    start_loss,
                    (now - t0) / progress["done"] * left,
                )

    try:
        for level, ((lh, lw), n) in enumerate(zip(sizes, per_level)):
            run_level(level, lh, lw, n)
    except _Diverged as why:
        result.stopped = f"refinement stopped: {why}; the input cameras are kept"
        with torch.no_grad():  # where it was when the guard fired (not returned, reported)
            result.reached_c2w, result.reached_K = cameras(K)

    log.info("refine: %d iterations in %.1f s", progress["done"], time.perf_counter() - t0)
    if on_step is not None:
        on_step(cfg.steps, cfg.steps)
    if result.stopped is None:
        with torch.no_grad():
            cams, Ks = cameras(K)
            new_depth = corrected(depth)
        psnr, valid = _figures(images, new_depth, cams, Ks, nb)
        result.reached_c2w, result.reached_K = cams, Ks
        if not math.isfinite(psnr) or psnr < result.psnr_before:
            result.stopped = (
                "refinement did not raise the reprojection PSNR "
                f"({result.psnr_before:.3f} -> {psnr:.3f} dB); the input cameras are kept"
            )
        else:
            result.c2w, result.K, result.depth = cams, Ks, new_depth
            result.psnr_after, result.valid_after = psnr, valid
    if result.stopped is not None:
        result.psnr_after, result.valid_after = result.psnr_before, result.valid_before
        log.warning("%s", result.stopped)
    result.seconds = time.perf_counter() - t0
    return result


def render_depth(
    gaussians: tuple[Tensor, Tensor, Tensor, Tensor, Tensor],
    c2w: Tensor,
    K: Tensor,
    height: int,
    width: int,
    min_alpha: float = MIN_ALPHA,
) -> Tensor:
    """``(V, H, W)`` expected z-depth of a Gaussian scene at the cameras, 0 where its accumulated
    opacity is below ``min_alpha``. ``gaussians`` = (means (N, 3), quats (N, 4), scales (N, 3),
    opacities (N,), colours (N, 3) or SH (N, M, 3)) as :func:`rayzer.render.rasterize` takes."""
    from rayzer.render import rasterize

    with torch.no_grad():
        out = rasterize(*(x[None] for x in gaussians), c2w[None], K[None], width, height)
        depth = out.expected_depth()[0, :, 0]
        return torch.where(out.alpha[0, :, 0] >= min_alpha, depth, torch.zeros_like(depth))


def refine_scene(
    images: Tensor,
    c2w: Tensor,
    K: Tensor,
    gaussians: tuple[Tensor, Tensor, Tensor, Tensor, Tensor],
    *,
    config: RefineConfig | None = None,
    anchor: int | None = None,
) -> RefineResult:
    """:func:`refine_cameras` for a Gaussian scene: its depth is rendered at the starting
    cameras (:func:`render_depth`), then the cameras are refined. The Gaussians themselves are
    not changed (they stay in the anchor's world frame)."""
    h, w = images.shape[-2:]
    depth = render_depth(gaussians, c2w.float(), K.float(), h, w)
    return refine_cameras(images, c2w, K, depth, config=config, anchor=anchor)
