"""Forward-only tiled compositing: the same images as :mod:`rayzer.render.compositing`, for
renders that need no gradient (inference, novel-view videos, evaluation).

What it saves compared with the differentiable path (same binning, chunks and blocks, same
compositing rules, results equal up to float rounding):

* **Nothing per intersection up front.** The differentiable path builds ``(M, 6)`` log-alpha
  coefficients and ``(M, C + 1)`` features for all ``M`` Gaussian-tile intersections before
  compositing (its backward needs them). Here one ``(I·N + 1, 6 + C + 1)`` table holds each
  Gaussian's screen mean, conic, log-opacity and features once; a block gathers its rows and
  builds its tile-centred coefficients in cache-sized pieces.
* **Nothing kept for a backward pass** (no per-block transmittance copies).
* **Fewer passes over the Gaussian-pixel pairs.** Blocks are laid out ``(tiles, P, K)`` so the
  transmittance is a cumulative product along the contiguous last axis, prefixed with the
  transmittance entering the block; the weight ``w_k = alpha_k T_k`` of a Gaussian that does not
  stop the pixel is computed as ``alpha_k / (1 - alpha_k) · T_(k+1)`` with
  ``T_(k+1)`` zeroed by one ``threshold`` where it is ``<= 1e-4`` (gsplat stops *before* that
  Gaussian, and every later one of the list then has ``T <= 1e-4`` too: the product does not
  increase). ``1 - alpha >= 0.001`` (alpha is capped at 0.999), so the division is exact to
  rounding.

:func:`rayzer.render.compositing.composite_torch` calls this when autograd is off or no input
requires a gradient; the dense :mod:`rayzer.render.reference` is the definition both are tested
against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rayzer.render.compositing import (
    _DEAD,
    _LOG_ALPHA_MAX,
    ALPHA_THRESHOLD,
    T_MIN,
    TileBins,
    _below,
    _Chunk,
    _composite_chunks,
    _pixel_features,
    _tile_origins,
)

__all__ = ["composite_tiles_forward"]

_PARAMS = 6  # table columns before the features: mean x, mean y, conic a, b, c, log opacity


def _gaussian_table(
    means2d: torch.Tensor, conics: torch.Tensor, opacities: torch.Tensor, features: torch.Tensor
) -> torch.Tensor:
    """``(I·N + 1, 6 + C + 1)``: per Gaussian ``(mx, my, a, b, c, log o, f_1..f_C, 1)``; the last
    row is the padding Gaussian (log-opacity ``_DEAD``: alpha 0 everywhere)."""
    C = features.shape[-1]
    rows = means2d.shape[0] * means2d.shape[1]
    table = torch.cat(
        (
            means2d.detach().reshape(rows, 2),
            conics.detach().reshape(rows, 3),
            # Binned Gaussians have opacity >= 1/255; the others are never read (log(0) = -inf).
            opacities.detach().reshape(rows, 1).log(),
            features.detach().reshape(rows, C),
            features.new_ones(rows, 1),
        ),
        dim=1,
    )
    dead = table.new_zeros(1, table.shape[1])
    dead[0, 5] = _DEAD
    return torch.cat((table, dead))


def _block_coefficients(rows: torch.Tensor, origin: torch.Tensor, shape: torch.Size):
    """Tile-centred log-alpha coefficients ``(n, 6, kb)`` of a block (see ``_tile_coefficients``
    in :mod:`rayzer.render.compositing`, the same polynomial), from its gathered table rows
    ``(n·kb, 6 + ...)`` and the tiles' centres ``origin (n, 2)``."""
    cols = rows[:, :_PARAMS].T.contiguous()  # column-wise: contiguous element-wise ops
    mx = cols[0].view(shape) - origin[:, 0:1]
    my = cols[1].view(shape) - origin[:, 1:2]
    a, b, c, log_o = (cols[i].view(shape) for i in range(2, 6))
    by = b * my
    return torch.stack(
        (
            log_o - (0.5 * a * mx + by) * mx - 0.5 * c * my * my,
            a * mx + by,
            b * mx + c * my,
            -0.5 * a,
            -b,
            -0.5 * c,
        ),
        dim=1,
    )


@torch.no_grad()
def composite_tiles_forward(
    bins: TileBins,
    chunks: list[_Chunk],
    means2d: torch.Tensor,
    conics: torch.Tensor,
    opacities: torch.Tensor,
    features: torch.Tensor,
    width: int,
    height: int,
    stats: dict[str, int] | None = None,
) -> torch.Tensor:
    """``(I · tiles, P, C + 1)`` accumulated ``(Σ w f, Σ w)`` per tile (the layout of the
    differentiable path's output), for ``bins`` planned into ``chunks`` by ``_plan``.

    Inputs as :func:`rayzer.render.compositing.composite_torch`: ``means2d (I, N, 2)``,
    ``conics (I, N, 3)``, ``opacities (I, N)``, ``features (I, N, C)``.
    """
    C = features.shape[-1]
    P = bins.tile_size**2
    dtype = means2d.dtype
    table = _gaussian_table(means2d, conics, opacities, features)
    gauss = torch.cat((bins.gaussian, bins.gaussian.new_full((1,), table.shape[0] - 1)))
    pix_t = _pixel_features(bins.tile_size, dtype, means2d.device).T.contiguous()  # (P, 6)
    skip_below = _below(ALPHA_THRESHOLD, dtype)

    def block_fn(block, rows, slots, t0, tiles):
        gathered = table.index_select(0, gauss.index_select(0, slots.reshape(-1)))
        coef = _block_coefficients(gathered, _tile_origins(bins, tiles, dtype), slots.shape)
        feat = gathered[:, _PARAMS:].reshape(*slots.shape, C + 1)  # (n, kb, C + 1)
        alpha = torch.matmul(pix_t, coef)  # (n, P, kb) log-alpha
        alpha = alpha.clamp_(max=_LOG_ALPHA_MAX).exp_()  # min(0.999, o exp(-power))
        alpha = F.threshold_(alpha, skip_below, 0.0)  # skip alpha < 1/255
        kb = alpha.shape[2]
        trans = alpha.new_empty(alpha.shape[0], P, kb + 1)
        trans[:, :, 0] = t0
        one_minus = trans[:, :, 1:]
        torch.sub(1.0, alpha, out=one_minus)
        trans = torch.cumprod(trans, 2)  # [:, :, k]: T entering Gaussian k; [:, :, k+1] after
        # T after each Gaussian that does not stop the pixel, 0 from the stopping one on.
        kept_after = F.threshold(trans[:, :, 1:], T_MIN, 0.0)
        w = alpha.div_(one_minus).mul_(kept_after)  # alpha_k T_k, 0 once stopped
        return torch.bmm(w, feat), kept_after[:, :, -1], w  # (n, P, C + 1), (n, P)

    return _composite_chunks(bins, chunks, width, height, means2d, C + 1, block_fn, stats)
