"""Leave-one-out quality figure of a refinement: how well the other views predict a view.

The held-out view is left out of the refinement; the other views' pixels, lifted with their
depth, become one isotropic Gaussian each (σ = half a pixel of their own view) and are
rendered with :func:`rayzer.render.rasterize` at the held-out view's camera, after fitting
only that camera to its image (the scene frozen). The PSNR is compared between the starting
cameras and the refined ones, both fitted the same way and both measured over the same pixels
(those *both* renders cover), so the difference is the refinement's and not a change of which
pixels count. Shapes and conventions as in :mod:`rayzer.refine.bundle`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from rayzer.geometry import unproject_depth
from rayzer.refine.bundle import (
    RefineConfig,
    RefineResult,
    StepCallback,
    _resize_depth,
    refine_cameras,
    rounded,
)
from rayzer.refine.depth import clean_depth

#: A pixel Gaussian's standard deviation in pixels of its own view.
PIXEL_SIGMA = 0.5
#: Pixels with at least this accumulated opacity count in the held-out PSNR.
COVERED_ALPHA = 0.5
#: What ``summary.json["refine"]["held_out"]`` says about the figure (its ``note``). The
#: baseline is the photos' own pixels, not the model's render of the view (on 8 fox photos at
#: 128 px: 22.1 against 18.7 dB for a tiny E-RayZer, 18.0 against 18.1 dB for the bundled NAS3R),
#: and a refinement of the cameras alone hardly moves the model's render (+0.1 / +0.2 dB while
#: this figure gains +1.4 / +6.8 dB; docs/benchmarks/infer/README.md, "Why `--refine` gains
#: +0.88 dB ..."), so this figure is not comparable with ``--fit``'s, which starts from the model.
HELD_OUT_NOTE = (
    "psnr_before / psnr_after: the left-out view rendered from the other views' photo pixels "
    "(one small Gaussian per pixel, coloured by the photo, at the model's depth) at the "
    "starting / refined cameras of the other views, the left-out camera fitted to its image "
    "each time, over the pixels both renders cover ('compared'). It measures the cameras: "
    "'before' is already the photos' colours reprojected, not the model's render of the view "
    "(the baseline of --fit's figure, which measures the Gaussians)."
)


@dataclass
class HeldOutFigure:
    """PSNR (dB) of a held-out view rendered from the other views' pixels.

    Attributes:
        view: the held-out view.
        psnr_before, psnr_after: with the starting / refined cameras of the other views, the
            held-out camera fitted to its image in both cases, over the same pixels: those both
            renders cover (NaN when no pixel is covered by both).
        covered_before, covered_after: fraction of its pixels each render covers.
        result: the refinement of the other views.
        compared: fraction of its pixels covered by both renders (the PSNRs' pixels).
    """

    view: int
    psnr_before: float
    psnr_after: float
    covered_before: float
    covered_after: float
    result: RefineResult
    compared: float = math.nan

    def summary(self) -> dict[str, object]:
        """JSON-ready figures (a NaN PSNR, when no pixel is comparable, becomes None)."""
        return {
            "view": self.view,
            "psnr_before": rounded(self.psnr_before, 3),
            "psnr_after": rounded(self.psnr_after, 3),
            "covered_before": rounded(self.covered_before, 4),
            "covered_after": rounded(self.covered_after, 4),
            "compared": rounded(self.compared, 4),
            "note": HELD_OUT_NOTE,
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
    quats = torch.zeros(means.shape[0], 4, device=means.device)
    quats[:, 0] = 1.0
    colours = images.permute(0, 2, 3, 1).reshape(-1, 3)[keep]
    opacity = torch.full((means.shape[0],), 0.95, device=means.device)
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


def _fit_and_render(
    images: Tensor,
    depth: Tensor,
    c2w: Tensor,
    K: Tensor,
    view: int,
    cfg: RefineConfig,
    on_step: StepCallback | None = None,
) -> tuple[Tensor, Tensor]:
    """Fit the camera of ``view`` to its image with the other views held, and render the other
    views' pixels there: rgb ``(3, H, W)`` and alpha ``(H, W)``."""
    v = images.shape[0]
    others = [i for i in range(v) if i != view]
    fit_cfg = RefineConfig(**{**cfg.__dict__, "refine_focal": False, "refine_depth": False})
    extra = {} if on_step is None else {"on_step": on_step}
    fit = refine_cameras(
        images, c2w, K, depth, config=fit_cfg, anchor=others[0], held=others, **extra
    )
    return render_from_pixels(
        images[others], depth[others], c2w[others], K[others], fit.c2w[view], K[view]
    )


def _masked_psnr(rgb: Tensor, target: Tensor, mask: Tensor) -> float:
    """PSNR (dB) of ``rgb`` against ``target`` (3, H, W) over ``mask`` (H, W); NaN if empty."""
    if not mask.any():
        return math.nan
    mse = (rgb - target).square().mean(0)[mask].mean()
    return -10.0 * math.log10(max(float(mse), 1e-10))


def held_out_psnr(
    images: Tensor,
    c2w: Tensor,
    K: Tensor,
    depth: Tensor,
    view: int,
    *,
    config: RefineConfig | None = None,
    anchor: int | None = None,
    held: list[int] | None = None,
    on_step: StepCallback | None = None,
) -> HeldOutFigure:
    """Leave ``view`` out, refine the others (:func:`~rayzer.refine.refine_cameras`), and
    compare its PSNR rendered from the others' pixels before and after, over the pixels both
    renders cover (module docstring). Needs V >= 3. Arguments as
    :func:`~rayzer.refine.refine_cameras`; ``on_step(done, total)`` follows its three
    refinements (the others', then the held-out camera's fit before and after) as one count of
    ``3 × config.steps``. ``anchor``: the view (an index of all ``V``) whose pose the others'
    refinement holds, e.g. the model's canonical view (default: the middle one); when it is
    ``view`` itself, the middle one of the others. ``held``: views (indices of all ``V``) whose
    cameras the others' refinement holds too, as the refinement it judges held them."""
    cfg = config or RefineConfig()
    v, _, h, w = images.shape
    if v < 3:
        raise ValueError(f"a held-out figure needs at least 3 views, got {v}")
    if not 0 <= view < v:
        raise ValueError(f"view must be in [0, {v}), got {view}")
    images, c2w, K = (x.detach().float().clone() for x in (images, c2w, K))
    depth = _resize_depth(clean_depth(depth), h, w)
    others = [i for i in range(v) if i != view]
    keep = v // 2 if anchor is None else anchor
    if not 0 <= keep < v:
        raise ValueError(f"anchor must be a view index in [0, {v}), got {anchor}")
    anchor = others.index(keep) if keep in others else len(others) // 2
    held_others = [others.index(i) for i in held or [] if i in others]
    phase = _phases(on_step, 3, cfg.steps)
    result = refine_cameras(
        images[others],
        c2w[others],
        K[others],
        depth[others],
        config=cfg,
        anchor=anchor,
        held=held_others,
        **phase(0),
    )
    rgb_before, alpha_before = _fit_and_render(images, depth, c2w, K, view, cfg, **phase(1))
    c2w_after, K_after = c2w.clone(), K.clone()
    c2w_after[others] = result.c2w
    K_after[others] = result.K
    # the held-out view starts where it was and shares the refined focal scale
    K_after[view, :2] = K[view, :2] * (result.K[0, 0] / K[others[0], 0])
    depth_after = depth.clone()
    depth_after[others] = result.depth
    rgb_after, alpha_after = _fit_and_render(
        images, depth_after, c2w_after, K_after, view, cfg, **phase(2)
    )
    # Like for like: both PSNRs over the pixels both renders cover. Each over its own covered
    # pixels would let a change of coverage (refined cameras reaching a badly predicted border,
    # or dropping one) move the figure as much as the fit of the pixels does.
    covered_before, covered_after = alpha_before >= COVERED_ALPHA, alpha_after >= COVERED_ALPHA
    both = covered_before & covered_after
    return HeldOutFigure(
        view,
        _masked_psnr(rgb_before, images[view], both),
        _masked_psnr(rgb_after, images[view], both),
        float(covered_before.float().mean()),
        float(covered_after.float().mean()),
        result,
        compared=float(both.float().mean()),
    )


def _phases(
    on_step: StepCallback | None, count: int, steps: int
) -> Callable[[int], dict[str, StepCallback]]:
    """Keyword arguments passing ``on_step`` to phase ``k`` of ``count`` refinements of
    ``steps`` iterations each, its count offset so the phases add up to one progress count
    (none when ``on_step`` is None, so stand-ins without the argument still fit)."""

    def phase(k: int) -> dict[str, StepCallback]:
        if on_step is None:
            return {}
        return {"on_step": lambda done, _total: on_step(k * steps + done, count * steps)}

    return phase
