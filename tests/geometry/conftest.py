"""Shared fixtures for the geometry tests: seeded generators and random cameras."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from rayzer.geometry import make_c2w, random_rotation


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture
def random_c2w(gen: torch.Generator) -> Callable[..., torch.Tensor]:
    """``random_c2w(*shape, dtype=float64)`` -> ``(*shape, 4, 4)`` random rigid cameras."""

    def make(*shape: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        n = 1
        for s in shape:
            n *= s
        R = random_rotation(n, generator=gen, dtype=dtype).reshape(*shape, 3, 3)
        t = torch.randn(*shape, 3, generator=gen, dtype=dtype)
        return make_c2w(R, t)

    return make
