"""Pose heads: E-RayZer's pairwise head and NAS3R's per-token head (identity at initialisation).

Poses are OpenCV camera-to-world matrices. Rotations are predicted in the 6-D representation
(Zhou et al.) as an offset from the identity's 6-D vector, so an output of zero is exactly the
identity rotation, and translations are predicted directly (zero = at the origin).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rayzer.geometry import make_c2w, rot6d_to_matrix
from rayzer.nn.transformer import INIT_STD

#: 6-D representation of the identity rotation (first two columns of I).
IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def pose_from_head(raw: Tensor) -> Tensor:
    """(…, 9) = (6-D rotation offset, translation) → (…, 4, 4) camera-to-world.

    The offset is added to the identity's 6-D vector, so ``raw = 0`` gives the exact identity.
    """
    identity = raw.new_tensor(IDENTITY_6D)
    return make_c2w(rot6d_to_matrix(raw[..., :6] + identity), raw[..., 6:9])


def _mlp(d_in: int, d_hidden: int, d_out: int, last_std: float) -> nn.Sequential:
    """LayerNorm → Linear → GELU → Linear; the last layer N(0, last_std) (0: zeros), zero bias."""
    mlp = nn.Sequential(
        nn.LayerNorm(d_in, bias=False),
        nn.Linear(d_in, d_hidden),
        nn.GELU(),
        nn.Linear(d_hidden, d_out),
    )
    nn.init.normal_(mlp[1].weight, std=INIT_STD)
    nn.init.zeros_(mlp[1].bias)
    if last_std > 0:
        nn.init.normal_(mlp[3].weight, std=last_std)
    else:
        nn.init.zeros_(mlp[3].weight)
    nn.init.zeros_(mlp[3].bias)
    return mlp


class PairwisePoseHead(nn.Module):
    """E-RayZer cameras: the canonical view is the exact identity; every other view i gets
    ``identity + MLP([canonical token ‖ token_i])`` (6-D rotation + translation), its pose in the
    canonical view's frame.

    Args:
        dim: token width d.
        init_std: std of the last layer at initialisation (small: every view starts near the
            identity, but not exactly, so the rotation and translation outputs get gradients
            from the start through the hidden layer as well).
    """

    def __init__(self, dim: int, init_std: float = 1e-3) -> None:
        super().__init__()
        self.mlp = _mlp(2 * dim, dim, 9, init_std)

    def forward(self, tokens: Tensor, canonical: int) -> Tensor:
        """tokens (B, V, d) camera tokens, canonical view index c → c2w (B, V, 4, 4), view c = I."""
        b, v, _ = tokens.shape
        canon = tokens[:, canonical : canonical + 1].expand(b, v, -1)
        c2w = pose_from_head(self.mlp(torch.cat((canon, tokens), dim=-1)))
        # The canonical view is the identity by definition, not by what the MLP says about (c, c).
        is_canon = (torch.arange(v, device=tokens.device) == canonical)[:, None, None]
        return torch.where(is_canon, torch.eye(4, dtype=c2w.dtype, device=c2w.device), c2w)


class CameraTokenHead(nn.Module):
    """NAS3R cameras: per camera token, an MLP → (6-D rotation offset, translation, FoV logit).

    The last layer is **zero-initialised**, so at step 0 every view is at the identity pose and
    its FoV logit is 0 (the model maps that to FoV 2·atan(0.5), focal = image width).

    Returns:
        c2w (B, V, 4, 4) in the head's own frame (the model re-expresses them relative to the
        first context view) and the FoV logits (B, V).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = _mlp(dim, dim, 10, last_std=0.0)

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        raw = self.mlp(tokens)
        return pose_from_head(raw[..., :9]), raw[..., 9]
