"""Epipolar geometry of ray samples: where points along query rays land in other views.

Each query ray is sampled at depths uniform in inverse depth out to infinity (homogeneous
samples, so the point at infinity is exact) and projected into every key view
(:func:`project_ray_samples`); the plane-sweep readout (:mod:`rayzer.models.readouts`) reads
the key views' pixels there. Differentiable in every camera, so the render's gradient reaches
predicted poses and focals through it.

Conventions (:mod:`rayzer`): OpenCV camera-to-world ``c2w`` (x right, y down, z forward), normalised
intrinsics ``K_norm = (fx/W, fy/H, cx/W, cy/H)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

#: Samples closer to a camera plane than this (in world units) count as behind it.
MIN_DEPTH = 1e-3


def softplus_inverse(x: float) -> float:
    """The raw value whose softplus is ``x`` > 0 (initialises softplus-parameterised gains)."""
    return math.log(math.expm1(x))


@dataclass
class RaySamples:
    """Depth samples of query rays, projected into key cameras (see :func:`project_ray_samples`).

    Attributes (Vk = key views, Vq = query views, N = rays per query view, D = depths):
        u, v: (B, Vk, Vq, N, D) image coordinates in the key view as fractions of its width /
            height (pixel j's centre is at (j + 0.5) / W); meaningless where ``z`` ≤ 0.
        z: (B, Vk, Vq, N, D) homogeneous camera-frame depth in the key view; its sign is the
            sample's side of the key camera (it is the true depth × the inverse depth s).
        ray: (B, Vk, Vq, N, 3) the query rays' directions in the key camera's frame.
        offset: (B, Vk, Vq, 1, 3) query centre − key centre in the key camera's frame; the
            sample at inverse depth s is ``ray + s · offset`` (up to the factor s).
    """

    u: Tensor
    v: Tensor
    z: Tensor
    ray: Tensor
    offset: Tensor


def relative_poses(q_c2w: Tensor, k_c2w: Tensor) -> tuple[Tensor, Tensor]:
    """Query cameras (B, Vq, 4, 4) seen from key cameras (B, Vk, 4, 4): the rotations
    ``R_kᵀ R_q`` (B, Vq, Vk, 3, 3) and the query centres ``R_kᵀ (o_q − o_k)`` (B, Vq, Vk, 3),
    both in the key camera's frame."""
    R_k_T = k_c2w[:, None, :, :3, :3].transpose(-1, -2)  # (B, 1, Vk, 3, 3)
    rot = R_k_T @ q_c2w[:, :, None, :3, :3]
    off = (R_k_T @ (q_c2w[:, :, None, :3, 3] - k_c2w[:, None, :, :3, 3])[..., None])[..., 0]
    return rot, off


def project_ray_samples(
    q_c2w: Tensor, q_dirs: Tensor, k_c2w: Tensor, k_K_norm: Tensor, inv_depths: Tensor
) -> RaySamples:
    """Project samples along query rays, uniform in inverse depth, into every key camera.

    Args:
        q_c2w: (B, Vq, 4, 4) query cameras; q_dirs: (B, Vq, N, 3) ray directions in the query
            camera frame with z = 1 (so depth t is at ``origin + t · R d``).
        k_c2w: (B, Vk, 4, 4), k_K_norm: (B, Vk, 4) key cameras.
        inv_depths: (D,) inverse depths s ≥ 0 (s = 0 is the point at infinity).
    """
    # A sample at inverse depth s, homogeneous (s·o_q + R_q d, s), in key camera k:
    # R_kᵀ(s·o_q + R_q d − s·t_k) = (R_kᵀ R_q) d + s · R_kᵀ(o_q − t_k), finite at s = 0.
    # Both terms are small batched matmuls over (query, key) pairs; everything after them is
    # elementwise over (B, Vk, Vq, N, D), the largest tensors of the computation.
    rot, off = relative_poses(q_c2w, k_c2w)
    ray = (q_dirs[:, :, None] @ rot.transpose(-1, -2)).transpose(1, 2)  # (B, Vk, Vq, N, 3)
    off = off.transpose(1, 2)[:, :, :, None]  # (B, Vk, Vq, 1, 3)
    s = inv_depths.view(1, 1, 1, 1, -1)
    x, y, z = (ray[..., i, None] + s * off[..., i, None] for i in range(3))
    inv_z = 1.0 / z.clamp_min(MIN_DEPTH)
    K = k_K_norm[:, :, None, None, None]  # (B, Vk, 1, 1, 1, 4)
    return RaySamples(
        K[..., 0] * x * inv_z + K[..., 2], K[..., 1] * y * inv_z + K[..., 3], z, ray, off
    )
