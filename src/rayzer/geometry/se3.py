"""Rigid transforms in SE(3) as homogeneous 4x4 matrices.

Conventions: cameras are OpenCV (x right, y down, z forward) camera-to-world matrices
``c2w = [[R, t], [0, 1]]``: ``R``'s columns are the camera axes in world coordinates and ``t`` is
the camera centre. All functions are batched over leading dims ``...`` and differentiable.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from rayzer.geometry._checks import broadcast_batch, check_floating, check_trailing

__all__ = [
    "look_at",
    "make_c2w",
    "relative_to_canonical",
    "se3_compose",
    "se3_inverse",
]


def make_c2w(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Assemble ``[[R, t], [0, 0, 0, 1]]`` from ``R (..., 3, 3)`` and ``t (..., 3)`` (leading dims broadcast)."""
    check_trailing(R, "R", (3, 3))
    check_trailing(t, "t", (3,))
    batch = broadcast_batch(R.shape[:-2], t.shape[:-1])
    R = R.expand(*batch, 3, 3)
    t = t.expand(*batch, 3)
    top = torch.cat((R, t[..., None]), dim=-1)
    bottom = torch.zeros(*batch, 1, 4, dtype=top.dtype, device=top.device)
    bottom[..., 0, 3] = 1.0
    return torch.cat((top, bottom), dim=-2)


def se3_inverse(T: torch.Tensor) -> torch.Tensor:
    """Closed-form inverse of rigid transforms ``T (..., 4, 4)``: ``[[R^T, -R^T t], [0, 1]]``.

    Exact for rigid transforms and cheaper / better conditioned than ``torch.linalg.inv``.
    The bottom row of ``T`` is assumed to be ``[0, 0, 0, 1]`` and is not read.
    """
    check_trailing(T, "T", (4, 4))
    Rt = T[..., :3, :3].transpose(-1, -2)
    t = -(Rt @ T[..., :3, 3:4]).squeeze(-1)
    return make_c2w(Rt, t)


def se3_compose(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Return ``A @ B`` for 4x4 transforms, broadcasting leading dims (apply ``B`` first, then ``A``)."""
    check_trailing(A, "A", (4, 4))
    check_trailing(B, "B", (4, 4))
    return A @ B


def relative_to_canonical(c2w: torch.Tensor, index: int) -> torch.Tensor:
    """Express all cameras in the frame of camera ``index``: ``inv(c2w[..., index]) @ c2w[..., i]``.

    Args:
        c2w: ``(..., V, 4, 4)`` camera-to-world matrices.
        index: canonical view (negative values count from the end, like Python indexing).

    Returns:
        ``(..., V, 4, 4)``; entry ``index`` is set to the EXACT identity (not a rounded
        ``R^T R``), the others are unchanged by any global rigid transform of the input cameras.
    """
    check_trailing(c2w, "c2w", (4, 4))
    if c2w.ndim < 3:
        raise ValueError(f"c2w: expected shape (..., V, 4, 4), got {tuple(c2w.shape)}")
    V = c2w.shape[-3]
    if not -V <= int(index) < V:
        raise ValueError(f"index: {index} out of range for V={V} views")
    index = int(index) % V
    ref_inv = se3_inverse(c2w[..., index : index + 1, :, :])
    rel = ref_inv @ c2w
    eye = torch.eye(4, dtype=c2w.dtype, device=c2w.device)
    is_ref = (torch.arange(V, device=c2w.device) == index)[:, None, None]
    return torch.where(is_ref, eye, rel)


def _as_vec3(
    x: torch.Tensor | Sequence[float], like: torch.Tensor | None, name: str
) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        x = torch.tensor(
            x,
            dtype=like.dtype if like is not None else torch.get_default_dtype(),
            device=like.device if like is not None else None,
        )
    check_trailing(x, name, (3,))
    check_floating(x, name)
    return x


def look_at(
    eye: torch.Tensor | Sequence[float],
    target: torch.Tensor | Sequence[float],
    up: torch.Tensor | Sequence[float],
    eps: float = 1e-6,
) -> torch.Tensor:
    """OpenCV camera-to-world matrices of cameras at ``eye`` looking at ``target``.

    Args:
        eye, target, up: ``(..., 3)`` world points / direction (broadcast against each other;
            plain sequences are accepted). ``up`` need not be normalised or orthogonal.
        eps: when the viewing direction is (anti-)parallel to ``up`` (``|z x up| < eps``), the
            world axis least aligned with the viewing direction is used as ``up`` instead, so the
            result is always a valid rotation.

    Returns:
        ``(..., 4, 4)`` c2w with ``z`` = unit vector from eye to target, ``x = normalize(z x up)``
        (image right) and ``y = z x x`` (image down), i.e. the camera's ``-y`` axis is the
        direction closest to ``up`` that is orthogonal to ``z``.
    """
    like = next((v for v in (eye, target, up) if isinstance(v, torch.Tensor)), None)
    eye = _as_vec3(eye, like, "eye")
    target = _as_vec3(target, like, "target")
    up = _as_vec3(up, like, "up")
    eye, target, up = torch.broadcast_tensors(eye, target, up)
    z = F.normalize(target - eye, dim=-1, eps=eps)
    x = torch.linalg.cross(z, up, dim=-1)
    x_norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    # Fallback up: the world axis with the smallest |component| along z.
    axes = torch.eye(3, dtype=z.dtype, device=z.device)
    alt_up = axes[z.detach().abs().argmin(dim=-1)]
    x_alt = torch.linalg.cross(z, alt_up, dim=-1)
    x = torch.where(x_norm < eps * up.norm(dim=-1, keepdim=True).clamp_min(eps), x_alt, x)
    x = F.normalize(x, dim=-1, eps=eps)
    y = torch.linalg.cross(z, x, dim=-1)
    R = torch.stack((x, y, z), dim=-1)
    return make_c2w(R, eye)


def normalize_scene_scale(
    c2w: torch.Tensor, canonical: int | None = None, eps: float = 1e-8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground-truth cameras in the canonical view's frame at unit scene scale (the LVSM oracle's gauge).

    The cameras are expressed relative to the canonical view (identity pose; default the middle
    view V // 2, like RayZer's predictions), then all translations are divided by the mean
    distance of the other camera centres to the canonical centre, so that mean is 1. This removes
    the arbitrary world frame and unit of each clip. If every camera sits at the canonical
    centre (pure rotation) the scale is left at 1.

    Args:
        c2w: (..., V, 4, 4) OpenCV camera-to-world, V >= 2.
        canonical: canonical view (default V // 2).
    Returns:
        (c2w_normalized (..., V, 4, 4), scale (...,)) where ``t_normalized = scale · t_relative``
        (multiply depths by ``scale`` to keep them consistent).
    """
    if c2w.ndim < 3 or c2w.shape[-2:] != (4, 4) or c2w.shape[-3] < 2:
        raise ValueError(f"c2w must have shape (..., V>=2, 4, 4), got {tuple(c2w.shape)}")
    v = c2w.shape[-3]
    canonical = v // 2 if canonical is None else canonical
    rel = relative_to_canonical(c2w, canonical)
    dist = rel[..., :3, 3].norm(dim=-1)  # (..., V); the canonical entry is exactly 0
    mean = dist.sum(dim=-1) / (v - 1)
    scale = torch.where(mean > eps, 1.0 / mean.clamp_min(eps), torch.ones_like(mean))
    out = rel.clone()
    out[..., :3, 3] = rel[..., :3, 3] * scale[..., None, None]
    return out, scale
