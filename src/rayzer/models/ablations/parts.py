"""Parts of the ablations that condition the transformers on one token per view (a camera
token) instead of per-pixel Plücker rays.

* :func:`fusion_mlp` merges two d-wide tokens into one (as RayZer fuses image and ray tokens);
* :class:`SE3CameraEmbed`: an SE(3) camera + focal → one token;
* :class:`PatchQueries`: one token per target view → one query token per target patch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rayzer.geometry import matrix_to_rot6d
from rayzer.models.camera import two_layer_mlp
from rayzer.nn.positional import patch_grid_encoding
from rayzer.nn.transformer import INIT_STD

#: Width of an SE(3) camera's features: 6-D rotation ‖ translation ‖ (fx/W, fy/H).
CAMERA_FEATURES = 11


def fusion_mlp(dim: int) -> nn.Sequential:
    """Bias-free Linear(2d → d) → GELU → Linear(d → d): [token a ‖ token b] → one token."""
    mlp = nn.Sequential(
        nn.Linear(2 * dim, dim, bias=False), nn.GELU(), nn.Linear(dim, dim, bias=False)
    )
    for layer in (mlp[0], mlp[2]):
        nn.init.normal_(layer.weight, std=INIT_STD)
    return mlp


def camera_features(c2w: Tensor, K_norm: Tensor) -> Tensor:
    """c2w (..., 4, 4) OpenCV camera-to-world and K_norm (..., 4) → (..., 11): the rotation's
    6-D representation (its first two columns), the camera centre, and the normalised focal
    lengths (the principal point is the image centre for every predicted camera)."""
    return torch.cat((matrix_to_rot6d(c2w[..., :3, :3]), c2w[..., :3, 3], K_norm[..., :2]), -1)


class SE3CameraEmbed(nn.Module):
    """c2w (B, V, 4, 4), K_norm (B, V, 4) → camera tokens (B, V, d): a 2-layer MLP of
    :func:`camera_features`."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = two_layer_mlp(CAMERA_FEATURES, dim, dim, INIT_STD)

    def forward(self, c2w: Tensor, K_norm: Tensor) -> Tensor:
        return self.mlp(camera_features(c2w, K_norm))


class PatchQueries(nn.Module):
    """Camera tokens (B, V, d) → query tokens (B, V, N, d), one per patch of a grid_h × grid_w
    grid in raster order: ``fusion_mlp([camera token ‖ patch position])``, the position a
    linear map of the patch's 2-D sinusoidal encoding (``pos_enc_dim`` wide). The decoder sees
    which patch it renders and from which camera, but no per-pixel ray."""

    def __init__(self, dim: int, pos_enc_dim: int) -> None:
        super().__init__()
        self.pos_enc_dim = pos_enc_dim
        self.position = nn.Linear(pos_enc_dim, dim, bias=False)
        nn.init.normal_(self.position.weight, std=INIT_STD)
        self.fuse = fusion_mlp(dim)

    def forward(self, cameras: Tensor, grid_h: int, grid_w: int) -> Tensor:
        grid = patch_grid_encoding(grid_h, grid_w, self.pos_enc_dim, cameras.device)
        pos = self.position(grid.to(cameras.dtype))  # (N, d)
        b, v, d = cameras.shape
        shape = (b, v, pos.shape[0], d)
        return self.fuse(torch.cat((cameras[:, :, None].expand(shape), pos.expand(shape)), -1))
