"""Test-time refinement of a model's predicted cameras on its own depth.

The one place where a prediction (cameras, rendered depth and opacity) is handed to
:func:`rayzer.refine.refine_with_report`; ``rayzer infer --refine`` and the real-scene camera
benchmark (``rayzer bench real-cameras``) both call :func:`refine_predicted_cameras`.

Conventions as in :mod:`rayzer.infer.predict`: images ``(V, 3, H, W)`` in [0, 1], cameras
OpenCV camera-to-world ``(V, 4, 4)`` with pixel intrinsics ``(V, 4)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rayzer.geometry import resize_intrinsics
from rayzer.infer.predict import Cameras


def refine_predicted_cameras(
    images: Tensor,
    cams: Cameras,
    depth: Tensor,
    alpha: Tensor | None,
    steps: int,
    *,
    held_out: bool = True,
    held: list[int] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    on_reached: Callable[[Cameras], None] | None = None,
    device: torch.device | str | None = None,
) -> tuple[Cameras, dict[str, Any]]:
    """Refine predicted cameras with ``steps`` iterations of photometric bundle adjustment.

    Args:
        images: ``(V, 3, H', W')`` the views to refine on. They may be larger than the model's
            input (``cams.height × cams.width``), e.g. the same photos fitted to 128 px for a
            model trained at 64 px: the intrinsics are rescaled and the depth and opacity
            resampled (bilinear; unknown depth stays unknown) to ``H' × W'``; the views must be
            fitted with the same crop.
        cams: the model's cameras of the ``cams.height × cams.width`` input.
        depth: ``(V, h, w)`` or ``(V, 1, h, w)`` the model's z-depth at ``cams``' size.
        alpha: same shape, the render's accumulated opacity, or None. Depth counts only where
            it is at least :data:`rayzer.refine.bundle.MIN_ALPHA` (elsewhere the pixel is mostly
            background and its depth a blend).
        steps: iterations (>= 1).
        held_out: also compute the leave-one-out figure, which can reject the refined cameras
            (:func:`rayzer.refine.refine_with_report`).
        held: views whose cameras stay exactly as given (e.g. those that feature matches
            registered, ``rayzer infer --init-cameras matches``); only the others move and the
            shared focal scale is held (:func:`rayzer.refine.refine_with_report`).
        progress: ``(done, total, stage)`` as the refinement goes
            (:data:`rayzer.refine.report.ReportProgress`).
        on_reached: called with the cameras (of ``H' × W'`` images) the refinement itself
            reached, also when they are not kept (rejected or stopped), e.g. to score them; not
            called when no refinement ran.
        device: where the refinement runs (default: the images' device, e.g. the model's);
            ``cams``, ``depth`` and ``alpha`` are moved there.
    Returns:
        ``(cameras of H' × W' images, report)``: the cameras to keep (the refined ones, or the
        input ones when the refinement stopped or was rejected; ``report["cameras"]`` says which)
        and the report of :func:`rayzer.refine.refine_with_report`; the cameras on ``cams``'
        device, wherever the refinement ran.
    """
    from rayzer.refine import refine_with_report
    from rayzer.refine.bundle import MIN_ALPHA, _resize_depth
    from rayzer.refine.depth import clean_depth

    depth = depth[:, 0] if depth.ndim == 4 else depth
    hw = tuple(images.shape[-2:])
    K = cams.K
    if hw != (cams.height, cams.width):
        K = resize_intrinsics(cams.K, (cams.height, cams.width), hw).float()
        # unknown pixels (0, where nothing was rendered) stay unknown: plain bilinear would
        # blend them into their known neighbours as depths pulled towards the camera
        depth = _resize_depth(clean_depth(depth), hw[0], hw[1])
    if alpha is not None:  # as refine_scene: nearly transparent pixels' depth is noise
        alpha = alpha[:, 0] if alpha.ndim == 4 else alpha
        if tuple(alpha.shape[-2:]) != hw:
            alpha = _resample(alpha, hw)
        depth = torch.where(alpha >= MIN_ALPHA, depth, torch.zeros_like(depth))
    dev = images.device if device is None else torch.device(device)
    out = cams.c2w.device  # the cameras come back where they were

    def back(c2w: Tensor, K: Tensor) -> Cameras:
        return replace(cams, c2w=c2w.to(out), K=K.to(out), height=hw[0], width=hw[1])

    extra: dict[str, Any] = {}
    if on_reached is not None:  # only when asked: stand-ins of refine_with_report need not take it
        extra["on_reached"] = lambda c2w, K: on_reached(back(c2w, K))
    if held:  # likewise only when given
        extra["held"] = list(held)
    # the canonical view holds the gauge, so cameras.json's identity camera stays the identity
    # (NAS3R's is view 0, the other models' the middle one)
    c2w, K, report = refine_with_report(
        images.to(dev),
        cams.c2w.to(dev),
        K.to(dev),
        depth.to(dev),
        steps,
        held_out=held_out,
        anchor=cams.canonical,
        progress=progress,
        **extra,
    )
    return back(c2w, K), report


def _resample(maps: Tensor, hw: tuple[int, ...]) -> Tensor:
    """``(V, h, w)`` per-view maps resized to ``hw`` (bilinear, pixel-centre aligned)."""
    return F.interpolate(maps[:, None].float(), size=hw, mode="bilinear", align_corners=False)[:, 0]
