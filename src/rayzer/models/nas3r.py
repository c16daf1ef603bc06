"""NAS3R: one shared VGGT-style backbone with masked attention → cameras, depth and Gaussians.

Pipeline for a sample of V frame-ordered views split into context (input) and target views
(as in NAS3R's release):

1. **Backbone** over all views: per view 1 camera + R register tokens and its patch tokens,
   alternating frame / global attention. The global blocks are **masked**: every token of a
   context view (patch, camera and register tokens) attends only to context views; target
   tokens attend to all. Context tokens are therefore functions of the context images alone,
   and so is everything read from them (context cameras, depth, Gaussians).
   The reference view (the first context view) has its own learned camera / register tokens.
2. **Camera head** on each camera token → 6-D rotation offset, translation, FoV logit, with a
   **zero-initialised last layer**: at step 0 every view is at the identity pose and the FoV is
   2·atan(0.5) (width-normalised focal 1.0, focal = image width). One focal shared by all views
   (the mean FoV logit of the context views), fx = fy, principal point centred. Poses are
   camera-to-world relative to the first context view (exactly the identity).
3. **Depth head** (DPT-lite) on the context patch tokens: z-depth
   ``near + sigmoid(x)·(far − near)``, lifted to 3D with the *predicted* K and pose (the
   local-to-global construction the paper credits for converging from scratch).
4. **Gaussian head** (DPT-lite with an RGB skip, a conv on the raw image): opacity sigmoid,
   scale ``scale_mult·softplus(x)`` capped at ``scale_max``, a normalised quaternion (camera
   frame, turned into the world frame by the camera's rotation), SH colours of a configurable
   degree with the higher bands damped (:func:`rayzer.models.gaussians.sh_band_damping`).
5. **Render** the targets at their predicted cameras with :mod:`rayzer.render`.

Scale units: the model's frame has the unit set by the depth range. The paper's near 1 /
far 100 / 0.001·softplus are for 224 px: there a Gaussian starts far below a pixel footprint
(z / (f·W) ≈ 50 / 224 at mid-depth) and grows by learning. Our tiny preset uses near 0.5, far 10
and ``scale_mult`` 0.1, so that at 64 px and mid-depth (5.25) the initial Gaussian (0.1·ln 2 ≈
0.069) is one pixel footprint wide (5.25 / 64 ≈ 0.082), which a short CPU budget needs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from rayzer.geometry import se3_inverse, unproject_depth
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
    pixel_sh,
    sh_band_damping,
    sh_num_coeffs,
)
from rayzer.models.heads.camera import CameraTokenHead
from rayzer.models.heads.dpt import DPTLiteHead
from rayzer.models.heads.focal import focal_from_fov_logit, shared_focal_intrinsics
from rayzer.models.losses import check_loss_weights
from rayzer.models.registry import register_model
from rayzer.models.view_encoder import EncodedViews, ViewTokenEncoder
from rayzer.models.views import as_view_index, gather_views, with_change_from
from rayzer.nn import PatchEmbed
from rayzer.nn.alternating import context_attention_mask


@dataclass
class NAS3RConfig(ModelConfig):
    """NAS3R hyper-parameters. Defaults: a tiny CPU model (64 px, patch 8); the paper's RE10K
    model is :meth:`paper`.

    The loss weight is the recipe's (``train.perceptual_weight``; the release: MSE + 0.05 ×
    LPIPS-VGG).

    Attributes:
        name: the registry key.
        dim, num_heads, mlp_ratio, qk_norm: transformer width and blocks.
        patch_size: p (images must be divisible by it).
        depth: frame/global pairs of the backbone.
        num_registers: register tokens per view.
        pos_enc_dim: width of the 2-D sin-cos patch-position encoding.
        head_taps: backbone pairs (0-based, negative from the end) read by the dense heads.
        head_features: channels of the dense heads on the token grid.
        rgb_skip_channels: channels of the Gaussian head's raw-image conv.
        sh_degree: SH degree of the Gaussian colours.
        depth_near, depth_far: z-depth range of the depth head.
        scale_mult, scale_max: scale = min(scale_mult·softplus(x), scale_max).
        fov_init: horizontal FoV (radians) at initialisation (2·atan(0.5): focal = width).
        near_plane: the rasterizer's near plane.
        background: RGB of the rendered background.
        warp_loss_weight: weight of an extra loss term, the photometric depth-warping error
            between the input views (:mod:`rayzer.models.warp_loss`); 0 (default): off.
        epipolar_loss_weight: weight of an extra loss term, our addition: the epipolar error of
            label-free SIFT matches under the predicted cameras (:mod:`rayzer.models.epipolar_loss`;
            needs ``data.epipolar_matches > 0``); 0 (default, the paper's recipe): off.
        pose_teacher_weight: weight of an extra loss term, our addition: the predicted relative
            poses against a label-free classical teacher's (:mod:`rayzer.models.pose_teacher_loss`;
            needs ``data.pose_teacher``); 0 (default, the paper's recipe): off.
        pair_input: our addition, default off (the release's backbone sees each view alone):
            the patch embedding reads each view's pixels stacked with their difference to the
            reference (first context) view's (6 channels; the reference's difference is 0), so
            a token sees how its patch changed before any attention layer has learned to
            compare views. NAS3R's backbone is shared, so the depth and Gaussian heads read
            these tokens too (the Gaussian head's RGB skip still reads the plain pixels).
            Context views only ever differ from the reference, a context view, so the mask
            property holds. E-RayZer's ``pose_pair_input`` counterpart; an experiment
            (``experiments/issue18_explicit/``), not a recommended setting; off, the layout
            and checkpoints are the release's.
        render_backend: :func:`rayzer.render.rasterize` backend.
        grad_checkpointing: recompute transformer blocks in the backward pass.
    """

    name: str = "nas3r"
    dim: int = 64
    num_heads: int = 4
    mlp_ratio: float = 4.0
    qk_norm: bool = True
    patch_size: int = 8
    depth: int = 3
    num_registers: int = 4
    pos_enc_dim: int = 32
    head_taps: tuple[int, ...] = (0, 1, 2)
    head_features: int = 64
    rgb_skip_channels: int = 16
    sh_degree: int = 0
    depth_near: float = 0.5
    depth_far: float = 10.0
    scale_mult: float = 0.1
    scale_max: float = 0.3
    fov_init: float = 2 * math.atan(0.5)
    near_plane: float = 0.25
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    warp_loss_weight: float = 0.0
    epipolar_loss_weight: float = 0.0
    pose_teacher_weight: float = 0.0
    pair_input: bool = False
    render_backend: str = "auto"
    grad_checkpointing: bool = False

    def __post_init__(self) -> None:
        check_loss_weights(self)

    @classmethod
    def paper(cls, **changes) -> NAS3RConfig:
        """The release's RE10K model: a VGGT-size backbone (d 1024, 16 heads, 24 + 24 blocks,
        patch 14, dense heads on pairs 4, 11, 17, 23), depth 1 … 100, 0.001·softplus scales
        capped at 0.3, SH degree 4 (trained on 2 context + 1 target views at 224 px)."""
        base = cls(
            dim=1024,
            num_heads=16,
            patch_size=14,
            depth=24,
            pos_enc_dim=128,
            head_taps=(4, 11, 17, 23),
            head_features=256,
            rgb_skip_channels=32,
            sh_degree=4,
            depth_near=1.0,
            depth_far=100.0,
            scale_mult=0.001,
            near_plane=0.5,
            grad_checkpointing=True,
        )
        return replace(base, **changes)

    @property
    def gaussian_channels(self) -> int:
        """Raw channels per pixel of the Gaussian head: scale 3, rotation 4, opacity 1, SH."""
        return 8 + 3 * sh_num_coeffs(self.sh_degree)


@register_model("nas3r")
class NAS3R(PixelGaussianModel):
    """NAS3R (see the module docstring). Takes one :class:`NAS3RConfig`."""

    capabilities = Capabilities(predicts_cameras=True, outputs_depth=True, outputs_gaussians=True)
    display_name = "NAS3R"
    config_class = NAS3RConfig

    def __init__(self, cfg: NAS3RConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, p = cfg.dim, cfg.patch_size
        self.patch = PatchEmbed(6 if cfg.pair_input else 3, p, d)
        self.backbone = ViewTokenEncoder(
            dim=d,
            depth=cfg.depth,
            num_heads=cfg.num_heads,
            num_registers=cfg.num_registers,
            pos_enc_dim=cfg.pos_enc_dim,
            mlp_ratio=cfg.mlp_ratio,
            qk_norm=cfg.qk_norm,
            grad_checkpointing=cfg.grad_checkpointing,
            reference_tokens=True,
        )
        self.camera_head = CameraTokenHead(d)
        taps = len(cfg.head_taps)
        self.depth_head = DPTLiteHead(d, p, 1, taps, cfg.head_features)
        self.gaussian_head = DPTLiteHead(
            d, p, cfg.gaussian_channels, taps, cfg.head_features, rgb_skip=cfg.rgb_skip_channels
        )
        self.register_buffer("sh_damping", sh_band_damping(cfg.sh_degree), persistent=False)

    # -- backbone and cameras -------------------------------------------------------------------

    def _encode(self, images: Tensor, is_context: Tensor, reference: Tensor) -> EncodedViews:
        """images (B, V, 3, H, W), is_context (B, V) bool, reference (B,) view index."""
        v, (h, w) = images.shape[1], images.shape[-2:]
        p = self.cfg.patch_size
        if h % p or w % p:
            raise ValueError(f"image size {h}x{w} is not divisible by the patch size {p}")
        grid = (h // p, w // p)
        views = torch.arange(v, device=images.device)
        is_reference = views[None, :] == reference[:, None]
        mask = None  # all-context: no mask, so CUDA SDPA can take its flash kernel
        if not bool(is_context.all()):
            tokens_per_view = 1 + self.cfg.num_registers + grid[0] * grid[1]
            mask = context_attention_mask(is_context, tokens_per_view)
        patch_input = with_change_from(images, reference) if self.cfg.pair_input else images
        return self.backbone(
            self.patch(patch_input), grid, is_reference, mask, return_layers=self.cfg.head_taps
        )

    def _cameras(
        self, tokens: Tensor, is_context: Tensor, reference: Tensor, height: int, width: int
    ) -> CameraPrediction:
        """Camera tokens (B, V, d) → cameras relative to the reference view, shared focal from
        the context views."""
        b, v, _ = tokens.shape
        # fp32 even under bf16 autocast: rays and Gaussian centres are built from these cameras.
        with torch.autocast(tokens.device.type, enabled=False):
            c2w_head, fov_logit = self.camera_head(tokens.float())
            ctx = is_context.to(fov_logit.dtype)
            focal = focal_from_fov_logit(
                (fov_logit * ctx).sum(1) / ctx.sum(1), self.cfg.fov_init
            )  # (B,)
            ref = c2w_head[torch.arange(b, device=tokens.device), reference]  # (B, 4, 4)
            c2w = se3_inverse(ref)[:, None] @ c2w_head
            # The reference view is the identity by definition (not a rounded inv(T)·T).
            is_ref = torch.arange(v, device=tokens.device)[None, :] == reference[:, None]
            eye = torch.eye(4, dtype=c2w.dtype, device=c2w.device)
            c2w = torch.where(is_ref[..., None, None], eye, c2w)
        canonical = int(reference[0]) if bool((reference == reference[0]).all()) else None
        return CameraPrediction(
            c2w=c2w,
            K_norm=shared_focal_intrinsics(focal, v, height, width),
            tokens=tokens,
            canonical=canonical,
        )

    def predict_cameras(self, images: Tensor) -> CameraPrediction:
        """images (B, V, 3, H, W), all views as context → cameras relative to view 0."""
        b, v, _, h, w = images.shape
        is_context = torch.ones(b, v, dtype=torch.bool, device=images.device)
        reference = torch.zeros(b, dtype=torch.long, device=images.device)
        enc = self._encode(images, is_context, reference)
        return self._cameras(enc.camera, is_context, reference, h, w)

    # -- scene ----------------------------------------------------------------------------------

    def _scene(self, taps: list[Tensor], images: Tensor, c2w: Tensor, K_norm: Tensor):
        """Context patch-token taps [(B, Vi, N, d)] + images + cameras → GaussianScene."""
        h, w = images.shape[-2:]
        depth_raw = self.depth_head(taps, h, w).float()  # (B, Vi, 1, H, W)
        raw = self.gaussian_head(taps, h, w, images).float()
        with fp32_geometry(raw):
            return self._gaussians(depth_raw, raw, c2w.float(), K_norm.float())

    def _gaussians(self, depth_raw: Tensor, raw: Tensor, c2w: Tensor, K_norm: Tensor):
        """Raw depth (B, Vi, 1, H, W) and Gaussian channels (B, Vi, C, H, W), fp32 → scene."""
        cfg = self.cfg
        b, vi, _, h, w = raw.shape
        z = cfg.depth_near + torch.sigmoid(depth_raw) * (cfg.depth_far - cfg.depth_near)
        means = unproject_depth(z[:, :, 0], c2w, K_norm, normalized_intrinsics=True)
        scale_raw, quat_raw, opacity_raw, sh_raw = raw.split(
            (3, 4, 1, 3 * sh_num_coeffs(cfg.sh_degree)), dim=2
        )
        scales = (cfg.scale_mult * F.softplus(scale_raw)).clamp_max(cfg.scale_max)
        sh = pixel_sh(sh_raw, cfg.sh_degree) * self.sh_damping[:, None]
        return GaussianScene(
            means=means.reshape(b, vi * h * w, 3),
            quats=pixel_quaternions(quat_raw, c2w),
            scales=flatten_pixels(scales),
            opacities=flatten_pixels(torch.sigmoid(opacity_raw))[..., 0],
            sh=sh,
            sh_degree=cfg.sh_degree,
            input_depth=z,
            c2w=c2w,
            K_norm=K_norm,
        )

    def reconstruct(
        self, images: Tensor, c2w: Tensor, K_norm: Tensor, view_positions: Tensor | None = None
    ) -> GaussianScene:
        """Context views (B, Vi, 3, H, W) with cameras → Gaussians (depth lifted with c2w, K).

        The backbone runs on the context views alone with view 0 as the reference; thanks to
        the masked attention this gives the same context tokens as :meth:`forward` computes
        beside the targets (when the first input view is the reference there).
        ``view_positions`` is ignored (no image-index embedding).
        """
        b, vi = images.shape[:2]
        is_context = torch.ones(b, vi, dtype=torch.bool, device=images.device)
        reference = torch.zeros(b, dtype=torch.long, device=images.device)
        enc = self._encode(images, is_context, reference)
        return self._scene(enc.taps, images, c2w, K_norm)

    def forward(
        self, batch: Mapping[str, Tensor], input_index: Tensor, target_index: Tensor
    ) -> ModelOutput:
        """One masked backbone pass over all views: cameras of all views (relative to the first
        input view), Gaussians from the input (context) tokens, targets rendered at their
        predicted cameras. Views in neither set are encoded as targets (they never influence
        the context)."""
        images = batch["image"]
        b, v, _, h, w = images.shape
        input_index = as_view_index(input_index, b, v).to(images.device)
        target_index = as_view_index(target_index, b, v).to(images.device)
        is_context = torch.zeros(b, v, dtype=torch.bool, device=images.device)
        is_context.scatter_(1, input_index, True)
        reference = input_index[:, 0]
        enc = self._encode(images, is_context, reference)
        cameras = self._cameras(enc.camera, is_context, reference, h, w)
        scene = self._scene(
            [gather_views(t, input_index) for t in enc.taps],
            gather_views(images, input_index),
            gather_views(cameras.c2w, input_index),
            gather_views(cameras.K_norm, input_index),
        )
        return self.render_targets(cameras, scene, input_index, target_index, h, w)
