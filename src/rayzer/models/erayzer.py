"""E-RayZer: self-supervised cameras + pixel-aligned 3D Gaussians rendered by rasterization.

Pipeline for a sample of V frame-ordered views (as in E-RayZer's release):

1. **Pose encoder** over *all* views (targets included): per view 1 camera + R register tokens
   and its patch tokens (2-D sin-cos position through an MLP; no image-index embedding),
   alternating frame / global attention.
2. **Cameras**: the canonical view c = V // 2 (the middle one) is exactly the identity; every
   other view i is ``identity + MLP([token_c ‖ token_i])`` (6-D rotation + translation,
   camera-to-world in view c's frame). One shared focal from the canonical token,
   ``f = softplus(head + softplus⁻¹(1.25))`` (width-normalised, principal point at the centre),
   **detached for the first** ``focal_freeze_steps`` training steps (:meth:`on_train_step`):
   early photometric gradients would otherwise shrink or blow up the focal before the poses
   mean anything.
3. **Scene encoder** (no weights shared with the pose encoder) over the *input* views only:
   tokens = MLP([raw patch token ‖ Plücker-ray token of the predicted camera]).
4. **Gaussian decoder**: a linear map from each token to its p × p pixels, one Gaussian per
   pixel: distance along the *unit* ray ``t = far·sigmoid(x)``; scale
   ``exp(clamp(x − 3, −10, −2))``; opacity ``sigmoid(x − 2)``; rotation a normalised quaternion
   (predicted in the camera frame and turned into the world frame by the camera's rotation,
   so a Gaussian's shape follows its camera); SH colour of a configurable degree.
5. **Render** the target views at their predicted cameras with :mod:`rayzer.render` (white
   background, near plane 0.2): the photometric loss is bundle adjustment through physics.

Scale units. Everything lives in the model's own frame, whose unit is set by the depth range:
depths start at ``far / 2 = 4`` along the ray. A pixel at distance t subtends ``t / (f·W)``
world units, so at 64 px with f = 1.25 the initial Gaussians (scale e⁻³ ≈ 0.050) are one pixel
footprint wide (4 / 80 = 0.050) and the largest allowed (e⁻² ≈ 0.135) about 2.7 px; at the
paper's 256 px the same numbers are 4 px and 11 px. The clamp bounds are therefore
resolution-dependent in effect; they are configurable (``scale_log_min`` / ``scale_log_max``).

What depends on what: the scene is built from the input images and their predicted cameras
only. The cameras themselves come from all views (the pose encoder sees the targets, as in the
paper), so the scene depends on a target image only through the input cameras;
:meth:`reconstruct` with fixed cameras never reads a target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from rayzer.geometry import plucker_rays
from rayzer.model_config import ModelConfig
from rayzer.models.base import (
    CameraPrediction,
    Capabilities,
    ModelOutput,
)
from rayzer.models.gaussians import (
    GaussianScene,
    PixelGaussianModel,
    flatten_pixels,
    fp32_geometry,
    pixel_quaternions,
    pixel_rays,
    pixel_sh,
    rgb_to_sh_dc,
    sh_num_coeffs,
)
from rayzer.models.heads.camera import PairwisePoseHead
from rayzer.models.heads.focal import SoftplusFocalHead, shared_focal_intrinsics
from rayzer.models.heads.pixel_decoder import PixelLinearDecoder
from rayzer.models.losses import check_loss_weights
from rayzer.models.registry import register_model
from rayzer.models.view_encoder import ViewTokenEncoder
from rayzer.models.views import as_view_index, gather_views, with_change_from
from rayzer.nn import PatchEmbed
from rayzer.nn.transformer import INIT_STD


@dataclass
class ERayZerConfig(ModelConfig):
    """E-RayZer hyper-parameters. Defaults: a tiny CPU model (64 px, patch 8); the paper's
    DL3DV model is :meth:`paper`.

    The loss weight is the recipe's (``train.perceptual_weight``): the release trains with
    MSE + 0.2 × a VGG-19 perceptual loss; we use the project's LPIPS-VGG at 0.2, as the VGG-19
    weights are not obtainable offline.

    Attributes:
        name: the registry key.
        dim, num_heads, mlp_ratio, qk_norm: transformer width and blocks.
        patch_size: p (images must be divisible by it).
        pose_depth, scene_depth: frame/global *pairs* of the pose and scene encoders.
        num_registers: register tokens per view (both encoders).
        pos_enc_dim: width of the 2-D sin-cos patch-position encoding.
        sh_degree: SH degree of the Gaussian colours (0: one RGB colour per Gaussian).
        depth_far: Gaussians lie at distance ``far·sigmoid(x)`` along the unit ray.
        near_plane: the rasterizer's near plane (Gaussians closer to a camera are culled).
        focal_init: width-normalised focal at initialisation (1.25 ≈ 44° horizontal FoV).
        focal_freeze_steps: the focal is detached for training steps < this.
        pose_head_init_std, focal_head_init_std: std of the heads' last layers.
        scale_offset, scale_log_min, scale_log_max: scale = exp(clamp(x − offset, min, max)).
        opacity_offset: opacity = sigmoid(x − offset).
        pixel_color_skip: our deliberate difference (the release: off, :meth:`paper`): a
            Gaussian's DC colour is its pixel's colour plus the decoder's residual (NAS3R's RGB
            skip in its simplest form). Without it a tiny model must first learn to auto-encode
            pixel colours through the patch embedding and a linear decoder, which holds early
            training at flat colours (see ``docs/decisions.md``).
        background: RGB of the rendered background.
        warp_loss_weight: weight of an extra loss term, the photometric depth-warping error
            between the input views (:mod:`rayzer.models.warp_loss`); 0 (default): off.
        epipolar_loss_weight: weight of an extra loss term, our addition: the epipolar error of
            label-free SIFT matches under the predicted cameras (:mod:`rayzer.models.epipolar_loss`;
            needs ``data.epipolar_matches > 0``); 0 (default, the paper's recipe): off.
        pose_teacher_weight: weight of an extra loss term, our addition: the predicted relative
            poses against a label-free classical teacher's (:mod:`rayzer.models.pose_teacher_loss`;
            needs ``data.pose_teacher``); 0 (default, the paper's recipe): off.
        pose_pair_input: our addition, default off (the release's pose encoder sees each view
            alone): the pose branch's patch embedding reads each view's pixels stacked with
            their difference to the canonical view's (6 channels; the canonical's difference
            is 0), so a pose token sees how its patch changed before any attention layer has
            learned to compare views. An experiment (``experiments/issue18_explicit/``), not a
            recommended setting; off, the layout and checkpoints are the release's.
        render_backend: :func:`rayzer.render.rasterize` backend ("auto": gsplat on CUDA when
            installed, the PyTorch tiled rasterizer otherwise).
        grad_checkpointing: recompute transformer blocks in the backward pass.
    """

    name: str = "erayzer"
    dim: int = 64
    num_heads: int = 4
    mlp_ratio: float = 4.0
    qk_norm: bool = True
    patch_size: int = 8
    pose_depth: int = 2
    scene_depth: int = 2
    num_registers: int = 4
    pos_enc_dim: int = 32
    sh_degree: int = 0
    depth_far: float = 8.0
    near_plane: float = 0.2
    focal_init: float = 1.25
    focal_freeze_steps: int = 200
    pose_head_init_std: float = 1e-3
    focal_head_init_std: float = 1e-3
    scale_offset: float = 3.0
    scale_log_min: float = -10.0
    scale_log_max: float = -2.0
    opacity_offset: float = 2.0
    pixel_color_skip: bool = True
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    warp_loss_weight: float = 0.0
    epipolar_loss_weight: float = 0.0
    pose_teacher_weight: float = 0.0
    pose_pair_input: bool = False
    render_backend: str = "auto"
    grad_checkpointing: bool = False

    def __post_init__(self) -> None:
        check_loss_weights(self)

    @classmethod
    def paper(cls, **changes) -> ERayZerConfig:
        """The release's DL3DV model: d 768, 12 heads, 16 + 16 blocks (16 in the pose encoder,
        16 in the scene encoder, each as 8 frame/global pairs), patch 16, SH degree 3 (trained
        on 10 views at 256 px)."""
        base = cls(
            dim=768,
            num_heads=12,
            patch_size=16,
            pose_depth=8,
            scene_depth=8,
            pos_enc_dim=128,
            sh_degree=3,
            pixel_color_skip=False,
            grad_checkpointing=True,
        )
        return replace(base, **changes)

    @property
    def gaussian_channels(self) -> int:
        """Raw channels per pixel: distance 1, scale 3, rotation 4, opacity 1, SH 3·(d+1)²."""
        return 9 + 3 * sh_num_coeffs(self.sh_degree)


@register_model("erayzer")
class ERayZer(PixelGaussianModel):
    """E-RayZer (see the module docstring). Takes one :class:`ERayZerConfig`."""

    capabilities = Capabilities(predicts_cameras=True, outputs_depth=True, outputs_gaussians=True)
    display_name = "E-RayZer"
    config_class = ERayZerConfig

    def __init__(self, cfg: ERayZerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, p = cfg.dim, cfg.patch_size
        encoder_args = {
            "dim": d,
            "num_heads": cfg.num_heads,
            "num_registers": cfg.num_registers,
            "pos_enc_dim": cfg.pos_enc_dim,
            "mlp_ratio": cfg.mlp_ratio,
            "qk_norm": cfg.qk_norm,
            "grad_checkpointing": cfg.grad_checkpointing,
        }
        # Pose branch.
        self.pose_patch = PatchEmbed(6 if cfg.pose_pair_input else 3, p, d)
        self.pose_encoder = ViewTokenEncoder(depth=cfg.pose_depth, **encoder_args)
        self.pose_head = PairwisePoseHead(d, cfg.pose_head_init_std)
        self.focal_head = SoftplusFocalHead(d, cfg.focal_init, cfg.focal_head_init_std)
        # Scene branch (no weights shared with the pose branch).
        self.scene_patch = PatchEmbed(3, p, d)
        self.ray_patch = PatchEmbed(6, p, d)
        self.token_fuse = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, d))
        for layer in (self.token_fuse[0], self.token_fuse[2]):
            nn.init.normal_(layer.weight, std=INIT_STD)
            nn.init.zeros_(layer.bias)
        self.scene_encoder = ViewTokenEncoder(depth=cfg.scene_depth, **encoder_args)
        self.gaussian_decoder = PixelLinearDecoder(d, p, cfg.gaussian_channels)
        # Training-time state (not a parameter, not in checkpoints): the trainer re-sets it
        # through on_train_step at every step, resumed runs included.
        self.focal_frozen = cfg.focal_freeze_steps > 0

    # -- schedules ------------------------------------------------------------------------------

    def on_train_step(self, step: int, total_steps: int) -> None:
        """Detach the focal for steps < ``focal_freeze_steps``."""
        self.focal_frozen = step < self.cfg.focal_freeze_steps

    # -- stages ---------------------------------------------------------------------------------

    def _grid(self, height: int, width: int) -> tuple[int, int]:
        p = self.cfg.patch_size
        if height % p or width % p:
            raise ValueError(f"image size {height}x{width} is not divisible by the patch size {p}")
        return height // p, width // p

    def predict_cameras(self, images: Tensor) -> CameraPrediction:
        """images (B, V, 3, H, W), V ≥ 2 in frame order → cameras of all views, view V // 2 at I."""
        v, (h, w) = images.shape[1], images.shape[-2:]
        if v < 2:
            raise ValueError(f"E-RayZer needs at least 2 views, got {v}")
        canonical = v // 2
        pose_input = with_change_from(images, canonical) if self.cfg.pose_pair_input else images
        enc = self.pose_encoder(self.pose_patch(pose_input), self._grid(h, w))
        # Camera heads in fp32 even under bf16 autocast: rays and Gaussian centres are built
        # from these matrices, and bf16 keeps only ~3 significant digits.
        tokens = enc.camera.float()
        with torch.autocast(tokens.device.type, enabled=False):
            c2w = self.pose_head(tokens, canonical)
            focal = self.focal_head(tokens[:, canonical])
        if self.focal_frozen:
            focal = focal.detach()
        K_norm = shared_focal_intrinsics(focal, v, h, w)
        return CameraPrediction(c2w=c2w, K_norm=K_norm, tokens=enc.camera, canonical=canonical)

    def reconstruct(
        self, images: Tensor, c2w: Tensor, K_norm: Tensor, view_positions: Tensor | None = None
    ) -> GaussianScene:
        """Input views (B, Vi, 3, H, W) and their cameras → one Gaussian per input pixel.

        ``view_positions`` is ignored: the scene encoder has no image-index embedding.
        """
        h, w = images.shape[-2:]
        grid = self._grid(h, w)
        c2w, K_norm = c2w.float(), K_norm.float()
        with fp32_geometry(images):
            rays = plucker_rays(c2w, K_norm, h, w, normalized_intrinsics=True)  # (B, Vi, 6, H, W)
        tokens = self.token_fuse(
            torch.cat((self.scene_patch(images), self.ray_patch(rays.to(images.dtype))), dim=-1)
        )
        raw = self.gaussian_decoder(self.scene_encoder(tokens, grid).patches, h, w)
        with fp32_geometry(raw):
            return self._gaussians(raw.float(), c2w, K_norm, images)

    def _gaussians(self, raw: Tensor, c2w: Tensor, K_norm: Tensor, images: Tensor) -> GaussianScene:
        """Raw per-pixel channels (B, Vi, C, H, W) + input cameras (+ the input images, for the
        colour skip) → :class:`GaussianScene`."""
        cfg = self.cfg
        b, vi, _, h, w = raw.shape
        raw = raw.float()  # activations and geometry in fp32 (the encoder may run in bf16)
        dist_raw, scale_raw, quat_raw, opacity_raw, sh_raw = raw.split(
            (1, 3, 4, 1, 3 * sh_num_coeffs(cfg.sh_degree)), dim=2
        )
        origins, dirs, cos_z = pixel_rays(c2w, K_norm, h, w)  # (B, Vi, H, W, 3 | 3 | -)
        dist = cfg.depth_far * torch.sigmoid(dist_raw[:, :, 0])  # (B, Vi, H, W)
        means = origins + dist[..., None] * dirs
        input_depth = (dist * cos_z).unsqueeze(2)  # z-depth (B, Vi, 1, H, W)

        scales = torch.exp(
            (scale_raw - cfg.scale_offset).clamp(cfg.scale_log_min, cfg.scale_log_max)
        )
        opacities = torch.sigmoid(opacity_raw - cfg.opacity_offset)
        sh = pixel_sh(sh_raw, cfg.sh_degree)
        if cfg.pixel_color_skip:
            # DC term = the pixel's own colour + the decoder's residual.
            dc = rgb_to_sh_dc(flatten_pixels(images.float()))
            sh = torch.cat((sh[:, :, :1] + dc[:, :, None], sh[:, :, 1:]), dim=2)
        return GaussianScene(
            means=means.reshape(b, vi * h * w, 3),
            quats=pixel_quaternions(quat_raw, c2w),
            scales=flatten_pixels(scales),
            opacities=flatten_pixels(opacities)[..., 0],
            sh=sh,
            sh_degree=cfg.sh_degree,
            input_depth=input_depth,
            c2w=c2w,
            K_norm=K_norm,
        )

    def forward(
        self, batch: Mapping[str, Tensor], input_index: Tensor, target_index: Tensor
    ) -> ModelOutput:
        """Cameras of all views, Gaussians from the input views, targets rendered at their
        predicted cameras."""
        images = batch["image"]
        b, v, _, h, w = images.shape
        input_index = as_view_index(input_index, b, v).to(images.device)
        target_index = as_view_index(target_index, b, v).to(images.device)
        cameras = self.predict_cameras(images)
        scene = self.reconstruct(
            gather_views(images, input_index),
            gather_views(cameras.c2w, input_index),
            gather_views(cameras.K_norm, input_index),
        )
        return self.render_targets(cameras, scene, input_index, target_index, h, w)
