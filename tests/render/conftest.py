"""Shared scene builders for the rasterizer tests (fixtures, so test modules stay independent)."""

from __future__ import annotations

import pytest
import torch

from rayzer.geometry import look_at


def random_scene(
    seed: int = 0,
    *,
    B: int = 1,
    N: int = 60,
    V: int = 2,
    width: int = 23,
    height: int = 17,
    sh_degree: int | None = None,
    dtype: torch.dtype = torch.float64,
    spread: float = 0.6,
    scale: tuple[float, float] = (0.02, 0.2),
) -> dict:
    """Random Gaussians around the origin seen by ``V`` cameras on a ring at distance ~4 (looking
    at the origin, different focal lengths and principal points): overlaps, partial views."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=dtype)

    means = (torch.randn(B, N, 3, generator=g, dtype=dtype)) * spread
    quats = torch.randn(B, N, 4, generator=g, dtype=dtype)
    scales = scale[0] + (scale[1] - scale[0]) * rand(B, N, 3)
    opacities = 0.05 + 0.94 * rand(B, N)
    if sh_degree is None:
        colors = rand(B, N, 3)
    else:
        colors = 0.5 * torch.randn(B, N, (sh_degree + 1) ** 2, 3, generator=g, dtype=dtype)
    angle = 2 * torch.pi * rand(B, V)
    eye = torch.stack(
        (4 * torch.sin(angle), 0.8 * (rand(B, V) - 0.5), -4 * torch.cos(angle)), dim=-1
    )
    up = torch.tensor([0.0, -1.0, 0.0], dtype=dtype)
    c2w = look_at(eye, torch.zeros(3, dtype=dtype), up)
    f = (0.9 + 0.4 * rand(B, V, 2)) * max(width, height)
    c = torch.stack((width * (0.4 + 0.2 * rand(B, V)), height * (0.4 + 0.2 * rand(B, V))), -1)
    K = torch.cat((f, c), dim=-1)
    return {
        "means": means,
        "quats": quats,
        "scales": scales,
        "opacities": opacities,
        "colors": colors,
        "c2w": c2w,
        "K": K,
        "width": width,
        "height": height,
    }


@pytest.fixture
def make_scene():
    return random_scene
