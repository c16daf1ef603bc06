"""Replace a model's predicted cameras by cameras solved from feature matches.

The one place where a prediction meets :func:`rayzer.refine.matched_cameras.cameras_from_matches`:
``rayzer infer --init-cameras matches`` and ``rayzer bench real-cameras --matches`` both call
:func:`init_from_matches`. The photos are matched at their own resolution; each maps onto the
model's image through its crop box, so the cameras come out in the model's image frame
(:class:`rayzer.infer.predict.Cameras`), in the model's gauge (its canonical camera kept when
that view is in the largest group of matched views, else that group's best-matched view's
camera) and at the model's depth scale (the median point depth in that view is the model's
median depth there), so the model's depth and Gaussians stay usable with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rayzer.infer.predict import Cameras


def check_init_cameras(init_cameras: str) -> None:
    """Refuse an unknown ``--init-cameras`` or ``matches`` without OpenCV, before any work."""
    from rayzer.refine.matched_cameras import opencv_missing_reason

    if init_cameras not in ("model", "matches"):
        raise ValueError(f"--init-cameras must be 'model' or 'matches', got {init_cameras!r}")
    if init_cameras == "matches":
        reason = opencv_missing_reason()
        if reason is not None:
            raise ValueError(f"--init-cameras matches: {reason}")


def anchor_view(cams: Cameras) -> int:
    """The view that holds the gauge: the model's canonical one (the middle one if unknown)."""
    return cams.canonical if cams.canonical is not None else len(cams) // 2


def median_depth(depth: Tensor | None, alpha: Tensor | None, view: int) -> float | None:
    """Median of the model's depth in ``view`` where it is known (and mostly opaque)."""
    if depth is None:
        return None
    d = depth[view].reshape(-1).float()
    ok = torch.isfinite(d) & (d > 0)
    if alpha is not None:
        ok &= alpha[view].reshape(-1) >= 0.5
    return float(d[ok].median()) if ok.any() else None


def photos_from_files(files: Sequence[str | Path]) -> list[np.ndarray]:
    """Decode photos upright at full resolution as ``(H, W, 3)`` uint8 RGB."""
    from rayzer.data.images import decode_image

    return [np.asarray(decode_image(f)[0], dtype=np.uint8) for f in files]


def init_from_matches(
    photos: Sequence[np.ndarray],
    boxes: Sequence[Sequence[float]],
    cams: Cameras,
    depth: Tensor | None = None,
    alpha: Tensor | None = None,
    config: Any = None,
) -> tuple[Cameras, dict[str, Any]]:
    """The model's cameras replaced, where the matches register a view, by the matched ones.

    Args:
        photos: V ``(H_i, W_i, 3)`` uint8 photos at their own resolution, in view order.
        boxes: their crop boxes ``(x0, y0, x1, y1)`` (photo pixels) onto the model's image.
        cams: the model's cameras (``height × width`` image).
        depth / alpha: the model's depth and opacity of the views (the scale), or None.
        config: a :class:`rayzer.refine.matched_cameras.MatchConfig`.
    Returns:
        ``(cameras, report)``: :class:`Cameras` like ``cams`` (the model's where a view is not
        registered) and the report of
        :func:`rayzer.refine.matched_cameras.cameras_from_matches` (``registered`` per view,
        ``warning`` when some or all views kept the model's cameras).
    """
    from rayzer.refine.matched_cameras import cameras_from_matches

    anchor = anchor_view(cams)
    result = cameras_from_matches(
        photos,
        boxes,
        cams.c2w,
        cams.K,
        (cams.height, cams.width),
        anchor=anchor,
        # each view's: the scale is set in the reference view, the anchor only if it matched
        depth_scale=[median_depth(depth, alpha, k) for k in range(len(cams))],
        config=config,
    )
    report = dict(result.report)
    report["registered"] = result.registered.tolist()
    report["num_registered"] = result.num_registered
    return replace(cams, c2w=result.c2w, K=result.K), report
