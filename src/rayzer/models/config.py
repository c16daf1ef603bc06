"""Typed model configuration shared by RayZer and the LVSM oracle.

Every size comes from here; presets live in ``configs/*.yaml`` (under the ``model`` key).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ModelConfig:
    """Sizes and switches of a latent-scene model.

    Attributes:
        name: ``"rayzer"`` (self-predicted cameras) or ``"lvsm"`` (ground-truth cameras).
        dim: token width d.
        num_heads: attention heads per block.
        mlp_ratio: hidden width of the block MLPs relative to d.
        patch_size: p; image sizes must be divisible by it.
        cam_layers, scene_layers, dec_layers: depths of the camera estimator, scene
            reconstructor and rendering decoder (LVSM uses scene_layers + dec_layers).
        num_scene_tokens: n learnable latent scene tokens.
        pos_enc_dim: width of each sinusoidal part of the position embedding.
        index_scale: multiplier on the image index before its sinusoids.
        qk_norm: RMS-normalise queries and keys in every attention.
        focal_init: initial normalised focal ``fx / W`` (1.25 ≈ 44° horizontal FoV).
        pose_head_init_std: std of the last pose-head layer; small values start every view near
            the canonical (identity) pose.
        focal_head_init_std: std of the last focal-head layer.
        learn_focal: predict the shared focal; False holds it at ``focal_init`` (a lever against
            the focal turning into a per-clip latent code).
        grad_checkpointing: recompute block activations in backward.
    """

    name: str = "rayzer"
    dim: int = 128
    num_heads: int = 4
    mlp_ratio: float = 4.0
    patch_size: int = 8
    cam_layers: int = 3
    scene_layers: int = 3
    dec_layers: int = 3
    num_scene_tokens: int = 64
    pos_enc_dim: int = 64
    index_scale: float = 1.0
    qk_norm: bool = True
    focal_init: float = 1.25
    pose_head_init_std: float = 1e-3
    focal_head_init_std: float = 1e-3
    learn_focal: bool = True
    grad_checkpointing: bool = False

    def __post_init__(self) -> None:
        if self.name not in ("rayzer", "lvsm"):
            raise ValueError(f"model.name must be 'rayzer' or 'lvsm', got {self.name!r}")
        if self.dim % self.num_heads:
            raise ValueError(f"model.dim={self.dim} is not divisible by num_heads={self.num_heads}")
        if self.pos_enc_dim % 4:
            raise ValueError(f"model.pos_enc_dim={self.pos_enc_dim} must be divisible by 4")
        for key in ("patch_size", "num_scene_tokens", "dim"):
            if getattr(self, key) <= 0:
                raise ValueError(f"model.{key} must be positive, got {getattr(self, key)}")
