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

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

from rayzer.render.compositing import (
    _DEAD,
    _LOG_ALPHA_MAX,
    ALPHA_THRESHOLD,
    STATS_KEYS,
    T_MIN,
    TileBins,
    _below,
    _Chunk,
    _composite_chunks,
    _pixel_features,
    _plan,
    _tile_origins,
    _untile,
    bin_gaussians,
)

__all__ = ["composite_forward", "composite_tiles_forward", "forward_workers"]

_PARAMS = 9  # table columns before the features: mx, my, a, b, c, log o, -a/2, -b, -c/2


def _gaussian_table(
    means2d: torch.Tensor, conics: torch.Tensor, opacities: torch.Tensor, features: torch.Tensor
) -> torch.Tensor:
    """``(I·N + 1, 9 + C + 1)``: per Gaussian ``(mx, my, a, b, c, log o, -a/2, -b, -c/2, f_1..f_C,
    1)`` (the last three are the quadratic coefficients of log-alpha, the same in every tile:
    stored once here instead of computed per block); the last row is the padding Gaussian
    (log-opacity ``_DEAD``: alpha 0 everywhere)."""
    C = features.shape[-1]
    rows = means2d.shape[0] * means2d.shape[1]
    conics = conics.detach().reshape(rows, 3)
    table = torch.cat(
        (
            means2d.detach().reshape(rows, 2),
            conics,
            # Binned Gaussians have opacity >= 1/255; the others are never read (log(0) = -inf).
            opacities.detach().reshape(rows, 1).log(),
            conics * conics.new_tensor([-0.5, -1.0, -0.5]),
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
    ``(n·kb, 9 + ...)`` and the tiles' centres ``origin (n, 2)``.

    With ``(dx, dy)`` the mean relative to the tile centre: ``c1 = a dx + b dy``,
    ``c2 = b dx + c dy``, ``c0 = log o - (dx c1 + dy c2) / 2``, then ``(-a/2, -b, -c/2)``; written
    straight into the output with fused multiply-adds (few passes: the blocks are small, so
    the number of operations, not their size, is the cost).
    """
    n, kb = shape
    cols = rows[:, :_PARAMS].T.contiguous().view(_PARAMS, n, kb)  # contiguous element-wise ops
    coef = rows.new_empty(n, 6, kb)
    dx = cols[0].sub_(origin[:, 0:1])
    dy = cols[1].sub_(origin[:, 1:2])
    a, b, c, log_o = cols[2], cols[3], cols[4], cols[5]
    c1 = torch.addcmul(torch.mul(a, dx, out=coef[:, 1]), b, dy, out=coef[:, 1])
    c2 = torch.addcmul(torch.mul(b, dx, out=coef[:, 2]), c, dy, out=coef[:, 2])
    quad = torch.addcmul(dx.mul_(c1), dy, c2)  # dx, dy are not needed after this
    torch.add(log_o, quad, alpha=-0.5, out=coef[:, 0])
    coef[:, 3:].copy_(cols[6:9].transpose(0, 1))
    return coef


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


def forward_workers(device: torch.device | str, images: int, workers: int | None = None) -> int:
    """Threads :func:`composite_forward` shares ``images`` images among: ``workers``, by default
    ``torch.get_num_threads()`` on the CPU and 1 elsewhere, at most one per image (and >= 1).
    Each holds its own block temporaries (:func:`rayzer.render.budget.render_bytes`)."""
    if workers is None:
        workers = torch.get_num_threads() if torch.device(device).type == "cpu" else 1
    return max(1, min(int(workers), int(images)))


def composite_forward(
    means2d: torch.Tensor,
    conics: torch.Tensor,
    opacities: torch.Tensor,
    features: torch.Tensor,
    depths: torch.Tensor,
    extents: torch.Tensor,
    width: int,
    height: int,
    tile_size: int,
    chunk_elements: int,
    k_block: int,
    stats: dict[str, int] | None = None,
    workers: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bin, plan and composite the ``I`` images (forward only), sharing them among ``workers``
    threads (default: ``torch.get_num_threads()`` on the CPU, 1 elsewhere; at most ``I``).

    Why threads: a block's operations are small (about a megabyte each), too small for
    PyTorch's intra-op threads to share well (two threads kept only 1.1 cores busy), so each
    worker takes a contiguous group of images and runs its binning and compositing with one
    intra-op thread (PyTorch's operations release the GIL). The images are independent, so the
    output equals the one-thread result exactly. Inputs and outputs as
    :func:`rayzer.render.compositing.composite_torch`; ``stats`` gets the sums over the groups.
    """
    if stats is not None:  # the counts start at 0 (group sums are added to them)
        for key in STATS_KEYS:
            stats.setdefault(key, 0)
    n_img = means2d.shape[0]
    workers = forward_workers(means2d.device, n_img, workers)
    args = (means2d, conics, opacities, features, depths, extents)
    knobs = (width, height, tile_size, chunk_elements, k_block)
    if workers == 1:
        return _composite_images(*args, *knobs, stats)
    groups = torch.arange(n_img).tensor_split(workers)
    group_stats: list[dict[str, int] | None] = [
        None if stats is None else dict.fromkeys(stats, 0) for _ in groups
    ]
    inference = torch.is_inference_mode_enabled()

    def run(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        lo, hi = int(groups[i][0]), int(groups[i][-1]) + 1
        # Grad and inference mode are per thread: carry the caller's over.
        with torch.inference_mode(inference), torch.no_grad():
            return _composite_images(*(x[lo:hi] for x in args), *knobs, group_stats[i])

    with _intra_op_threads(1), ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(run, range(workers)))
    if stats is not None:
        for s in group_stats:
            for key, value in s.items():  # type: ignore[union-attr]
                stats[key] += value
    return torch.cat([f for f, _ in parts]), torch.cat([a for _, a in parts])


@contextlib.contextmanager
def _intra_op_threads(n: int) -> Iterator[None]:
    """PyTorch's intra-op thread count set to ``n`` inside (threads started inside take it), the
    calling thread's restored after.

    The count is per thread once a thread has used it, but ``torch.set_num_threads`` also sets
    the process-wide value that threads started later begin with; restoring the caller's count
    puts that back too. With the default ``workers`` only a caller whose own count is above one
    shares out its images, so concurrent renders (e.g. requests of ``rayzer serve``) each
    restore a count above one, whatever their order. A thread that first uses PyTorch while a
    render is running starts with one intra-op thread (slower, never wrong).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _composite_images(
    means2d: torch.Tensor,
    conics: torch.Tensor,
    opacities: torch.Tensor,
    features: torch.Tensor,
    depths: torch.Tensor,
    extents: torch.Tensor,
    width: int,
    height: int,
    tile_size: int,
    chunk_elements: int,
    k_block: int,
    stats: dict[str, int] | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bin, plan and composite images in this thread: ``features (I, H, W, C)``, ``alpha (I, H,
    W, 1)``."""
    bins = bin_gaussians(means2d, extents, depths, width, height, tile_size, tile_ids=False)
    if stats is not None:
        stats["intersections"] += bins.gaussian.numel()
    chunks = _plan(bins, chunk_elements, k_block)
    tiles = composite_tiles_forward(
        bins, chunks, means2d, conics, opacities, features, width, height, stats
    )
    return _untile(tiles, bins, width, height, features.shape[-1])
