"""Local correlation between each view and a reference view, pooled to patch tokens.

Why this exists: a relative pose is a *comparison* of two images. The sign of a camera's motion
is not a linear function of either image's pixels, so a network that only mixes pixels linearly
at initialisation (a linear patch embedding, near-uniform attention, GELUs at small
pre-activations) starts with no feature that correlates with the pose. Supervised and
self-supervised training then settle on an image-independent mean pose before any comparison
is learned (measured in ``experiments/issue3_calibration``). A correlation volume — the cosine
similarity of a view's local features with the reference view's features at a set of
displacements, as in FlowNet / PWC-Net / RAFT — makes motion a first-order feature from the
first step. No library layer fits (torchvision has none; ``spatial-correlation-sampler`` is a
CUDA extension), so it is written here with one ``unfold`` of the reference per sample.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rayzer.nn.transformer import INIT_STD


class CorrelationTokens(nn.Module):
    """(B, V, 3, H, W) views + reference index → (B, V, N, d) correlation tokens.

    1. Shared features: a stride-``stride`` 3×3 conv + ReLU to ``channels``, L2-normalised per
       pixel (so correlations are cosines in [-1, 1] at any initialisation scale).
    2. For every view and feature pixel, the cosine with the reference view's features at the
       ``(2·radius + 1)²`` displacements ``{-radius … radius}·dilation`` (feature pixels); zero
       padding outside the image.
    3. Mean-pooled over each p×p image patch, then a linear layer to d.

    With the defaults (stride 2, radius 4, dilation 2) displacements reach ±16 image pixels.
    """

    def __init__(
        self,
        patch_size: int,
        dim: int,
        channels: int = 32,
        radius: int = 4,
        dilation: int = 2,
        stride: int = 2,
    ) -> None:
        super().__init__()
        if radius < 1 or dilation < 1 or stride < 1:
            raise ValueError(
                f"correlation radius, dilation and stride must be >= 1, got "
                f"{radius}, {dilation}, {stride}"
            )
        if patch_size % stride:
            raise ValueError(f"patch size {patch_size} is not divisible by the stride {stride}")
        self.patch_size, self.radius, self.dilation, self.stride = (
            patch_size,
            radius,
            dilation,
            stride,
        )
        self.features = nn.Conv2d(3, channels, 3, stride=stride, padding=1)
        self.proj = nn.Linear((2 * radius + 1) ** 2, dim, bias=False)
        nn.init.normal_(self.proj.weight, std=INIT_STD)

    @property
    def num_displacements(self) -> int:
        return (2 * self.radius + 1) ** 2

    def volume(self, images: Tensor, reference: int) -> Tensor:
        """Correlation volume (B, V, D, H/s, W/s) with D displacements in raster order (dy, dx)."""
        b, v, c, h, w = images.shape
        feats = F.normalize(F.relu(self.features(images.reshape(b * v, c, h, w))), dim=1, eps=1e-6)
        feats = feats.unflatten(0, (b, v))  # (B, V, C, h', w')
        hs, ws = feats.shape[-2:]
        k = 2 * self.radius + 1
        pad = self.radius * self.dilation
        # The reference window around every pixel, once per sample: (B, C, D, h'·w').
        ref = F.unfold(feats[:, reference], k, dilation=self.dilation, padding=pad)
        ref = ref.unflatten(1, (feats.shape[2], k * k))
        corr = torch.einsum("bcdn,bvcn->bvdn", ref, feats.flatten(3))
        return corr.unflatten(-1, (hs, ws))

    def forward(self, images: Tensor, reference: int) -> Tensor:
        b, v, _, h, w = images.shape
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(
                f"image size {h}x{w} is not divisible by the patch size {self.patch_size}"
            )
        corr = self.volume(images, reference).flatten(0, 1)  # (B·V, D, h', w')
        pooled = F.avg_pool2d(corr, self.patch_size // self.stride)  # (B·V, D, H/p, W/p)
        tokens = pooled.flatten(2).transpose(1, 2).unflatten(0, (b, v))  # (B, V, N, D)
        return self.proj(tokens)
