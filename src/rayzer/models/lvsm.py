"""LVSM encoder–decoder oracle: the same latent scene, built from *ground-truth* cameras.

Input views are tokenized from the channel concatenation [RGB ‖ Plücker rays] of their true
cameras; latent scene tokens attend jointly with them; target views are decoded from their true
Plücker rays. It needs posed data and serves as the upper reference for RayZer trained on the
same budget. The cameras it reads are the batch's ``c2w`` / pixel ``K``, put in the canonical
middle view's frame at unit scale (:func:`rayzer.geometry.normalize_scene_scale`, as the
training stream does), so any consistent world frame gives the same renders.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from rayzer.geometry import normalize_intrinsics, normalize_scene_scale
from rayzer.model_config import LVSMConfig
from rayzer.models.base import CameraPrediction, Capabilities, ModelOutput, RayModel, Rendered
from rayzer.models.latent_scene import (
    LatentScene,
    RayDecoder,
    SceneReconstructor,
    plucker_from_normalized,
)
from rayzer.models.losses import photometric_loss
from rayzer.models.registry import register_model
from rayzer.models.views import as_view_index, gather_views
from rayzer.nn import PatchEmbed


@register_model("lvsm")
class LVSM(RayModel):
    """Encoder–decoder LVSM. Ground-truth cameras in, renders out; shapes as in RayZer."""

    capabilities = Capabilities(predicts_cameras=False, needs_gt_cameras=True)
    display_name = "LVSM"
    config_class = LVSMConfig

    def __init__(self, cfg: LVSMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.input_embed = PatchEmbed(3 + 6, cfg.patch_size, cfg.dim)
        self.reconstructor = SceneReconstructor.from_config(cfg)
        self.decoder = RayDecoder.from_config(cfg)

    def reconstruct(
        self, images: Tensor, c2w: Tensor, K_norm: Tensor, view_positions: Tensor | None = None
    ) -> LatentScene:
        """images (B, Vi, 3, H, W), c2w (B, Vi, 4, 4), K_norm (B, Vi, 4) → the scene (tokens
        (B, n [+ M], d) and the input views with their cameras). No view-position embedding."""
        h, w = images.shape[-2:]
        rays = plucker_from_normalized(c2w, K_norm, h, w)
        tokens = self.input_embed(torch.cat((images, rays), dim=2))
        return LatentScene(self.reconstructor(tokens.flatten(1, 2)), images, c2w, K_norm)

    def render(
        self, scene: LatentScene, c2w: Tensor, K_norm: Tensor, height: int, width: int
    ) -> Rendered:
        """Target cameras c2w (B, Vt, 4, 4) and K_norm (B, Vt, 4) → RGB (B, Vt, 3, H, W)."""
        return Rendered(self.decoder(scene, c2w, K_norm, height, width))

    def forward(
        self, batch: Mapping[str, Tensor], input_index: Tensor, target_index: Tensor
    ) -> ModelOutput:
        """Render the target views from the input views with the batch's ground-truth cameras
        (``batch["c2w"]`` (B, V, 4, 4) OpenCV camera-to-world, ``batch["K"]`` (B, V, 4) pixels).

        Raises:
            ValueError: the batch has no cameras, or the image size is not a patch multiple.
        """
        images = batch["image"]
        if "c2w" not in batch or "K" not in batch:
            raise ValueError("LVSM needs ground-truth cameras (batch keys 'c2w' and 'K')")
        b, v, _, h, w = images.shape
        p = self.cfg.patch_size
        if h % p or w % p:
            raise ValueError(f"image size {h}x{w} is not divisible by the patch size {p}")
        inp = as_view_index(input_index, b, v).to(images.device)
        tgt = as_view_index(target_index, b, v).to(images.device)
        c2w, _ = normalize_scene_scale(batch["c2w"])
        cams = CameraPrediction(c2w, normalize_intrinsics(batch["K"], h, w), canonical=v // 2)
        scene = self.reconstruct(
            gather_views(images, inp), gather_views(cams.c2w, inp), gather_views(cams.K_norm, inp)
        )
        rendered = self.render(
            scene, gather_views(cams.c2w, tgt), gather_views(cams.K_norm, tgt), h, w
        )
        return ModelOutput(cams, scene, rendered, inp, tgt)

    def loss(
        self, output: ModelOutput, batch: Mapping[str, Tensor], perceptual: nn.Module | None
    ) -> dict[str, Tensor]:
        """``MSE + λ·perceptual`` of the target renders."""
        target = gather_views(batch["image"], output.target_index)
        return photometric_loss(output.rendered.rgb, target, perceptual)

    def extra_repr(self) -> str:
        return f"patch_size={self.cfg.patch_size}"
