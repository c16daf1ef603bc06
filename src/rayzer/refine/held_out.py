"""Leave-one-out quality figure of a refinement: how well the other views predict a view.

The held-out view is left out of the refinement; the other views' pixels, lifted with their
depth, become one isotropic Gaussian each (σ = half a pixel of their own view) and are
rendered with :func:`rayzer.render.rasterize` at the held-out view's camera, after fitting
only that camera to its image (the scene frozen). The PSNR over the pixels they cover is
compared between the starting cameras and the refined ones, both fitted the same way, so the
difference is the refinement's. Shapes and conventions as in :mod:`rayzer.refine.bundle`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from rayzer.geometry import unproject_depth
from rayzer.refine.bundle import RefineConfig, RefineResult, _resize_depth, refine_cameras
from rayzer.refine.depth import clean_depth

#: A pixel Gaussian's standard deviation in pixels of its own view.
PIXEL_SIGMA = 0.5
#: Pixels with at least this accumulated opacity count in the held-out PSNR.
COVERED_ALPHA = 0.5


@dataclass
class HeldOutFigure:
    """PSNR (dB) of a held-out view rendered from the other views' pixels.

    Attributes:
        view: the held-out view.
        psnr_before, psnr_after: with the starting / refined cameras of the other views, the
            held-out camera fitted to its image in both cases.
        covered_before, covered_after: fraction of its pixels those renders cover.
        result: the refinement of the other views.
    """

    view: int
    psnr_before: float
    psnr_after: float
    covered_before: float
    covered_after: float
    result: RefineResult

    def summary(self) -> dict[str, object]:
        return {
            "view": self.view,
            "psnr_before": round(self.psnr_before, 3),
            "psnr_after": round(self.psnr_after, 3),
            "covered_before": round(self.covered_before, 4),
            "covered_after": round(self.covered_after, 4),
        }


def render_from_pixels(
    images: Tensor, depth: Tensor, c2w: Tensor, K: Tensor, target_c2w: Tensor, target_K: Tensor
) -> tuple[Tensor, Tensor]:
    """Render the pixels of views (images ``(V, 3, H, W)``, depth ``(V, H, W)``, cameras
    ``(V, 4, 4)`` / ``(V, 4)``) at one camera ``(4, 4)`` / ``(4,)``: rgb ``(3, H, W)`` and alpha
    ``(H, W)``. Pixels of unknown depth (``<= 0``) are left out."""
    from rayzer.render import rasterize

    h, w = images.shape[-2:]
    keep = (depth > 0).reshape(-1)
    means = unproject_depth(depth, c2w, K).reshape(-1, 3)[keep]
    sigma = (PIXEL_SIGMA * depth / K[:, 0, None, None]).reshape(-1, 1)[keep].expand(-1, 3)
    quats = torch.zeros(means.shape[0], 4)
    quats[:, 0] = 1.0
    colours = images.permute(0, 2, 3, 1).reshape(-1, 3)[keep]
    opacity = torch.full((means.shape[0],), 0.95)
    with torch.no_grad():
        out = rasterize(
            means[None],
            quats[None],
            sigma[None].contiguous(),
            opacity[None],
            colours[None],
            target_c2w[None, None],
            target_K[None, None],
            w,
            h,
        )
    return out.rgb[0, 0], out.alpha[0, 0, 0]


def _fit_and_score(
    images: Tensor, depth: Tensor, c2w: Tensor, K: Tensor, view: int, cfg: RefineConfig
) -> tuple[float, float]:
    v = images.shape[0]
    others = [i for i in range(v) if i != view]
    fit_cfg = RefineConfig(**{**cfg.__dict__, "refine_focal": False, "refine_depth": False})
    fit = refine_cameras(images, c2w, K, depth, config=fit_cfg, anchor=others[0], held=others)
    cam = fit.c2w[view]
    rgb, alpha = render_from_pixels(
        images[others], depth[others], c2w[others], K[others], cam, K[view]
    )
    covered = alpha >= COVERED_ALPHA
    mse = ((rgb - images[view]).square().mean(0) * covered).sum() / covered.sum().clamp_min(1)
    return -10.0 * math.log10(max(float(mse), 1e-10)), float(covered.float().mean())


def held_out_psnr(
    images: Tensor,
    c2w: Tensor,
    K: Tensor,
    depth: Tensor,
    view: int,
    *,
    config: RefineConfig | None = None,
) -> HeldOutFigure:
    """Leave ``view`` out, refine the others (:func:`~rayzer.refine.refine_cameras`), and
    compare its PSNR rendered from the others' pixels before and after (module docstring).
    Needs V >= 3. Arguments as :func:`~rayzer.refine.refine_cameras`."""
    cfg = config or RefineConfig()
    v, _, h, w = images.shape
    if v < 3:
        raise ValueError(f"a held-out figure needs at least 3 views, got {v}")
    if not 0 <= view < v:
        raise ValueError(f"view must be in [0, {v}), got {view}")
    images, c2w, K = (x.detach().float().clone() for x in (images, c2w, K))
    depth = _resize_depth(clean_depth(depth), h, w)
    others = [i for i in range(v) if i != view]
    anchor = others.index(v // 2) if v // 2 in others else len(others) // 2
    result = refine_cameras(
        images[others], c2w[others], K[others], depth[others], config=cfg, anchor=anchor
    )
    before, cov_before = _fit_and_score(images, depth, c2w, K, view, cfg)
    c2w_after, K_after = c2w.clone(), K.clone()
    c2w_after[others] = result.c2w
    K_after[others] = result.K
    # the held-out view starts where it was and shares the refined focal scale
    K_after[view, :2] = K[view, :2] * (result.K[0, 0] / K[others[0], 0])
    depth_after = depth.clone()
    depth_after[others] = result.depth
    after, cov_after = _fit_and_score(images, depth_after, c2w_after, K_after, view, cfg)
    return HeldOutFigure(view, before, after, cov_before, cov_after, result)
