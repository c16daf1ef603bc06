"""Epipolar geometry: the vectorised Sampson error / rotation cost against slow references,
zero at the true cameras on exact correspondences from a synthetic clip's depth, growing with a
rotation error, and gradients that reach R, t and the focal."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from rayzer.data.synthetic import SynthConfig, render_clip
from rayzer.geometry import axis_angle_to_matrix, make_c2w, project_points, unproject_depth
from rayzer.geometry.epipolar import (
    behind_cameras,
    best_translation_direction,
    epipolar_pair_loss,
    fundamental_matrix,
    relative_pose,
    rotation_epipolar_cost,
    sampson_error,
)


def _exact_matches(stride: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Pixel centres of view 0 of a 24 px orbit clip and their exact reprojection in view 1
    (true depth, true cameras): uv_a, uv_b (M, 2), c2w (2, 4, 4), K (2, 4), size."""
    size = 24
    clip = render_clip(1_000_000, SynthConfig(height=size, width=size), frames=[0, stride])
    c2w, K = clip.c2w.double(), clip.K.double()
    points = unproject_depth(clip.depth[0].double(), c2w[0], K[0]).reshape(-1, 3)
    uv_b, z = project_points(points, c2w[1], K[1])
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    uv_a = torch.stack((xs, ys), -1).reshape(-1, 2).double() + 0.5
    inside = (z > 0) & (uv_b >= 0).all(-1) & (uv_b <= size).all(-1)
    return uv_a[inside], uv_b[inside], c2w, K, size


def _reference_sampson(uv_a, uv_b, R, t, K_a, K_b) -> np.ndarray:
    """The textbook formula, one match at a time, in numpy float64 (unit translation)."""

    def kmat(k):
        return np.array([[k[0], 0, k[2]], [0, k[1], k[3]], [0, 0, 1.0]])

    t = np.asarray(t) / np.linalg.norm(t)
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    Fm = np.linalg.inv(kmat(K_a)).T @ tx @ np.asarray(R) @ np.linalg.inv(kmat(K_b))
    out = []
    for a, b in zip(np.asarray(uv_a), np.asarray(uv_b), strict=True):
        xa, xb = np.array([a[0], a[1], 1.0]), np.array([b[0], b[1], 1.0])
        Fxb, Ftxa = Fm @ xb, Fm.T @ xa
        out.append((xa @ Fm @ xb) ** 2 / (Fxb[0] ** 2 + Fxb[1] ** 2 + Ftxa[0] ** 2 + Ftxa[1] ** 2))
    return np.array(out)


def _reference_rotation_cost(uv_a, uv_b, R, K_a, K_b) -> float:
    """Kneip–Lynen: smallest eigenvalue of the mean of n nᵀ, n = f_a × R f_b, looped."""
    M = np.zeros((3, 3))
    for a, b in zip(np.asarray(uv_a), np.asarray(uv_b), strict=True):
        fa = np.array([(a[0] - K_a[2]) / K_a[0], (a[1] - K_a[3]) / K_a[1], 1.0])
        fb = np.array([(b[0] - K_b[2]) / K_b[0], (b[1] - K_b[3]) / K_b[1], 1.0])
        n = np.cross(fa / np.linalg.norm(fa), np.asarray(R) @ (fb / np.linalg.norm(fb)))
        M += np.outer(n, n)
    return float(np.linalg.eigvalsh(M / len(uv_a))[0])


@pytest.fixture(scope="module")
def exact():
    return _exact_matches()


def test_zero_at_true_cameras(exact) -> None:
    uv_a, uv_b, c2w, K, size = exact
    assert len(uv_a) > 100
    R, t = relative_pose(c2w[0], c2w[1])
    s = sampson_error(uv_a, uv_b, fundamental_matrix(R, t, K[0], K[1]))
    assert s.max() < 1e-10  # pixels²
    assert rotation_epipolar_cost(uv_a, uv_b, R, K[0], K[1]) < 1e-12
    valid = torch.ones(len(uv_a), dtype=torch.bool)
    loss = epipolar_pair_loss(uv_a, uv_b, valid, c2w[0], c2w[1], K[0], K[1], (size, size))
    assert loss < 1e-12


def test_grows_with_rotation_error(exact) -> None:
    uv_a, uv_b, c2w, K, size = exact
    valid = torch.ones(len(uv_a), dtype=torch.bool)
    axis = torch.tensor([0.3, 1.0, -0.2], dtype=torch.float64)
    axis = axis / axis.norm()
    losses, rot_costs = [], []
    for deg in (0.0, 1.0, 3.0, 10.0, 20.0):
        turn = make_c2w(axis_angle_to_matrix(axis * np.radians(deg)), torch.zeros(3).double())
        wrong_b = c2w[1] @ turn
        losses.append(
            float(epipolar_pair_loss(uv_a, uv_b, valid, c2w[0], wrong_b, K[0], K[1], (size,) * 2))
        )
        R, _ = relative_pose(c2w[0], wrong_b)
        rot_costs.append(float(rotation_epipolar_cost(uv_a, uv_b, R, K[0], K[1])))
    assert losses[0] < 1e-12 and rot_costs[0] < 1e-12
    assert all(b > a for a, b in itertools.pairwise(losses)), losses
    assert all(b > a for a, b in itertools.pairwise(rot_costs)), rot_costs


def test_vectorised_matches_reference(exact) -> None:
    uv_a, uv_b, c2w, K, _ = exact
    gen = torch.Generator().manual_seed(0)
    noisy_b = uv_b + torch.randn(uv_b.shape, generator=gen, dtype=torch.float64)
    turn = make_c2w(
        axis_angle_to_matrix(torch.tensor([0.05, -0.1, 0.02]).double()), torch.zeros(3).double()
    )
    R, t = relative_pose(c2w[0], c2w[1] @ turn)
    got = sampson_error(uv_a, noisy_b, fundamental_matrix(R, t, K[0], K[1], eps=0.0))
    want = _reference_sampson(uv_a, noisy_b, R, t, K[0], K[1])
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-12)
    assert want.mean() > 0.1  # the comparison is not between zeros
    got_rot = rotation_epipolar_cost(uv_a, noisy_b, R, K[0], K[1])
    want_rot = _reference_rotation_cost(uv_a, noisy_b, R, K[0], K[1])
    assert want_rot > 1e-6
    np.testing.assert_allclose(float(got_rot), want_rot, rtol=1e-8)
    # padding: invalid matches do not count
    pad = torch.zeros(7, 2, dtype=torch.float64) + 3.0
    valid = torch.cat((torch.ones(len(uv_a)), torch.zeros(7))).bool()
    padded = rotation_epipolar_cost(
        torch.cat((uv_a, pad)), torch.cat((noisy_b, pad * 2)), R, K[0], K[1], valid
    )
    np.testing.assert_allclose(float(padded), want_rot, rtol=1e-8)


def test_gradients_reach_rotation_translation_and_focal(exact) -> None:
    uv_a, uv_b, c2w, K, size = exact
    valid = torch.ones(len(uv_a), dtype=torch.bool)
    omega = torch.tensor([0.02, -0.03, 0.01], dtype=torch.float64, requires_grad=True)
    dt = torch.tensor([0.05, 0.0, -0.02], dtype=torch.float64, requires_grad=True)
    focal = torch.tensor(1.1, dtype=torch.float64, requires_grad=True)
    cam_b = c2w[1] @ make_c2w(axis_angle_to_matrix(omega), dt)
    K_pred = torch.cat((K[:, :2] * focal, K[:, 2:]), -1)
    loss = epipolar_pair_loss(uv_a, uv_b, valid, c2w[0], cam_b, K_pred[0], K_pred[1], (size,) * 2)
    loss.backward()
    for name, p in (("rotation", omega), ("translation", dt), ("focal", focal)):
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, name


def test_zero_translation_keeps_gradients(exact) -> None:
    """At t = 0 (cameras at the identity) the loss uses the best direction for the rotation:
    positive, finite, with a gradient in the rotation, the translation and the focal."""
    uv_a, uv_b, _, K, size = exact
    valid = torch.ones(len(uv_a), dtype=torch.bool)
    omega = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    t = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    focal = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    eye = torch.eye(4, dtype=torch.float64)
    cam_b = make_c2w(axis_angle_to_matrix(omega), t)
    K_pred = torch.cat((K[:, :2] * focal, K[:, 2:]), -1)
    loss = epipolar_pair_loss(uv_a, uv_b, valid, eye, cam_b, K_pred[0], K_pred[1], (size,) * 2)
    loss.backward()
    assert loss > 0
    for name, p in (("rotation", omega), ("translation", t), ("focal", focal)):
        assert torch.isfinite(p.grad).all() and p.grad.abs().max() > 0, name


def test_best_direction_is_the_true_translation_direction(exact) -> None:
    uv_a, uv_b, c2w, K, _ = exact
    R, t = relative_pose(c2w[0], c2w[1])
    d = best_translation_direction(uv_a, uv_b, R, K[0], K[1])
    assert abs(float((d * t / t.norm()).sum())) > 1 - 1e-9


def test_robust_cost_bounds_a_wrong_match(exact) -> None:
    """One match moved far off costs at most robust_px² (0.5²) / (H·W) / M more (the
    epipolar part; the cheirality part is bounded by the same amount again)."""
    uv_a, uv_b, c2w, K, size = exact
    valid = torch.ones(len(uv_a), dtype=torch.bool)
    bad_b = uv_b.clone()
    bad_b[0] += torch.tensor([0.0, 15.0], dtype=torch.float64)
    loss = epipolar_pair_loss(
        uv_a, bad_b, valid, c2w[0], c2w[1], K[0], K[1], (size,) * 2, cheirality=False
    )
    assert 0 < loss <= 0.25 / (size * size) / len(uv_a) + 1e-15


def test_cheirality_tells_the_translation_from_its_negative(exact) -> None:
    uv_a, uv_b, c2w, K, _ = exact
    R, t = relative_pose(c2w[0], c2w[1])
    d = t / t.norm()
    right = behind_cameras(uv_a, uv_b, R, d, K[0], K[1])
    wrong = behind_cameras(uv_a, uv_b, R, -d, K[0], K[1])
    assert right.mean() < 0.05 and wrong.mean() > 0.9
    # ... which the epipolar (Sampson) error cannot
    s_right = sampson_error(uv_a, uv_b, fundamental_matrix(R, t, K[0], K[1]))
    s_wrong = sampson_error(uv_a, uv_b, fundamental_matrix(R, -t, K[0], K[1]))
    torch.testing.assert_close(s_right, s_wrong)


@pytest.mark.parametrize("eigh_sign", [1.0, -1.0])
def test_zero_translation_at_the_true_rotation_costs_nothing(exact, monkeypatch, eigh_sign) -> None:
    """At t = 0 the eigenvector's sign is arbitrary; the loss must use the sign that puts the
    points in front of the cameras, so the true rotation costs ~0 whatever sign eigh returns
    (with the other sign every match counted as behind the cameras: robust_px² / (H·W))."""
    import rayzer.geometry.epipolar as epipolar

    found = epipolar.best_translation_direction
    monkeypatch.setattr(
        epipolar, "best_translation_direction", lambda *a, **k: eigh_sign * found(*a, **k)
    )
    uv_a, uv_b, c2w, K, size = exact
    valid = torch.ones(len(uv_a), dtype=torch.bool)
    R, _ = relative_pose(c2w[0], c2w[1])
    rotated_only = c2w[0] @ make_c2w(R, torch.zeros(3, dtype=torch.float64))
    loss = epipolar_pair_loss(uv_a, uv_b, valid, c2w[0], rotated_only, K[0], K[1], (size,) * 2)
    assert loss < 1e-12
