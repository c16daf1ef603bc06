"""PSNR / SSIM: hand cases, batching, gradients, and agreement with scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import skimage.data
import torch
from scipy.ndimage import gaussian_filter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from rayzer.eval import psnr, ssim


def _chw(img: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).to(dtype)


def _skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=-1,
    )


def _ssim_pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Random and natural-image pairs (HWC float64 in [0, 1]), several non-square sizes."""
    rng = np.random.default_rng(0)
    pairs = []
    a = rng.random((37, 53, 3))
    pairs.append(("random_noisy", a, np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)))
    pairs.append(("random_independent", rng.random((64, 48, 3)), rng.random((64, 48, 3))))
    pairs.append(("random_small", rng.random((11, 16, 3)), rng.random((11, 16, 3))))
    for name in ("astronaut", "coffee", "chelsea"):
        img = getattr(skimage.data, name)()[:120, :170].astype(np.float64) / 255.0
        pairs.append(
            (f"{name}_noise", img, np.clip(img + 0.05 * rng.standard_normal(img.shape), 0, 1))
        )
        pairs.append((f"{name}_blur", img, gaussian_filter(img, sigma=(1.2, 1.2, 0.0))))
    return pairs


# ----------------------------------------------------------------------------------------- PSNR


def test_psnr_identical_is_inf() -> None:
    x = torch.rand(2, 3, 16, 16)
    assert torch.isinf(psnr(x, x.clone())).all()


@pytest.mark.parametrize("offset", [0.1, 0.05, 0.01])
def test_psnr_known_mse(offset: float) -> None:
    target = torch.full((3, 8, 10), 0.5, dtype=torch.float64)
    pred = target + offset  # MSE = offset**2
    expected = -10.0 * math.log10(offset**2)
    assert psnr(pred, target).item() == pytest.approx(expected, abs=1e-9)


def test_psnr_clamps_both_inputs() -> None:
    target = torch.full((3, 8, 8), 0.1, dtype=torch.float64)
    pred = torch.full((3, 8, 8), -0.4, dtype=torch.float64)  # clamped to 0 -> MSE 0.01 -> 20 dB
    assert psnr(pred, target).item() == pytest.approx(20.0, abs=1e-9)
    over = torch.full((3, 8, 8), 1.7)
    assert torch.isinf(psnr(over, torch.ones(3, 8, 8)))  # both clamp to 1: identical


def test_psnr_batched_matches_skimage() -> None:
    g = torch.Generator().manual_seed(1)
    target = torch.rand(2, 3, 3, 12, 20, generator=g, dtype=torch.float64)
    pred = (target + 0.1 * torch.randn(target.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    out = psnr(pred, target)
    assert out.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            ref = peak_signal_noise_ratio(target[i, j].numpy(), pred[i, j].numpy(), data_range=1.0)
            assert out[i, j].item() == pytest.approx(ref, abs=1e-9)


def test_psnr_gradient() -> None:
    target = torch.rand(2, 3, 8, 8)
    pred = (target + 0.05 * torch.randn_like(target)).clamp(0.01, 0.99).requires_grad_()
    psnr(pred, target).sum().backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_psnr_bad_input() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(torch.rand(3, 8, 8), torch.rand(3, 8, 9))
    with pytest.raises(ValueError, match="floating-point"):
        psnr(torch.zeros(3, 8, 8, dtype=torch.uint8), torch.zeros(3, 8, 8, dtype=torch.uint8))


# ----------------------------------------------------------------------------------------- SSIM


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-4), (torch.float64, 1e-10)])
def test_ssim_matches_skimage(dtype: torch.dtype, tol: float) -> None:
    worst = 0.0
    for name, a, b in _ssim_pairs():
        ref = _skimage_ssim(a, b)
        ours = ssim(_chw(a, dtype), _chw(b, dtype)).item()
        assert abs(ours - ref) < tol, f"{name}: ours {ours} vs skimage {ref}"
        worst = max(worst, abs(ours - ref))
    assert worst < tol


def test_ssim_batched_equals_per_image() -> None:
    g = torch.Generator().manual_seed(2)
    target = torch.rand(2, 2, 3, 24, 17, generator=g, dtype=torch.float64)
    pred = (target + 0.2 * torch.rand(target.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    out = ssim(pred, target)
    assert out.shape == (2, 2)
    for i in range(2):
        for j in range(2):
            ref = _skimage_ssim(
                pred[i, j].permute(1, 2, 0).numpy(), target[i, j].permute(1, 2, 0).numpy()
            )
            assert out[i, j].item() == pytest.approx(ref, abs=1e-10)


def test_ssim_identical_and_clamped() -> None:
    x = torch.rand(3, 16, 16)
    assert ssim(x, x.clone()).item() == pytest.approx(1.0, abs=1e-6)
    assert ssim(x + 2.0, torch.ones(3, 16, 16)).item() == pytest.approx(
        1.0, abs=1e-6
    )  # both clamp to 1


def test_ssim_gradient_and_order() -> None:
    target = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    low = (target + 0.05 * torch.randn_like(target)).clamp(0, 1)
    high = (target + 0.3 * torch.randn_like(target)).clamp(0, 1)
    assert ssim(low, target).item() > ssim(high, target).item()
    pred = low.clone().requires_grad_()
    ssim(pred, target).sum().backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_ssim_bad_input() -> None:
    with pytest.raises(ValueError, match="at least 11"):
        ssim(torch.rand(3, 10, 40), torch.rand(3, 10, 40))
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(torch.rand(3, 16, 16), torch.rand(1, 3, 16, 16))
