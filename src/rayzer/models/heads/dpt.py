"""A light DPT-style dense head: transformer tokens from several layers → full-resolution maps.

DPT (Ranftl et al., 2021) reassembles tokens of four layers at four scales and fuses them with
residual conv units. This "lite" version keeps the two ideas that matter at small scale —
features from several depths, and learned convolutional upsampling instead of a per-token linear
unpatchify (which leaves p × p block artefacts) — at a fraction of the cost:

1. each tapped layer (B, V, N, d) → LayerNorm → Linear to ``features`` channels, summed on the
   token grid (H/p × W/p);
2. ⌈log2 p⌉ stages of bilinear 2× upsampling + 3×3 conv + GELU (channels halving down to 16),
   the last stage landing exactly on H × W (any patch size, e.g. 14);
3. optionally an **RGB skip**: a 3×3 conv over the raw image, concatenated at full resolution
   (NAS3R's Gaussian head: colour and edges come straight from the pixels);
4. a 3×3 conv to ``out_channels`` raw values (no activation; the caller applies them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rayzer.nn.transformer import INIT_STD


class DPTLiteHead(nn.Module):
    """Dense head: taps [(B, V, N, d)] (+ images (B, V, 3, H, W)) → (B, V, out_channels, H, W).

    Args:
        dim: token width d.
        patch_size: p; the token grid is (H/p) × (W/p).
        out_channels: raw output channels.
        num_taps: number of transformer layers read.
        features: channels on the token grid.
        rgb_skip: channels of the raw-image conv concatenated before the output conv (0: none).
        out_init_std: std of the output conv's weights (small: outputs start near the bias,
            which is zero, so activations start at their documented initial values).
    """

    def __init__(
        self,
        dim: int,
        patch_size: int,
        out_channels: int,
        num_taps: int,
        features: int = 64,
        rgb_skip: int = 0,
        out_init_std: float = 1e-3,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.out_channels = out_channels
        self.norms = nn.ModuleList(nn.LayerNorm(dim, bias=False) for _ in range(num_taps))
        self.proj = nn.ModuleList(nn.Linear(dim, features, bias=False) for _ in range(num_taps))
        for proj in self.proj:
            nn.init.normal_(proj.weight, std=INIT_STD)
        self.fuse = nn.Conv2d(features, features, 3, padding=1)
        stages, c = [], features
        for _ in range(max(math.ceil(math.log2(patch_size)), 1)):
            c_out = max(c // 2, 16)
            stages.append(nn.Conv2d(c, c_out, 3, padding=1))
            c = c_out
        self.up = nn.ModuleList(stages)
        self.rgb = nn.Conv2d(3, rgb_skip, 3, padding=1) if rgb_skip > 0 else None
        self.out = nn.Conv2d(c + rgb_skip, out_channels, 3, padding=1)
        nn.init.normal_(self.out.weight, std=out_init_std)
        nn.init.zeros_(self.out.bias)

    def forward(
        self, taps: Sequence[Tensor], height: int, width: int, images: Tensor | None = None
    ) -> Tensor:
        if len(taps) != len(self.proj):
            raise ValueError(f"DPTLiteHead expects {len(self.proj)} taps, got {len(taps)}")
        b, v, n, _ = taps[0].shape
        gh, gw = height // self.patch_size, width // self.patch_size
        if gh * gw != n:
            raise ValueError(f"{n} tokens do not form a {gh}x{gw} grid for {height}x{width} px")
        x = sum(p(norm(t)) for t, p, norm in zip(taps, self.proj, self.norms, strict=True))
        x = x.reshape(b * v, gh, gw, -1).permute(0, 3, 1, 2)
        x = F.gelu(self.fuse(x))
        for k, conv in enumerate(self.up):
            last = k == len(self.up) - 1
            size = (height, width) if last else (gh * 2 ** (k + 1), gw * 2 ** (k + 1))
            x = F.gelu(conv(F.interpolate(x, size=size, mode="bilinear", align_corners=False)))
        if self.rgb is not None:
            if images is None:
                raise ValueError("this head has an RGB skip: pass the images")
            x = torch.cat((x, F.gelu(self.rgb(images.reshape(b * v, 3, height, width)))), dim=1)
        return self.out(x).reshape(b, v, self.out_channels, height, width)
