"""Tile binning at the boundary of its per-image int16 sort: images of exactly 2^15 tiles sort
local tile ids as int16 (0 … 32767); one tile more must take the global sort, or the last
tile's id would wrap to -32768 and its Gaussians land in the first tile's list."""

from __future__ import annotations

import pytest
import torch

from rayzer.render.compositing import bin_gaussians


@pytest.mark.parametrize(("width", "height"), [(256, 128), (331, 99)])  # 32768, 32769 tiles
def test_first_and_last_tile_lists_at_the_int16_boundary(width, height):
    per_image = width * height
    last = (width - 1.0 + 0.5, height - 1.0 + 0.5)  # centre of the last pixel (= tile)
    # Per image: Gaussians 0 and 1 cover only the last tile (1 in front), 2 only the first.
    means = torch.tensor([last, last, (0.5, 0.5)], dtype=torch.float64).expand(2, 3, 2)
    extents = torch.full((2, 3, 2), 0.2, dtype=torch.float64)
    depths = torch.tensor([3.0, 1.0, 2.0], dtype=torch.float64).expand(2, 3)
    bins = bin_gaussians(means, extents, depths, width, height, tile_size=1)
    assert bins.gaussian.numel() == 6 and int(bins.counts.sum()) == 6
    for image in range(2):
        first, end = image * per_image, (image + 1) * per_image - 1
        assert bins.counts[first] == 1 and bins.counts[end] == 2
        s0, s1 = int(bins.starts[first]), int(bins.starts[end])
        assert bins.gaussian[s0].item() == image * 3 + 2
        assert bins.gaussian[s1 : s1 + 2].tolist() == [image * 3 + 1, image * 3]
        assert bins.tile[s1 : s1 + 2].tolist() == [end, end]
