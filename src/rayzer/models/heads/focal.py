"""Shared-focal parameterisations (fx = fy in pixels, principal point at the image centre).

Focals are *normalised by the image width*: ``f = fx_px / W``. With the rest of the codebase's
normalised intrinsics (fx/W, fy/H, cx/W, cy/H), a square-pixel camera is
``K_norm = (f, f·W/H, 0.5, 0.5)`` (:func:`shared_focal_intrinsics`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rayzer.nn.transformer import INIT_STD

#: Margin (radians) that keeps a predicted FoV away from 0 and π.
FOV_EPS = 0.01


def inverse_softplus(y: float) -> float:
    """x with softplus(x) = y (> 0)."""
    if y <= 0:
        raise ValueError(f"softplus only reaches positive values, got {y}")
    return y + math.log(-math.expm1(-y))


def shared_focal_intrinsics(focal: Tensor, num_views: int, height: int, width: int) -> Tensor:
    """Width-normalised focal (B,) → K_norm (B, V, 4) = (f, f·W/H, 0.5, 0.5) for all V views."""
    fy = focal * (width / height)
    half = torch.full_like(focal, 0.5)
    return torch.stack((focal, fy, half, half), dim=-1)[:, None].expand(-1, num_views, 4)


def focal_from_fov_logit(logit: Tensor, fov0: float = 2 * math.atan(0.5)) -> Tensor:
    """FoV logit → width-normalised focal ``0.5 / tan(fov / 2)``.

    ``fov = ε + (π − 2ε)·sigmoid(logit + l0)`` with ε = 0.01 rad and ``l0`` chosen so that logit
    0 gives the horizontal FoV ``fov0`` (default 2·atan(0.5): focal = image width, NAS3R's
    initial camera). The FoV stays in (ε, π − ε), so the focal stays in (0.0025, 100) for any
    logit: positive and finite.
    """
    if not FOV_EPS < fov0 < math.pi - FOV_EPS:
        raise ValueError(f"fov0 must lie in ({FOV_EPS}, pi - {FOV_EPS}), got {fov0}")
    p0 = (fov0 - FOV_EPS) / (math.pi - 2 * FOV_EPS)
    fov = FOV_EPS + (math.pi - 2 * FOV_EPS) * torch.sigmoid(logit + math.log(p0 / (1 - p0)))
    return 0.5 / torch.tan(0.5 * fov)


class SoftplusFocalHead(nn.Module):
    """E-RayZer focal: ``f = softplus(MLP(token) + softplus⁻¹(f0))`` from one token.

    The release adds the head output to f0 = 1.25 unbounded; softplus keeps the focal positive
    and equals ``f0 + output`` to first order around the initialisation.

    Args:
        dim: token width.
        focal_init: f0, the width-normalised focal at initialisation.
        init_std: std of the last layer (small: starts at ≈ f0).
    """

    def __init__(self, dim: int, focal_init: float = 1.25, init_std: float = 1e-3) -> None:
        super().__init__()
        self.offset = inverse_softplus(focal_init)
        self.mlp = nn.Sequential(
            nn.LayerNorm(dim, bias=False), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, 1)
        )
        nn.init.normal_(self.mlp[1].weight, std=INIT_STD)
        nn.init.zeros_(self.mlp[1].bias)
        nn.init.normal_(self.mlp[3].weight, std=init_std)
        nn.init.zeros_(self.mlp[3].bias)

    def forward(self, token: Tensor) -> Tensor:
        """token (B, d) → focal (B,)."""
        return F.softplus(self.mlp(token).squeeze(-1) + self.offset)
