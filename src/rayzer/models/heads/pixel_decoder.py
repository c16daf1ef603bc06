"""E-RayZer's Gaussian decoder: one linear map per token to its p × p pixels' channels."""

from __future__ import annotations

from torch import Tensor, nn

from rayzer.nn import PatchUnembed


class PixelLinearDecoder(nn.Module):
    """Tokens (B, V, N, d) → per-pixel raw channels (B, V, C, H, W), N = (H/p)·(W/p).

    A LayerNorm and one linear layer from each token to its p·p·C pixel values (no activation:
    the model applies the per-parameter activations). Linear readout is E-RayZer's choice: the
    scene encoder must carry the per-pixel detail in its tokens.
    """

    def __init__(self, dim: int, patch_size: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.unembed = PatchUnembed(dim, patch_size, channels, activation="none")

    def forward(self, tokens: Tensor, height: int, width: int) -> Tensor:
        return self.unembed(tokens, height, width)
