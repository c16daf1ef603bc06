"""Dense brute-force compositing: every Gaussian against every pixel, the readable definition.

Slow (``O(N · H · W)`` per image) and meant for tests and the benchmark's baseline. It shares
nothing with the tiled compositor but the projection: no tiles, no screen boxes, no polynomial
trick; per pixel it sorts all Gaussians in front of the camera by depth and applies gsplat's
rules literally. Gradients come from autograd.
"""

from __future__ import annotations

import torch

from rayzer.render.compositing import ALPHA_MAX, T_MIN
from rayzer.render.projection import ALPHA_THRESHOLD

__all__ = ["composite_reference"]


def composite_reference(
    means2d: torch.Tensor,
    conics: torch.Tensor,
    opacities: torch.Tensor,
    features: torch.Tensor,
    depths: torch.Tensor,
    visible: torch.Tensor,
    width: int,
    height: int,
    *,
    pairs_per_chunk: int = 1 << 22,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as :func:`rayzer.render.compositing.composite_torch`, with ``visible (I, N)``
    (bool: in front of the near plane and behind the far plane) instead of screen extents.

    Returns ``features (I, H, W, C)`` and ``alpha (I, H, W, 1)``.
    """
    n_img = depths.shape[0]
    C = features.shape[-1]
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=means2d.dtype, device=means2d.device) + 0.5,
        torch.arange(width, dtype=means2d.dtype, device=means2d.device) + 0.5,
        indexing="ij",
    )
    pixels = torch.stack((xs.reshape(-1), ys.reshape(-1)), dim=-1)  # (HW, 2)
    out_f, out_a = [], []
    pixels_per_chunk = max(1, pairs_per_chunk // max(1, depths.shape[1]))  # bounded memory
    for i in range(n_img):
        order = torch.argsort(depths[i], stable=True)  # front to back, ties by index
        mean = means2d[i, order]
        a, b, c = conics[i, order].unbind(-1)
        o = opacities[i, order]
        f = features[i, order]
        vis = visible[i, order]
        feats, alphas = [], []
        for p0 in range(0, pixels.shape[0], pixels_per_chunk):
            px = pixels[p0 : p0 + pixels_per_chunk]
            dx = px[:, None, 0] - mean[None, :, 0]  # (P, N)
            dy = px[:, None, 1] - mean[None, :, 1]
            power = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
            alpha = torch.clamp(o * torch.exp(-power), max=ALPHA_MAX)
            used = vis & (alpha >= ALPHA_THRESHOLD)
            alpha = torch.where(used, alpha, torch.zeros_like(alpha))
            # Transmittance after each Gaussian; a pixel stops before the Gaussian that would
            # bring it to <= T_MIN, and everything behind that one is dropped too.
            t_after = torch.cumprod(1.0 - alpha, dim=1)
            stopped = torch.cummax((t_after <= T_MIN).to(torch.uint8), dim=1).values.bool()
            alpha = torch.where(stopped, torch.zeros_like(alpha), alpha)
            t_before = torch.cumprod(
                torch.cat((torch.ones_like(alpha[:, :1]), 1.0 - alpha[:, :-1]), dim=1), dim=1
            )
            w = alpha * t_before
            feats.append(w @ f)
            alphas.append(w.sum(1, keepdim=True))
        out_f.append(torch.cat(feats).reshape(height, width, C))
        out_a.append(torch.cat(alphas).reshape(height, width, 1))
    if n_img == 0:
        empty = means2d.new_zeros(0, height, width, C)
        return empty, means2d.new_zeros(0, height, width, 1)
    return torch.stack(out_f), torch.stack(out_a)
