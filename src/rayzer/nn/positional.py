"""Sinusoidal positional encodings and the fused (patch position ‖ image index) embedding.

The image-index part is a *function* of the index (sinusoids), not a learned table sized to
the number of views, so a model runs with any number of views at test time — a table of
``num_views`` rows is what tied the original RayZer release to its training view count.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rayzer.nn.transformer import INIT_STD


def sinusoidal_encoding(pos: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Transformer sinusoids of real-valued positions: (...,) → (..., dim); dim must be even.

    Channel ``2k`` is ``sin(pos · ω_k)`` and ``2k+1`` is ``cos(pos · ω_k)`` with
    ``ω_k = max_period^(-2k/dim)``.
    """
    if dim % 2:
        raise ValueError(f"sinusoidal encoding needs an even dim, got {dim}")
    freqs = torch.exp(
        -math.log(max_period)
        * torch.arange(0, dim, 2, device=pos.device, dtype=torch.float32)
        / dim
    )
    angles = pos.float().unsqueeze(-1) * freqs
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)


def patch_grid_encoding(grid_h: int, grid_w: int, dim: int, device=None) -> Tensor:
    """2-D sinusoidal encoding of a patch grid: (grid_h·grid_w, dim), raster order.

    Half of the channels encode the row, half the column; dim must be divisible by 4.
    """
    if dim % 4:
        raise ValueError(f"2-D sinusoidal encoding needs dim divisible by 4, got {dim}")
    rows = torch.arange(grid_h, device=device).repeat_interleave(grid_w)
    cols = torch.arange(grid_w, device=device).repeat(grid_h)
    return torch.cat(
        (sinusoidal_encoding(rows, dim // 2), sinusoidal_encoding(cols, dim // 2)), dim=-1
    )


class ViewPositionEmbedding(nn.Module):
    """Linear layer over [sinusoidal patch position ‖ sinusoidal image index] → d (RayZer's).

    Args:
        dim: output width d.
        enc_dim: width of each sinusoidal part (patch part and index part).
        index_scale: image indices are multiplied by this before the sinusoids. Indices are the
            view's position in the (frame-ordered) set, 0 … V−1, so any V works.
    """

    def __init__(self, dim: int, enc_dim: int = 128, index_scale: float = 1.0) -> None:
        super().__init__()
        self.enc_dim = enc_dim
        self.index_scale = index_scale
        self.proj = nn.Linear(2 * enc_dim, dim, bias=False)
        nn.init.normal_(self.proj.weight, std=INIT_STD)

    def index_encoding(self, view_index: Tensor) -> Tensor:
        """(..., V) integer or real view positions → (..., V, enc_dim) sinusoids."""
        return sinusoidal_encoding(view_index.float() * self.index_scale, self.enc_dim)

    def patch_embedding(self, view_index: Tensor, grid_h: int, grid_w: int) -> Tensor:
        """(..., V) view positions → (..., V, N, d): embedding of every patch of every view."""
        patch = patch_grid_encoding(grid_h, grid_w, self.enc_dim, view_index.device)  # (N, e)
        index = self.index_encoding(view_index)  # (..., V, e)
        n = patch.shape[0]
        shape = (*index.shape[:-1], n, self.enc_dim)
        feats = torch.cat((patch.expand(shape), index.unsqueeze(-2).expand(shape)), dim=-1)
        return self.proj(feats)

    def index_embedding(self, view_index: Tensor) -> Tensor:
        """(..., V) view positions → (..., V, d): the index part alone (patch part zero).

        Used for the per-view camera tokens, which have no patch position.
        """
        index = self.index_encoding(view_index)
        return self.proj(torch.cat((torch.zeros_like(index), index), dim=-1))
