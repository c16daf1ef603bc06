"""Patch (un)embedding: images ↔ token sequences with non-overlapping p×p patches."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from rayzer.nn.transformer import INIT_STD


def patchify(x: Tensor, patch_size: int) -> Tensor:
    """(B, V, C, H, W) → (B, V, N, C·p·p) with N = (H/p)·(W/p), patches in raster order."""
    _, _, _, h, w = x.shape
    if h % patch_size or w % patch_size:
        raise ValueError(f"image size {h}x{w} is not divisible by the patch size {patch_size}")
    return rearrange(x, "b v c (h p) (w q) -> b v (h w) (c p q)", p=patch_size, q=patch_size)


def unpatchify(tokens: Tensor, patch_size: int, height: int, width: int) -> Tensor:
    """(B, V, N, C·p·p) → (B, V, C, H, W); the inverse of :func:`patchify`."""
    return rearrange(
        tokens,
        "b v (h w) (c p q) -> b v c (h p) (w q)",
        h=height // patch_size,
        w=width // patch_size,
        p=patch_size,
        q=patch_size,
    )


class PatchEmbed(nn.Module):
    """Linear patch tokenizer: (B, V, C, H, W) → (B, V, N, d)."""

    def __init__(self, in_channels: int, patch_size: int, dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Linear(in_channels * patch_size**2, dim, bias=False)
        nn.init.normal_(self.proj.weight, std=INIT_STD)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(patchify(x, self.patch_size))


class PatchUnembed(nn.Module):
    """Maps tokens back to pixels: (B, V, N, d) → (B, V, C, H, W) through a norm and a linear layer.

    ``activation='sigmoid'`` keeps RGB in (0, 1).
    """

    def __init__(
        self, dim: int, patch_size: int, out_channels: int = 3, activation: str = "sigmoid"
    ):
        super().__init__()
        self.patch_size = patch_size
        self.norm = nn.LayerNorm(dim, bias=False)
        self.proj = nn.Linear(dim, out_channels * patch_size**2, bias=False)
        nn.init.normal_(self.proj.weight, std=INIT_STD)
        if activation not in ("sigmoid", "none"):
            raise ValueError(f"unknown activation {activation!r}; expected 'sigmoid' or 'none'")
        self.activation = activation

    def forward(self, tokens: Tensor, height: int, width: int) -> Tensor:
        x = unpatchify(self.proj(self.norm(tokens)), self.patch_size, height, width)
        return torch.sigmoid(x) if self.activation == "sigmoid" else x
