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

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rayzer.geometry import camera_rays

_MIN_DEPTH = 1e-3


def patch_centre_rays(
    c2w: Tensor, K_norm: Tensor, height: int, width: int, patch: int
) -> tuple[Tensor, Tensor]:
    """World-space rays through the patch centres.

    Args:
        c2w: (..., 4, 4); K_norm: (..., 4); image size ``height`` × ``width``; patch size p.
    Returns:
        origins (..., 3) and directions (..., N, 3), N = (H/p)·(W/p) row-major. Directions are
        scaled so that their camera-space z is 1: ``origin + t · direction`` is at z-depth t.
    """
    # Patch centres are the pixel centres of the image at 1/p of the size, and normalised
    # intrinsics do not depend on the size.
    origins, dirs = camera_rays(
        c2w,
        K_norm,
        height // patch,
        width // patch,
        normalize_dirs=False,
        normalized_intrinsics=True,
    )
    return origins[..., 0, 0, :], dirs.flatten(-3, -2)


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
    o_q, d_q = patch_centre_rays(q_c2w, q_K_norm, height, width, patch)  # (B,Vq,3), (B,Vq,N,3)
    inv = torch.linspace(1.0 / near, 0.0, num_depths, device=d_q.device, dtype=d_q.dtype)
    # A point at inverse depth s is o + d / s; in homogeneous form (s·o + d, s), which stays
    # finite at s = 0 (the point at infinity along d).
    pts = o_q[:, :, None, None, :] * inv[:, None] + d_q[:, :, :, None, :]  # (B,Vq,N,D,3)
    w_h = inv.expand_as(pts[..., 0])  # homogeneous weight (B,Vq,N,D)
    # Into every key camera: x_cam = R^T (X − t·w)  (B, Vq, N, D, Vk, 3)
    R = k_c2w[:, None, None, None, :, :3, :3]
    t = k_c2w[:, None, None, None, :, :3, 3]
    x_cam = ((pts[..., None, :] - t * w_h[..., None, None]).unsqueeze(-2) @ R).squeeze(-2)
    z = x_cam[..., 2]
    valid = (z > _MIN_DEPTH).to(z.dtype)
    z = z.clamp_min(_MIN_DEPTH)
    kk = k_K_norm[:, None, None, None]  # (B,1,1,1,Vk,4)
    # Pixel → patch coordinates: patch j spans [j·p, (j+1)·p), centre at j + 0.5 → index j.
    a = (kk[..., 0] * width * x_cam[..., 0] / z + kk[..., 2] * width) / patch - 0.5
    b = (kk[..., 1] * height * x_cam[..., 1] / z + kk[..., 3] * height) / patch - 0.5
    cols = torch.arange(wp, device=a.device, dtype=a.dtype)
    rows = torch.arange(hp, device=a.device, dtype=a.dtype)
    gu = torch.exp(-0.5 * ((a[..., None] - cols) / sigma) ** 2)  # (B,Vq,N,D,Vk,wp)
    gv = torch.exp(-0.5 * ((b[..., None] - rows) / sigma) ** 2) * valid[..., None]
    # Separable splat summed over depth samples: (…, Vk, hp, wp) without a D × Nk intermediate.
    counts = torch.einsum("bqndkr,bqndkc->bqnkrc", gv, gu) / num_depths
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
        raw = math.log(math.expm1(init_weight))
        self.raw_weight = nn.Parameter(torch.full((num_layers, num_heads), raw))

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
