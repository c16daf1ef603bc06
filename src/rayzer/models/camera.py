"""RayZer's camera estimator: all views' patch tokens → SE(3) poses and one shared focal.

One learnable camera token per view (plus that view's image-index embedding) attends jointly
with the patch tokens of all views (full self-attention, the paper's); only the camera tokens are
kept. Pose of view i = MLP([cam_i ‖ cam_c]) → a 6-D rotation and a translation *added to the
identity*, relative to the canonical view c = V // 2, whose pose is exactly the identity. One
focal per sample: ``f = focal_init + MLP(mean cam)``, smoothly floored.

Outputs are OpenCV camera-to-world matrices in view c's frame and normalised intrinsics
``K_norm = (f, f·W/H, 0.5, 0.5)`` (``fx = fy`` in pixels, principal point at the centre).

The trunk (:class:`CameraTokens`: camera tokens in joint attention with the views) is its own
class so that the paper's ablations put other heads on it (:mod:`rayzer.models.ablations`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rayzer.geometry import make_c2w, rot6d_to_matrix
from rayzer.model_config import RayZerConfig
from rayzer.models.base import CameraPrediction
from rayzer.models.tokenizer import ImageTokenizer, view_positions
from rayzer.nn import Transformer
from rayzer.nn.transformer import INIT_STD

IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
#: Smallest predicted normalised focal (≈ 169° horizontal field of view) and the softplus
#: sharpness of the floor: the focal equals its raw prediction to < 1e-3 above ~0.5.
FOCAL_FLOOR = 0.05
FOCAL_FLOOR_SHARPNESS = 10.0


def two_layer_mlp(d_in: int, d_hidden: int, d_out: int, last_std: float) -> nn.Sequential:
    """Linear → GELU → Linear with a small-initialised last layer (zero bias)."""
    mlp = nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Linear(d_hidden, d_out))
    nn.init.normal_(mlp[0].weight, std=INIT_STD)
    nn.init.zeros_(mlp[0].bias)
    nn.init.normal_(mlp[2].weight, std=last_std)
    nn.init.zeros_(mlp[2].bias)
    return mlp


class CameraTokens(nn.Module):
    """The estimator's trunk: one learnable camera token per view (plus its image-index
    embedding) attends jointly with the patch tokens of all views, and with optional context
    tokens; only the V camera tokens are kept. Heads on them give the cameras
    (:class:`CameraEstimator`: SE(3) + focal; the ablations' heads in their own modules)."""

    def __init__(self, cfg: RayZerConfig) -> None:
        super().__init__()
        self.cam_token = nn.Parameter(torch.randn(cfg.dim) * INIT_STD)
        self.transformer = Transformer(
            cfg.dim,
            cfg.camera.layers,
            cfg.num_heads,
            cfg.mlp_ratio,
            cfg.qk_norm,
            grad_checkpointing=cfg.grad_checkpointing,
        )

    def camera_tokens(
        self, images: Tensor, tokenizer: ImageTokenizer, context: Tensor | None = None
    ) -> Tensor:
        """images (B, V, 3, H, W) in frame order → camera tokens (B, V, d).

        ``tokenizer`` is the model's image tokenizer (shared with its scene reconstructor): the
        estimator reads single-view patch tokens with their [position ‖ image index] embedding.
        ``context`` (B, M, d): extra tokens in the joint attention (e.g. a scene representation).
        """
        b, v = images.shape[:2]
        positions = view_positions(b, v, images.device)
        tokens = tokenizer(images, positions)  # (B, V, N, d)
        cam = self.cam_token + tokenizer.position.index_embedding(positions)  # (B, V, d)
        parts = [cam, tokens.flatten(1, 2)] + ([] if context is None else [context])
        return self.transformer(torch.cat(parts, dim=1))[:, :v]


class CameraEstimator(CameraTokens):
    """Predicts relative poses and a shared focal from all views (module docstring)."""

    def __init__(self, cfg: RayZerConfig) -> None:
        super().__init__(cfg)
        cam = cfg.camera
        self.focal_init = cam.focal_init
        self.pose_head = two_layer_mlp(2 * cfg.dim, cfg.dim, 9, cam.pose_head_init_std)
        self.focal_head = two_layer_mlp(cfg.dim, cfg.dim, 1, cam.focal_head_init_std)
        self.register_buffer("identity_6d", torch.tensor(IDENTITY_6D), persistent=False)

    def forward(
        self, images: Tensor, tokenizer: ImageTokenizer, context: Tensor | None = None
    ) -> CameraPrediction:
        """images (B, V, 3, H, W) in frame order → cameras of all V views (canonical V // 2).
        ``tokenizer`` and ``context``: as in :meth:`CameraTokens.camera_tokens`."""
        b, v, _, h, w = images.shape
        canonical = v // 2
        cam = self.camera_tokens(images, tokenizer, context)

        pair = torch.cat((cam, cam[:, canonical : canonical + 1].expand(-1, v, -1)), dim=-1)
        delta = self.pose_head(pair)  # (B, V, 9): rot6d delta ‖ translation
        c2w = make_c2w(rot6d_to_matrix(self.identity_6d + delta[..., :6]), delta[..., 6:])
        # The canonical view defines the frame: exactly identity, with no gradient into it.
        is_canonical = torch.arange(v, device=c2w.device) == canonical
        eye = torch.eye(4, device=c2w.device, dtype=c2w.dtype)
        c2w = torch.where(is_canonical[None, :, None, None], eye, c2w)

        # One focal for the whole sample (all views share the camera), kept above a floor to
        # stay a camera. A smooth floor, not a clamp: a clamped focal that once hit the floor
        # gets no gradient again.
        raw = self.focal_init + self.focal_head(cam.mean(dim=1))
        focal = FOCAL_FLOOR + F.softplus(raw - FOCAL_FLOOR, beta=FOCAL_FLOOR_SHARPNESS)
        fx = focal.expand(b, v)
        fy = fx * (w / h)  # same pixel focal: fy/H = (fx/W)·(W/H)
        half = torch.full_like(fx, 0.5)
        K_norm = torch.stack((fx, fy, half, half), dim=-1)
        return CameraPrediction(c2w=c2w, K_norm=K_norm, tokens=cam, canonical=canonical)
