"""Depth maps as the refinement trusts them: unusable values become "unknown".

A model's depth can hold NaN, ±inf, zero or negative values, or a few wildly distant pixels
(e.g. nearly empty rays). Lifted to 3D, such pixels project to coordinates that overflow the
image sampler, so every entry point of :mod:`rayzer.refine` cleans its depth with
:func:`clean_depth` first. Conventions as in :mod:`rayzer.refine.bundle`: camera z-depth,
``<= 0`` meaning unknown.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: A depth more than this many times the median valid depth is treated as unknown.
MAX_DEPTH_OVER_MEDIAN = 1e3


def clean_depth(depth: Tensor) -> Tensor:
    """``depth`` (any shape, float) with non-finite, non-positive and absurdly far values
    (``> MAX_DEPTH_OVER_MEDIAN ×`` the median of the finite positive ones) set to 0 (unknown).
    Returns a new float tensor; all zeros when no value is usable."""
    depth = depth.detach().float()
    usable = torch.isfinite(depth) & (depth > 0)
    if usable.any():
        median = depth[usable].median()
        usable &= depth <= median * MAX_DEPTH_OVER_MEDIAN
    return torch.where(usable, depth, torch.zeros_like(depth))
