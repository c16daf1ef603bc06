"""Spherical harmonics: 3DGS basis (against gsplat's table), orthonormality, colour rule."""

from __future__ import annotations

import math

import pytest
import torch

from rayzer.render.sh import SH_C0, num_sh_bases, sh_basis, sh_degree_from_bases, sh_to_rgb


def _fibonacci_sphere(n: int) -> torch.Tensor:
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (1 + 5**0.5) * i
    r = torch.sqrt(1 - z * z)
    return torch.stack((r * torch.cos(phi), r * torch.sin(phi), z), -1)


def test_basis_is_orthonormal_on_the_sphere():
    d = _fibonacci_sphere(20000)
    Y = sh_basis(4, d)  # (n, 25)
    gram = Y.T @ Y * (4 * math.pi / d.shape[0])
    assert torch.allclose(gram, torch.eye(25, dtype=torch.float64), atol=2e-3)


def test_band_one_signs_follow_3dgs():
    d = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    Y = sh_basis(1, d)
    c1 = 0.4886025119029199
    assert torch.allclose(
        Y[:, 1:], torch.tensor([[0, c1, 0], [0, 0, -c1], [-c1, 0, 0]], dtype=torch.float64)
    )


def test_basis_matches_gsplat():
    impl = pytest.importorskip(
        "gsplat.cuda._torch_impl", reason="gsplat not installed (pip install --no-deps gsplat)"
    )
    d = torch.nn.functional.normalize(torch.randn(500, 3, dtype=torch.float64), dim=-1)
    for degree in range(5):
        ours = sh_basis(degree, d)
        theirs = impl._eval_sh_bases_fast(num_sh_bases(degree), d)
        assert torch.allclose(ours, theirs, atol=1e-12), degree


def test_colour_rule_and_degree_selection():
    sh = torch.zeros(2, 9, 3, dtype=torch.float64)
    sh[:, 0] = torch.tensor([1.0, -3.0, 0.0])
    dirs = torch.randn(2, 3, dtype=torch.float64)
    rgb = sh_to_rgb(sh, dirs)
    expected = (SH_C0 * sh[:, 0] + 0.5).clamp_min(0)
    assert torch.allclose(rgb, expected)
    assert float(rgb[:, 1].max()) == 0.0  # clamped at 0
    sh[:, 3, 0] = 1.0  # band 1 (x) term
    assert not torch.allclose(sh_to_rgb(sh, dirs), sh_to_rgb(sh, dirs, degree=0))


def test_bad_coefficient_counts():
    assert sh_degree_from_bases(16) == 3
    for n in (0, 2, 5, 36):
        with pytest.raises(ValueError, match="coefficients"):
            sh_degree_from_bases(n)
