"""RayZer: self-supervised camera estimation + latent-scene novel-view synthesis (DESIGN §2).

``RayZer`` = image tokenizer + camera estimator (:mod:`rayzer.models.camera`) + scene
reconstructor + rendering decoder (:mod:`rayzer.models.latent_scene`), and optionally a sense
head (:mod:`rayzer.models.sense`). For V frame-ordered views:

1. the camera estimator predicts the cameras of all V views from their patch tokens;
2. the scene reconstructor fuses the *input* views' raw patch tokens with tokens of their
   predicted Plücker rays and attends jointly with n learnable scene tokens;
3. the decoder renders the target views from their predicted rays and the scene tokens.

Target images reach the camera estimator only, never the scene. With a sense head, eval mode
mirrors the camera paths the head disagrees with; training renders each sample with its path
and the mirror image, and :meth:`RayZer.loss` teaches the head from the better render.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from rayzer.model_config import RayZerConfig
from rayzer.models.base import CameraPrediction, Capabilities, ModelOutput, RayModel, Rendered
from rayzer.models.camera import CameraEstimator
from rayzer.models.latent_scene import (
    LatentScene,
    RayDecoder,
    SceneReconstructor,
    plucker_from_normalized,
)
from rayzer.models.losses import photometric_loss
from rayzer.models.registry import register_model
from rayzer.models.sense import SenseHead, mirror_camera_path, mirror_test, paths_to_mirror
from rayzer.models.tokenizer import ImageTokenizer
from rayzer.models.views import as_view_index, gather_views
from rayzer.nn import PatchEmbed
from rayzer.nn.param_groups import decay_groups
from rayzer.nn.transformer import INIT_STD


@register_model("rayzer")
class RayZer(RayModel):
    """The RayZer model. See the module docstring for the pipeline and conventions."""

    capabilities = Capabilities(predicts_cameras=True)
    display_name = "RayZer"
    config_class = RayZerConfig

    def __init__(self, cfg: RayZerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.tokenizer = ImageTokenizer(d, cfg.patch_size, cfg.pos_enc_dim, cfg.index_scale)
        self.camera_estimator = CameraEstimator(cfg)
        self.input_ray_embed = PatchEmbed(6, cfg.patch_size, d)
        # 2-layer MLP fusing [raw image token ‖ ray token] of each input patch (DESIGN §2).
        self.fuse = nn.Sequential(
            nn.Linear(2 * d, d, bias=False), nn.GELU(), nn.Linear(d, d, bias=False)
        )
        for layer in (self.fuse[0], self.fuse[2]):
            nn.init.normal_(layer.weight, std=INIT_STD)
        self.reconstructor = SceneReconstructor.from_config(cfg)
        self.decoder = RayDecoder.from_config(cfg)
        self.sense_head = SenseHead() if cfg.sense.enabled else None

    # -- stages -------------------------------------------------------------------------------

    def _check_images(self, images: Tensor) -> None:
        if images.ndim != 5 or images.shape[2] != 3:
            raise ValueError(f"images must have shape (B, V, 3, H, W), got {tuple(images.shape)}")
        h, w = images.shape[-2:]
        p = self.cfg.patch_size
        if h % p or w % p:
            raise ValueError(f"image size {h}x{w} is not divisible by the patch size {p}")
        if images.shape[1] < 2:
            raise ValueError(f"RayZer needs at least 2 views, got {images.shape[1]}")

    def predict_cameras(
        self, images: Tensor, resolve_sense: bool | None = None
    ) -> CameraPrediction:
        """images (B, V, 3, H, W), views in frame order → cameras of all views (canonical V // 2).

        ``resolve_sense`` (default: in eval mode): with a sense head, mirror the paths the head
        disagrees with (``extras["mirrored"]`` (B,) bool says which)."""
        self._check_images(images)
        cams = self.estimate_cameras(images)
        if resolve_sense is None:
            resolve_sense = not self.training
        if self.sense_head is not None and resolve_sense:
            self._resolve_sense(cams, self.sense_head(images))
        return cams

    def estimate_cameras(self, images: Tensor) -> CameraPrediction:
        """The camera estimator's pass over images (B, V, 3, H, W), before any sense
        resolution (the scene-first ablation gives it a scene to attend to)."""
        return self.camera_estimator(images, self.tokenizer)

    @staticmethod
    def _resolve_sense(cams: CameraPrediction, logits: Tensor) -> None:
        """Mirror, in place, the paths whose sense the head's logits (B, V − 1) contradict. The
        decision carries no gradient; the mirrored path is differentiable."""
        flip = paths_to_mirror(cams.c2w, logits)
        cams.c2w = torch.where(flip[:, None, None, None], mirror_camera_path(cams.c2w), cams.c2w)
        cams.extras["mirrored"] = flip

    def reconstruct(
        self, images: Tensor, c2w: Tensor, K_norm: Tensor, view_positions: Tensor | None = None
    ) -> LatentScene:
        """Input views (B, Vi, 3, H, W) with cameras → the latent scene (tokens (B, n [+ M], d)
        and the input views with their cameras). ``view_positions`` (B, Vi) select the
        image-index embedding (default 0 … Vi − 1)."""
        b, vi, _, h, w = images.shape
        positions = view_positions
        if positions is None:
            positions = torch.arange(vi, device=images.device).expand(b, -1)
        image_tokens = self.tokenizer(images, positions)
        ray_tokens = self.input_ray_embed(plucker_from_normalized(c2w, K_norm, h, w))
        tokens = self.fuse(torch.cat((image_tokens, ray_tokens), dim=-1))
        return LatentScene(self.reconstructor(tokens.flatten(1, 2)), images, c2w, K_norm)

    def render(
        self, scene: LatentScene, c2w: Tensor, K_norm: Tensor, height: int, width: int
    ) -> Rendered:
        """Target cameras c2w (B, Vt, 4, 4) and K_norm (B, Vt, 4) → RGB (B, Vt, 3, H, W)."""
        return Rendered(self.decoder(scene, c2w, K_norm, height, width))

    # -- one self-supervised pass -------------------------------------------------------------

    def forward(
        self, batch: Mapping[str, Tensor], input_index: Tensor, target_index: Tensor
    ) -> ModelOutput:
        """Cameras of all views, the scene from the inputs, the targets rendered with their
        predicted cameras. ``batch["image"]`` (B, V, 3, H, W); indices (Vi,) / (B, Vi) and
        (Vt,) / (B, Vt). In training mode with a sense head, ``extras`` also holds
        ``"mirror_render"`` (the targets rendered with the mirrored path; without gradient for
        ``sense.mirror="resolved"``) and ``"sense_logits"`` (B, V − 1) for :meth:`loss`."""
        images = batch["image"]
        self._check_images(images)
        b, v = images.shape[:2]
        inp = as_view_index(input_index, b, v).to(images.device)
        tgt = as_view_index(target_index, b, v).to(images.device)
        mirror_test_on = self.training and self.sense_head is not None
        extras: dict[str, Any] = {}
        if not mirror_test_on:
            cams = self.predict_cameras(images)
        else:  # the head is labelled from the estimator's own path
            assert self.sense_head is not None
            cams = self.predict_cameras(images, resolve_sense=False)
            logits = self.sense_head(images)
            if self.cfg.sense.mirror == "resolved":
                self._resolve_sense(cams, logits)
            # "resolved": the mirror only labels the head, so its render needs no graph.
            with torch.set_grad_enabled(
                torch.is_grad_enabled() and self.cfg.sense.mirror == "both"
            ):
                mirrored = mirror_camera_path(cams.c2w)
                extras["mirror_render"] = self._render_path(images, mirrored, cams.K_norm, inp, tgt)
            extras["sense_logits"] = logits
        scene, rendered = self._render_path(images, cams.c2w, cams.K_norm, inp, tgt, scene=True)
        return ModelOutput(cams, scene, rendered, inp, tgt, extras=extras)

    def _render_path(
        self,
        images: Tensor,
        c2w: Tensor,
        K_norm: Tensor,
        inp: Tensor,
        tgt: Tensor,
        scene: bool = False,
    ) -> Any:
        """Build the scene from the input views with cameras ``c2w`` (B, V, 4, 4) and render the
        targets: their RGB (B, Vt, 3, H, W), or with ``scene`` (the scene, :class:`Rendered`)."""
        h, w = images.shape[-2:]
        built = self.reconstruct(
            gather_views(images, inp),
            gather_views(c2w, inp),
            gather_views(K_norm, inp),
            view_positions=inp,
        )
        out = self.render(built, gather_views(c2w, tgt), gather_views(K_norm, tgt), h, w)
        return (built, out) if scene else out.rgb

    # -- training -----------------------------------------------------------------------------

    def loss(
        self, output: ModelOutput, batch: Mapping[str, Tensor], perceptual: nn.Module | None
    ) -> dict[str, Tensor]:
        """``MSE + λ·perceptual`` of the target renders; with the mirror test of a sense head,
        plus ``sense.weight`` × its cross-entropy (logged: ``sense_loss``, ``mirror_won``)."""
        target = gather_views(batch["image"], output.target_index)
        render, weight, sense = output.rendered.rgb, None, None
        if "sense_logits" in output.extras:
            render, weight, *sense = mirror_test(
                render,
                output.extras["mirror_render"],
                target,
                output.cameras.c2w,
                output.extras["sense_logits"],
                keep_better=self.cfg.sense.mirror == "both",
            )
        terms = photometric_loss(render, target, perceptual, weight)
        if sense:
            terms["loss"] = terms["loss"] + self.cfg.sense.weight * sense[0]
            terms["sense_loss"], terms["mirror_won"] = sense[0].detach(), sense[1]
        return terms

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """The default decay / no-decay groups; the sense head's in their own groups with
        ``clip="sense_head"``: clipped on their own, so that its cross-entropy neither shrinks
        the photometric updates of the rest of the model nor trips the spike guard."""
        if self.sense_head is None:
            return decay_groups(self, weight_decay)
        head = {id(p) for p in self.sense_head.parameters()}
        groups = []
        for group in decay_groups(self, weight_decay):
            body = [p for p in group["params"] if id(p) not in head]
            mine = [p for p in group["params"] if id(p) in head]
            groups.append({**group, "params": body})
            if mine:
                groups.append({**group, "params": mine, "clip": "sense_head"})
        return [g for g in groups if g["params"]]
