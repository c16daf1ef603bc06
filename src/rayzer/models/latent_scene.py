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
from rayzer.model_config import LatentSceneConfig
from rayzer.models.readouts import SweepReadout
from rayzer.nn import PatchEmbed, PatchUnembed, Transformer
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
    The input views and cameras are kept because the sweep readout reads the input views'
    pixels along the target rays.
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
    def from_config(cls, cfg: LatentSceneConfig) -> SceneReconstructor:
        return cls(
            cfg.dim,
            cfg.scene.layers,
            cfg.num_heads,
            cfg.scene.num_tokens,
            cfg.mlp_ratio,
            cfg.qk_norm,
            cfg.grad_checkpointing,
            cfg.scene.keep_input_tokens,
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
    Readouts: ``"regress"`` (the paper: an MLP maps each output token to a p×p RGB patch through
    a sigmoid) or ``"sweep"`` (:class:`rayzer.models.readouts.SweepReadout`: the same head also
    gives per-pixel depth logits and a gate, and the colour is read from the input views).

    With ``ray_queries=False`` the decoder has no ray embedding and renders only through
    :meth:`decode`, from query tokens its model makes (the paper's ablations without Plücker
    rays, :mod:`rayzer.models.ablations`).
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
        ray_near: float = 0.5,
        readout: str = "regress",
        sweep_depths: int = 16,
        ray_queries: bool = True,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.ray_embed = PatchEmbed(6, patch_size, dim) if ray_queries else None
        self.transformer = Transformer(
            dim, depth, num_heads, mlp_ratio, qk_norm, grad_checkpointing=grad_checkpointing
        )
        self.sweep = SweepReadout(sweep_depths, ray_near) if readout == "sweep" else None
        channels = self.sweep.regress_channels if self.sweep is not None else 3
        self.unembed = PatchUnembed(
            dim,
            patch_size,
            out_channels=channels,
            activation="sigmoid" if channels == 3 else "none",
        )

    @classmethod
    def from_config(cls, cfg: LatentSceneConfig, ray_queries: bool = True) -> RayDecoder:
        dec = cfg.decoder
        return cls(
            cfg.dim,
            dec.layers,
            cfg.num_heads,
            cfg.patch_size,
            cfg.mlp_ratio,
            cfg.qk_norm,
            cfg.grad_checkpointing,
            dec.ray_near,
            dec.readout,
            dec.sweep_depths,
            ray_queries,
        )

    def forward(
        self, scene: LatentScene, c2w: Tensor, K_norm: Tensor, height: int, width: int
    ) -> Tensor:
        """Target cameras c2w (B, Vt, 4, 4), K_norm (B, Vt, 4) → RGB (B, Vt, 3, H, W) in [0, 1]."""
        if self.ray_embed is None:
            raise RuntimeError("this decoder has no ray embedding (ray_queries=False): use decode")
        queries = self.ray_embed(plucker_from_normalized(c2w, K_norm, height, width))
        head = self.decode(scene.tokens, queries, height, width)
        return self.read_out(head, scene, c2w, K_norm)

    def decode(self, scene_tokens: Tensor, queries: Tensor, height: int, width: int) -> Tensor:
        """Scene tokens (B, n [+ M], d) and query tokens (B, Vt, N, d), one per target patch in
        raster order, → the head's output (B, Vt, C, H, W): RGB in [0, 1] for the regression
        readout (C = 3), the sweep's per-pixel channels otherwise (:meth:`read_out`)."""
        b, vt, n_tok = queries.shape[:3]
        scene_rep = scene_tokens.unsqueeze(1).expand(-1, vt, -1, -1)
        seq = torch.cat((scene_rep, queries), dim=2).flatten(0, 1)  # (B·Vt, n + N, d)
        out = self.transformer(seq).unflatten(0, (b, vt))
        return self.unembed(out[:, :, -n_tok:], height, width)

    def read_out(self, head: Tensor, scene: LatentScene, c2w: Tensor, K_norm: Tensor) -> Tensor:
        """The :meth:`decode` output → RGB (B, Vt, 3, H, W): itself for the regression readout;
        the sweep reads the input views along the target cameras' rays (c2w (B, Vt, 4, 4),
        K_norm (B, Vt, 4))."""
        if self.sweep is None:
            return head
        if tuple(scene.images.shape[-2:]) != tuple(head.shape[-2:]):
            raise ValueError(
                f"the sweep readout renders from the input views' pixels: targets must have "
                f"their size {tuple(scene.images.shape[-2:])}, got {tuple(head.shape[-2:])}"
            )
        return self.sweep(c2w, K_norm, scene.images, scene.c2w, scene.K_norm, head)
