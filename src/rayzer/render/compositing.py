"""Tiled front-to-back compositing of 2D Gaussians in pure PyTorch (the CPU training renderer).

Why our own: gsplat has no CPU rasterizer (its PyTorch reference compositor needs its CUDA tile
intersection kernel and nerfacc), and neither does any other maintained library.

Algorithm (exact: the same image as the dense reference, gsplat's compositing rules):

1. **Binning.** Each visible Gaussian's screen box (the region where its alpha can reach 1/255,
   see :mod:`rayzer.render.projection`) is cut into ``tile_size``² tiles. Intersections are
   enumerated in global depth order and stably sorted by tile id, so every tile's list is
   front to back (ties broken by Gaussian index, as in the reference).
2. **Quadratic form as a matmul.** In tile-centred pixel coordinates ``(u, v)`` the log-alpha
   ``log o - power`` is a quadratic polynomial, ``coef · (1, u, v, u², uv, v²)``, so the
   alpha of K Gaussians at P pixels is one ``(K, 6) @ (6, P)`` matmul plus an ``exp``; the
   colour, depth and alpha sums are a second matmul of the weights with a ``(K, C)`` feature
   matrix. Element-wise work per Gaussian-pixel pair is about a dozen passes.
3. **Bounded memory.** Tiles are processed in chunks of similar list length (sorted by count),
   lists in blocks of at most ``k_block`` Gaussians, chunk size chosen so one block holds about
   ``chunk_elements`` pairs. The transmittance is carried from block to block; a chunk stops as
   soon as every pixel in it has transmittance below 1e-4.
4. **Hand-written backward** (checked against autograd and finite differences in the tests). It
   recomputes alpha block by block, back to front, carrying the suffix sums, so nothing of size
   pairs is kept between forward and backward: the memory of a training step does not grow
   with the number of Gaussian-pixel pairs.

Compositing rules (gsplat's): ``alpha = min(0.999, o·exp(-power))``; contributions with
``alpha < 1/255`` are skipped; a pixel stops *before* the Gaussian that would bring its
transmittance to ``<= 1e-4``; weights ``w_k = alpha_k Π_{j<k} (1 - alpha_j)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from rayzer.render.projection import ALPHA_THRESHOLD

__all__ = ["TILE_SIZE", "TileBins", "bin_gaussians", "composite_torch"]

TILE_SIZE = 8
CHUNK_ELEMENTS = 1 << 20  # Gaussian-pixel pairs per block: a few MB per temporary (cache sized)
K_BLOCK = 256  # Gaussians per block along a tile's list
ALPHA_MAX = 0.999
T_MIN = 1e-4
_LOG_ALPHA_MAX = math.log(ALPHA_MAX)
_LOG_T_MIN = math.log(T_MIN)
_DEAD = -1.0e4  # log-alpha of padding slots and log-T of pixels outside the image: exp() == 0


@dataclass
class TileBins:
    """Gaussian-tile intersections, sorted by (tile, depth); no gradients.

    Attributes:
        gaussian: ``(M,)`` flat index into ``I * N`` of each intersection's Gaussian.
        tile: ``(M,)`` global tile id ``image * tiles_y * tiles_x + ty * tiles_x + tx``.
        starts, counts: ``(I * tiles_y * tiles_x,)`` each tile's slice of the sorted lists.
    """

    gaussian: torch.Tensor
    tile: torch.Tensor
    starts: torch.Tensor
    counts: torch.Tensor
    images: int
    tiles_y: int
    tiles_x: int
    tile_size: int


@torch.no_grad()
def bin_gaussians(
    means2d: torch.Tensor,
    extents: torch.Tensor,
    depths: torch.Tensor,
    width: int,
    height: int,
    tile_size: int = TILE_SIZE,
) -> TileBins:
    """Intersect screen boxes with tiles. ``means2d (I, N, 2)``, ``extents (I, N, 2)`` half-widths
    in px (0 = culled), ``depths (I, N)``."""
    n_img, N = depths.shape
    tx_n = -(-width // tile_size)
    ty_n = -(-height // tile_size)
    dev = depths.device
    flat = torch.nonzero((extents > 0).all(-1).reshape(-1)).squeeze(1)
    if flat.numel():
        # Depth order first (stable: ties by Gaussian index); the stable tile sort keeps it.
        flat = flat[torch.argsort(depths.reshape(-1)[flat], stable=True)]
    m = means2d.detach().reshape(-1, 2)[flat]
    e = extents.reshape(-1, 2)[flat]
    # Pixels whose centre (col + 0.5) lies in [m - e, m + e], widened by a hair for rounding.
    pad = 1e-3 + 1e-4 * e
    lo = torch.ceil(m - e - pad - 0.5)
    hi = torch.floor(m + e + pad - 0.5)
    size = torch.tensor([width - 1, height - 1], device=dev, dtype=m.dtype)
    lo = torch.minimum(lo.clamp_min(0), size).long()
    hi = torch.minimum(hi.clamp_min(-1), size).long()
    t_lo = torch.div(lo, tile_size, rounding_mode="floor")
    t_hi = torch.div(hi, tile_size, rounding_mode="floor")
    n_xy = (t_hi - t_lo + 1).clamp_min(0) * (hi >= lo)
    n = n_xy[:, 0] * n_xy[:, 1]
    total = int(n.sum())
    gauss = torch.repeat_interleave(flat, n, output_size=total)
    owner = torch.repeat_interleave(torch.arange(flat.numel(), device=dev), n, output_size=total)
    local = torch.arange(total, device=dev) - (torch.cumsum(n, 0) - n)[owner]
    nx = n_xy[owner, 0]
    tx = t_lo[owner, 0] + local % nx.clamp_min(1)
    ty = t_lo[owner, 1] + torch.div(local, nx.clamp_min(1), rounding_mode="floor")
    image = torch.div(gauss, N, rounding_mode="floor")
    tile = (image * ty_n + ty) * tx_n + tx
    # int32 keys sort several times faster than int64 on CPU (radix sort).
    key = tile.to(torch.int32) if n_img * ty_n * tx_n < 2**31 else tile
    order = torch.sort(key, stable=True).indices
    gauss, tile = gauss[order], tile[order]
    counts = torch.bincount(tile, minlength=n_img * ty_n * tx_n)
    starts = torch.cumsum(counts, 0) - counts
    return TileBins(gauss, tile, starts, counts, n_img, ty_n, tx_n, tile_size)


@dataclass
class _Block:
    slots: torch.Tensor  # (Tc, kb) rows of the intersection tables (padding: the dummy row M)
    log_t0: torch.Tensor | None = None  # (Tc, P) log-transmittance entering the block


@dataclass
class _Chunk:
    tiles: torch.Tensor  # (Tc,) global tile ids
    blocks: list[_Block] = field(default_factory=list)
    used: int = 0  # blocks actually composited (early termination)


def _pixel_features(tile_size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(6, P)`` monomials ``(1, u, v, u², uv, v²)`` of tile-centred pixel-centre coordinates."""
    r = torch.arange(tile_size, dtype=dtype, device=device) + 0.5 - tile_size / 2
    v, u = torch.meshgrid(r, r, indexing="ij")
    u, v = u.reshape(-1), v.reshape(-1)
    return torch.stack((torch.ones_like(u), u, v, u * u, u * v, v * v))


def _initial_log_t(
    bins: TileBins, tiles: torch.Tensor, width: int, height: int, like: torch.Tensor
) -> torch.Tensor:
    """``(Tc, P)`` zeros, and ``_DEAD`` at pixels of edge tiles that fall outside the image (so
    they count as finished and never stop a chunk's early termination)."""
    ts = bins.tile_size
    per_image = bins.tiles_y * bins.tiles_x
    t = tiles % per_image
    ty = torch.div(t, bins.tiles_x, rounding_mode="floor")
    tx = t % bins.tiles_x
    r = torch.arange(ts, device=tiles.device)
    cols = (tx[:, None] * ts + r)[:, None, :].expand(-1, ts, -1)
    rows = (ty[:, None] * ts + r)[:, :, None].expand(-1, -1, ts)
    outside = ((cols >= width) | (rows >= height)).reshape(tiles.numel(), ts * ts)
    return torch.zeros(outside.shape, dtype=like.dtype, device=like.device).masked_fill_(
        outside, _DEAD
    )


def _plan(bins: TileBins, chunk_elements: int, k_block: int) -> list[_Chunk]:
    """Group non-empty tiles (longest lists first) into chunks of similar length."""
    P = bins.tile_size**2
    counts = bins.counts
    tiles = torch.nonzero(counts).squeeze(1)
    tiles = tiles[torch.argsort(counts[tiles], descending=True, stable=True)]
    tile_counts = counts[tiles].tolist()
    chunks: list[_Chunk] = []
    i = 0
    M = bins.gaussian.numel()
    while i < len(tile_counts):
        k_max = tile_counts[i]
        kb = min(k_max, k_block)
        tc = max(1, chunk_elements // (kb * P))
        sel = tiles[i : i + tc]
        start = bins.starts[sel][:, None]
        cnt = counts[sel][:, None]
        chunk = _Chunk(tiles=sel)
        for k0 in range(0, k_max, kb):
            k = torch.arange(k0, min(k0 + kb, k_max), device=sel.device)
            slots = torch.where(k < cnt, start + k, torch.full_like(start, M))
            chunk.blocks.append(_Block(slots=slots))
        chunks.append(chunk)
        i += tc
    return chunks


def _block_alpha(coef: torch.Tensor, pix: torch.Tensor, log_t0: torch.Tensor):
    """Alpha, log-transmittance terms and weights of one block (the forward recurrence).

    ``coef (Tc, kb, 6)``, ``pix (6, P)``, ``log_t0 (Tc, P)``. Returns ``unclamped`` (bool, alpha
    below the 0.999 cap), ``alpha`` (effective: 0 where skipped or after termination),
    ``log1m`` (log(1 - alpha)), ``trans`` (transmittance before each Gaussian) and ``weights``.
    """
    logit = coef @ pix  # (Tc, kb, P) log(o) - power
    unclamped = logit < _LOG_ALPHA_MAX
    alpha = logit.clamp_(max=_LOG_ALPHA_MAX).exp_()
    # Skip alpha < 1/255 (gsplat keeps alpha == 1/255): threshold() keeps strictly greater.
    alpha = F.threshold_(alpha, _below(ALPHA_THRESHOLD, alpha.dtype), 0.0)
    log1m = torch.log1p(alpha.neg())
    log_t_after = torch.cumsum(log1m, 1).add_(log_t0[:, None, :])
    keep = log_t_after > _LOG_T_MIN
    alpha.mul_(keep)
    log1m.mul_(keep)
    trans = log_t_after.sub_(log1m).exp_()  # transmittance entering each kept Gaussian
    weights = alpha * trans
    return unclamped, alpha, log1m, trans, weights


def _below(x: float, dtype: torch.dtype) -> float:
    """The largest value of ``dtype`` strictly below ``x``."""
    t = torch.tensor(x, dtype=dtype)
    return float(torch.nextafter(t, torch.tensor(-math.inf, dtype=dtype)))


class _CompositeTiles(torch.autograd.Function):
    """``(coef (M+1, 6), feat (M+1, C)) -> (I * tiles, P, C)`` accumulated features per tile."""

    @staticmethod
    def forward(ctx, coef, feat, bins, chunks, width, height):  # type: ignore[override]
        P = bins.tile_size**2
        C = feat.shape[1]
        n_tiles = bins.images * bins.tiles_y * bins.tiles_x
        out = coef.new_zeros(n_tiles, P, C)
        pix = _pixel_features(bins.tile_size, coef.dtype, coef.device)
        for chunk in chunks:
            log_t = _initial_log_t(bins, chunk.tiles, width, height, coef)
            acc = coef.new_zeros(chunk.tiles.numel(), P, C)
            chunk.used = 0
            for block in chunk.blocks:
                if bool((log_t <= _LOG_T_MIN).all()):
                    break  # every pixel of the chunk is opaque: the rest is hidden
                block.log_t0 = log_t
                _, _, log1m, _, w = _block_alpha(coef[block.slots], pix, log_t)
                acc.baddbmm_(w.transpose(1, 2), feat[block.slots])
                log_t = log_t + log1m.sum(1)
                chunk.used += 1
            out.index_copy_(0, chunk.tiles, acc)
        ctx.bins, ctx.chunks = bins, chunks
        ctx.save_for_backward(coef, feat)
        return out

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        coef, feat = ctx.saved_tensors
        pix = _pixel_features(ctx.bins.tile_size, coef.dtype, coef.device)
        grad_coef = torch.zeros_like(coef)
        grad_feat = torch.zeros_like(feat)
        for chunk in ctx.chunks:
            g = grad_out[chunk.tiles]  # (Tc, P, C)
            g_t = g.transpose(1, 2)  # (Tc, C, P)
            suffix = coef.new_zeros(chunk.tiles.numel(), pix.shape[1])  # Σ w s of later blocks
            for block in reversed(chunk.blocks[: chunk.used]):
                c_blk, f_blk = coef[block.slots], feat[block.slots]
                unclamped, alpha, _, trans, w = _block_alpha(c_blk, pix, block.log_t0)
                s = torch.bmm(f_blk, g_t)  # (Tc, kb, P): dL/dw
                g_feat = torch.bmm(w, g)  # (Tc, kb, C)
                ws = w.mul_(s)
                later = ws.flip(1).cumsum(1).flip(1)  # Σ_{j >= k} w_j s_j within the block
                later.sub_(ws).add_(suffix[:, None, :])  # Σ_{j > k}
                suffix = suffix + ws.sum(1)
                # dL/dalpha_k = T_k s_k - Σ_{j>k} w_j s_j / (1 - alpha_k); then through exp().
                g_alpha = trans.mul_(s).sub_(later.div_(alpha.neg().add_(1.0)))
                g_logit = g_alpha.mul_(alpha).mul_(unclamped)
                g_coef = g_logit @ pix.T  # (Tc, kb, 6)
                idx = block.slots.reshape(-1)
                grad_coef.index_add_(0, idx, g_coef.reshape(-1, 6))
                grad_feat.index_add_(0, idx, g_feat.reshape(-1, g_feat.shape[-1]))
        return grad_coef, grad_feat, None, None, None, None


def _tile_coefficients(
    bins: TileBins, means2d: torch.Tensor, conics: torch.Tensor, opacities: torch.Tensor
) -> torch.Tensor:
    """``(M + 1, 6)`` polynomial coefficients of log-alpha per intersection (+ a dead padding row)."""
    ts = bins.tile_size
    g = bins.gaussian
    per_image = bins.tiles_y * bins.tiles_x
    t = bins.tile % per_image
    origin = (
        torch.stack(
            (t % bins.tiles_x, torch.div(t, bins.tiles_x, rounding_mode="floor")), dim=-1
        ).to(means2d.dtype)
        * ts
        + ts / 2
    )
    mu = means2d.reshape(-1, 2)[g] - origin  # mean in tile-centred coordinates
    a, b, c = conics.reshape(-1, 3)[g].unbind(-1)
    log_o = torch.log(opacities.reshape(-1)[g])  # >= 1/255 for binned Gaussians
    mx, my = mu.unbind(-1)
    coef = torch.stack(
        (
            log_o - 0.5 * a * mx * mx - b * mx * my - 0.5 * c * my * my,
            a * mx + b * my,
            b * mx + c * my,
            -0.5 * a,
            -b,
            -0.5 * c,
        ),
        dim=-1,
    )
    dead = coef.new_zeros(1, 6)
    dead[0, 0] = _DEAD
    return torch.cat((coef, dead))


def composite_torch(
    means2d: torch.Tensor,
    conics: torch.Tensor,
    opacities: torch.Tensor,
    features: torch.Tensor,
    depths: torch.Tensor,
    extents: torch.Tensor,
    width: int,
    height: int,
    *,
    tile_size: int = TILE_SIZE,
    chunk_elements: int = CHUNK_ELEMENTS,
    k_block: int = K_BLOCK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Composite screen-space Gaussians front to back.

    Args:
        means2d: ``(I, N, 2)``; conics ``(I, N, 3)``; opacities ``(I, N)`` in [0, 1];
            features ``(I, N, C)`` (colours and anything else to splat, e.g. depth);
            depths ``(I, N)`` (sort key); extents ``(I, N, 2)`` half-widths, 0 = culled.
        width, height: image size.
        tile_size, chunk_elements, k_block: performance knobs (results do not depend on them).

    Returns:
        ``features (I, H, W, C)`` = Σ_k w_k f_k and ``alpha (I, H, W, 1)`` = Σ_k w_k.
    """
    n_img = depths.shape[0]
    C = features.shape[-1]
    bins = bin_gaussians(means2d, extents, depths, width, height, tile_size)
    coef = _tile_coefficients(bins, means2d, conics, opacities)
    ones = features.new_ones(bins.gaussian.numel() + 1, 1)
    feat = torch.cat((features.reshape(-1, C)[bins.gaussian], features.new_zeros(1, C)))
    feat = torch.cat((feat, ones), dim=1)
    chunks = _plan(bins, chunk_elements, k_block)
    tiles = _CompositeTiles.apply(coef, feat, bins, chunks, width, height)
    ts = tile_size
    img = tiles.reshape(n_img, bins.tiles_y, bins.tiles_x, ts, ts, C + 1)
    img = img.permute(0, 1, 3, 2, 4, 5).reshape(n_img, bins.tiles_y * ts, bins.tiles_x * ts, C + 1)
    img = img[:, :height, :width]
    return img[..., :C], img[..., C:]
