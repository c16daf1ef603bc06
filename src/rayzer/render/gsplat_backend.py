"""gsplat's CUDA 2D compositing behind our PyTorch projection (the ``[cuda]`` extra).

The projection (means2d, conics, depths, radii) stays ours, so pose and intrinsics gradients
come from autograd; gsplat only composites the screen-space Gaussians (``isect_tiles`` ->
``isect_offset_encode`` -> ``rasterize_to_pixels``), with the same rules as the torch backend.
Imported lazily: ``import rayzer.render`` never imports gsplat.
"""

from __future__ import annotations

import torch

__all__ = ["GSPLAT_TILE_SIZE", "composite_gsplat"]

GSPLAT_TILE_SIZE = 16


def composite_gsplat(
    means2d: torch.Tensor,
    conics: torch.Tensor,
    opacities: torch.Tensor,
    features: torch.Tensor,
    depths: torch.Tensor,
    radii: torch.Tensor,
    width: int,
    height: int,
    *,
    tile_size: int = GSPLAT_TILE_SIZE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as :func:`rayzer.render.compositing.composite_torch`, with gsplat's int32
    ``radii (I, N, 2)`` instead of float extents. CUDA tensors only.

    Returns ``features (I, H, W, C)`` and ``alpha (I, H, W, 1)``.
    """
    if not means2d.is_cuda:
        raise ValueError(f"the gsplat backend needs CUDA tensors, got device {means2d.device}")
    try:
        from gsplat.cuda._wrapper import isect_offset_encode, isect_tiles, rasterize_to_pixels
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError(
            "backend='gsplat' needs gsplat with its CUDA kernels: pip install 'rayzer[cuda]'"
        ) from err
    n_img = means2d.shape[0]
    tiles_x = -(-width // tile_size)
    tiles_y = -(-height // tile_size)
    _, isect_ids, flatten_ids = isect_tiles(
        means2d.detach().float(), radii.int(), depths.detach().float(), tile_size, tiles_x, tiles_y
    )
    offsets = isect_offset_encode(isect_ids, n_img, tiles_x, tiles_y)
    # gsplat's kernels are fp32; cast there and back so a float64 caller still gets float64.
    dtype = means2d.dtype
    out, alpha = rasterize_to_pixels(
        means2d.float().contiguous(),
        conics.float().contiguous(),
        features.float().contiguous(),
        opacities.float().contiguous(),
        width,
        height,
        tile_size,
        offsets,
        flatten_ids,
    )
    return out.to(dtype), alpha.to(dtype)
