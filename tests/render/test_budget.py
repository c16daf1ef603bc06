"""Render memory planning: the intersection count matches the renderer's binning exactly."""

from __future__ import annotations

import pytest
import torch

from rayzer.render.budget import available_memory_bytes, count_intersections, render_bytes
from rayzer.render.compositing import bin_gaussians
from rayzer.render.projection import project_gaussians


def _scene(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * 0.5 + torch.tensor([0.0, 0.0, 3.0])
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * 0.2 + 1e-3
    opacities = torch.rand(n, generator=g)
    c2w = torch.eye(4).repeat(3, 1, 1)
    c2w[1, 0, 3], c2w[2, 2, 3] = 0.5, 2.5  # the third camera sits inside the cloud
    return means, quats, scales, opacities, c2w


def test_count_matches_the_renderer_binning_at_every_size():
    means, quats, scales, opacities, c2w = _scene()
    for w, h in ((32, 24), (97, 61), (256, 256)):
        K = torch.tensor([[0.9 * w, 0.9 * w, w / 2, h / 2]]).repeat(3, 1)
        counts = count_intersections(
            means, quats, scales, opacities, c2w, K, w, h, near=0.2, views_per_pass=2
        )
        proj = project_gaussians(
            means[None], quats[None], scales[None], c2w[None], K[None], w, h,
            opacities=opacities[None], near=0.2,
        )  # fmt: skip
        for v in range(3):
            bins = bin_gaussians(proj.means2d[0, v : v + 1], proj.extents[0, v : v + 1],
                                 proj.depths[0, v : v + 1], w, h)  # fmt: skip
            assert int(counts[v]) == bins.gaussian.numel(), (w, h, v)
    big = count_intersections(means, quats, scales, opacities, c2w, K * 4, 4 * w, 4 * h, near=0.2)
    assert (big > 4 * counts).all()  # footprints grow with the resolution


def test_bytes_and_free_memory():
    assert render_bytes(1000, 10) > render_bytes(10, 10) > render_bytes(0, 0) == 0
    # gsplat (CUDA) keeps less per intersection than the torch backend.
    assert 0 < render_bytes(1000, 0, "gsplat") < render_bytes(1000, 0, "torch")
    with pytest.raises(ValueError, match="backend must be"):
        render_bytes(10, 10, "auto")
    free = available_memory_bytes("cpu")
    assert free is None or free > 0
