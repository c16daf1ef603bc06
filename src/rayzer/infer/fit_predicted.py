"""Per-scene fit of a model's Gaussian scene to the input views (``rayzer infer --fit STEPS``).

The one place where a prediction (a :class:`~rayzer.models.gaussians.GaussianScene` and its
cameras) is handed to :func:`rayzer.refine.splat.fit_scene` and judged by the leave-one-out
figure (:func:`rayzer.refine.splat.held_out_fit_psnr`): the fitted scene is kept only when
neither fit (of all views, of all but the left-out one) stopped and the left-out view's PSNR did
not fall.

Conventions as in :mod:`rayzer.infer.predict`: images ``(V, 3, H, W)`` in [0, 1], cameras
OpenCV camera-to-world ``(V, 4, 4)`` with pixel intrinsics ``(V, 4)``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from rayzer.geometry import rotation_error_deg
from rayzer.infer.model import LoadedModel
from rayzer.infer.predict import Cameras

if TYPE_CHECKING:
    from rayzer.data.images import PreparedViews

log = logging.getLogger("rayzer.refine")

#: The stages ``progress(done, total, stage)`` names.
FIT_STAGE = "fitting the Gaussians"
FIT_HELD_OUT_STAGE = "leave-one-out check of the fit"


def check_fit_steps(steps: int) -> None:
    """Refuse a ``--fit`` step count that is not an integer >= 0."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"--fit must be a number of steps >= 0 (0: no fit), got {steps!r}")


def check_fit_model(model: LoadedModel, steps: int) -> None:
    """Refuse ``--fit`` before any work for a model without Gaussians."""
    if steps and not model.model.capabilities.outputs_gaussians:
        raise ValueError(
            f"--fit needs a model with 3D Gaussians (E-RayZer, NAS3R); {model.model.title()} "
            f"({model.checkpoint or 'in-memory model'}) has none"
        )


def check_fit_size(fit_size: int | None, steps: int) -> None:
    """Refuse a ``--fit-size`` that is not a positive integer, or one given without ``--fit``."""
    if fit_size is None:
        return
    if isinstance(fit_size, bool) or not isinstance(fit_size, int) or fit_size < 1:
        raise ValueError(f"--fit-size must be a positive number of pixels, got {fit_size!r}")
    if not steps:
        raise ValueError(
            "--fit-size needs --fit STEPS (it is the size the Gaussians are fitted at)"
        )


def check_fit_patch(fit_size: int, model: LoadedModel) -> None:
    """Refuse, before any photo is decoded, a ``--fit-size`` that is not a multiple of the
    model's patch size in ``[patch, MAX_SIZE]``."""
    from rayzer.data.images import MAX_SIZE

    p = model.patch_size
    if fit_size % p or not p <= fit_size <= MAX_SIZE:
        raise ValueError(
            f"--fit-size {fit_size} must be a multiple of the model's patch size {p} between "
            f"{p} and {MAX_SIZE}"
        )


def fit_photo_hw(
    fit_size: int, model: LoadedModel, views: PreparedViews, aspect: str
) -> tuple[int, int]:
    """``(H, W)`` of the photos the fit sees at short side ``fit_size``: as the model input's
    (:func:`rayzer.data.images.output_size`), refused when ``fit_size`` is not a positive
    multiple of the model's patch size or would change the aspect ratio (``--aspect keep``:
    the long side is rounded to the patch size), i.e. the crop box of the model's input."""
    from rayzer.data.images import output_size

    check_fit_patch(fit_size, model)
    hw = output_size(fit_size, model.patch_size, aspect, views.views[0].source_size)
    if hw[0] * views.width != hw[1] * views.height:
        raise ValueError(
            f"--fit-size {fit_size}: the photos would be {hw[1]}x{hw[0]}, not the aspect ratio of "
            f"the model input {views.width}x{views.height} (--aspect {aspect} rounds the long "
            "side to the patch size); choose a --fit-size whose long side matches, or --aspect "
            "square"
        )
    return hw


def fit_photos(model: LoadedModel, views: PreparedViews, fit_size: int, aspect: str) -> Tensor:
    """The model's input ``views`` at short side ``fit_size`` for the fit: ``(V, 3, H, W)`` in
    [0, 1] on the model's device, fitted from the same decode of the same files / frames with
    the same crop (resize to cover + centre crop, :mod:`rayzer.data.images`), so the same field
    of view and the same normalised intrinsics. ``views`` must have been loaded with
    ``also_sizes=(fit_size,)`` (each photo is decoded once)."""
    from rayzer.infer.predict import as_images

    hw = fit_photo_hw(fit_size, model, views, aspect)  # refuses a bad size or aspect ratio
    if fit_size not in views.at_sizes:
        raise ValueError(
            f"--fit-size {fit_size}: {views.source} was not prepared at {fit_size} px "
            "(load it with also_sizes=(fit_size,))"
        )
    photos = views.at_sizes[fit_size]
    if tuple(photos.shape[1:3]) != hw:
        raise ValueError(
            f"--fit-size {fit_size}: {views.source} was prepared at {photos.shape[2]}x"
            f"{photos.shape[1]}, not {hw[1]}x{hw[0]}"
        )
    return as_images(photos, model)


def fit_predicted_scene(
    model: LoadedModel,
    images: Tensor,
    scene: Any,
    cams: Cameras,
    steps: int,
    *,
    fit_cameras: bool = False,
    held_out: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
    on_reached: Callable[[Cameras], None] | None = None,
) -> tuple[Any, Cameras, dict[str, Any]]:
    """Fit the model's Gaussian ``scene`` of ``images`` (its input views, ``(V, 3, H, W)``, at
    the model's input size or another one with the same crop, see :func:`fit_photos`;
    the Gaussians are rendered at it) on the scene's device (the model's) with ``steps`` Adam steps
    (:class:`rayzer.refine.splat.SplatFitConfig` defaults), the cameras too when
    ``fit_cameras`` (the canonical view's held; the middle one if none).

    Returns:
        ``(scene, cameras, report)``: the fitted scene and cameras when kept, else the input
        ones (``report["scene"]`` says which: ``"fitted"`` or ``"input"``, with ``stopped`` or
        ``rejected`` saying why: also when the fit without the left-out view stopped); the
        report has the input-view PSNR before/after, the leave-one-out PSNR of view
        ``(V // 2 + 1) % V`` before/after (when ``held_out`` and V >= 3: ``report["held_out"]``,
        :meth:`rayzer.refine.splat.SplatHeldOut.summary`; the headline, which decides, with
        the left-out camera fitted to its image with the scene frozen, and at the placed
        camera) and the seconds;
        with ``fit_cameras``, ``report["camera_change"]`` (:func:`camera_change`) says how far
        the fit moved the cameras, also when they are not kept (absent when they are not
        finite); ``report["fit_size"]``: ``[H, W]`` of ``images``. The returned cameras' ``K``
        refer to ``cams``' size, whatever the size of ``images``.

    ``on_reached``: called with the cameras the fit reached
    (:attr:`rayzer.refine.splat.SplatFitResult.reached_c2w`), kept, rejected or where a guard
    stopped the fit (maybe not finite), e.g. to score what a fit that was not kept would have
    given (``rayzer bench real-cameras``).
    """
    from rayzer.refine.splat import (
        HELD_OUT_CAMERA_STEPS,
        SplatFitConfig,
        fit_scene,
        held_out_fit_psnr,
    )

    t0 = time.perf_counter()
    cfg = SplatFitConfig(steps=steps, refine_cameras=fit_cameras)
    # on the scene's device, as the model that predicted it (fit_scene moves the images there)
    start = scene.detach()
    images = images.detach()
    v = images.shape[0]
    with_held_out = held_out and v >= 3
    # the leave-one-out check: a fit of the other views and two fits of the left-out camera
    check_steps = steps + 2 * HELD_OUT_CAMERA_STEPS
    total = steps + (check_steps if with_held_out else 0)
    render = {"background": model.model.cfg.background, "near": model.model.cfg.near_plane}

    def stage(offset: int, name: str) -> dict[str, Any]:
        if progress is None:
            return {}
        return {"on_step": lambda done, _n: progress(offset + done, total, name)}

    # the canonical view holds the gauge: its camera stays the identity cameras.json says it is
    anchor = cams.canonical
    result = fit_scene(images, start, config=cfg, anchor=anchor, **render, **stage(0, FIT_STAGE))
    report: dict[str, Any] = {
        "steps": steps,
        "cameras_fitted": fit_cameras,
        "fit_size": [int(images.shape[-2]), int(images.shape[-1])],
        **result.summary(),
    }
    report["rejected"] = None
    if with_held_out:
        view = (v // 2 + 1) % v
        fig = held_out_fit_psnr(
            images,
            start,
            view,
            config=cfg,
            anchor=anchor,  # the same gauge as the fit it vouches for
            **render,
            **stage(steps, FIT_HELD_OUT_STAGE),
        )
        report["held_out"] = fig.summary()
        log.info(
            "fit: held-out view %d PSNR %.2f -> %.2f dB (its camera fitted to it with the "
            "scene frozen; at the placed camera %.2f -> %.2f dB)",
            view,
            fig.psnr_before,
            fig.psnr_after,
            fig.placed_before,
            fig.placed_after,
        )
        if result.stopped is None and fig.result.stopped is not None:
            # nothing was fitted for the figure: 'after' is 'before', which vouches for nothing
            report["rejected"] = (
                f"the leave-one-out check could not be made ({fig.result.stopped} in the fit "
                f"without view {view}); the model's scene is kept"
            )
            log.warning("fit: %s", report["rejected"])
        elif result.stopped is None and not (
            math.isfinite(fig.psnr_after) and fig.psnr_after >= fig.psnr_before
        ):
            report["rejected"] = (
                f"the leave-one-out PSNR of view {view} fell ({fig.psnr_before:.3f} -> "
                f"{fig.psnr_after:.3f} dB) although the input views' PSNR rose "
                f"({result.psnr_before:.3f} -> {result.psnr_after:.3f} dB): the fitted scene "
                "reproduces the views it was fitted to but predicts a left-out view worse; the "
                "model's scene is kept"
            )
            log.warning("fit: %s", report["rejected"])
    dev = cams.c2w.device  # the cameras stay where they were (the scene's device or not)
    # the fit's pixel intrinsics are those of the photos it saw: back to the cameras' size
    hh, ww = images.shape[-2:]
    to_cams = torch.tensor([cams.width / ww, cams.height / hh] * 2, dtype=torch.float32)

    def cams_k(K: Tensor) -> Tensor:
        return (K.float().cpu() * to_cams).to(dev)

    if result.reached_c2w is not None:
        reached = replace(cams, c2w=result.reached_c2w.float().to(dev), K=cams_k(result.reached_K))
        finite = bool(torch.isfinite(reached.c2w).all() and torch.isfinite(reached.K).all())
        if fit_cameras and finite:
            report["camera_change"] = camera_change(cams, reached)
        if on_reached is not None:
            on_reached(reached)
    kept = result.stopped is None and report["rejected"] is None
    report["scene"] = "fitted" if kept else "input"
    report["total_seconds"] = round(time.perf_counter() - t0, 2)
    if not kept:
        return scene, cams, report
    fitted_cams = replace(cams, c2w=result.c2w.float().to(dev), K=cams_k(result.K))
    return result.scene, fitted_cams, report


def camera_change(before: Cameras, after: Cameras) -> dict[str, float]:
    """How far ``after`` moved from ``before`` (JSON-ready, for ``summary.json``): the largest
    rotation (degrees) and camera-centre shift (the scene's units) over the views, and the
    focal scale (mean of ``fx`` after / before)."""
    b, a = before.c2w.double().cpu(), after.c2w.double().cpu()
    rot = rotation_error_deg(b[:, :3, :3], a[:, :3, :3])
    shift = (a[:, :3, 3] - b[:, :3, 3]).norm(dim=-1)
    focal = after.K[:, 0].double().cpu() / before.K[:, 0].double().cpu()
    return {
        "max_rotation_deg": round(float(rot.max()), 4),
        "max_centre_shift": round(float(shift.max()), 5),
        "focal_scale": round(float(focal.mean()), 5),
    }
