"""Depth accuracy of predicted depth maps against exact depth, after per-image median scaling.

Predicted geometry lives in the model's own frame and scale, so each predicted
depth map is first scaled by ``s = median(gt) / median(pred)`` over its valid pixels (the
protocol of monocular / self-supervised depth since Zhou et al. 2017), then compared with the
truth:

* **AbsRel** = mean over valid pixels of ``|s·pred − gt| / gt``;
* **δ<1.25** = share of valid pixels with ``max(s·pred / gt, gt / (s·pred)) < 1.25``.

Both depths must be the same quantity: camera **z-depth** (distance along the camera's z axis),
which is what the synthetic renderer writes and what the models' ``input_depth`` and rendered
depth are. A pixel is valid where the truth is finite and > 0 (``+inf`` marks empty
background) and the prediction is finite and > 0. Scores are per image, then averaged over
images (each image weighs the same).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

DELTA_THRESHOLD = 1.25

DEPTH_DEFINITIONS = {
    "convention": "camera z-depth of the input views (the depth the model predicts for the "
    "images it reconstructs from), against the exact z-depth of the synthetic renderer",
    "median_scaling": "per image, pred * median(gt) / median(pred) over the valid pixels (the "
    "model's frame has its own scale)",
    "abs_rel": "mean over valid pixels of |pred - gt| / gt; mean over images",
    "delta_1_25": "share of valid pixels with max(pred / gt, gt / pred) < 1.25; mean over images",
    "valid": "gt finite and > 0 (background at +inf is left out), pred finite and > 0",
}


def median_scaled_depth_errors(pred: Tensor, gt: Tensor) -> dict[str, Tensor]:
    """Per-image AbsRel and δ<1.25 after median scaling (module docstring).

    Args:
        pred, gt: (..., H, W) z-depth maps of the same images (e.g. (N, H, W) or
            (B, V, 1, H, W)); gt may hold ``+inf`` / 0 where there is no surface.
    Returns:
        ``{"abs_rel": (...), "delta_1_25": (...), "scale": (...), "valid": (...)}`` float64 per
        image (``valid`` = number of valid pixels); NaN for an image without valid pixels.
    """
    if pred.shape != gt.shape or pred.ndim < 2:
        raise ValueError(
            f"pred and gt must be depth maps (..., H, W) of one shape, got {tuple(pred.shape)} "
            f"and {tuple(gt.shape)}"
        )
    p = pred.detach().double().flatten(-2)
    g = gt.detach().double().flatten(-2)
    valid = torch.isfinite(g) & (g > 0) & torch.isfinite(p) & (p > 0)
    nan = torch.full_like(p, float("nan"))
    med_p = torch.where(valid, p, nan).nanmedian(-1).values
    med_g = torch.where(valid, g, nan).nanmedian(-1).values
    scale = med_g / med_p
    scaled = p * scale.unsqueeze(-1)
    safe_g = torch.where(valid, g, torch.ones_like(g))
    safe_s = torch.where(valid, scaled, torch.ones_like(scaled))
    count = valid.sum(-1)
    n = count.double().clamp_min(1)
    abs_rel = torch.where(valid, (safe_s - safe_g).abs() / safe_g, 0.0).sum(-1) / n
    ratio = torch.maximum(safe_s / safe_g, safe_g / safe_s)
    delta = (valid & (ratio < DELTA_THRESHOLD)).sum(-1).double() / n
    empty = count == 0
    return {
        "abs_rel": abs_rel.masked_fill(empty, float("nan")),
        "delta_1_25": delta.masked_fill(empty, float("nan")),
        "scale": scale,
        "valid": count,
    }


def summarize_depth(abs_rel: Tensor, delta: Tensor) -> dict[str, Any]:
    """Means over images (images without valid pixels left out) of per-image scores."""
    keep = torch.isfinite(abs_rel) & torch.isfinite(delta)
    if not keep.any():
        return {"abs_rel": None, "delta_1_25": None, "num_images": 0}
    return {
        "abs_rel": abs_rel[keep].mean().item(),
        "delta_1_25": delta[keep].mean().item(),
        "num_images": int(keep.sum()),
    }
