"""Real spherical harmonics in the 3DGS basis and layout (degrees 0 to 4).

Layout: coefficient ``l² + l + m`` holds band ``l``, order ``m = -l..l`` (the DC term first, then
the "rest"), exactly as 3DGS / gsplat store ``(N, (d+1)², 3)``. The basis is the real SH with the
Condon-Shortley phase, which is what gives 3DGS's signs (band 1 = ``-C1 y, C1 z, -C1 x``).
Colour = ``clamp_min(Σ_k sh_k · Y_k(dir) + 0.5, 0)`` with ``dir`` the unit vector from the camera
centre to the Gaussian mean.

The basis is built from the associated-Legendre recurrence rather than hand-typed polynomials:
one short loop covers every degree and is checked against gsplat's hand-written table in the
tests (``tests/render/test_sh.py``).
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "MAX_SH_DEGREE",
    "SH_C0",
    "num_sh_bases",
    "sh_basis",
    "sh_degree_from_bases",
    "sh_to_rgb",
]

MAX_SH_DEGREE = 4
SH_C0 = 0.28209479177387814  # Y_0^0 = 1 / (2 sqrt(pi))


def num_sh_bases(degree: int) -> int:
    """Number of coefficients ``(degree + 1)²`` of an SH expansion up to ``degree``."""
    return (degree + 1) ** 2


def sh_degree_from_bases(n: int) -> int:
    """Inverse of :func:`num_sh_bases`; ``ValueError`` unless ``n`` is a square ≤ 25."""
    d = math.isqrt(n) - 1
    if n < 1 or (d + 1) ** 2 != n or d > MAX_SH_DEGREE:
        raise ValueError(
            f"SH colours need (d+1)² coefficients with d <= {MAX_SH_DEGREE} "
            f"(1, 4, 9, 16 or 25), got {n}"
        )
    return d


def _norm(l: int, m: int) -> float:  # noqa: E741 - l is the standard name of the band
    """``sqrt((2l+1)/(4π) (l-m)!/(l+m)!)``, times sqrt(2) for m > 0 (real SH)."""
    k = math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - m) / math.factorial(l + m))
    return k * math.sqrt(2.0) if m > 0 else k


def sh_basis(degree: int, dirs: torch.Tensor) -> torch.Tensor:
    """Evaluate the basis up to ``degree`` at unit directions ``dirs (..., 3)`` → ``(..., (d+1)²)``."""
    if not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"sh_degree must be in 0..{MAX_SH_DEGREE}, got {degree}")
    x, y, z = dirs.unbind(-1)
    out: list[torch.Tensor | None] = [None] * num_sh_bases(degree)
    out[0] = torch.full_like(z, SH_C0)
    if degree == 0:
        return out[0][..., None]
    # cos(mφ) sin^m θ and sin(mφ) sin^m θ are the real and imaginary parts of (x + iy)^m.
    cos_m = [torch.ones_like(x)]
    sin_m = [torch.zeros_like(x)]
    for _ in range(degree):
        c, s = cos_m[-1], sin_m[-1]
        cos_m.append(x * c - y * s)
        sin_m.append(x * s + y * c)
    for m in range(degree + 1):
        # Q_l^m(z) = d^m P_l / dz^m by the standard recurrence in l (Legendre without the
        # (1-z²)^{m/2} factor, which (x + iy)^m already carries).
        q_prev = None
        q = torch.full_like(z, float(math.prod(range(1, 2 * m, 2))))  # (2m - 1)!!
        for l in range(m, degree + 1):  # noqa: E741
            if l == m + 1:
                q_prev, q = q, z * (2 * m + 1) * q
            elif l > m + 1:
                q_prev, q = q, ((2 * l - 1) * z * q - (l + m - 1) * q_prev) / (l - m)
            sign = -1.0 if m % 2 else 1.0  # Condon-Shortley phase
            c = sign * _norm(l, m)
            if m == 0:
                out[l * l + l] = c * q
            else:
                out[l * l + l + m] = c * q * cos_m[m]
                out[l * l + l - m] = c * q * sin_m[m]
    return torch.stack(out, dim=-1)  # type: ignore[arg-type]


def sh_to_rgb(sh: torch.Tensor, dirs: torch.Tensor, degree: int | None = None) -> torch.Tensor:
    """Colours ``(..., 3)`` from coefficients ``sh (..., K, 3)`` seen along ``dirs (..., 3)``.

    ``dirs`` need not be normalised (zero vectors give the DC colour). ``degree`` (default: all
    of ``sh``) may use fewer bands than stored, as gsplat's ``sh_degree`` does.
    """
    stored = sh_degree_from_bases(sh.shape[-2])
    degree = stored if degree is None else degree
    if not 0 <= degree <= stored:
        raise ValueError(
            f"sh_degree {degree} needs {num_sh_bases(degree)} coefficients, got {sh.shape[-2]}"
        )
    n = num_sh_bases(degree)
    if degree == 0:
        value = SH_C0 * sh[..., 0, :]
    else:
        d = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        basis = sh_basis(degree, d)  # (..., n)
        value = (basis[..., None] * sh[..., :n, :]).sum(-2)
    return (value + 0.5).clamp_min(0.0)
