"""Tiled front-to-back compositing of 2D Gaussians in pure PyTorch (the CPU training renderer).

Why our own: gsplat has no CPU rasterizer (its PyTorch reference compositor needs its CUDA tile
intersection kernel and nerfacc), and neither does any other maintained library.

Algorithm (exact: the same image as the dense reference, gsplat's compositing rules):

1. **Binning.** Each visible Gaussian's screen box (the region where its alpha can reach 1/255,
   see :mod:`rayzer.render.projection`) is cut into ``tile_size``² tiles. Intersections are
   enumerated image by image in depth order and stably sorted by tile id, so every tile's list
   is front to back (ties broken by Gaussian index, as in the reference).
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
5. **Forward only** when no gradient is wanted (autograd off, or no input requires one):
   :mod:`rayzer.render.compositing_forward` composites the same blocks without building the
   per-intersection tables the backward needs (same image up to float rounding).

Compositing rules (gsplat's): ``alpha = min(0.999, o·exp(-power))``; contributions with
``alpha < 1/255`` are skipped; a pixel stops *before* the Gaussian that would bring its
transmittance to ``<= 1e-4``; weights ``w_k = alpha_k Π_{j<k} (1 - alpha_j)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from rayzer.render.projection import ALPHA_THRESHOLD

__all__ = ["TILE_SIZE", "TileBins", "bin_gaussians", "composite_torch"]

TILE_SIZE = 4
CHUNK_ELEMENTS = 1 << 18  # Gaussian-pixel pairs per block: about 1 MB per temporary (cache sized)
K_BLOCK = 64  # Gaussians per block along a tile's list (finer early termination)
#: Pairs per block of the forward-only path (no gradient): 8 MB per temporary. Fewer, larger
#: operations: E-RayZer's 120-frame novel-view render composited in 5.8-6.0 s with 2 threads
#: against 7.0-7.2 s at ``CHUNK_ELEMENTS`` (10.7 against 11.2-11.6 s with one); see
#: docs/benchmarks/infer/README.md.
FORWARD_CHUNK_ELEMENTS = 1 << 21
#: The counts ``composite_torch(..., stats=...)`` fills (see its docstring).
STATS_KEYS = ("intersections", "candidates", "pairs", "blocks", "blocks_used")
ALPHA_MAX = 0.999
T_MIN = 1e-4
_LOG_ALPHA_MAX = math.log(ALPHA_MAX)
_DEAD = -1.0e4  # log-alpha of padding slots: exp() == 0


@dataclass
class TileBins:
    """Gaussian-tile intersections, sorted by (tile, depth); no gradients.

    Attributes:
        gaussian: ``(M,)`` flat index into ``I * N`` of each intersection's Gaussian.
        tile: ``(M,)`` global tile id ``image * tiles_y * tiles_x + ty * tiles_x + tx`` (None
            when binned with ``tile_ids=False``).
        starts, counts: ``(I * tiles_y * tiles_x,)`` each tile's slice of the sorted lists.
    """

    gaussian: torch.Tensor
    tile: torch.Tensor | None
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
    tile_ids: bool = True,
) -> TileBins:
    """Intersect screen boxes with tiles. ``means2d (I, N, 2)``, ``extents (I, N, 2)`` half-widths
    in px (0 = culled), ``depths (I, N)``; ``tile_ids=False`` leaves ``TileBins.tile`` None
    (the forward-only path reads the tiles' lists through ``starts`` and ``counts`` only)."""
    n_img, N = depths.shape
    tx_n = -(-width // tile_size)
    ty_n = -(-height // tile_size)
    per_image, n_tiles = ty_n * tx_n, n_img * ty_n * tx_n
    dev = depths.device
    # Image by image, each in depth order (stable: ties by Gaussian index), visible ones only;
    # the stable tile sort keeps this order within every tile.
    flat = torch.argsort(depths, dim=1, stable=True)
    flat = (flat + torch.arange(n_img, device=dev)[:, None] * N).reshape(-1)
    flat = flat[(extents > 0).all(-1).reshape(-1).index_select(0, flat)]
    # index_select, not x[idx]: the same gather, about twice as fast on the CPU.
    m = means2d.detach().reshape(-1, 2).index_select(0, flat)
    e = extents.reshape(-1, 2).index_select(0, flat)
    # Pixels whose centre (col + 0.5) lies in [m - e, m + e], widened by a hair for rounding.
    pad = 1e-3 + 1e-4 * e
    lo = torch.ceil(m - e - pad - 0.5)
    hi = torch.floor(m + e + pad - 0.5)
    size = torch.tensor([width - 1, height - 1], device=dev, dtype=m.dtype)
    lo = torch.minimum(lo.clamp_min(0), size)
    hi = torch.minimum(hi.clamp_min(-1), size)
    t_lo = torch.floor(lo / tile_size)
    nx, ny = ((torch.floor(hi / tile_size) - t_lo + 1).clamp_min(0) * (hi >= lo)).long().unbind(1)
    image = torch.div(flat, N, rounding_mode="floor")
    first = (image * ty_n + t_lo[:, 1].long()) * tx_n + t_lo[:, 0].long()  # top-left tile id
    n = nx * ny  # tiles per Gaussian
    n_rows, total = int(ny.sum()), int(n.sum())
    # int32 where the ids fit: half the memory traffic of int64, and faster sorts.
    itype = torch.int32 if max(n_tiles, n_img * N, total) < 2**31 else torch.int64
    # Expand every Gaussian to its rows of tiles, then every row to its tiles: repeats, an
    # arange and adds (no division), in depth order.
    row0 = torch.cumsum(ny, 0) - ny
    per = torch.stack((flat, first, nx, row0), 1).to(itype)
    gauss, first, nx, row0 = torch.repeat_interleave(per, ny, 0, output_size=n_rows).unbind(1)
    row_tile = first + (torch.arange(n_rows, device=dev, dtype=itype) - row0) * tx_n
    col0 = torch.cumsum(nx, 0, dtype=itype) - nx
    per = torch.stack((gauss, row_tile - col0), 1)
    gauss, base = torch.repeat_interleave(per, nx, 0, output_size=total).unbind(1)
    tile = base + torch.arange(total, device=dev, dtype=itype)
    if n_img > 0 and per_image <= 2**15:  # no images: nothing to sort (and nothing to cat)
        # The intersections are image-major: sort each image's by its local tile id as int16
        # (fewer radix passes than the int32 global ids; the same stable order).
        # uint8 keys where an image has at most 256 tiles (64 x 64 px): a third faster again.
        key_type = torch.uint8 if per_image <= 256 else torch.int16
        # Each image's Gaussians are gathered in its sorted order straight into place: no
        # global index list to offset and concatenate, and each gather stays within one image.
        ends = torch.bincount(image, weights=n.double(), minlength=n_img).cumsum(0)
        in_order, s0 = torch.empty_like(gauss), 0
        for i, s1 in enumerate(ends.long().tolist()):
            key = (tile[s0:s1] - i * per_image).to(key_type)
            order = torch.sort(key, stable=True).indices
            torch.index_select(gauss[s0:s1], 0, order, out=in_order[s0:s1])
            s0 = s1
        gauss = in_order.long()
    else:
        gauss = gauss.index_select(0, torch.sort(tile, stable=True).indices).long()
    counts = torch.bincount(tile, minlength=n_tiles)
    starts = torch.cumsum(counts, 0) - counts
    if not tile_ids:
        return TileBins(gauss, None, starts, counts, n_img, ty_n, tx_n, tile_size)
    # The sorted tile ids, from the counts (cheaper than gathering them through ``order``).
    tile = torch.repeat_interleave(torch.arange(n_tiles, device=dev), counts, output_size=total)
    return TileBins(gauss, tile, starts, counts, n_img, ty_n, tx_n, tile_size)


@dataclass
class _Block:
    slots: torch.Tensor  # (n, kb) rows of the intersection tables (padding: the dummy row M)
    rows: torch.Tensor | None = None  # chunk rows composited (None: the first n, all alive)
    t0: torch.Tensor | None = None  # (rows, P) transmittance entering the block


@dataclass
class _Chunk:
    tiles: torch.Tensor  # (Tc,) global tile ids, longest list first
    blocks: list[_Block] = field(default_factory=list)
    used: int = 0  # blocks actually composited (early termination)


def _pixel_features(tile_size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(6, P)`` monomials ``(1, u, v, u², uv, v²)`` of tile-centred pixel-centre coordinates."""
    r = torch.arange(tile_size, dtype=dtype, device=device) + 0.5 - tile_size / 2
    v, u = torch.meshgrid(r, r, indexing="ij")
    u, v = u.reshape(-1), v.reshape(-1)
    return torch.stack((torch.ones_like(u), u, v, u * u, u * v, v * v))


def _tile_origins(bins: TileBins, tiles: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(Tc, 2)`` pixel coordinates ``(x, y)`` of the centres of global tiles ``tiles``."""
    t = tiles % (bins.tiles_y * bins.tiles_x)
    xy = torch.stack((t % bins.tiles_x, torch.div(t, bins.tiles_x, rounding_mode="floor")), -1)
    return xy.to(dtype) * bins.tile_size + bins.tile_size / 2


def _initial_transmittance(
    bins: TileBins, tiles: torch.Tensor, width: int, height: int, like: torch.Tensor
) -> torch.Tensor:
    """``(Tc, P)`` ones, and 0 at pixels of edge tiles outside the image (finished from the
    start, so they never hold back a chunk's early termination)."""
    ts = bins.tile_size
    t = tiles % (bins.tiles_y * bins.tiles_x)
    ty = torch.div(t, bins.tiles_x, rounding_mode="floor")
    tx = t % bins.tiles_x
    r = torch.arange(ts, device=tiles.device)
    cols = (tx[:, None] * ts + r)[:, None, :].expand(-1, ts, -1)
    rows = (ty[:, None] * ts + r)[:, :, None].expand(-1, -1, ts)
    inside = ((cols < width) & (rows < height)).reshape(tiles.numel(), ts * ts)
    return inside.to(like.dtype)


def _plan(bins: TileBins, chunk_elements: int, k_block: int) -> list[_Chunk]:
    """Group non-empty tiles (longest lists first) into chunks; cut each chunk's lists into
    blocks. Tiles are sorted by list length, so the tiles still having entries in a block are
    a prefix of the chunk: a block only holds those."""
    P = bins.tile_size**2
    counts = bins.counts
    tiles = torch.nonzero(counts).squeeze(1)
    tiles = tiles[torch.argsort(counts[tiles], descending=True, stable=True)]
    tile_counts = counts[tiles]
    chunks: list[_Chunk] = []
    M = bins.gaussian.numel()
    i, n_tiles = 0, tiles.numel()
    while i < n_tiles:
        k_max = int(tile_counts[i])
        kb = min(k_max, k_block)
        tc = max(1, chunk_elements // (kb * P))
        sel = tiles[i : i + tc]
        cnt = tile_counts[i : i + tc]
        start = bins.starts[sel][:, None]
        chunk = _Chunk(tiles=sel)
        for k0 in range(0, k_max, kb):
            n = int((cnt > k0).sum())
            k = torch.arange(k0, min(k0 + kb, k_max), device=sel.device)
            slots = torch.where(k < cnt[:n, None], start[:n] + k, M)
            chunk.blocks.append(_Block(slots=slots))
        chunks.append(chunk)
        i += tc
    return chunks


def _block_weights(coef: torch.Tensor, pix: torch.Tensor, t0: torch.Tensor):
    """Front-to-back recurrence over one block.

    ``coef (n, kb, 6)``, ``pix (6, P)``, ``t0 (n, P)`` transmittance entering the block (0 for
    finished pixels). Returns ``alpha`` (effective: 0 where skipped or after termination; equal
    to 0.999 where capped), ``one_minus`` (1 - alpha before termination masking), ``trans``
    (transmittance entering each Gaussian), ``weights`` and ``t1 (n, P)``: the transmittance
    leaving the block, or 0 for pixels that terminated. gsplat stops *before* the Gaussian that
    would take T to <= 1e-4, so a stopped pixel keeps T > 1e-4 and must not resume later.
    """
    alpha = (coef @ pix).clamp_(max=_LOG_ALPHA_MAX).exp_()  # min(0.999, o exp(-power))
    # Skip alpha < 1/255 (gsplat keeps alpha == 1/255): threshold() keeps strictly greater.
    alpha = F.threshold_(alpha, _below(ALPHA_THRESHOLD, alpha.dtype), 0.0)
    one_minus = torch.rsub(alpha, 1.0)
    first = one_minus[:, 0].clone()
    one_minus[:, 0].mul_(t0)  # fold T0 into the product (touches 1/kb of the data)
    t_after = torch.cumprod(one_minus, 1)
    one_minus[:, 0] = first
    keep = t_after > T_MIN
    alpha.mul_(keep)
    t1 = torch.where(keep[:, -1], t_after[:, -1], 0.0)
    trans = torch.empty_like(t_after)
    trans[:, 0] = t0
    trans[:, 1:] = t_after[:, :-1]
    weights = alpha * trans
    return alpha, one_minus, trans, weights, t1


def _below(x: float, dtype: torch.dtype) -> float:
    """The largest value of ``dtype`` strictly below ``x``."""
    t = torch.tensor(x, dtype=dtype)
    return float(torch.nextafter(t, torch.tensor(-math.inf, dtype=dtype)))


def _select(x: torch.Tensor, n: int, rows: torch.Tensor | None) -> torch.Tensor:
    """The chunk rows a block composites: the first ``n``, or ``rows`` (index_select: the same
    gather as ``x[rows]``, faster on the CPU)."""
    return x[:n] if rows is None else x.index_select(0, rows)


#: ``block_fn(block, rows, slots, t0, tiles) -> (contrib, t1, weights)`` of :func:`_composite_chunks`.
BlockFn = Callable[
    [_Block, "torch.Tensor | None", torch.Tensor, torch.Tensor, torch.Tensor],
    tuple[torch.Tensor, torch.Tensor, torch.Tensor],
]


def _composite_chunks(
    bins: TileBins,
    chunks: list[_Chunk],
    width: int,
    height: int,
    like: torch.Tensor,
    channels: int,
    block_fn: BlockFn,
    stats: dict[str, int] | None,
) -> torch.Tensor:
    """The front-to-back loop both compositing paths share: per chunk the transmittance starts
    at 1 inside the image; per block only the tiles with an unfinished pixel are composited (a
    chunk stops when none is left), their sums accumulated and their transmittance carried on.

    ``block_fn(block, rows, slots, t0, tiles)`` composites one block for the chunk rows kept
    (``rows``; None: the first ``n``): ``slots (n, kb)`` its intersection rows, ``t0 (n, P)`` the
    transmittance entering it (a view: clone to keep), ``tiles (n,)`` their global ids. It
    returns ``contrib (n, P, channels)`` = ``(Σ w f, Σ w)``, ``t1 (n, P)`` the transmittance
    leaving the block (0 once a pixel stopped) and the weights (``stats``: their count is the
    candidates, those > 0 the composited pairs).

    Returns ``(I · tiles, P, channels)`` per-tile sums; sets each chunk's ``used``.
    """
    P = bins.tile_size**2
    out = like.new_zeros(bins.images * bins.tiles_y * bins.tiles_x, P, channels)
    for chunk in chunks:
        t = _initial_transmittance(bins, chunk.tiles, width, height, like)  # (Tc, P)
        acc = like.new_zeros(chunk.tiles.numel(), P, channels)
        chunk.used = 0
        for block in chunk.blocks:
            n = block.slots.shape[0]
            # Drop finished tiles (every pixel terminated) from this block on.
            alive = (t[:n] > 0).any(1)
            rows = None if bool(alive.all()) else torch.nonzero(alive).squeeze(1)
            if rows is not None and rows.numel() == 0:
                break
            contrib, t1, w = block_fn(
                block,
                rows,
                _select(block.slots, n, rows),
                _select(t, n, rows),
                _select(chunk.tiles, n, rows),
            )
            if rows is None:
                acc[:n] += contrib
                t[:n] = t1
            else:
                acc.index_add_(0, rows, contrib)
                t[rows] = t1
            chunk.used += 1
            if stats is not None:
                stats["candidates"] += w.numel()
                stats["pairs"] += int((w > 0).sum())
        out.index_copy_(0, chunk.tiles, acc)
        if stats is not None:
            stats["blocks"] += len(chunk.blocks)
            stats["blocks_used"] += chunk.used
    return out


class _CompositeTiles(torch.autograd.Function):
    """``(coef (M+1, 6), feat (M+1, C)) -> (I * tiles, P, C)`` accumulated features per tile."""

    @staticmethod
    def forward(ctx, coef, feat, bins, chunks, width, height, stats):  # type: ignore[override]
        pix = _pixel_features(bins.tile_size, coef.dtype, coef.device)

        def block_fn(block, rows, slots, t0, tiles):
            # Kept for the backward pass, which recomputes the block from them.
            block.rows, block.t0 = rows, t0.clone()
            _, _, _, w, t1 = _block_weights(coef[slots], pix, block.t0)  # w (n, kb, P)
            return torch.bmm(w.transpose(1, 2), feat[slots]), t1, w

        out = _composite_chunks(bins, chunks, width, height, coef, feat.shape[1], block_fn, stats)
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
            g_chunk = grad_out[chunk.tiles]  # (Tc, P, C)
            later = coef.new_zeros(chunk.tiles.numel(), pix.shape[1])  # Σ w s of later blocks
            for block in reversed(chunk.blocks[: chunk.used]):
                n, rows = block.slots.shape[0], block.rows
                slots = _select(block.slots, n, rows)
                g = _select(g_chunk, n, rows)
                alpha, one_minus, trans, w, _ = _block_weights(coef[slots], pix, block.t0)
                s = torch.bmm(feat[slots], g.transpose(1, 2))  # (n, kb, P) dL/dw
                g_feat = torch.bmm(w, g)  # (n, kb, C)
                ws = w.mul_(s)
                from_later = _select(later, n, rows).clone()
                # Σ_{j >= k} w_j s_j + (later blocks), summed back to front: no cancellation
                # for Gaussians behind nearly opaque ones.
                ws[:, -1] += from_later
                suffix = ws.flip(1).cumsum(1).flip(1)
                ws[:, -1] -= from_later
                if rows is None:
                    later[:n] = suffix[:, 0]
                else:
                    later[rows] = suffix[:, 0]
                # dL/dalpha_k = T_k s_k - Σ_{j>k} w_j s_j / (1 - alpha_k), and through the exp
                # unless alpha was capped at 0.999 (gsplat: no gradient there).
                after = suffix.sub_(ws)
                g_alpha = trans.mul_(s).sub_(after.div_(one_minus))
                g_logit = g_alpha.mul_(alpha).mul_(alpha < ALPHA_MAX)
                g_coef = g_logit @ pix.T  # (n, kb, 6)
                idx = slots.reshape(-1)
                grad_coef.index_add_(0, idx, g_coef.reshape(-1, 6))
                grad_feat.index_add_(0, idx, g_feat.reshape(-1, g_feat.shape[-1]))
        return grad_coef, grad_feat, None, None, None, None, None


def _tile_coefficients(
    bins: TileBins, means2d: torch.Tensor, conics: torch.Tensor, opacities: torch.Tensor
) -> torch.Tensor:
    """``(M + 1, 6)`` polynomial coefficients of log-alpha per intersection (+ a dead padding row)."""
    g = bins.gaussian
    origin = _tile_origins(bins, bins.tile, means2d.dtype)
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
    tile_size: int | None = None,
    chunk_elements: int | None = None,
    k_block: int | None = None,
    stats: dict[str, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Composite screen-space Gaussians front to back.

    Args:
        means2d: ``(I, N, 2)``; conics ``(I, N, 3)``; opacities ``(I, N)`` in [0, 1];
            features ``(I, N, C)`` (colours and anything else to splat, e.g. depth);
            depths ``(I, N)`` (sort key); extents ``(I, N, 2)`` half-widths, 0 = culled.
        width, height: image size.
        tile_size, chunk_elements, k_block: performance knobs (results do not depend on them;
            default: the module's ``TILE_SIZE``, ``CHUNK_ELEMENTS`` (``FORWARD_CHUNK_ELEMENTS``
            when no gradient is wanted), ``K_BLOCK``).
        stats: if a dict, filled with counts: ``intersections`` (Gaussian-tile), ``candidates``
            (Gaussian-pixel pairs evaluated), ``pairs`` (those composited: alpha >= 1/255 and
            before termination), ``blocks`` / ``blocks_used`` (early termination).

    Returns:
        ``features (I, H, W, C)`` = Σ_k w_k f_k and ``alpha (I, H, W, 1)`` = Σ_k w_k.
    """
    C = features.shape[-1]
    tile_size = TILE_SIZE if tile_size is None else tile_size
    k_block = K_BLOCK if k_block is None else k_block
    if stats is not None:
        for key in STATS_KEYS:
            stats.setdefault(key, 0)
    inputs = (means2d, conics, opacities, features)
    # In the inputs' dtype under autocast too (as the models' fp32_geometry): bf16 matmuls
    # would lose the positions' precision and could not be accumulated into the float32 image.
    # Autocast is per thread: this also keeps the forward path's worker threads alike.
    with torch.autocast(means2d.device.type, enabled=False):
        if not (torch.is_grad_enabled() and any(x.requires_grad for x in inputs)):
            # No gradient wanted: the forward-only path (same image, less work and memory), its
            # images shared among the intra-op threads (see composite_forward).
            from rayzer.render.compositing_forward import composite_forward

            if chunk_elements is None:
                chunk_elements = FORWARD_CHUNK_ELEMENTS
            return composite_forward(
                *inputs, depths, extents, width, height, tile_size, chunk_elements, k_block, stats
            )
        bins = bin_gaussians(means2d, extents, depths, width, height, tile_size)
        if stats is not None:
            stats["intersections"] += bins.gaussian.numel()
        chunk_elements = CHUNK_ELEMENTS if chunk_elements is None else chunk_elements
        coef = _tile_coefficients(bins, means2d, conics, opacities)
        ones = features.new_ones(bins.gaussian.numel() + 1, 1)
        feat = torch.cat((features.reshape(-1, C)[bins.gaussian], features.new_zeros(1, C)))
        feat = torch.cat((feat, ones), dim=1)
        chunks = _plan(bins, chunk_elements, k_block)
        tiles = _CompositeTiles.apply(coef, feat, bins, chunks, width, height, stats)
        return _untile(tiles, bins, width, height, C)


def _untile(
    tiles: torch.Tensor, bins: TileBins, width: int, height: int, C: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(I · tiles, P, C + 1)`` per-tile sums -> ``features (I, H, W, C)``, ``alpha (I, H, W, 1)``."""
    ts = bins.tile_size
    img = tiles.reshape(bins.images, bins.tiles_y, bins.tiles_x, ts, ts, C + 1)
    img = img.permute(0, 1, 3, 2, 4, 5)
    img = img.reshape(bins.images, bins.tiles_y * ts, bins.tiles_x * ts, C + 1)
    img = img[:, :height, :width]
    return img[..., :C], img[..., C:]
