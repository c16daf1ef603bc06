"""Rotation averaging: global camera rotations from pairwise relative rotations.

Convention: ``R_i`` are world-to-camera rotations (a world direction ``d`` is ``R_i d`` in camera
``i``); the relative rotation of the pair ``(i, j)`` is ``R_ij = R_j R_i^T`` (camera ``i``'s
frame to camera ``j``'s), what OpenCV's ``recoverPose`` returns for points of view ``i`` matched to
view ``j``.

Method: chordal L2 averaging by its spectral relaxation (the three leading eigenvectors of the
block matrix of weighted relative rotations, each 3x3 block projected to SO(3)), followed by a
few iteratively reweighted passes with a Cauchy weight on each pair's residual angle, so a few
wrong pairs (a repeated texture matched to the wrong place) lose their pull. Unlike chaining
relative rotations along a spanning tree, every pair contributes, so noise averages out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rayzer.geometry.alignment import project_to_so3
from rayzer.geometry.rotations import rotation_angle

__all__ = ["RotationAveraging", "average_rotations", "chain_rotations", "connected_to"]


@dataclass
class RotationAveraging:
    """Result of :func:`average_rotations`.

    Attributes:
        R: ``(V, 3, 3)`` float64 world-to-camera rotations; ``R[anchor]`` is the given anchor
            rotation; views not connected to the anchor keep the identity (see ``connected``).
        connected: ``(V,)`` bool, views joined to the anchor by pairs.
        residual_deg: ``(P,)`` float64 angle of ``R_ij^T R_j R_i^T`` per input pair (NaN for
            pairs outside the anchor's component).
        weights: ``(P,)`` float64 final weights (input weight × robust weight).
    """

    R: torch.Tensor
    connected: torch.Tensor
    residual_deg: torch.Tensor
    weights: torch.Tensor


def connected_to(num_views: int, pairs: Sequence[tuple[int, int]], anchor: int) -> torch.Tensor:
    """``(V,)`` bool: the views reachable from ``anchor`` through ``pairs``."""
    seen = torch.zeros(num_views, dtype=torch.bool)
    seen[anchor] = True
    frontier = [anchor]
    neighbours: dict[int, list[int]] = {i: [] for i in range(num_views)}
    for i, j in pairs:
        neighbours[i].append(j)
        neighbours[j].append(i)
    while frontier:
        k = frontier.pop()
        for n in neighbours[k]:
            if not seen[n]:
                seen[n] = True
                frontier.append(n)
    return seen


def _check(num_views: int, pairs: Sequence[tuple[int, int]], rel: torch.Tensor, anchor: int):
    if not 0 <= anchor < num_views:
        raise ValueError(f"anchor {anchor} is not a view of {num_views}")
    if rel.shape != (len(pairs), 3, 3):
        raise ValueError(f"relative rotations: expected ({len(pairs)}, 3, 3), got {rel.shape}")
    if not torch.isfinite(rel).all():
        bad = torch.nonzero(~torch.isfinite(rel).flatten(1).all(1)).ravel().tolist()
        raise ValueError(f"relative rotations: not finite for the pairs at {bad}")
    for i, j in pairs:
        if not (0 <= i < num_views and 0 <= j < num_views) or i == j:
            raise ValueError(f"bad pair ({i}, {j}) for {num_views} views")


def _residuals(R: torch.Tensor, pairs: torch.Tensor, rel: torch.Tensor) -> torch.Tensor:
    """Angle (degrees) of ``R_ij^T R_j R_i^T`` per pair."""
    i, j = pairs[:, 0], pairs[:, 1]
    err = rel.transpose(-1, -2) @ R[j] @ R[i].transpose(-1, -2)
    return torch.rad2deg(rotation_angle(err))


def _spectral(v: int, pairs: torch.Tensor, rel: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(V, 3, 3) rotations up to one global rotation: leading eigenvectors of the block matrix
    ``G[i, j] = w_ij R_i R_j^T`` (= ``w R_ij^T``), ``G[i, i] = (sum of i's weights) I``,
    degree-normalised."""
    G = torch.zeros(v, 3, v, 3, dtype=torch.float64)
    deg = torch.zeros(v, dtype=torch.float64)
    for (i, j), r, wij in zip(pairs.tolist(), rel, w, strict=True):
        G[i, :, j] += wij * r.T
        G[j, :, i] += wij * r
        deg[i] += wij
        deg[j] += wij
    deg = deg.clamp_min(1e-12)
    for i in range(v):
        G[i, :, i] = deg[i] * torch.eye(3, dtype=torch.float64)
    # symmetric normalisation D^-1/2 G D^-1/2: for consistent rotations, the stacked R_i
    # scaled by sqrt(degree) span its top eigenspace (eigenvalue 2) whatever the degrees
    s = deg.rsqrt().repeat_interleave(3)
    _, vecs = torch.linalg.eigh(s[:, None] * G.reshape(3 * v, 3 * v) * s[None, :])
    U = vecs[:, -3:].reshape(v, 3, 3)  # each block ∝ R_i Q, Q orthogonal
    if (torch.linalg.det(U) < 0).sum() > v / 2:  # Q may be a reflection: flip one column
        U = U * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    return project_to_so3(U)


def average_rotations(
    num_views: int,
    pairs: Sequence[tuple[int, int]],
    relative: torch.Tensor,
    weights: torch.Tensor | Sequence[float] | None = None,
    *,
    anchor: int = 0,
    anchor_rotation: torch.Tensor | None = None,
    robust_iters: int = 5,
    robust_scale_deg: float = 5.0,
) -> RotationAveraging:
    """Global world-to-camera rotations from relative ones (module docstring).

    Args:
        num_views: V.
        pairs: P pairs ``(i, j)``, ``i != j``.
        relative: ``(P, 3, 3)`` the pairs' ``R_ij = R_j R_i^T``.
        weights: ``(P,)`` non-negative confidence per pair (e.g. inlier counts; default 1).
        anchor: the view whose rotation is fixed (the gauge).
        anchor_rotation: ``(3, 3)`` its rotation (default identity).
        robust_iters: reweighted passes after the first (0: plain chordal L2).
        robust_scale_deg: Cauchy scale of the residual angle (pairs off by much more than this
            count little).
    Returns:
        :class:`RotationAveraging`; views outside the anchor's component get the identity and
        ``connected`` False.
    """
    rel = torch.as_tensor(relative, dtype=torch.float64)
    _check(num_views, pairs, rel, anchor)
    P = len(pairs)
    w0 = (
        torch.ones(P, dtype=torch.float64)
        if weights is None
        else torch.as_tensor(weights, dtype=torch.float64).clone()
    )
    if w0.shape != (P,) or not ((w0 >= 0) & torch.isfinite(w0)).all():
        raise ValueError(
            f"weights: expected ({P},) finite and non-negative, got {tuple(w0.shape)}: "
            f"{w0.tolist() if w0.numel() <= 8 else '...'}"
        )
    R_anchor = (
        torch.eye(3, dtype=torch.float64)
        if anchor_rotation is None
        else torch.as_tensor(anchor_rotation, dtype=torch.float64)
    )
    used = [(i, j) for (i, j), wk in zip(pairs, w0.tolist(), strict=True) if wk > 0]
    connected = connected_to(num_views, used, anchor)
    R = torch.eye(3, dtype=torch.float64).repeat(num_views, 1, 1)
    residual = torch.full((P,), math.nan, dtype=torch.float64)
    pair_t = torch.as_tensor(list(pairs), dtype=torch.int64).reshape(P, 2)
    inside = connected[pair_t[:, 0]] & connected[pair_t[:, 1]] & (w0 > 0) if P else w0 > 0
    if not inside.any():
        R[anchor] = R_anchor
        return RotationAveraging(R, connected, residual, torch.zeros_like(w0))
    # re-index the anchor's component to 0..C-1
    comp = torch.nonzero(connected).ravel()
    index = torch.full((num_views,), -1, dtype=torch.int64)
    index[comp] = torch.arange(len(comp))
    sub_pairs = index[pair_t[inside]]
    sub_rel = rel[inside]
    w = w0[inside]
    weight = w.clone()
    for it in range(robust_iters + 1):
        Rc = _spectral(len(comp), sub_pairs, sub_rel, weight)
        res = _residuals(Rc, sub_pairs, sub_rel)
        if it < robust_iters:
            weight = w / (1.0 + (res / robust_scale_deg) ** 2)
    # fix the gauge: the anchor's rotation is the given one
    a = int(index[anchor])
    Rc = Rc @ Rc[a].transpose(-1, -2) @ R_anchor
    R[comp] = Rc
    residual[inside] = _residuals(Rc, sub_pairs, sub_rel)
    final = torch.zeros_like(w0)
    final[inside] = weight
    return RotationAveraging(R, connected, residual, final)


def chain_rotations(
    num_views: int,
    pairs: Sequence[tuple[int, int]],
    relative: torch.Tensor,
    *,
    anchor: int = 0,
) -> torch.Tensor:
    """``(V, 3, 3)`` rotations by composing relative rotations along a breadth-first spanning
    tree from ``anchor`` (identity there and at unreachable views): the baseline that
    :func:`average_rotations` improves on (one pair decides each view, errors accumulate)."""
    rel = torch.as_tensor(relative, dtype=torch.float64)
    _check(num_views, pairs, rel, anchor)
    R = torch.eye(3, dtype=torch.float64).repeat(num_views, 1, 1)
    done = {anchor}
    queue = [anchor]
    while queue:
        k = queue.pop(0)
        for (i, j), r in zip(pairs, rel, strict=True):
            if i == k and j not in done:
                R[j] = r @ R[i]
            elif j == k and i not in done:
                R[i] = r.T @ R[j]
            else:
                continue
            done.add(j if i == k else i)
            queue.append(j if i == k else i)
    return R
