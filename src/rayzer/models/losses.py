"""Photometric training objective shared by the models: MSE + λ · perceptual, per-sample weights.

Models build their :meth:`rayzer.models.base.RayModel.loss` from these helpers (the trainer only
sums and logs the named terms they return). The perceptual network is built by the trainer and
passed in: a frozen module ``perceptual(render, target, reduce=False)`` → one distance per image,
whose ``weight`` attribute is λ (:class:`rayzer.train.losses.FrozenPerceptual`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn


def photometric_loss(
    render: Tensor,
    target: Tensor,
    perceptual: nn.Module | None = None,
    sample_weight: Tensor | None = None,
) -> dict[str, Tensor]:
    """MSE(render, target) + λ · perceptual(render, target), computed in fp32.

    Args:
        render, target: (B, Vt, 3, H, W) in [0, 1].
        perceptual: the frozen perceptual module (λ = its ``weight``), or None for MSE only.
        sample_weight: optional (B,) weights of the samples in the loss (0 drops a sample). The
            loss stays a mean over all B samples, so gradient accumulation and DDP match one
            large batch. The logged MSE and PSNR are over all samples.
    Returns:
        ``{"loss"}`` (differentiable), and detached ``"mse"``, ``"psnr"`` (mean over target
        images of the per-image PSNR, peak 1) and, with a perceptual module, ``"perceptual"``.
    """
    render, target = render.float(), target.float()
    per_image = (render - target).square().flatten(-3).mean(-1)  # (B, Vt)
    psnr = (-10.0 * torch.log10(per_image.detach().clamp_min(1e-10))).mean()
    per_sample = per_image.reshape(per_image.shape[0], -1).mean(1)  # (B,)
    weight = torch.ones_like(per_sample) if sample_weight is None else sample_weight
    terms = {"loss": (per_sample * weight).mean(), "mse": per_sample.detach().mean(), "psnr": psnr}
    lam = float(getattr(perceptual, "weight", 1.0)) if perceptual is not None else 0.0
    if lam > 0:
        assert perceptual is not None
        per = perceptual(render, target, reduce=False).flatten(1).mean(1)  # (B,)
        terms["perceptual"] = per.detach().mean()
        terms["loss"] = terms["loss"] + lam * (per * weight).mean()
    return terms


#: The explicit models' opt-in extra loss terms (our additions; weight 0, the default: off).
EXTRA_LOSS_WEIGHTS = ("warp_loss_weight", "epipolar_loss_weight", "pose_teacher_weight")


def check_loss_weights(cfg: Any, names: tuple[str, ...] = EXTRA_LOSS_WEIGHTS) -> None:
    """Refuse a ``model.<name>`` weight of ``cfg`` that is not a finite number >= 0 (a model's
    loss adds a term only for a weight > 0, so a negative or NaN one would silently switch it
    off)."""
    for name in names:
        weight = getattr(cfg, name)
        if not (isinstance(weight, int | float) and math.isfinite(weight) and weight >= 0):
            raise ValueError(f"model.{name} must be a finite number >= 0 (0: off), got {weight!r}")
