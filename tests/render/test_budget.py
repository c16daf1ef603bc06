"""Render memory planning: the intersection count matches the renderer's binning exactly."""

from __future__ import annotations

import pytest
import torch

from rayzer.render.budget import (
    FORWARD_BLOCK_TEMPORARIES,
    available_memory_bytes,
    count_intersections,
    forward_worker_bytes,
    render_bytes,
    tile_padded_pixels,
)
from rayzer.render.compositing import FORWARD_CHUNK_ELEMENTS, K_BLOCK, bin_gaussians
from rayzer.render.compositing_forward import forward_workers
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


def test_tile_padded_pixels_are_those_of_the_renderer_tile_image():
    """The renderer composites whole tiles (the last row and column of tiles padded past the
    image), so the memory plan counts the pixels of whole tiles."""
    means, quats, scales, opacities, c2w = _scene()
    for w, h in ((32, 24), (97, 61), (66, 66), (1, 1)):
        K = torch.tensor([[0.9 * w, 0.9 * w, w / 2, h / 2]])
        proj = project_gaussians(
            means[None], quats[None], scales[None], c2w[None, :1], K[None], w, h,
            opacities=opacities[None], near=0.2,
        )  # fmt: skip
        bins = bin_gaussians(proj.means2d[0], proj.extents[0], proj.depths[0], w, h)
        tiled = bins.tiles_y * bins.tiles_x * bins.tile_size**2
        assert tile_padded_pixels(h, w) == tiled >= h * w, (w, h)
    assert tile_padded_pixels(66, 66) == 68 * 68 and tile_padded_pixels(64, 64) == 64 * 64


def test_bytes_and_free_memory():
    assert render_bytes(1000, 10) > render_bytes(10, 10) > render_bytes(0, 0) == 0
    # gsplat (CUDA) keeps less per intersection than the torch backend.
    assert 0 < render_bytes(1000, 0, "gsplat") < render_bytes(1000, 0, "torch")
    with pytest.raises(ValueError, match="backend must be"):
        render_bytes(10, 10, "auto")
    free = available_memory_bytes("cpu")
    assert free is None or free > 0


def test_each_compositing_thread_adds_its_block_temporaries():
    """The forward path's threads each hold block-sized temporaries: the estimate of a pass grows
    by one block set per thread (torch backend), bounded for small images, none for gsplat."""
    m, px = 10**6, 512 * 512
    full = FORWARD_BLOCK_TEMPORARIES * 4 * FORWARD_CHUNK_ELEMENTS  # float32 blocks
    assert forward_worker_bytes(m, px) == full
    one, two, four = (render_bytes(m, px, "torch", workers=w) for w in (1, 2, 4))
    assert two - one == full and four - two == 2 * full
    assert render_bytes(m, px, "gsplat", workers=4) == render_bytes(m, px, "gsplat", workers=1)
    # a 16 x 16 image: a block holds at most K_BLOCK pairs per pixel; no intersection, no block
    assert forward_worker_bytes(m, 256) == FORWARD_BLOCK_TEMPORARIES * 4 * 256 * K_BLOCK < full
    assert forward_worker_bytes(0, px) == 0
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="workers must be an integer >= 1"):
            render_bytes(m, px, workers=bad)


def test_forward_workers_follow_the_threads_and_the_images():
    assert forward_workers("cpu", 64) == torch.get_num_threads()
    assert forward_workers("cpu", 1) == 1  # at most one per image
    assert forward_workers("cpu", 64, workers=3) == 3
    assert forward_workers("cuda", 64) == 1
