"""The latent-scene halves shared by RayZer and LVSM: scene reconstructor and ray decoder.

Both operate on token sequences and know nothing about how their input tokens were made, so
RayZer (image tokens fused with *predicted* rays) and LVSM (image‖*ground-truth* rays patches)
compose the same modules.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rayzer.geometry import denormalize_intrinsics, plucker_rays
from rayzer.models.config import ModelConfig
from rayzer.nn import PatchEmbed, PatchUnembed, Transformer
from rayzer.nn.transformer import INIT_STD


def plucker_from_normalized(c2w: Tensor, K_norm: Tensor, height: int, width: int) -> Tensor:
    """Plücker ray maps from normalised intrinsics: c2w (..., 4, 4), K_norm (..., 4) → (..., 6, H, W)."""
    return plucker_rays(c2w, denormalize_intrinsics(K_norm, height, width), height, width)


class SceneReconstructor(nn.Module):
    """Learnable scene tokens attend jointly with input-view tokens; the scene tokens are kept.

    forward: tokens (B, M, d) → scene (B, n, d), with n = ``num_scene_tokens``; with
    ``keep_input_tokens`` the processed input tokens are kept too: (B, n + M, d).
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        num_scene_tokens: int,
        mlp_ratio: float = 4.0,
        qk_norm: bool = True,
        grad_checkpointing: bool = False,
        keep_input_tokens: bool = False,
    ) -> None:
        super().__init__()
        self.keep_input_tokens = keep_input_tokens
        self.scene_tokens = nn.Parameter(torch.randn(num_scene_tokens, dim) * INIT_STD)
        self.transformer = Transformer(
            dim, depth, num_heads, mlp_ratio, qk_norm, grad_checkpointing=grad_checkpointing
        )

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> SceneReconstructor:
        return cls(
            cfg.dim,
            cfg.scene_layers,
            cfg.num_heads,
            cfg.num_scene_tokens,
            cfg.mlp_ratio,
            cfg.qk_norm,
            cfg.grad_checkpointing,
            cfg.keep_input_tokens,
        )

    def forward(self, tokens: Tensor) -> Tensor:
        n = self.scene_tokens.shape[0]
        scene = self.scene_tokens.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        out = self.transformer(torch.cat((scene, tokens), dim=1))
        return out if self.keep_input_tokens else out[:, :n]


class RayDecoder(nn.Module):
    """Renders target views from scene tokens and target Plücker rays.

    Each target view's ray tokens attend jointly with the scene tokens (views are decoded
    independently, batched as B·Vt sequences of n + N tokens); an MLP head maps each output
    token to a p×p RGB patch through a sigmoid.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        patch_size: int,
        mlp_ratio: float = 4.0,
        qk_norm: bool = True,
        grad_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.ray_embed = PatchEmbed(6, patch_size, dim)
        self.transformer = Transformer(
            dim, depth, num_heads, mlp_ratio, qk_norm, grad_checkpointing=grad_checkpointing
        )
        self.unembed = PatchUnembed(dim, patch_size, out_channels=3, activation="sigmoid")

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> RayDecoder:
        return cls(
            cfg.dim,
            cfg.dec_layers,
            cfg.num_heads,
            cfg.patch_size,
            cfg.mlp_ratio,
            cfg.qk_norm,
            cfg.grad_checkpointing,
        )

    def forward(self, scene: Tensor, target_rays: Tensor) -> Tensor:
        """scene (B, n, d), target_rays (B, Vt, 6, H, W) → RGB (B, Vt, 3, H, W) in (0, 1)."""
        b, vt, _, h, w = target_rays.shape
        ray_tokens = self.ray_embed(target_rays)  # (B, Vt, N, d)
        n_tok = ray_tokens.shape[2]
        scene_rep = scene.unsqueeze(1).expand(-1, vt, -1, -1)
        seq = torch.cat((scene_rep, ray_tokens), dim=2).flatten(0, 1)  # (B·Vt, n + N, d)
        out = self.transformer(seq)[:, -n_tok:].unflatten(0, (b, vt))
        return self.unembed(out, h, w)
