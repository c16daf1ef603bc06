"""Per-scene fit of a Gaussian scene (and optionally its cameras) to its input views.

:func:`fit_scene` starts from a :class:`~rayzer.models.gaussians.GaussianScene` (what E-RayZer
and NAS3R predict: one Gaussian per input pixel, on that pixel's ray) and optimises it with Adam
so that :func:`rayzer.render.rasterize` reproduces the input images. :func:`held_out_fit_psnr`
gives the honest figure: one view is left out (its image and its Gaussians), the others are
fitted, and the left-out view is rendered at its camera before and after.

How (and why):

* **Geometry as depth along the pixel rays.** Each Gaussian keeps its pixel and its view; what
  is optimised is its log z-depth, so its centre is ``unproject(depth · exp(δ))`` through its
  (possibly refined) camera. One unknown per Gaussian instead of three: with a handful of views
  the lateral position of a pixel's Gaussian is barely constrained, and on the ray it still
  explains its own pixel. With cameras refined, the Gaussians move and turn with the camera
  that saw them (as :func:`~rayzer.models.gaussians.relift_scene` does), so poses and geometry
  do not have to undo each other's changes.
* **Appearance:** log-scales, rotations (a quaternion per Gaussian, composed with its camera's
  change), opacity logits and the SH colour (DC and, if present, higher bands).
* **Cameras (optional):** the pose update of :mod:`rayzer.refine.bundle`
  (:func:`~rayzer.refine.bundle.updated_cameras`: ``c2w @ [R(ω) | s·t]`` in each camera's frame,
  ``s`` = median depth, one shared focal scale); the anchor view (default the middle one) is
  held to fix the gauge, and the anchor's mean log-depth change is held near 0 (scale gauge).
* **Learning rates** (:class:`SplatFitConfig`) follow 3DGS's ratios (rotation 1e-3 < scale 5e-3
  < opacity 5e-2; higher SH bands 1/20 of the DC) but are larger, for a schedule of a few
  hundred steps instead of 30 000: colour and depth get ~1e-2-sized steps, cosine-decayed to
  10 % over the fit (3DGS decays its position rate too).
* **Speed on the CPU:** each step renders ``views_per_step`` views (3DGS renders one), and the
  early steps render at coarse sizes (``levels``); the rasterizer's cost grows with the
  Gaussians' screen footprint, so scales start capped at ``max_scale_px`` pixels of their own
  view (E-RayZer predicts needles of 10-40 px σ that make a step several times slower).
* **Loss:** L1 (3DGS's main term; robust to the outliers a poor start has).
* **Divergence guard:** a non-finite loss or parameter, a Gaussian growing beyond
  ``diverged_scale_px`` pixels, a camera change beyond the limits, or a final input-view PSNR
  below the starting one stops the fit and returns the input scene and cameras unchanged, with
  ``result.stopped`` saying why.

Conventions as in :mod:`rayzer.render` and :mod:`rayzer.refine.bundle`: images ``(V, 3, H, W)``
in [0, 1], OpenCV camera-to-world ``(V, 4, 4)``, pixel intrinsics ``(V, 4)``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from rayzer.geometry import (
    denormalize_intrinsics,
    matrix_to_quaternion,
    quaternion_multiply,
    rotation_error_deg,
    unproject_depth,
)
from rayzer.models.gaussians import GaussianScene
from rayzer.refine.bundle import (
    StepCallback,
    _level_sizes,
    _resize,
    rounded,
    updated_cameras,
)

log = logging.getLogger("rayzer.refine")


@dataclass
class SplatFitConfig:
    """Settings of :func:`fit_scene`.

    Attributes:
        steps: Adam steps in all, split over the levels by ``level_share`` (the remainder of
            the rounding to the last).
        levels: short sides of the coarse render sizes; sizes at or above the images' are
            dropped and the full size is always last.
        level_share: relative share of the steps per render size, coarse first, one per size
            actually used (the full size last); None: evenly. E.g. ``(3, 2, 1)`` with 32, 64
            and 128 px gives 50 / 33 / 17 of 100 steps (the coarse steps are cheaper).
        views_per_step: views rendered per step (a random subset, every view in turn).
        refine_cameras: also refine every non-anchor camera's pose and one shared focal scale.
        refine_focal: with ``refine_cameras``, whether the shared focal is refined too.
        max_scale_px: cap on a Gaussian's starting σ, in pixels of its own view at the scene's
            resolution (speed, see the module doc); None: no cap.
        lr_log_depth, lr_log_scale, lr_quat, lr_opacity, lr_sh_dc, lr_sh_rest: Adam learning
            rates of the log-depth change, log-scales, quaternions, opacity logits, the DC SH
            coefficient and the higher SH bands.
        lr_pose, lr_focal: Adam rates of the pose update (radians; median depths) and the log
            focal scale.
        seed: of the views' order.
        diverged_scale_px: a Gaussian's σ beyond this many pixels of its own view stops the fit.
        max_rotation_deg, max_translation, max_log_focal: limits on the camera change
            (translation in median depths).
        log_every_s: seconds between progress lines on the ``rayzer.refine`` logger.
        lr_camera_only: Adam rate of the pose update when only a camera is fitted to its image
            with the Gaussians frozen (:func:`fit_camera`, the leave-one-out figure's left-out
            camera): larger than ``lr_pose``, for a fit of a few steps and six unknowns.
    """

    steps: int = 100
    levels: tuple[int, ...] = (32, 64)
    level_share: tuple[float, ...] | None = None
    views_per_step: int = 2
    refine_cameras: bool = False
    refine_focal: bool = True
    max_scale_px: float | None = 3.0
    lr_log_depth: float = 1e-2
    lr_log_scale: float = 2e-2
    lr_quat: float = 4e-3
    lr_opacity: float = 1e-1
    lr_sh_dc: float = 5e-2
    lr_sh_rest: float = 2.5e-3
    lr_pose: float = 2e-3
    lr_focal: float = 1e-3
    seed: int = 0
    diverged_scale_px: float = 64.0
    max_rotation_deg: float = 20.0
    max_translation: float = 0.5
    max_log_focal: float = math.log(1.5)
    log_every_s: float = 5.0
    lr_camera_only: float = 5e-3


@dataclass
class SplatFitResult:
    """A fitted Gaussian scene.

    Attributes:
        scene: the fitted :class:`~rayzer.models.gaussians.GaussianScene` (its ``c2w`` /
            ``K_norm`` are the fitted cameras), or the input scene when ``stopped``.
        c2w: ``(V, 4, 4)`` the cameras it was fitted at; K: ``(V, 4)`` pixel intrinsics of the
            images' size (the input cameras when ``stopped``).
        psnr_before, psnr_after: PSNR (dB) of the input views rendered from the starting and
            the fitted scene (the objective's figure, not a held-out one).
        seconds: wall-clock time.
        history: ``(step, level short side, loss)`` per step.
        capped: fraction of Gaussians whose starting scale was capped at ``max_scale_px``.
        stopped: None, or why the fit was abandoned (the input scene is returned).
        reached_c2w, reached_K: the cameras the fit itself reached, kept or not: the fitted
            ones, or where they were when a guard stopped the fit (maybe not finite), e.g. to
            score what a stopped fit reached (:func:`fit_scene` always sets them).
    """

    scene: GaussianScene
    c2w: Tensor
    K: Tensor
    psnr_before: float = math.nan
    psnr_after: float = math.nan
    seconds: float = 0.0
    history: list[tuple[int, int, float]] = field(default_factory=list)
    capped: float = 0.0
    stopped: str | None = None
    reached_c2w: Tensor | None = None
    reached_K: Tensor | None = None

    def summary(self) -> dict[str, object]:
        """JSON-ready figures (for ``summary.json``)."""
        return {
            "train_psnr_before": rounded(self.psnr_before, 3),
            "train_psnr_after": rounded(self.psnr_after, 3),
            "steps": len(self.history),
            "capped_scales": round(self.capped, 4),
            "seconds": round(self.seconds, 2),
            "stopped": self.stopped,
        }


class _Diverged(RuntimeError):
    pass


def _check(images: Tensor, scene: GaussianScene) -> None:
    if not isinstance(scene, GaussianScene):
        raise ValueError(
            f"fit_scene needs a GaussianScene (E-RayZer, NAS3R), got {type(scene).__name__}"
        )
    b, vi = scene.input_depth.shape[:2]
    if b != 1:
        raise ValueError(f"fit_scene fits one scene at a time (batch 1), got a batch of {b}")
    if images.ndim != 4 or images.shape[:2] != (vi, 3):
        raise ValueError(
            f"images must be the scene's {vi} input views (V, 3, H, W), got {tuple(images.shape)}"
        )
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or infinite values")


def _background(background: Sequence[float] | Tensor | None, dev: torch.device) -> Tensor | None:
    """The background RGB as a float32 tensor on the scene's device (None: black)."""
    return (
        None if background is None else torch.as_tensor(background, dtype=torch.float32, device=dev)
    )


def _psnr(rgb: Tensor, target: Tensor) -> float:
    mse = float((rgb - target).square().mean())
    return -10.0 * math.log10(max(mse, 1e-10))


def render_views(
    scene: GaussianScene,
    c2w: Tensor,
    K: Tensor,
    height: int,
    width: int,
    *,
    background: Tensor | None = None,
    near: float = 0.01,
    chunk: int = 2,
) -> Tensor:
    """RGB ``(V, 3, H, W)`` of ``scene`` at cameras ``c2w (V, 4, 4)``, pixel ``K (V, 4)``,
    rendered ``chunk`` views at a time without gradients, clamped to [0, 1]."""
    from rayzer.render import rasterize

    args = scene.to_render_args()
    out = []
    with torch.no_grad():
        for s in range(0, c2w.shape[0], chunk):
            r = rasterize(
                **args,
                c2w=c2w[None, s : s + chunk].float(),
                K=K[None, s : s + chunk].float(),
                width=width,
                height=height,
                background=background,
                near=near,
            )
            out.append(r.rgb[0].clamp(0.0, 1.0))
    return torch.cat(out)


def capped_scales(scene: GaussianScene, max_scale_px: float | None) -> tuple[Tensor, Tensor]:
    """The starting scales of a fit of ``scene`` (one sample): ``(N, 3)`` float32, each σ
    capped at ``max_scale_px`` pixels of its own view at the scene's resolution (None: no
    cap), and ``(N,)`` whether a Gaussian was capped."""
    w = scene.input_depth.shape[-1]
    depth = scene.input_depth[0, :, 0].float().clamp_min(1e-6)  # (V, h, w)
    fx_grid = scene.K_norm[0, :, 0, None, None].float() * w  # focal in pixels of the grid
    scales = scene.scales[0].float().clamp_min(1e-9)
    if max_scale_px is None:
        return scales, torch.zeros(scales.shape[0], dtype=torch.bool, device=scales.device)
    cap = (max_scale_px * depth / fx_grid).reshape(-1, 1)  # world σ of that many px
    return torch.minimum(scales, cap), (scales > cap).any(-1)


def fit_scene(
    images: Tensor,
    scene: GaussianScene,
    *,
    background: Sequence[float] | Tensor | None = None,
    near: float = 0.01,
    config: SplatFitConfig | None = None,
    anchor: int | None = None,
    on_step: StepCallback | None = None,
) -> SplatFitResult:
    """Fit ``scene`` (and optionally its cameras) to its input views through the rasterizer.

    Args:
        images: ``(V, 3, H, W)`` in [0, 1], the scene's V input views in its order; any size
            (the Gaussians are rendered at it; the scene's own cameras are normalised).
        scene: a :class:`~rayzer.models.gaussians.GaussianScene` of one sample whose Gaussians
            sit on the pixel rays of its input views at ``scene.input_depth`` (as the explicit
            models build them); its ``c2w`` / ``K_norm`` are the starting cameras.
        background: RGB in [0, 1] behind the Gaussians, as the model renders (None: black).
        near: near plane of the renders (the model's ``near_plane``).
        config: :class:`SplatFitConfig`.
        anchor: the view whose pose is held when cameras are refined (default ``V // 2``).
        on_step: progress callback ``(done, total)`` after every step and once at the end.

    The fit runs in float32 on the scene's device (``scene.means.device``); ``images`` are
    moved there.

    Returns:
        :class:`SplatFitResult`; on divergence its scene and cameras are the input ones and
        ``stopped`` says why (also logged as a warning on ``rayzer.refine``).
    """
    cfg = config or SplatFitConfig()
    t0 = time.perf_counter()
    _check(images, scene)
    if cfg.steps < 1:
        raise ValueError(f"the number of fit steps must be >= 1, got {cfg.steps}")
    if cfg.views_per_step < 1:
        raise ValueError(f"views_per_step must be >= 1, got {cfg.views_per_step}")
    scene = scene.detach()
    # everything on the scene's device (the images may come from elsewhere), in float32
    dev = scene.means.device
    images = images.detach().to(dev, torch.float32).clone()
    v, _, hh, ww = images.shape
    anchor = v // 2 if anchor is None else anchor
    if not 0 <= anchor < v:
        raise ValueError(f"anchor must be a view index in [0, {v}), got {anchor}")
    bg = _background(background, dev)
    sizes = _level_sizes(cfg.levels, hh, ww)
    steps_per_level = _split_steps(cfg.steps, sizes, cfg.level_share)
    _, _, _, h, w = scene.input_depth.shape
    c2w0 = scene.c2w[0].float().clone()
    Knorm0 = scene.K_norm[0].float().clone()
    K0 = denormalize_intrinsics(Knorm0, hh, ww)

    # --- parameters (scene order: view-major, row-major pixels) ---
    depth0 = scene.input_depth[0, :, 0].float().clamp_min(1e-6)  # (V, h, w)
    fx_grid = Knorm0[:, 0, None, None] * w  # focal in pixels of the scene's grid, per view
    scales0, capped = capped_scales(scene, cfg.max_scale_px)
    start = replace(scene, scales=scales0[None])
    log_depth = torch.zeros(v, h, w, device=dev, requires_grad=True)
    log_scale = scales0.log().clone().requires_grad_()
    quat = scene.quats[0].float().clone().requires_grad_()
    opa = scene.opacities[0].float().clamp(1e-4, 1 - 1e-4)
    opa_logit = torch.logit(opa).clone().requires_grad_()
    sh_dc = scene.sh[0, :, :1].float().clone().requires_grad_()
    sh_rest = scene.sh[0, :, 1:].float().clone().requires_grad_()
    rotvec = torch.zeros(v, 3, device=dev, requires_grad=True)
    trans = torch.zeros(v, 3, device=dev, requires_grad=True)
    log_f = torch.zeros((), device=dev, requires_grad=True)
    free = torch.ones(v, 1, device=dev)
    free[anchor] = 0.0
    depth_scale = float(depth0.median())
    per_view = h * w

    def cameras(K: Tensor) -> tuple[Tensor, Tensor]:
        if not cfg.refine_cameras:
            return c2w0, K
        lf = log_f if cfg.refine_focal else None
        return updated_cameras(c2w0, K, rotvec * free, trans * free * depth_scale, lf)

    def gaussians() -> dict[str, Tensor]:
        """The current Gaussians as :func:`rasterize` takes them (batch 1)."""
        c2w, Kn = cameras(Knorm0)
        depth = depth0 * torch.exp(log_depth)
        means = unproject_depth(depth, c2w, Kn, normalized_intrinsics=True).reshape(-1, 3)
        q = F.normalize(quat, dim=-1)
        if cfg.refine_cameras:  # Gaussians turn with the camera that saw them
            turn = matrix_to_quaternion(c2w[:, :3, :3] @ c2w0[:, :3, :3].transpose(-1, -2))
            q = quaternion_multiply(turn.repeat_interleave(per_view, dim=0), q)
        return {
            "means": means[None],
            "quats": q[None],
            "scales": torch.exp(log_scale)[None],
            "opacities": torch.sigmoid(opa_logit)[None],
            "colors": torch.cat((sh_dc, sh_rest), dim=1)[None],
        }

    named = [
        ("Gaussian's depth", log_depth),
        ("Gaussian's scale", log_scale),
        ("Gaussian's rotation", quat),
        ("Gaussian's opacity", opa_logit),
        ("Gaussian's colour", sh_dc),
        ("Gaussian's colour", sh_rest),
        ("camera's rotation", rotvec),
        ("camera's translation", trans),
        ("focal scale", log_f),
    ]

    def guard(loss: Tensor) -> None:
        if not torch.isfinite(loss):
            raise _Diverged(f"the loss became {loss.item()}")
        with torch.no_grad():
            # every parameter: a NaN in one the loss does not show yet (a rotation, an
            # opacity) would fail the next render's input check instead of stopping the fit
            for name, p in named:
                if not torch.isfinite(p).all():
                    raise _Diverged(f"a {name} became non-finite")
            z = (depth0 * torch.exp(log_depth)).reshape(-1)
            px = (torch.exp(log_scale).amax(-1) * fx_grid.expand(v, h, w).reshape(-1) / z).max()
            if float(px) > cfg.diverged_scale_px:
                raise _Diverged(
                    f"a Gaussian grew to σ = {float(px):.0f} px > {cfg.diverged_scale_px:g} px"
                )
            if cfg.refine_cameras:
                _check_camera_change(rotvec, trans, cfg)
                if abs(float(log_f)) > cfg.max_log_focal:
                    raise _Diverged(f"the focal scale reached {math.exp(float(log_f)):.3f}")

    from rayzer.render import rasterize

    result = SplatFitResult(scene, c2w0, K0, capped=float(capped.float().mean()))
    result.psnr_before = _psnr(
        render_views(scene, c2w0, K0, hh, ww, background=bg, near=near), images
    )
    groups = [
        {"params": [log_depth], "lr": cfg.lr_log_depth},
        {"params": [log_scale], "lr": cfg.lr_log_scale},
        {"params": [quat], "lr": cfg.lr_quat},
        {"params": [opa_logit], "lr": cfg.lr_opacity},
        {"params": [sh_dc], "lr": cfg.lr_sh_dc},
        {"params": [sh_rest], "lr": cfg.lr_sh_rest},
    ]
    if cfg.refine_cameras:
        groups += [{"params": [rotvec, trans], "lr": cfg.lr_pose}]
        groups += [{"params": [log_f], "lr": cfg.lr_focal}] if cfg.refine_focal else []
    opt = torch.optim.Adam(groups, eps=1e-15)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, _cosine_decay(cfg.steps))
    gen = torch.Generator().manual_seed(cfg.seed)
    order: list[int] = []
    done, last_log = 0, time.perf_counter()

    def next_views() -> list[int]:
        """The next ``views_per_step`` views of a random order that visits every view in turn."""
        nonlocal order
        picked: list[int] = []
        while len(picked) < min(cfg.views_per_step, v):
            if not order:
                order = torch.randperm(v, generator=gen, device="cpu").tolist()
            i = order.pop()
            if i not in picked:
                picked.append(i)
        return picked

    try:
        for (lh, lw), n in zip(sizes, steps_per_level):
            level_images = _resize(images, lh, lw)
            Kl = K0 * K0.new_tensor([lw / ww, lh / hh, lw / ww, lh / hh])
            for _ in range(n):
                idx = next_views()
                opt.zero_grad(set_to_none=True)
                g = gaussians()
                c2w, Ks = cameras(Kl)
                out = rasterize(
                    **g,
                    c2w=c2w[None, idx],
                    K=Ks[None, idx],
                    width=lw,
                    height=lh,
                    background=bg,
                    near=near,
                )
                loss = (out.rgb[0] - level_images[idx]).abs().mean()
                if cfg.refine_cameras:  # scale gauge: the anchor's depth keeps its mean
                    loss = loss + log_depth[anchor].mean().square()
                guard(loss)
                loss.backward()
                opt.step()
                schedule.step()
                guard(loss.detach())  # the parameters after the step (next render's input)
                done += 1
                result.history.append((done, min(lh, lw), float(loss.detach())))
                if on_step is not None:
                    on_step(done, cfg.steps)
                now = time.perf_counter()
                if now - last_log >= cfg.log_every_s:
                    last_log = now
                    log.info(
                        "fit: %d px, step %d/%d, L1 %.4f, ETA %.0f s",
                        min(lh, lw),
                        done,
                        cfg.steps,
                        float(loss.detach()),
                        (now - t0) / done * (cfg.steps - done),
                    )
    except _Diverged as why:
        result.stopped = f"the Gaussian fit stopped: {why}; the input scene is kept"
        with torch.no_grad():  # where the cameras were when the guard fired
            c2w, Kn = cameras(Knorm0)
            result.reached_c2w = c2w.detach().clone()
            result.reached_K = denormalize_intrinsics(Kn.detach(), hh, ww)

    if on_step is not None:
        on_step(cfg.steps, cfg.steps)
    if result.stopped is None:
        with torch.no_grad():
            g = gaussians()
            c2w, Kn = cameras(Knorm0)
            fitted = replace(
                start,
                means=g["means"],
                quats=g["quats"],
                scales=g["scales"],
                opacities=g["opacities"],
                sh=g["colors"],
                input_depth=(depth0 * torch.exp(log_depth))[None, :, None],
                c2w=c2w[None],
                K_norm=Kn[None],
            )
        K_fit = denormalize_intrinsics(Kn, hh, ww)
        result.reached_c2w, result.reached_K = c2w, K_fit
        psnr = _psnr(render_views(fitted, c2w, K_fit, hh, ww, background=bg, near=near), images)
        if not math.isfinite(psnr) or psnr < result.psnr_before:
            result.stopped = (
                "the Gaussian fit did not raise the input views' PSNR "
                f"({result.psnr_before:.3f} -> {psnr:.3f} dB); the input scene is kept"
            )
        else:
            result.scene, result.c2w, result.K, result.psnr_after = fitted, c2w, K_fit, psnr
    if result.stopped is not None:
        result.psnr_after = result.psnr_before
        log.warning("%s", result.stopped)
    result.seconds = time.perf_counter() - t0
    log.info(
        "fit: input-view PSNR %.2f -> %.2f dB in %.1f s",
        result.psnr_before,
        result.psnr_after,
        result.seconds,
    )
    return result


def _check_camera_change(rotvec: Tensor, trans: Tensor, cfg: SplatFitConfig) -> None:
    """Stop a fit (:class:`_Diverged`) whose pose update of any camera, ``rotvec`` (radians)
    and ``trans`` (median depths), both ``(V, 3)``, is beyond ``cfg.max_rotation_deg`` or
    ``cfg.max_translation``: the limits of :func:`fit_scene` and :func:`fit_camera`."""
    rot = math.degrees(float(rotvec.norm(dim=-1).max()))
    if rot > cfg.max_rotation_deg:
        raise _Diverged(f"a camera rotated by {rot:.1f}° > {cfg.max_rotation_deg}°")
    tr = float(trans.norm(dim=-1).max())
    if tr > cfg.max_translation:
        raise _Diverged(f"a camera moved by {tr:.2f} > {cfg.max_translation} median depths")


def _cosine_decay(steps: int) -> Callable[[int], float]:
    """The learning-rate factor of step ``i`` of ``steps``: cosine from 1 down to 0.1."""
    return lambda i: 0.1 + 0.45 * (1 + math.cos(math.pi * min(i / steps, 1.0)))


def _split_steps(
    steps: int, sizes: list[tuple[int, int]], share: Sequence[float] | None = None
) -> list[int]:
    """Steps per level: ``share`` of the steps each (default: equal shares; the coarse levels
    are cheap and widen the basin, the full size removes their blur), rounded down, the
    remainder to the last."""
    if share is None:
        share = [1.0] * len(sizes)
    if len(share) != len(sizes) or any(not math.isfinite(x) or x < 0 for x in share):
        raise ValueError(
            f"level_share needs one share >= 0 per render size {[min(s) for s in sizes]}, "
            f"got {tuple(share)}"
        )
    if sum(share) <= 0:
        raise ValueError(f"level_share must not be all zero, got {tuple(share)}")
    per = [math.floor(steps * x / sum(share) + 1e-9) for x in share]
    per[-1] += steps - sum(per)
    return per


def subscene(scene: GaussianScene, views: Sequence[int]) -> GaussianScene:
    """The Gaussians and cameras of some input ``views`` of a one-sample ``scene`` (in that
    order), e.g. all but a held-out view."""
    h, w = scene.input_depth.shape[-2:]
    dev = scene.means.device
    idx = torch.as_tensor(list(views), dtype=torch.long, device=dev)
    per = h * w
    g = (idx[:, None] * per + torch.arange(per, device=dev)[None]).reshape(-1)
    return replace(
        scene,
        means=scene.means[:, g],
        quats=scene.quats[:, g],
        scales=scene.scales[:, g],
        opacities=scene.opacities[:, g],
        sh=scene.sh[:, g],
        input_depth=scene.input_depth[:, idx],
        c2w=scene.c2w[:, idx],
        K_norm=scene.K_norm[:, idx],
    )


#: Adam steps of each fit of the left-out camera in :func:`held_out_fit_psnr` (six unknowns).
HELD_OUT_CAMERA_STEPS = 24

#: What ``summary.json`` says about the leave-one-out figure of :func:`held_out_fit_psnr`.
HELD_OUT_NOTE = (
    "psnr_before / psnr_after (the headline): the left-out view rendered from the other views' "
    "Gaussians (as predicted / fitted without it), each time at the left-out camera fitted to "
    "its image with those Gaussians frozen: its pose only (6 numbers: 3 rotation, 3 translation; "
    "the focal shared and frozen), a few Adam steps from where 'placed' puts it, kept only where "
    "it raises the PSNR. The fit sees the left-out image only through those 6 numbers, so the "
    "figure measures the Gaussians, not a rule for where the camera goes. Not a strict hold-out: "
    "the model predicted the cameras and the other views' Gaussians from all the photos, the "
    "left-out one included. 'placed': the same without "
    "the camera fit (before: the predicted pose; after: its predicted pose relative to its "
    "neighbour in input order, moved with that neighbour's fitted change, which takes the "
    "photos to be in capture order)."
)


@dataclass
class CameraFit:
    """One camera's pose fitted to its image with the Gaussians frozen (:func:`fit_camera`).

    Attributes:
        c2w: ``(4, 4)`` the fitted camera, or the starting one when the fit stopped or did not
            raise the PSNR.
        psnr_before, psnr_after: PSNR (dB) of the image rendered at the starting / returned
            camera (whole image, background included).
        rotation_deg, centre_shift: how far ``c2w`` is from the start (degrees; scene units).
        steps: Adam steps run.
        stopped: None, or why the fit was abandoned (the starting camera is returned).
        kept: whether ``c2w`` is the fitted camera (False: the start, also when the fit ran
            but did not raise the PSNR).
    """

    c2w: Tensor
    psnr_before: float
    psnr_after: float
    rotation_deg: float = 0.0
    centre_shift: float = 0.0
    steps: int = 0
    stopped: str | None = None
    kept: bool = False

    def summary(self) -> dict[str, object]:
        """JSON-ready figures."""
        return {
            "camera": "fitted" if self.kept else "start",
            "psnr_before": rounded(self.psnr_before, 3),
            "psnr_after": rounded(self.psnr_after, 3),
            "rotation_deg": round(self.rotation_deg, 4),
            "centre_shift": round(self.centre_shift, 5),
            "steps": self.steps,
            "stopped": self.stopped,
        }


def fit_camera(
    scene: GaussianScene,
    image: Tensor,
    c2w: Tensor,
    K: Tensor,
    *,
    steps: int = HELD_OUT_CAMERA_STEPS,
    background: Sequence[float] | Tensor | None = None,
    near: float = 0.01,
    config: SplatFitConfig | None = None,
    on_step: StepCallback | None = None,
) -> CameraFit:
    """Fit one camera's pose to ``image`` with ``scene``'s Gaussians frozen.

    The Gaussian counterpart of fitting a left-out camera for the ``--refine`` figure
    (:mod:`rayzer.refine.held_out`: pose only, focal frozen, the scene held): the pose update of
    :func:`fit_scene` (:func:`~rayzer.refine.bundle.updated_cameras`, translation in median
    depths of the scene), its coarse-to-fine render sizes (``config.levels``, steps split
    evenly), L1 loss, cosine-decayed Adam at ``config.lr_camera_only`` and its camera limits
    (``max_rotation_deg``, ``max_translation``). No Gaussian parameter changes.

    Args:
        scene: the Gaussians (one sample), e.g. the other views' fitted scene.
        image: ``(3, H, W)`` in [0, 1], the view to fit the camera to.
        c2w, K: the starting camera, ``(4, 4)`` OpenCV camera-to-world and ``(4,)`` pixel
            intrinsics of ``image``'s size.
        steps: Adam steps (0: only the PSNR at ``c2w``).
        on_step: ``(done, steps)`` after every step.

    Returns:
        :class:`CameraFit`; the fitted camera is returned only when its PSNR is not below the
        starting one's (the objective is L1, the figure PSNR), else the start.
    """
    from rayzer.render import rasterize

    cfg = config or SplatFitConfig()
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"the camera fit's steps must be an integer >= 0, got {steps!r}")
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be (3, H, W), got {tuple(image.shape)}")
    dev = scene.means.device
    frozen = scene.detach()
    # copies: a model's tensors may be inference-mode ones, which autograd cannot save
    image = image.detach().to(dev, torch.float32).clone()
    hh, ww = image.shape[-2:]
    c2w0 = c2w.detach().to(dev, torch.float32).reshape(1, 4, 4).clone()
    K0 = K.detach().to(dev, torch.float32).reshape(1, 4).clone()
    bg = _background(background, dev)

    def psnr_at(cam: Tensor) -> float:
        return _psnr(render_views(frozen, cam, K0, hh, ww, background=bg, near=near), image[None])

    before = psnr_at(c2w0)
    result = CameraFit(c2w0[0].clone(), before, before)
    if steps == 0:
        return result
    args = {k: x.clone() if torch.is_tensor(x) else x for k, x in frozen.to_render_args().items()}
    depth_scale = float(frozen.input_depth.float().median())
    rotvec = torch.zeros(1, 3, device=dev, requires_grad=True)
    trans = torch.zeros(1, 3, device=dev, requires_grad=True)

    def camera() -> Tensor:
        return updated_cameras(c2w0, K0, rotvec, trans * depth_scale, None)[0]

    opt = torch.optim.Adam([rotvec, trans], lr=cfg.lr_camera_only, eps=1e-15)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, _cosine_decay(steps))
    sizes = _level_sizes(cfg.levels, hh, ww)
    try:
        for (lh, lw), n in zip(sizes, _split_steps(steps, sizes)):
            target = _resize(image[None], lh, lw)
            Kl = K0 * K0.new_tensor([lw / ww, lh / hh, lw / ww, lh / hh])
            for _ in range(n):
                opt.zero_grad(set_to_none=True)
                out = rasterize(
                    **args, c2w=camera()[None], K=Kl[None], width=lw, height=lh,
                    background=bg, near=near,
                )  # fmt: skip
                loss = (out.rgb[0] - target).abs().mean()
                if not torch.isfinite(loss):
                    raise _Diverged(f"the loss became {loss.item()}")
                loss.backward()
                opt.step()
                schedule.step()
                result.steps += 1
                with torch.no_grad():
                    if not (torch.isfinite(rotvec).all() and torch.isfinite(trans).all()):
                        raise _Diverged("the camera became non-finite")
                    _check_camera_change(rotvec, trans, cfg)
                if on_step is not None:
                    on_step(result.steps, steps)
    except _Diverged as why:
        result.stopped = f"the camera fit stopped: {why}; the starting camera is kept"
        log.warning("%s", result.stopped)
        if on_step is not None:  # the count ends at ``steps`` also when it stopped early
            on_step(steps, steps)
        return result
    with torch.no_grad():
        fitted = camera()
    after = psnr_at(fitted)
    if math.isfinite(after) and after >= before:
        result.c2w, result.psnr_after, result.kept = fitted[0], after, True
        result.rotation_deg = float(rotation_error_deg(fitted[0, :3, :3], c2w0[0, :3, :3]))
        result.centre_shift = float((fitted[0, :3, 3] - c2w0[0, :3, 3]).norm())
    return result


@dataclass
class SplatHeldOut:
    """Leave-one-out figure of a Gaussian fit.

    Attributes:
        view: the held-out view.
        psnr_before, psnr_after: the headline: PSNR (dB) of that view rendered from the other
            views' Gaussians, unfitted and fitted on the other views (whole image, background
            included: what a user sees), each at the left-out camera fitted to its image with
            those Gaussians frozen (:func:`fit_camera`; :data:`HELD_OUT_NOTE`); the ``placed``
            figures when ``camera_steps`` is 0.
        result: the fit of the other views.
        seconds: wall-clock time of the whole figure.
        placed_before, placed_after: the same at the placed camera, without the camera fit
            (before: the predicted pose; after: moved with its neighbour ``followed``).
        followed: the view whose fitted change the left-out camera follows (-1: unknown).
        camera_steps: Adam steps of each camera fit (0: none).
        camera_before, camera_after: the two camera fits (None without).
    """

    view: int
    psnr_before: float
    psnr_after: float
    result: SplatFitResult
    seconds: float = 0.0
    placed_before: float = math.nan
    placed_after: float = math.nan
    followed: int = -1
    camera_steps: int = 0
    camera_before: CameraFit | None = None
    camera_after: CameraFit | None = None

    def summary(self) -> dict[str, object]:
        fitted = self.camera_before is not None and self.camera_after is not None
        return {
            "view": self.view,
            "psnr_before": rounded(self.psnr_before, 3),
            "psnr_after": rounded(self.psnr_after, 3),
            "headline": "camera fitted" if fitted else "placed",
            "placed": {
                "psnr_before": rounded(self.placed_before, 3),
                "psnr_after": rounded(self.placed_after, 3),
                "follows_view": self.followed if self.followed >= 0 else None,
            },
            "camera_fitted": {
                "steps": self.camera_steps,
                "before": self.camera_before.summary(),  # type: ignore[union-attr]
                "after": self.camera_after.summary(),  # type: ignore[union-attr]
            }
            if fitted
            else None,
            "note": HELD_OUT_NOTE,
            "fit_stopped": self.result.stopped,
            "seconds": round(self.seconds, 2),
        }


def _neighbour_view(others: Sequence[int], view: int, c2w: Tensor) -> int:
    """Position in ``others`` (the fitted views, input order) of ``view``'s neighbour: the
    nearest in input order (view - 1 or view + 1); of two, the one whose camera centre in
    ``c2w`` (V, 4, 4, all views) is nearer ``view``'s, the earlier on a tie.

    Input order first, not the nearest centre of all views: a model's predicted centres of a
    short clip can coincide (the tiny models' do on the fox clip), which leaves that to rounding.
    """
    gap = [abs(i - view) for i in others]
    dist = torch.linalg.norm(c2w[others, :3, 3] - c2w[view, :3, 3], dim=-1).tolist()
    return min(range(len(others)), key=lambda k: (gap[k], dist[k], k))


def held_out_fit_psnr(
    images: Tensor,
    scene: GaussianScene,
    view: int,
    *,
    background: Sequence[float] | Tensor | None = None,
    near: float = 0.01,
    config: SplatFitConfig | None = None,
    anchor: int | None = None,
    on_step: StepCallback | None = None,
    camera_steps: int = HELD_OUT_CAMERA_STEPS,
) -> SplatHeldOut:
    """Leave ``view`` out (its image and its Gaussians), fit the others (:func:`fit_scene`), and
    render ``view`` from the other views' Gaussians before and after, at its camera fitted to
    its image with those Gaussians frozen (:func:`fit_camera`, ``camera_steps`` steps each).

    Where the left-out camera starts (the ``placed`` figures, also reported): before, the
    scene's (predicted) pose; after, when cameras are refined, it moves with its neighbour in
    input order (``view`` ± 1; of two, the one with the nearer camera centre): its pose
    relative to that view stays the predicted one, and it takes the fitted shared focal scale.
    That rule takes the photos to be in capture order and decides much of the placed figure
    (docs/benchmarks/splat-fit/README.md, "The left-out view's camera"); the camera fit removes
    that choice: the left-out image is used only to fit its camera's pose (6 DoF; the focal
    stays the shared one), never the Gaussians. Needs V >= 3.

    Args:
        anchor: the view (an index of the whole scene) whose pose the fit holds, as in the
            full fit (:func:`fit_scene`): pass the model's canonical view, so the held-out fit
            is judged in the same gauge as the fit it vouches for. Default ``V // 2``; when
            ``view`` is the anchor, the middle one of the other views.
        on_step: ``(done, total)`` over the fit and both camera fits
            (``config.steps + 2 * camera_steps``).
        camera_steps: Adam steps of each camera fit; 0: none (the headline is the placed
            figure).
    """
    t0 = time.perf_counter()
    _check(images, scene)
    cfg = config or SplatFitConfig()
    v, _, hh, ww = images.shape
    if v < 3:
        raise ValueError(f"a held-out figure needs at least 3 views, got {v}")
    if not 0 <= view < v:
        raise ValueError(f"view must be in [0, {v}), got {view}")
    anchor = v // 2 if anchor is None else anchor
    if not 0 <= anchor < v:
        raise ValueError(f"anchor must be a view index in [0, {v}), got {anchor}")
    if isinstance(camera_steps, bool) or not isinstance(camera_steps, int) or camera_steps < 0:
        raise ValueError(f"camera_steps must be an integer >= 0, got {camera_steps!r}")
    dev = scene.means.device
    images = images.detach().to(dev, torch.float32)
    bg = _background(background, dev)
    others = [i for i in range(v) if i != view]
    anchor = others.index(anchor) if anchor in others else len(others) // 2
    part = subscene(scene.detach(), others)
    c2w = scene.c2w[0, view : view + 1].float()
    K = denormalize_intrinsics(scene.K_norm[0, view : view + 1].float(), hh, ww)
    target = images[view]
    total = cfg.steps + 2 * camera_steps

    def phase(offset: int) -> dict[str, StepCallback]:
        if on_step is None:
            return {}
        return {"on_step": lambda done, _n: on_step(offset + done, total)}

    camera = {"steps": camera_steps, "background": bg, "near": near, "config": cfg}
    fit = fit_scene(
        images[others], part, background=bg, near=near, config=cfg, anchor=anchor, **phase(0)
    )
    cam_before = fit_camera(part, target, c2w[0], K[0], **camera, **phase(cfg.steps))
    # the held-out view shares the fitted focal scale (1 unless cameras were refined) and
    # follows its neighbour's camera change (identity unless cameras were refined)
    focal_scale = float(fit.K[anchor, 0] / (part.K_norm[0, anchor, 0] * ww))
    K_after = torch.cat((K[:, :2] * focal_scale, K[:, 2:]), dim=-1)
    near_view = _neighbour_view(others, view, scene.c2w[0].float())
    change = fit.c2w[near_view].float() @ torch.linalg.inv(part.c2w[0, near_view].float())
    c2w_after = change @ c2w
    cam_after = fit_camera(
        fit.scene, target, c2w_after[0], K_after[0], **camera, **phase(cfg.steps + camera_steps)
    )
    fitted = camera_steps > 0
    return SplatHeldOut(
        view,
        cam_before.psnr_after,
        cam_after.psnr_after,
        fit,
        seconds=time.perf_counter() - t0,
        placed_before=cam_before.psnr_before,
        placed_after=cam_after.psnr_before,
        followed=others[near_view],
        camera_steps=camera_steps,
        camera_before=cam_before if fitted else None,
        camera_after=cam_after if fitted else None,
    )
