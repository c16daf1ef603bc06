"""``rasterize`` (torch backend) under CPU autocast renders in the inputs' dtype: a caller inside
``torch.autocast`` (bf16) gets the same float32 images as without it, whether the forward-only
compositing runs on one thread or shares its images among worker threads (autocast is per
thread), and with gradients."""

from __future__ import annotations

import pytest
import torch

from rayzer.render import rasterize


@pytest.fixture
def threads():
    """Sets the intra-op thread count for a test; the caller's is restored after."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.mark.parametrize("mode", ["one thread", "two workers", "grad"])
def test_autocast_renders_the_fp32_images(mode, threads, make_scene):
    # Enough Gaussians for partly filled blocks (the accumulation that failed under autocast).
    s = make_scene(1, N=2000, V=2, width=32, height=24, dtype=torch.float32)
    args = [s[k] for k in ("means", "quats", "scales", "opacities", "colors", "c2w", "K")]
    threads(2 if mode == "two workers" else 1)  # two images, two threads: two workers
    if mode == "grad":
        args[0] = args[0].clone().requires_grad_(True)
    with torch.set_grad_enabled(mode == "grad"):
        ref = rasterize(*args, 32, 24, backend="torch")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = rasterize(*args, 32, 24, backend="torch")
    assert out.rgb.dtype == torch.float32 and float(ref.alpha.detach().mean()) > 0.5
    for a, b in ((out.rgb, ref.rgb), (out.alpha, ref.alpha), (out.depth, ref.depth)):
        assert torch.equal(a, b)
    if mode == "grad":
        (grad,) = torch.autograd.grad(out.rgb.sum(), args[0])
        assert bool(torch.isfinite(grad).all()) and bool(grad.abs().sum() > 0)
