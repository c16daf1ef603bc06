"""Image tokenizer: p×p patches → tokens plus a [patch position ‖ image index] embedding."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rayzer.nn import PatchEmbed, ViewPositionEmbedding


def view_positions(batch: int, num_views: int, device: torch.device) -> Tensor:
    """(B, V) positions 0 … V − 1 of frame-ordered views."""
    return torch.arange(num_views, device=device).unsqueeze(0).expand(batch, -1)


class ImageTokenizer(nn.Module):
    """(B, V, 3, H, W) images and (B, V) view positions → (B, V, N, d) tokens, N = HW / p²."""

    def __init__(self, dim: int, patch_size: int, pos_enc_dim: int, index_scale: float) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.patch = PatchEmbed(3, patch_size, dim)
        self.position = ViewPositionEmbedding(dim, pos_enc_dim, index_scale)

    def forward(self, images: Tensor, view_index: Tensor) -> Tensor:
        """images (B, V, 3, H, W), view_index (B, V) positions of the views in frame order."""
        h, w = images.shape[-2:]
        gh, gw = h // self.patch_size, w // self.patch_size
        return self.patch(images) + self.position.patch_embedding(view_index, gh, gw)
