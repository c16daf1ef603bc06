"""Epipolar attention bias: where along each query ray the key views' patches lie.

A renderer built from plain attention has to *learn* that a target ray should read the input
patches its ray passes through. From a small initialisation that matching is a slow,
second-order problem (our calibration runs: the LVSM oracle could not copy an input view from its
own exact rays within 1,000 steps). This module makes it a first-order prior instead: for every
(query patch, key patch) pair it measures how much of the query patch's centre ray, sampled at
depths uniform in inverse depth out to infinity, projects into the key patch. The log of that
soft count, scaled by a learned non-negative weight per layer and head, is added to the
attention logits. Heads can switch it off (weight → 0), so it is a prior, not a constraint.
The bias is differentiable in every camera, so in RayZer it is also a direct geometric gradient
path to the predicted poses and focal.

Why not a library: no maintained PyTorch package provides an epipolar attention bias for
arbitrary (predicted, differentiable) pinhole cameras; it is ~40 lines of projective geometry.

Conventions (DESIGN §3): OpenCV camera-to-world ``c2w`` (x right, y down, z forward), normalised
intrinsics ``K_norm = (fx/W, fy/H, cx/W, cy/H)``, patch tokens in row-major order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rayzer.geometry import camera_rays

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
    R_k_T = k_c2w[:, None, :, :3, :3].transpose(-1, -2)  # (B, 1, Vk, 3, 3)
    rot = R_k_T @ q_c2w[:, :, None, :3, :3]  # (B, Vq, Vk, 3, 3)
    off = (R_k_T @ (q_c2w[:, :, None, :3, 3] - k_c2w[:, None, :, :3, 3])[..., None])[..., 0]
    ray = (q_dirs[:, :, None] @ rot.transpose(-1, -2)).transpose(1, 2)  # (B, Vk, Vq, N, 3)
    off = off.transpose(1, 2)[:, :, :, None]  # (B, Vk, Vq, 1, 3)
    s = inv_depths.view(1, 1, 1, 1, -1)
    x, y, z = (ray[..., i, None] + s * off[..., i, None] for i in range(3))
    inv_z = 1.0 / z.clamp_min(MIN_DEPTH)
    K = k_K_norm[:, :, None, None, None]  # (B, Vk, 1, 1, 1, 4)
    return RaySamples(
        K[..., 0] * x * inv_z + K[..., 2], K[..., 1] * y * inv_z + K[..., 3], z, ray, off
    )


def epipolar_log_counts(
    q_c2w: Tensor,
    q_K_norm: Tensor,
    k_c2w: Tensor,
    k_K_norm: Tensor,
    height: int,
    width: int,
    patch: int,
    num_depths: int = 16,
    near: float = 0.5,
    sigma: float = 0.5,
    floor: float = 1e-2,
) -> Tensor:
    """Log soft count of each query ray's depth samples that land in each key patch.

    Args:
        q_c2w, q_K_norm: (B, Vq, 4, 4), (B, Vq, 4) query cameras.
        k_c2w, k_K_norm: (B, Vk, 4, 4), (B, Vk, 4) key cameras.
        height, width, patch: image and patch size (the same for queries and keys).
        num_depths: D samples per ray, uniform in inverse depth over [0, 1/near] (0 = infinity),
            in the cameras' world units.
        sigma: std of the Gaussian that splats a projected sample onto patch centres, in patches.
        floor: added to the count before the log, so the bias is ≥ log(floor) (no −∞).
    Returns:
        (B, Vq, Nq, Vk·Nk) values in [log(floor), ~0]: ``log(floor + mean over depth samples of
        the sample's splat weight on the key patch)``; samples behind a key camera count 0.
    """
    hp, wp = height // patch, width // patch
    _, d_q = camera_rays(
        torch.eye(4, dtype=q_c2w.dtype, device=q_c2w.device),
        q_K_norm,
        hp,
        wp,
        normalize_dirs=False,
        normalized_intrinsics=True,
    )  # patch-centre directions in the query frames, z = 1: (B, Vq, hp, wp, 3)
    inv = torch.linspace(1.0 / near, 0.0, num_depths, device=d_q.device, dtype=d_q.dtype)
    smp = project_ray_samples(q_c2w, d_q.flatten(2, 3), k_c2w, k_K_norm, inv)
    # Patch coordinates: patch j spans [j·p, (j+1)·p) pixels, centre at j + 0.5 → index j.
    a, b = smp.u * wp - 0.5, smp.v * hp - 0.5  # (B, Vk, Vq, N, D)
    # Only samples in front of the key camera and inside its image count.
    inside = (smp.z > MIN_DEPTH) & (a > -0.5) & (a < wp - 0.5) & (b > -0.5) & (b < hp - 0.5)
    cols = torch.arange(wp, device=a.device, dtype=a.dtype)
    rows = torch.arange(hp, device=a.device, dtype=a.dtype)
    gu = torch.exp(-0.5 * ((a[..., None] - cols) / sigma) ** 2)  # (B, Vk, Vq, N, D, wp)
    gv = torch.exp(-0.5 * ((b[..., None] - rows) / sigma) ** 2) * inside[..., None]
    # Separable splat summed over depth samples: (…, hp, wp) without a D × Nk intermediate.
    counts = torch.einsum("bkqndr,bkqndc->bqnkrc", gv, gu) / num_depths
    return torch.log(counts.flatten(-3) + floor)


class EpipolarBias(nn.Module):
    """Per-layer, per-head weights of the epipolar bias of a decoder sequence.

    The weights are ``softplus(raw)`` (≥ 0), initialised to ``init_weight``; the log counts
    themselves come from :func:`epipolar_log_counts`.

    Args:
        num_layers, num_heads: shape of the weight table.
        init_weight: starting weight of every head.
    """

    def __init__(self, num_layers: int, num_heads: int, init_weight: float = 1.0) -> None:
        super().__init__()
        self.raw_weight = nn.Parameter(
            torch.full((num_layers, num_heads), softplus_inverse(init_weight))
        )

    def layer_biases(self, log_counts: Tensor, seq_len: int, key_start: int) -> list[Tensor]:
        """Additive attention masks, one per layer, for sequences whose LAST Nq tokens are the
        queries and whose tokens ``key_start : key_start + Vk·Nk`` are the keys.

        Args:
            log_counts: (B, Vq, Nq, Vk·Nk).
            seq_len: L, the decoder sequence length.
            key_start: index of the first key token in the sequence.
        Returns:
            per layer a (B·Vq, heads, L, L) float mask, zero outside the query-rows × key-columns
            block.
        """
        b, vq, nq, nk = log_counts.shape
        if key_start + nk > seq_len - nq:
            raise ValueError(
                f"key tokens [{key_start}, {key_start + nk}) overlap the last {nq} query tokens "
                f"of a sequence of {seq_len}"
            )
        block = log_counts.flatten(0, 1)[:, None]  # (B·Vq, 1, Nq, Nk)
        out = []
        for w in F.softplus(self.raw_weight):
            mask = block.new_zeros(b * vq, w.shape[0], seq_len, seq_len)
            mask[:, :, seq_len - nq :, key_start : key_start + nk] = w[:, None, None] * block
            out.append(mask)
        return out
