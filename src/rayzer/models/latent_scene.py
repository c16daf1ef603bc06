"""The latent-scene halves shared by RayZer and LVSM: scene reconstructor and ray decoder.

Both operate on token sequences and know nothing about how their input tokens were made, so
RayZer (image tokens fused with *predicted* rays) and LVSM (image‖*ground-truth* rays patches)
compose the same modules.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rayzer.geometry import denormalize_intrinsics, plucker_rays
from rayzer.models.config import ModelConfig
from rayzer.models.readouts import BlendReadout, SweepReadout
from rayzer.nn import (
    EpipolarBias,
    PatchEmbed,
    PatchUnembed,
    Transformer,
    epipolar_log_counts,
)
from rayzer.nn.transformer import INIT_STD


def plucker_from_normalized(c2w: Tensor, K_norm: Tensor, height: int, width: int) -> Tensor:
    """Plücker ray maps from normalised intrinsics: c2w (..., 4, 4), K_norm (..., 4) → (..., 6, H, W)."""
    return plucker_rays(c2w, denormalize_intrinsics(K_norm, height, width), height, width)


@dataclass
class LatentScene:
    """What :meth:`RayZer.reconstruct` / :meth:`LVSM.reconstruct` build and ``render`` reads.

    Attributes:
        tokens: (B, n [+ M], d) the reconstructor's output: n latent scene tokens, followed by
            the M = Vi·N processed input-view tokens with ``keep_input_tokens``.
        images: (B, Vi, 3, H, W) the input views the scene was built from.
        c2w: (B, Vi, 4, 4) their cameras (OpenCV camera-to-world);
        K_norm: (B, Vi, 4) their normalised intrinsics.
    The input views and cameras are kept because the geometric decoder options (epipolar
    attention bias, blend and sweep readouts) relate target rays to input patches and pixels.
    """

    tokens: Tensor
    images: Tensor
    c2w: Tensor
    K_norm: Tensor

    @property
    def num_input_views(self) -> int:
        return self.images.shape[1]


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
    """Renders target views from a :class:`LatentScene` and target cameras.

    Each target view's ray tokens (patches of its Plücker ray map) attend jointly with the scene
    tokens (views are decoded independently, batched as B·Vt sequences of n [+ M] + N tokens).
    Readouts: ``"regress"`` (LVSM / RayZer: an MLP maps each output token to a p×p RGB patch
    through a sigmoid), ``"blend"`` or ``"sweep"`` (:mod:`rayzer.models.readouts`). Optionally
    :class:`rayzer.nn.EpipolarBias` is added to every attention layer.
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
        epipolar_bias: bool = False,
        ray_near: float = 0.5,
        readout: str = "regress",
        sweep_depths: int = 16,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.ray_near = ray_near
        self.ray_embed = PatchEmbed(6, patch_size, dim)
        self.epipolar = EpipolarBias(depth, num_heads) if epipolar_bias else None
        self.transformer = Transformer(
            dim, depth, num_heads, mlp_ratio, qk_norm, grad_checkpointing=grad_checkpointing
        )
        self.blend = BlendReadout(dim, patch_size) if readout == "blend" else None
        self.sweep = SweepReadout(sweep_depths, ray_near) if readout == "sweep" else None
        if self.blend is not None:
            channels = BlendReadout.REGRESS_CHANNELS
        elif self.sweep is not None:
            channels = self.sweep.regress_channels
        else:
            channels = 3
        self.unembed = PatchUnembed(
            dim,
            patch_size,
            out_channels=channels,
            activation="sigmoid" if channels == 3 else "none",
        )

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
            cfg.epipolar_bias,
            cfg.ray_near,
            cfg.decoder_readout,
            cfg.sweep_depths,
        )

    def forward(
        self, scene: LatentScene, c2w: Tensor, K_norm: Tensor, height: int, width: int
    ) -> Tensor:
        """Target cameras c2w (B, Vt, 4, 4), K_norm (B, Vt, 4) → RGB (B, Vt, 3, H, W) in [0, 1]."""
        target_rays = plucker_from_normalized(c2w, K_norm, height, width)
        b, vt = target_rays.shape[:2]
        ray_tokens = self.ray_embed(target_rays)  # (B, Vt, N, d)
        n_tok = ray_tokens.shape[2]
        tokens = scene.tokens
        scene_rep = tokens.unsqueeze(1).expand(-1, vt, -1, -1)
        seq = torch.cat((scene_rep, ray_tokens), dim=2).flatten(0, 1)  # (B·Vt, n + N, d)
        geometric = self.epipolar is not None or self.blend is not None or self.sweep is not None
        if geometric and tuple(scene.images.shape[-2:]) != (height, width):
            raise ValueError(
                f"this decoder renders from the input views' pixels: targets must have their "
                f"size {tuple(scene.images.shape[-2:])}, got {(height, width)}"
            )
        needs_counts = self.epipolar is not None or self.blend is not None
        log_counts = masks = None
        m = scene.num_input_views * n_tok
        key_start = tokens.shape[1] - m  # the input-view tokens are the scene's last M tokens
        if needs_counts:
            if key_start < 0:
                raise ValueError(
                    f"the scene has {tokens.shape[1]} tokens, fewer than the {m} input-view tokens "
                    "the geometric decoder needs (model.keep_input_tokens)"
                )
            log_counts = epipolar_log_counts(
                c2w,
                K_norm,
                scene.c2w,
                scene.K_norm,
                height,
                width,
                self.patch_size,
                near=self.ray_near,
            )
        if self.epipolar is not None:
            masks = self.epipolar.layer_biases(log_counts, seq.shape[1], key_start)
        out = self.transformer(seq, masks).unflatten(0, (b, vt))
        target_out = out[:, :, -n_tok:]
        if self.sweep is not None:
            regress = self.unembed(target_out, height, width)
            return self.sweep(c2w, K_norm, scene.images, scene.c2w, scene.K_norm, regress)
        if self.blend is None:
            return self.unembed(target_out, height, width)
        return self.blend(
            target_out,
            out[:, :, key_start : key_start + m],
            scene.images,
            log_counts,
            self.unembed(target_out, height, width),
        )
