"""How much memory a render will take, known before rendering: Gaussian-tile intersections.

The tiled renderer (:mod:`rayzer.render.compositing`) holds a few integers and floats per
Gaussian-tile intersection (binning, sorting, per-intersection coefficients and features), and
their number grows with the screen area of every Gaussian: rendering the same Gaussians at twice
the resolution takes about four times as many. :func:`count_intersections` counts them for a set
of cameras from the projection alone (the same opacity-aware screen boxes and tiles as the
renderer, no sort and nothing of size intersections is allocated), so a caller can plan how many
views to render per pass, or refuse a size that cannot fit, before any rendering work.

The estimate is per device and backend: :func:`render_bytes` uses the torch backend's bytes per
intersection (measured on the CPU; the same tensors on CUDA) or gsplat's (CUDA), plus, for the
torch backend, the block temporaries of each thread that composites at the same time
(:data:`FORWARD_BLOCK_TEMPORARIES`; :func:`rayzer.render.compositing_forward.forward_workers`
says how many), and
:func:`available_memory_bytes` reads the free memory of the device that renders (host RAM, or
the GPU's free memory). It bounds the rasterizer's own allocations only: the model, the frames
collected on the host and other processes' use are the caller's to count.
"""

from __future__ import annotations

import os

import torch

from rayzer.render.compositing import FORWARD_CHUNK_ELEMENTS, K_BLOCK, TILE_SIZE
from rayzer.render.projection import project_gaussians

__all__ = [
    "BYTES_PER_INTERSECTION",
    "BYTES_PER_INTERSECTION_GSPLAT",
    "BYTES_PER_PIXEL",
    "FORWARD_BLOCK_TEMPORARIES",
    "available_memory_bytes",
    "count_intersections",
    "forward_worker_bytes",
    "render_bytes",
    "tile_padded_pixels",
]

#: Peak bytes per Gaussian-tile intersection of one forward render with the ``torch`` backend
#: (binning keys and sort indices, per-intersection gathers). Measured on the CPU (peak RSS over
#: the model alone, one view of 32 768 pixel-aligned Gaussians): 3.9 million intersections at
#: 256 x 256 took +650 MB (about 170 B each), 14.4 million at 512 x 512 +1430 MB (about 100 B
#: each); the larger figure plus a margin. The torch backend allocates the same tensors on CUDA,
#: so the figure bounds it there too (the CUDA caching allocator may hold a little more).
BYTES_PER_INTERSECTION = 192
#: Bytes per intersection of gsplat's CUDA rasterizer (``backend="gsplat"``, the default on
#: CUDA): an int64 tile-depth key and an int32 Gaussian index per intersection, doubled for its
#: radix sort, plus a margin. From gsplat's data layout, *not measured here* (no GPU in the
#: environment this was written in); gsplat keeps nothing else per intersection.
BYTES_PER_INTERSECTION_GSPLAT = 48
#: Bytes per output pixel of a forward render (RGB, depth and alpha in float32, the tile image
#: and its reshaped copies), independent of the Gaussians.
BYTES_PER_PIXEL = 64
#: Block-sized float32 temporaries one compositing thread of the forward path holds at its peak
#: (the gathered rows and coefficients, alpha, the transmittance, its cumulative product, the
#: weights; glibc keeps each thread's freed blocks in its own arena). Measured: peak RSS of two
#: 256 x 256 views of 6 000 large Gaussians, blocks of 2^21 pairs against 2^16: +55-64 MiB with
#: one thread, +91-108 MiB with two (about 7-8 blocks of 8 MiB per thread).
FORWARD_BLOCK_TEMPORARIES = 8


def count_intersections(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    c2w: torch.Tensor,
    K: torch.Tensor,
    width: int,
    height: int,
    *,
    near: float = 0.01,
    far: float = 1e10,
    views_per_pass: int = 16,
) -> torch.Tensor:
    """Gaussian-tile intersections of each view, as the torch renderer would bin them.

    Args:
        means ``(N, 3)``, quats ``(N, 4)``, scales ``(N, 3)``, opacities ``(N,)``: one scene
            (as :func:`rasterize` takes them, without the batch dim).
        c2w ``(V, 4, 4)``, K ``(V, 4)`` pixel intrinsics of ``height x width`` images.
        views_per_pass: views projected together (bounds this function's own memory, which is
            ``O(views_per_pass * N)``).
    Returns:
        ``(V,)`` int64 counts (the renderer's binning rules, so its count up to float rounding).
    """
    counts = []
    with torch.no_grad():
        for s in range(0, c2w.shape[0], views_per_pass):
            proj = project_gaussians(
                means[None].float(),
                quats[None].float(),
                scales[None].float(),
                c2w[None, s : s + views_per_pass].float(),
                K[None, s : s + views_per_pass].float(),
                width,
                height,
                opacities=opacities[None].float(),
                near=near,
                far=far,
            )
            m, e = proj.means2d[0].double(), proj.extents[0].double()  # (v, N, 2)
            size = torch.tensor([width - 1, height - 1], dtype=m.dtype, device=m.device)
            pad = 1e-3 + 1e-4 * e  # the renderer's rounding margin
            lo = torch.minimum(torch.ceil(m - e - pad - 0.5).clamp_min(0), size)
            hi = torch.minimum(torch.floor(m + e + pad - 0.5).clamp_min(-1), size)
            tiles = (torch.floor(hi / TILE_SIZE) - torch.floor(lo / TILE_SIZE) + 1).clamp_min(0)
            tiles = tiles * (hi >= lo) * (e > 0)
            counts.append((tiles[..., 0] * tiles[..., 1]).sum(-1).long().cpu())
    return torch.cat(counts) if counts else torch.zeros(0, dtype=torch.int64)


def tile_padded_pixels(height: int, width: int) -> int:
    """Pixels the renderer composites for one ``height x width`` view: whole tiles of
    ``TILE_SIZE`` (the last row and column of tiles reach past the image, and their pixels are
    computed and held like the others before the image is cropped). The ``pixels`` to pass to
    :func:`render_bytes` (times the views of a pass)."""
    tiles_y, tiles_x = -(-int(height) // TILE_SIZE), -(-int(width) // TILE_SIZE)
    return tiles_y * tiles_x * TILE_SIZE * TILE_SIZE


def forward_worker_bytes(intersections: int, pixels: int) -> int:
    """Bytes of one compositing thread's block temporaries (torch backend, forward path) in a
    pass of ``pixels`` output pixels with ``intersections`` Gaussian-tile intersections: a block
    holds at most ``FORWARD_CHUNK_ELEMENTS`` Gaussian-pixel pairs, and at most ``K_BLOCK`` per
    pixel of the images it composites (a bound: every pixel of the pass); none without
    intersections."""
    if int(intersections) <= 0:
        return 0
    pairs = min(FORWARD_CHUNK_ELEMENTS, int(pixels) * K_BLOCK)
    return FORWARD_BLOCK_TEMPORARIES * 4 * pairs  # float32


def render_bytes(intersections: int, pixels: int, backend: str = "torch", workers: int = 1) -> int:
    """Estimated peak bytes of one forward render pass of ``pixels`` pixels (all views of the
    pass together, each padded to whole tiles: :func:`tile_padded_pixels`) with
    ``intersections`` Gaussian-tile intersections, on the device that
    renders: ``backend`` is the resolved rasterizer backend (``"torch"`` on the CPU or CUDA,
    ``"gsplat"`` on CUDA; see :func:`rayzer.render.rasterize.resolve_backend`).

    ``workers``: threads compositing the pass at the same time (the torch backend's forward
    path: :func:`rayzer.render.compositing_forward.forward_workers`), each with its block
    temporaries (:func:`forward_worker_bytes`); gsplat has none of its own.
    """
    if backend not in ("torch", "gsplat", "reference"):
        raise ValueError(f"backend must be 'torch', 'gsplat' or 'reference', got {backend!r}")
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    per = BYTES_PER_INTERSECTION_GSPLAT if backend == "gsplat" else BYTES_PER_INTERSECTION
    blocks = int(workers) * forward_worker_bytes(intersections, pixels) if backend == "torch" else 0
    return int(intersections) * per + int(pixels) * BYTES_PER_PIXEL + blocks


def available_memory_bytes(device: torch.device | str = "cpu") -> int | None:
    """Memory free for new allocations now: ``MemAvailable`` of ``/proc/meminfo`` on the CPU
    (Linux; else free physical pages), ``torch.cuda.mem_get_info`` on CUDA; None if unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None
