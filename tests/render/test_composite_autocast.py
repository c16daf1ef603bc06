"""``composite_torch`` under CPU autocast: the compositing runs in the inputs' dtype, so a caller
inside ``torch.autocast`` (bf16) gets the fp32 images, whether the forward-only path runs on one
thread or shares its images among worker threads (autocast is per thread), and with gradients."""

from __future__ import annotations

import pytest
import torch

from rayzer.render import composite_torch


def _inputs(size: int = 12):
    """Screen-space float32 inputs of a small pixel-aligned scene (4 inputs, 2 targets)."""
    from rayzer.bench.render import pixel_aligned_scene
    from rayzer.render import project_gaussians

    s = pixel_aligned_scene(size, inputs=4, targets=2, scale_px=0.8, seed=3)
    W, H = s["width"], s["height"]
    proj = project_gaussians(
        s["means"], s["quats"], s["scales"], s["c2w"], s["K"], W, H, opacities=s["opacities"]
    )
    n_img, N = proj.depths.shape[1], s["means"].shape[1]
    feats = torch.cat((s["colors"][:, None].expand(1, n_img, N, 3), proj.depths[..., None]), -1)
    args = (
        proj.means2d.reshape(n_img, N, 2),
        proj.conics.reshape(n_img, N, 3),
        s["opacities"].expand(n_img, N).contiguous(),
        feats.reshape(n_img, N, 4),
        proj.depths.reshape(n_img, N),
    )
    return args, proj.extents.reshape(n_img, N, 2), W, H


@pytest.fixture
def threads():
    """Sets the intra-op thread count for a test; the caller's is restored after."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.mark.parametrize("mode", ["one thread", "two workers", "grad"])
def test_autocast_gives_the_fp32_images(mode, threads):
    args, extents, W, H = _inputs()
    assert args[0].dtype == torch.float32 and args[0].shape[0] >= 2
    knobs = {"chunk_elements": 1 << 12, "k_block": 7}
    threads(1)
    with torch.no_grad():
        ref = composite_torch(*args, extents, W, H, **knobs)
    threads(
        2 if mode == "two workers" else 1
    )  # two workers: one per thread (see composite_forward)
    if mode == "grad":
        args = tuple(x.clone().requires_grad_(i < 4) for i, x in enumerate(args))
    with torch.set_grad_enabled(mode == "grad"), torch.autocast("cpu", dtype=torch.bfloat16):
        f, a = composite_torch(*args, extents, W, H, **knobs)
    assert f.dtype == a.dtype == torch.float32
    tol = 1e-5 if mode == "grad" else 0.0  # the differentiable path rounds differently
    assert float((f.detach() - ref[0]).abs().max()) <= tol
    assert float((a.detach() - ref[1]).abs().max()) <= tol
    if mode == "grad":
        f.sum().backward()
        assert args[0].grad is not None and bool(torch.isfinite(args[0].grad).all())
