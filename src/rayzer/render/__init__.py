"""Differentiable 3D Gaussian rasterization (``rayzer.render``): CPU (tiled PyTorch) and CUDA (gsplat).

Entry point :func:`rasterize`::

    out = rasterize(means, quats, scales, opacities, colors, c2w, K, width, height)
    out.rgb (B, V, 3, H, W), out.alpha (B, V, 1, H, W), out.depth (B, V, 1, H, W)

Shapes and conventions (:mod:`rayzer`):

* ``means (B, N, 3)`` world; ``quats (B, N, 4)`` ``(w, x, y, z)`` normalised inside; ``scales
  (B, N, 3)`` standard deviations in world units; ``opacities (B, N)`` in [0, 1].
* ``colors (B, N, 3)`` RGB, or ``(B, N, (d+1)², 3)`` SH of degree d <= 4 in the 3DGS basis and
  layout, colour = max(SH · basis(dir) + 0.5, 0) with ``dir`` from the camera centre to the mean.
* ``c2w (B, V, 4, 4)`` OpenCV camera-to-world; ``K (B, V, 4)`` pixel ``(fx, fy, cx, cy)``, pixel
  centres at +0.5.
* gsplat's numerics: 0.3 px² dilation of the 2D covariance, opacity-aware 3.33 σ screen extent,
  near/far culling of whole Gaussians, ``alpha = min(0.999, o · exp(-power))``, contributions
  with alpha < 1/255 skipped, front-to-back compositing that stops before the transmittance
  would reach 1e-4.
* ``depth`` is Σ w_k z_k (camera z, not divided by alpha); ``RenderOutput.expected_depth()``
  divides by alpha. ``rgb`` = Σ w_k c_k + (1 - alpha) · background (default black).
* Gradients reach means, quats, scales, opacities, colours / SH, ``c2w`` and all four
  intrinsics: the projection is PyTorch autograd and the compositing has an exact backward.

Backends: ``torch`` (tiled, any device; the training renderer on CPU), ``gsplat`` (CUDA 2D
compositing, ``pip install 'rayzer[cuda]'``), ``reference`` (dense brute force, for tests),
``auto`` (gsplat on CUDA when installed, else torch). ``save_ply`` / ``load_ply`` read and write
the standard 3DGS ``.ply``. This package imports only ``rayzer.geometry``, torch and numpy.
"""

from rayzer.render.compositing import composite_torch
from rayzer.render.ply import GaussianPly, load_ply, save_ply
from rayzer.render.projection import Projection, project_gaussians
from rayzer.render.rasterize import (
    BACKENDS,
    RenderOutput,
    available_backends,
    rasterize,
    resolve_backend,
)
from rayzer.render.reference import composite_reference
from rayzer.render.sh import num_sh_bases, sh_basis, sh_to_rgb

__all__ = [
    "BACKENDS",
    "GaussianPly",
    "Projection",
    "RenderOutput",
    "available_backends",
    "composite_reference",
    "composite_torch",
    "load_ply",
    "num_sh_bases",
    "project_gaussians",
    "rasterize",
    "resolve_backend",
    "save_ply",
    "sh_basis",
    "sh_to_rgb",
]
