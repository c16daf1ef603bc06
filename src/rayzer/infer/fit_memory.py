"""``--fit`` (and ``--fit-size``): refuse a Gaussian fit that would not fit in memory, with a
clear error, before the work that needs it (as ``--render-size`` does,
:mod:`rayzer.infer.render_size`).

Two checks, both against :data:`~rayzer.infer.render_size.MEMORY_FRACTION` of the memory free
at the time (:func:`rayzer.render.budget.available_memory_bytes`):

1. **Before any work** (the photos loaded, the model not run), from what is known then: the
   Gaussian count (one per pixel of the model input: V × H × W for E-RayZer and NAS3R) times
   the bytes a fit keeps per Gaussian (:data:`BYTES_PER_FIT_GAUSSIAN`), the photos at the fit
   size, and the render plan of one step (``views_per_step`` views at the fit size) with each
   Gaussian in at least one tile of each: a lower bound, so it refuses only what cannot fit.
2. **After the prediction, before the fit**: the predicted Gaussians' footprints at the fit
   size, counted as the renderer bins them (:func:`rayzer.render.budget.count_intersections`),
   for the two render kinds a fit makes: its steps (σ capped as the fit caps them,
   forward and backward: :data:`BACKWARD_FACTOR` times a forward pass, measured 1.5-1.8× on
   synthetic scenes at 128-256 px) and its PSNR renders of the scene as predicted (σ not
   capped: a model's long needles make this pass the larger one).

Scales grow during a fit (up to the divergence guard's ``diverged_scale_px``), so check 2 is
an estimate of the start, not a guarantee.
"""

from __future__ import annotations

from typing import Any

import torch

from rayzer.render.budget import (
    available_memory_bytes,
    count_intersections,
    render_bytes,
    tile_padded_pixels,
)

#: Bytes of fit state per Gaussian and per SH colour coefficient (float32): each parameter
#: (log-depth 1, log-scale 3, rotation 4, opacity 1; colour 3 per coefficient) held with its
#: gradient and Adam's two moments (×4); the model's, the capped and the fitted scene (×3 of
#: 11 + 3 per coefficient); the per-step Gaussians and their projection in the autograd graph
#: (~32 per rendered view, 2 views).
BYTES_PER_FIT_GAUSSIAN = 4 * (4 * 9 + 3 * 11 + 2 * 32)
BYTES_PER_FIT_SH_COEFF = 4 * (4 * 3 + 3 * 3)
#: A fit step's compositing (forward and backward) against one forward pass of the same
#: intersections (:func:`rayzer.render.budget.render_bytes`); measured 1.5-1.8.
BACKWARD_FACTOR = 2.0
#: The fit's PSNR renders: views rendered together (``rayzer.refine.splat.render_views``).
PSNR_VIEWS_PER_PASS = 2
_GIB = 2**30


def fit_bytes(
    gaussians: int,
    sh_coeffs: int,
    views: int,
    fit_hw: tuple[int, int],
    step_intersections: int,
    psnr_intersections: int = 0,
    views_per_step: int = 2,
) -> int:
    """Estimated peak bytes of a fit of ``gaussians`` Gaussians (``sh_coeffs`` SH colour
    coefficients each) to ``views`` photos of ``fit_hw`` = ``(H, W)``: the per-Gaussian state,
    the photos (float32, with the coarse levels' copies: ×2) and the larger of a step's
    compositing (``step_intersections`` Gaussian-tile intersections of its ``views_per_step``
    views, forward and backward) and a PSNR render pass (``psnr_intersections``)."""
    h, w = fit_hw
    state = gaussians * (BYTES_PER_FIT_GAUSSIAN + sh_coeffs * BYTES_PER_FIT_SH_COEFF)
    photos = 2 * views * 3 * h * w * 4
    pixels = tile_padded_pixels(h, w)
    step = BACKWARD_FACTOR * render_bytes(step_intersections, views_per_step * pixels)
    psnr = render_bytes(psnr_intersections, PSNR_VIEWS_PER_PASS * pixels)
    return int(state + photos + max(step, psnr))


def _refuse(need: int, what: str, fit_hw: tuple[int, int], device: torch.device) -> None:
    from rayzer.infer.render_size import MEMORY_FRACTION

    free = available_memory_bytes(device)
    if free is not None and need > MEMORY_FRACTION * free:
        kind = "GPU memory" if device.type == "cuda" else "memory"
        raise ValueError(
            f"--fit at {fit_hw[1]}x{fit_hw[0]}: {what} needs about {need / _GIB:.1f} GiB but "
            f"{free / _GIB:.1f} GiB of {kind} are free; use a smaller --fit-size (or --size), "
            "fewer views (--max-views) or no --fit"
        )


def check_fit_memory_before(
    views: int, model_hw: tuple[int, int], fit_hw: tuple[int, int], device: torch.device
) -> None:
    """Check 1 (module doc): refuse, before the model runs, a fit of ``views`` photos whose
    model input is ``model_hw`` and fit size ``fit_hw`` that cannot fit in the memory free now,
    even with every Gaussian one tile wide."""
    gaussians = views * model_hw[0] * model_hw[1]
    need = fit_bytes(gaussians, 1, views, fit_hw, step_intersections=2 * gaussians)
    _refuse(need, f"fitting {gaussians:,} Gaussians (one per input pixel) at least", fit_hw, device)


def check_fit_memory(
    scene: Any,
    fit_hw: tuple[int, int],
    *,
    max_scale_px: float | None,
    views_per_step: int,
    near: float = 0.01,
) -> dict[str, int]:
    """Check 2 (module doc): refuse the fit of a predicted
    :class:`~rayzer.models.gaussians.GaussianScene` at ``fit_hw`` when its footprints would not
    fit in the memory free now on the scene's device. Returns the figures (JSON-ready)."""
    from rayzer.geometry import denormalize_intrinsics
    from rayzer.refine.splat import capped_scales

    h, w = fit_hw
    c2w = scene.c2w[0].float()
    K = denormalize_intrinsics(scene.K_norm[0].float(), h, w)
    args = (scene.means[0], scene.quats[0])
    capped, _ = capped_scales(scene, max_scale_px)
    step = count_intersections(*args, capped, scene.opacities[0], c2w, K, w, h, near=near)
    psnr = count_intersections(*args, scene.scales[0], scene.opacities[0], c2w, K, w, h, near=near)
    top = sorted(step.tolist(), reverse=True)[:views_per_step]
    top_psnr = sorted(psnr.tolist(), reverse=True)[:PSNR_VIEWS_PER_PASS]
    gaussians, coeffs = int(scene.means.shape[1]), int(scene.sh.shape[2])
    need = fit_bytes(
        gaussians, coeffs, c2w.shape[0], fit_hw, sum(top), sum(top_psnr), views_per_step
    )
    _refuse(
        need,
        f"fitting the predicted {gaussians:,} Gaussians ({sum(top) / 1e6:.1f} million "
        "Gaussian-tile intersections per step)",
        fit_hw,
        scene.means.device,
    )
    return {"estimated_bytes": need, "step_intersections": int(sum(top))}
