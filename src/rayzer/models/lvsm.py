"""LVSM encoder–decoder oracle: the same latent scene, built from *ground-truth* cameras.

Input views are tokenized from the channel concatenation [RGB ‖ Plücker rays] of their true
cameras; latent scene tokens attend jointly with them; target views are decoded from their true
Plücker rays. It needs posed data and serves as the upper reference for RayZer trained on the
same budget.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rayzer.geometry import normalize_intrinsics
from rayzer.models.config import ModelConfig
from rayzer.models.latent_scene import (
    LatentScene,
    RayDecoder,
    SceneReconstructor,
    plucker_from_normalized,
)
from rayzer.models.views import as_view_index, gather_views
from rayzer.nn import PatchEmbed


class LVSM(nn.Module):
    """Encoder–decoder LVSM. Cameras in, renders out; shapes as in :class:`RayZer`."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.input_embed = PatchEmbed(3 + 6, cfg.patch_size, cfg.dim)
        self.reconstructor = SceneReconstructor.from_config(cfg)
        self.decoder = RayDecoder.from_config(cfg)

    def reconstruct(self, images: Tensor, c2w: Tensor, K_norm: Tensor) -> LatentScene:
        """images (B, Vi, 3, H, W), c2w (B, Vi, 4, 4), K_norm (B, Vi, 4) → the scene (tokens
        (B, n [+ M], d) and the input views with their cameras)."""
        h, w = images.shape[-2:]
        rays = plucker_from_normalized(c2w, K_norm, h, w)
        tokens = self.input_embed(torch.cat((images, rays), dim=2))
        return LatentScene(self.reconstructor(tokens.flatten(1, 2)), images, c2w, K_norm)

    def render(
        self, scene: LatentScene, c2w: Tensor, K_norm: Tensor, height: int, width: int
    ) -> Tensor:
        """Target cameras c2w (B, Vt, 4, 4) and K_norm (B, Vt, 4) → RGB (B, Vt, 3, H, W)."""
        return self.decoder(scene, c2w, K_norm, height, width)

    def forward(
        self, images: Tensor, c2w: Tensor, K: Tensor, input_index: Tensor, target_index: Tensor
    ) -> Tensor:
        """Render the target views from the input views with ground-truth cameras.

        Args:
            images: (B, V, 3, H, W) in [0, 1].
            c2w: (B, V, 4, 4) ground-truth OpenCV camera-to-world (any consistent world frame).
            K: (B, V, 4) ground-truth intrinsics in pixels of these images.
            input_index, target_index: (Vi,)/(B, Vi) and (Vt,)/(B, Vt).
        Returns:
            (B, Vt, 3, H, W) renders.
        """
        b, v, _, h, w = images.shape
        p = self.cfg.patch_size
        if h % p or w % p:
            raise ValueError(f"image size {h}x{w} is not divisible by the patch size {p}")
        inp = as_view_index(input_index, b, v).to(images.device)
        tgt = as_view_index(target_index, b, v).to(images.device)
        K_norm = normalize_intrinsics(K, h, w)
        scene = self.reconstruct(
            gather_views(images, inp), gather_views(c2w, inp), gather_views(K_norm, inp)
        )
        return self.render(
            scene,
            gather_views(c2w, tgt),
            gather_views(K_norm, tgt),
            h,
            w,
        )
