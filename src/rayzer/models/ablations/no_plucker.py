"""RayZer without Plücker rays: the paper's ablation of the ray-based 3D prior.

The cameras are RayZer's (the same estimator: SE(3) poses relative to the middle view, one
shared focal), but they reach the transformers as one token per view instead of per-pixel
Plücker ray maps. For views with cameras c2w (B, V, 4, 4), K_norm (B, V, 4):

* camera token (B, V, d) = MLP([6-D rotation ‖ translation ‖ fx/W, fy/H])
  (:class:`~rayzer.models.ablations.parts.SE3CameraEmbed`, one module for inputs and targets);
* reconstructor input per input patch = RayZer's fusion MLP([raw image token ‖ its view's
  camera token]) (RayZer: [raw image token ‖ ray token of that patch]);
* decoder query per target patch = MLP([target camera token ‖ patch position])
  (:class:`~rayzer.models.ablations.parts.PatchQueries`; RayZer: the patch's ray token).

The transformers must infer each pixel's ray from the pose and the patch position. Everything
else — tokenizer, estimator, sense head, reconstructor, decoder trunk and readout, loss — is
RayZer's. The sweep readout (the tiny presets) still reprojects along the target cameras'
rays: it reads pixels, it does not condition the transformers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rayzer.model_config import RayZerConfig
from rayzer.models.ablations.parts import PatchQueries, SE3CameraEmbed
from rayzer.models.base import Rendered
from rayzer.models.latent_scene import LatentScene, RayDecoder
from rayzer.models.rayzer import RayZer
from rayzer.models.registry import register_model
from rayzer.models.tokenizer import view_positions as frame_positions


@dataclass
class NoPluckerConfig(RayZerConfig):
    """RayZer's config; nothing new (``pos_enc_dim`` also sizes the query positions)."""

    name: str = "rayzer-no-plucker"


@register_model("rayzer-no-plucker")
class RayZerNoPlucker(RayZer):
    """RayZer with camera tokens in place of Plücker rays (module docstring)."""

    display_name = "RayZer (no Plücker rays)"
    config_class = NoPluckerConfig

    def __init__(self, cfg: NoPluckerConfig) -> None:
        super().__init__(cfg)
        # The ray patch embeddings give way to one camera token per view.
        del self.input_ray_embed
        self.decoder = RayDecoder.from_config(cfg, ray_queries=False)
        self.camera_embed = SE3CameraEmbed(cfg.dim)
        self.queries = PatchQueries(cfg.dim, cfg.pos_enc_dim)

    def reconstruct(
        self, images: Tensor, c2w: Tensor, K_norm: Tensor, view_positions: Tensor | None = None
    ) -> LatentScene:
        """Input views (B, Vi, 3, H, W), c2w (B, Vi, 4, 4), K_norm (B, Vi, 4) → the latent
        scene; ``view_positions`` (B, Vi) as in :meth:`RayZer.reconstruct`."""
        if view_positions is None:
            view_positions = frame_positions(images.shape[0], images.shape[1], images.device)
        image_tokens = self.tokenizer(images, view_positions)  # (B, Vi, N, d)
        cameras = self.camera_embed(c2w, K_norm)[:, :, None].expand_as(image_tokens)
        tokens = self.fuse(torch.cat((image_tokens, cameras), dim=-1))
        return LatentScene(self.reconstructor(tokens.flatten(1, 2)), images, c2w, K_norm)

    def render(
        self, scene: LatentScene, c2w: Tensor, K_norm: Tensor, height: int, width: int
    ) -> Rendered:
        """Target cameras c2w (B, Vt, 4, 4), K_norm (B, Vt, 4) → RGB (B, Vt, 3, H, W)."""
        p = self.cfg.patch_size
        queries = self.queries(self.camera_embed(c2w, K_norm), height // p, width // p)
        head = self.decoder.decode(scene.tokens, queries, height, width)
        return Rendered(self.decoder.read_out(head, scene, c2w, K_norm))
