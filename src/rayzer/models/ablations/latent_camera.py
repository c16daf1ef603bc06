"""RayZer with a latent camera: the paper's ablation of the SE(3) camera representation.

RayZer's camera estimator ends in a pose head (6-D rotation + translation) and a focal head, and
its cameras reach the transformers as Plücker rays. Here the same estimator trunk ends in a head
that gives each view a learned latent code — no SE(3), no intrinsics, no rays:

* code of view i (B, V, d) = MLP([camera token_i ‖ camera token_c]), c = V // 2 the canonical
  middle view (the pose head's input, so only the output representation changes);
* reconstructor input per input patch = MLP([raw image token ‖ its view's code]);
* decoder query per target patch = MLP([target code ‖ patch position])
  (:class:`~rayzer.models.ablations.parts.PatchQueries`); the regression readout (the paper's).

Trained like RayZer (targets rendered from their codes, MSE + λ·perceptual). With no geometric
cameras it has no pose to evaluate or to use: ``capabilities`` says it neither predicts nor
needs cameras, so ``rayzer eval`` scores its renders through :meth:`forward` (pose columns
empty), and inference, which renders new camera paths, rejects it. :meth:`reconstruct` and
:meth:`render` take geometric cameras by the interface and raise; :meth:`latent_cameras`,
:meth:`reconstruct_latent` and :meth:`render_latent` are its stages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rayzer.model_config import RayZerConfig
from rayzer.models.ablations.parts import PatchQueries, fusion_mlp
from rayzer.models.base import Capabilities, ModelOutput, RayModel, Rendered
from rayzer.models.camera import CameraTokens, two_layer_mlp
from rayzer.models.latent_scene import RayDecoder, SceneReconstructor
from rayzer.models.losses import photometric_loss
from rayzer.models.registry import register_model
from rayzer.models.tokenizer import ImageTokenizer
from rayzer.models.views import as_view_index, gather_views
from rayzer.nn.transformer import INIT_STD


@dataclass
class LatentCameraConfig(RayZerConfig):
    """RayZer's sizes (``camera.layers`` = the estimator trunk's depth; the focal and pose-head
    settings do not apply). Needs the regression readout and no sense head: both read SE(3)
    cameras."""

    name: str = "rayzer-latent-camera"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.decoder.readout != "regress":
            raise ValueError(
                "rayzer-latent-camera has no geometric cameras to sweep along: "
                f"model.decoder.readout must be 'regress', got {self.decoder.readout!r}"
            )
        if self.sense.enabled:
            raise ValueError(
                "rayzer-latent-camera has no camera path to mirror: set model.sense.enabled=false"
            )


class LatentCameraEstimator(CameraTokens):
    """RayZer's estimator trunk with a latent head: images (B, V, 3, H, W) → codes (B, V, d)."""

    def __init__(self, cfg: RayZerConfig) -> None:
        super().__init__(cfg)
        self.head = two_layer_mlp(2 * cfg.dim, cfg.dim, cfg.dim, INIT_STD)

    def forward(self, images: Tensor, tokenizer: ImageTokenizer) -> Tensor:
        cam = self.camera_tokens(images, tokenizer)
        c = images.shape[1] // 2
        return self.head(torch.cat((cam, cam[:, c : c + 1].expand_as(cam)), dim=-1))


@register_model("rayzer-latent-camera")
class RayZerLatentCamera(RayModel):
    """RayZer with a learned latent code per view in place of cameras (module docstring)."""

    capabilities = Capabilities(predicts_cameras=False)
    display_name = "RayZer (latent camera)"
    config_class = LatentCameraConfig

    def __init__(self, cfg: LatentCameraConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokenizer = ImageTokenizer(cfg.dim, cfg.patch_size, cfg.pos_enc_dim, cfg.index_scale)
        self.camera_estimator = LatentCameraEstimator(cfg)
        self.fuse = fusion_mlp(cfg.dim)
        self.reconstructor = SceneReconstructor.from_config(cfg)
        self.decoder = RayDecoder.from_config(cfg, ray_queries=False)
        self.queries = PatchQueries(cfg.dim, cfg.pos_enc_dim)

    # -- stages -------------------------------------------------------------------------------

    def latent_cameras(self, images: Tensor) -> Tensor:
        """images (B, V, 3, H, W), V >= 2 in frame order → latent codes (B, V, d)."""
        if images.ndim != 5 or images.shape[1] < 2 or images.shape[2] != 3:
            raise ValueError(f"images must be (B, V >= 2, 3, H, W), got {tuple(images.shape)}")
        p = self.cfg.patch_size
        if images.shape[-2] % p or images.shape[-1] % p:
            raise ValueError(f"image size {tuple(images.shape[-2:])} is not divisible by {p}")
        return self.camera_estimator(images, self.tokenizer)

    def reconstruct_latent(self, images: Tensor, codes: Tensor, view_positions: Tensor) -> Tensor:
        """Input views (B, Vi, 3, H, W), their codes (B, Vi, d) and frame positions (B, Vi) →
        the scene tokens (B, n [+ Vi·N], d)."""
        image_tokens = self.tokenizer(images, view_positions)  # (B, Vi, N, d)
        tokens = self.fuse(torch.cat((image_tokens, codes[:, :, None].expand_as(image_tokens)), -1))
        return self.reconstructor(tokens.flatten(1, 2))

    def render_latent(self, scene: Tensor, codes: Tensor, height: int, width: int) -> Rendered:
        """Scene tokens (B, n [+ M], d) and target codes (B, Vt, d) → RGB (B, Vt, 3, H, W)."""
        p = self.cfg.patch_size
        queries = self.queries(codes, height // p, width // p)
        return Rendered(self.decoder.decode(scene, queries, height, width))

    def reconstruct(
        self, images: Tensor, c2w: Tensor, K_norm: Tensor, view_positions: Tensor | None = None
    ) -> Tensor:
        raise NotImplementedError(
            f"{self.display_name} has no geometric cameras: use reconstruct_latent"
        )

    def render(
        self, scene: Tensor, c2w: Tensor, K_norm: Tensor, height: int, width: int
    ) -> Rendered:
        raise NotImplementedError(
            f"{self.display_name} has no geometric cameras: use render_latent"
        )

    # -- one self-supervised pass -------------------------------------------------------------

    def forward(
        self, batch: Mapping[str, Tensor], input_index: Tensor, target_index: Tensor
    ) -> ModelOutput:
        """Codes of all views (``extras["codes"]`` (B, V, d)), the scene from the input views,
        the targets rendered from their codes; ``cameras`` is None. ``batch["image"]``
        (B, V, 3, H, W); indices (Vi,) / (B, Vi) and (Vt,) / (B, Vt)."""
        images = batch["image"]
        b, v, _, h, w = images.shape
        inp = as_view_index(input_index, b, v).to(images.device)
        tgt = as_view_index(target_index, b, v).to(images.device)
        codes = self.latent_cameras(images)
        scene = self.reconstruct_latent(gather_views(images, inp), gather_views(codes, inp), inp)
        rendered = self.render_latent(scene, gather_views(codes, tgt), h, w)
        return ModelOutput(None, scene, rendered, inp, tgt, extras={"codes": codes})

    def loss(
        self, output: ModelOutput, batch: Mapping[str, Tensor], perceptual: nn.Module | None
    ) -> dict[str, Tensor]:
        """``MSE + λ·perceptual`` of the target renders."""
        target = gather_views(batch["image"], output.target_index)
        return photometric_loss(output.rendered.rgb, target, perceptual)
