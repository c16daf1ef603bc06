"""``rasterize``: 3D Gaussians + cameras -> images, alpha and depth (the public entry point)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

from rayzer.render.compositing import composite_torch
from rayzer.render.projection import project_gaussians
from rayzer.render.reference import composite_reference
from rayzer.render.sh import sh_degree_from_bases, sh_to_rgb

__all__ = ["BACKENDS", "RenderOutput", "available_backends", "rasterize", "resolve_backend"]

BACKENDS = ("auto", "torch", "gsplat", "reference")


@dataclass
class RenderOutput:
    """Rendered views, all ``(B, V, C, H, W)``.

    Attributes:
        rgb: ``(B, V, 3, H, W)`` = Σ w_k c_k + (1 - alpha) · background.
        alpha: ``(B, V, 1, H, W)`` accumulated opacity Σ w_k = 1 - final transmittance.
        depth: ``(B, V, 1, H, W)`` alpha-weighted camera z, Σ w_k z_k, **not** divided by alpha
            (gsplat's "D" mode; it goes to 0 where nothing is drawn).
    """

    rgb: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor

    def expected_depth(self, eps: float = 1e-6) -> torch.Tensor:
        """``depth / alpha`` (gsplat's "ED"): the mean z of what is seen; 0 where alpha <= eps."""
        a = self.alpha
        return torch.where(a > eps, self.depth / a.clamp_min(eps), torch.zeros_like(a))


def _gsplat_usable() -> bool:
    return importlib.util.find_spec("gsplat") is not None and torch.cuda.is_available()


def available_backends(device: torch.device | str) -> list[str]:
    """Backends that can run on ``device`` here (``gsplat`` needs CUDA and the ``[cuda]`` extra)."""
    names = ["torch", "reference"]
    if torch.device(device).type == "cuda" and _gsplat_usable():
        names.insert(0, "gsplat")
    return names


def resolve_backend(backend: str, device: torch.device) -> str:
    """Map ``auto`` to ``gsplat`` on CUDA when gsplat imports, else ``torch``; check the name."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "gsplat" if device.type == "cuda" and _gsplat_usable() else "torch"
    if backend == "gsplat" and device.type != "cuda":
        raise ValueError(f"backend='gsplat' needs CUDA tensors, got device {device}")
    return backend


def _check(name: str, x: torch.Tensor, shape: tuple[int | None, ...]) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
        want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name}: expected shape {want}, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: contains NaN or infinite values")


def _validate(means, quats, scales, opacities, colors, c2w, K, width, height, background):
    if isinstance(width, bool) or int(width) != width or width <= 0:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    if isinstance(height, bool) or int(height) != height or height <= 0:
        raise ValueError(f"height must be a positive integer, got {height!r}")
    _check("means", means, (None, None, 3))
    B, N = means.shape[:2]
    _check("quats", quats, (B, N, 4))
    _check("scales", scales, (B, N, 3))
    _check("opacities", opacities, (B, N))
    if colors.ndim == 3:
        _check("colors", colors, (B, N, 3))
    else:
        _check("colors", colors, (B, N, None, 3))
        sh_degree_from_bases(colors.shape[2])
    _check("c2w", c2w, (B, None, 4, 4))
    V = c2w.shape[1]
    _check("K", K, (B, V, 4))
    if N and bool((opacities < 0).any() | (opacities > 1).any()):
        raise ValueError("opacities must lie in [0, 1]")
    if N and bool((scales < 0).any()):
        raise ValueError("scales must be >= 0 (standard deviations in world units)")
    if N and bool(((quats * quats).sum(-1) == 0).any()):
        raise ValueError("quats contain a zero quaternion (no rotation is defined)")
    if bool((K[..., :2] <= 0).any()):
        raise ValueError("K: focal lengths fx, fy must be > 0")
    if background is not None:
        if background.shape not in ((3,), (B, V, 3)):
            raise ValueError(
                f"background: expected shape (3,) or ({B}, {V}, 3), got {tuple(background.shape)}"
            )
        _check("background", background.reshape(-1, 3), (None, 3))
    return B, N, V


def rasterize(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
    c2w: torch.Tensor,
    K: torch.Tensor,
    width: int,
    height: int,
    *,
    background: torch.Tensor | None = None,
    near: float = 0.01,
    far: float = 1e10,
    sh_degree: int | None = None,
    backend: str = "auto",
) -> RenderOutput:
    """Render ``B`` Gaussian sets, each into its ``V`` cameras.

    Args:
        means: ``(B, N, 3)`` world positions.
        quats: ``(B, N, 4)`` rotations ``(w, x, y, z)``, normalised inside.
        scales: ``(B, N, 3)`` per-axis standard deviations in world units (>= 0).
        opacities: ``(B, N)`` in [0, 1].
        colors: ``(B, N, 3)`` RGB used as is, or ``(B, N, (d+1)², 3)`` SH coefficients of degree
            d <= 4 (3DGS layout; colour = max(SH · basis(dir) + 0.5, 0), dir from the camera
            centre to the mean).
        c2w: ``(B, V, 4, 4)`` OpenCV camera-to-world.
        K: ``(B, V, 4)`` pixel intrinsics ``(fx, fy, cx, cy)``, pixel centres at +0.5.
        width, height: output size in pixels.
        background: ``(3,)`` or ``(B, V, 3)``; default black (zeros).
        near, far: Gaussians with camera z outside ``(near, far)`` are culled (whole Gaussians,
            as gsplat does: no clipping of their footprint).
        sh_degree: SH bands to use (default: all given).
        backend: ``"torch"`` (tiled PyTorch, any device), ``"gsplat"`` (CUDA), ``"reference"``
            (dense brute force, for tests) or ``"auto"`` (gsplat on CUDA when installed).

    Returns:
        :class:`RenderOutput` with ``rgb``, ``alpha``, ``depth`` of shape ``(B, V, C, H, W)``.

    Raises:
        ValueError: wrong shapes or dtypes, NaN / inf inputs, opacities outside [0, 1], negative
            scales, zero quaternions, non-positive focal lengths, unknown backend.
    """
    B, N, V = _validate(means, quats, scales, opacities, colors, c2w, K, width, height, background)
    width, height = int(width), int(height)
    name = resolve_backend(backend, means.device)
    dtype = means.dtype

    # In the inputs' dtype under autocast too (as the models' fp32_geometry): a bf16 projection
    # would move the footprints by pixels, and the compositing accumulates in the inputs' dtype.
    with torch.autocast(means.device.type, enabled=False):
        proj = project_gaussians(
            means, quats, scales, c2w, K, width, height, opacities=opacities, near=near, far=far
        )
        if colors.ndim == 3:
            rgb = colors[:, None].expand(B, V, N, 3)
        else:
            centres = c2w[:, :, :3, 3]  # (B, V, 3)
            dirs = means[:, None] - centres[:, :, None]  # (B, V, N, 3)
            rgb = sh_to_rgb(colors[:, None].expand(B, V, *colors.shape[1:]), dirs, sh_degree)
        n_img = B * V
        feats = torch.cat((rgb, proj.depths[..., None]), dim=-1).reshape(n_img, N, 4)
        opac = opacities[:, None].expand(B, V, N).reshape(n_img, N)
        m2d = proj.means2d.reshape(n_img, N, 2)
        con = proj.conics.reshape(n_img, N, 3)
        dep = proj.depths.reshape(n_img, N)
        if name == "torch":
            out, alpha = composite_torch(
                m2d, con, opac, feats, dep, proj.extents.reshape(n_img, N, 2), width, height
            )
        elif name == "reference":
            visible = ((proj.depths > near) & (proj.depths < far)).reshape(n_img, N)
            out, alpha = composite_reference(m2d, con, opac, feats, dep, visible, width, height)
        else:
            from rayzer.render.gsplat_backend import composite_gsplat

            out, alpha = composite_gsplat(
                m2d, con, opac, feats, dep, proj.radii.reshape(n_img, N, 2), width, height
            )
        bg = torch.zeros(3, dtype=dtype, device=means.device) if background is None else background
        bg = bg.to(dtype).expand(B, V, 3).reshape(n_img, 1, 1, 3)
        rgb_img = out[..., :3] + (1.0 - alpha) * bg

        def chw(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(B, V, height, width, x.shape[-1]).permute(
                0, 1, 4, 2, 3
            )  # B·V may be 0

        return RenderOutput(rgb=chw(rgb_img), alpha=chw(alpha), depth=chw(out[..., 3:4]))
