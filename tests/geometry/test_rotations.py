"""Rotations: 6-D / quaternion / axis-angle conversions, rotation angle, random rotations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from rayzer.geometry import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    matrix_to_rot6d,
    quaternion_multiply,
    quaternion_to_matrix,
    random_rotation,
    rot6d_to_matrix,
    rotation_angle,
)


def assert_rotation(R: torch.Tensor, atol: float) -> None:
    eye = torch.eye(3, dtype=R.dtype).expand_as(R)
    torch.testing.assert_close(R.transpose(-1, -2) @ R, eye, atol=atol, rtol=0)
    torch.testing.assert_close(
        torch.linalg.det(R), torch.ones(R.shape[:-2], dtype=R.dtype), atol=atol, rtol=0
    )


def random_unit_axes(n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.nn.functional.normalize(
        torch.randn(n, 3, generator=gen, dtype=torch.float64), dim=-1
    )


@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_rot6d_to_matrix_is_orthonormal_with_det_one(gen, dtype, atol):
    x = torch.randn(4, 5, 6, generator=gen).to(dtype) * 3
    R = rot6d_to_matrix(x)
    assert R.shape == (4, 5, 3, 3) and R.dtype == dtype
    assert_rotation(R, atol)
    # Gram-Schmidt: first column is a1 normalised, second lies in span(a1, a2) on a2's side.
    a1, a2 = x[..., :3], x[..., 3:]
    torch.testing.assert_close(R[..., :, 0], torch.nn.functional.normalize(a1, dim=-1))
    assert ((R[..., :, 1] * a2).sum(-1) > 0).all()
    torch.testing.assert_close(
        (torch.linalg.cross(a1, a2, dim=-1) * R[..., :, 1]).sum(-1),
        torch.zeros(4, 5, dtype=dtype),
        atol=atol * 100,
        rtol=0,
    )


def test_rot6d_round_trips(gen):
    R = random_rotation(100, generator=gen, dtype=torch.float64)
    x = matrix_to_rot6d(R)
    torch.testing.assert_close(x[..., :3], R[..., :, 0])
    torch.testing.assert_close(x[..., 3:], R[..., :, 1])
    torch.testing.assert_close(rot6d_to_matrix(x), R, atol=1e-12, rtol=0)  # SO(3) -> 6D -> SO(3)
    # 6D -> SO(3) -> 6D -> SO(3) is idempotent for arbitrary (non-orthonormal) 6-D inputs.
    y = torch.randn(100, 6, generator=gen, dtype=torch.float64)
    R_y = rot6d_to_matrix(y)
    torch.testing.assert_close(rot6d_to_matrix(matrix_to_rot6d(R_y)), R_y, atol=1e-12, rtol=0)
    torch.testing.assert_close(matrix_to_rot6d(rot6d_to_matrix(x)), x, atol=1e-12, rtol=0)


def test_rot6d_degenerate_inputs_are_finite():
    x = torch.tensor([[0.0] * 6, [1.0, 2.0, 3.0, 2.0, 4.0, 6.0]], requires_grad=True)
    R = rot6d_to_matrix(x)
    R.sum().backward()
    assert torch.isfinite(R).all() and torch.isfinite(x.grad).all()


def test_rot6d_to_matrix_gradcheck(gen):
    x = torch.randn(3, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rot6d_to_matrix, (x,))


def test_quaternion_to_matrix_matches_scipy_and_ignores_sign_and_norm(gen):
    q = torch.randn(200, 4, generator=gen, dtype=torch.float64)
    R = quaternion_to_matrix(q)
    ref = Rotation.from_quat(q[:, [1, 2, 3, 0]].numpy()).as_matrix()  # scipy is (x, y, z, w)
    np.testing.assert_allclose(R.numpy(), ref, atol=1e-12)
    torch.testing.assert_close(quaternion_to_matrix(-q), R)
    torch.testing.assert_close(quaternion_to_matrix(3.7 * q), R)
    assert_rotation(R, 1e-12)


def test_quaternion_round_trip_random(gen):
    q = torch.nn.functional.normalize(
        torch.randn(500, 4, generator=gen, dtype=torch.float64), dim=-1
    )
    q = torch.where(q[:, :1] < 0, -q, q)
    q_back = matrix_to_quaternion(quaternion_to_matrix(q))
    torch.testing.assert_close(q_back, q, atol=1e-12, rtol=0)
    assert (q_back[:, 0] >= 0).all()


@pytest.mark.parametrize(
    "angle", [math.pi, math.pi - 1e-9, math.pi - 1e-6, math.pi - 1e-3, 1e-9, 0.0]
)
def test_quaternion_round_trip_extreme_angles(gen, angle):
    axes = random_unit_axes(64, gen)
    axes = torch.cat((axes, torch.eye(3, dtype=torch.float64), -torch.eye(3, dtype=torch.float64)))
    R = axis_angle_to_matrix(angle * axes)
    q = matrix_to_quaternion(R)
    torch.testing.assert_close(
        torch.linalg.vector_norm(q, dim=-1), torch.ones(len(R), dtype=R.dtype)
    )
    torch.testing.assert_close(quaternion_to_matrix(q), R, atol=1e-12, rtol=0)
    # Agrees with scipy up to the global sign of the quaternion.
    ref = torch.from_numpy(Rotation.from_matrix(R.numpy()).as_quat()[:, [3, 0, 1, 2]])
    sign = torch.sign((ref * q).sum(-1, keepdim=True))
    torch.testing.assert_close(q, sign * ref, atol=1e-9, rtol=0)


def test_matrix_to_quaternion_float32_near_pi(gen):
    axes = random_unit_axes(256, gen)
    R = axis_angle_to_matrix((math.pi - 1e-4) * axes).float()
    q = matrix_to_quaternion(R)
    assert q.dtype == torch.float32
    torch.testing.assert_close(quaternion_to_matrix(q), R, atol=2e-6, rtol=0)


def test_matrix_to_quaternion_gradient_finite(gen):
    R = torch.stack(
        (
            torch.eye(3, dtype=torch.float64),
            torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)),
            random_rotation(1, generator=gen, dtype=torch.float64)[0],
        )
    ).requires_grad_(True)
    matrix_to_quaternion(R).sum().backward()
    assert torch.isfinite(R.grad).all()


def test_quaternion_multiply_matches_matrix_product(gen):
    a = torch.randn(50, 4, generator=gen, dtype=torch.float64)
    b = torch.randn(50, 4, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(
        quaternion_to_matrix(quaternion_multiply(a, b)),
        quaternion_to_matrix(a) @ quaternion_to_matrix(b),
    )


@pytest.mark.parametrize("angle", [0.0, 1e-8, 1e-4, 0.3, 1.0, 2.0, 3.0, math.pi - 1e-6, math.pi])
def test_rotation_angle_accuracy(gen, angle):
    axes = random_unit_axes(32, gen)
    R = axis_angle_to_matrix(angle * axes)
    got = rotation_angle(R)
    # atan2 keeps (near-)full relative precision near 0 and absolute precision near pi.
    torch.testing.assert_close(got, torch.full_like(got, angle), atol=1e-13, rtol=1e-7)


def test_rotation_angle_gradient_safe_at_identity_and_pi():
    R = torch.stack(
        (
            torch.eye(3, dtype=torch.float64),
            torch.diag(torch.tensor([-1.0, -1.0, 1.0], dtype=torch.float64)),
        )
    ).requires_grad_(True)
    rotation_angle(R).sum().backward()
    assert torch.isfinite(R.grad).all()
    # Away from the singular points the gradient is the analytic one.
    v = torch.tensor([0.2, -0.4, 0.5], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: rotation_angle(axis_angle_to_matrix(v)), (v,))


def test_axis_angle_round_trip_and_scipy(gen):
    angles = torch.rand(300, 1, generator=gen, dtype=torch.float64) * math.pi
    rotvec = angles * random_unit_axes(300, gen)
    R = axis_angle_to_matrix(rotvec)
    np.testing.assert_allclose(
        R.numpy(), Rotation.from_rotvec(rotvec.numpy()).as_matrix(), atol=1e-12
    )
    torch.testing.assert_close(matrix_to_axis_angle(R), rotvec, atol=1e-10, rtol=0)
    tiny = torch.tensor([[1e-9, -2e-9, 3e-9], [0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(
        matrix_to_axis_angle(axis_angle_to_matrix(tiny)), tiny, atol=1e-15, rtol=0
    )


def test_random_rotation_is_valid_reproducible_and_uniform():
    R = random_rotation(20000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert R.shape == (20000, 3, 3)
    assert_rotation(R, 1e-12)
    R2 = random_rotation(20000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.equal(R, R2)
    # Haar measure: E[R] = 0 and P(angle <= a) = (a - sin a) / pi.
    assert R.mean(0).abs().max() < 0.02
    frac = (rotation_angle(R) <= math.pi / 2).double().mean().item()
    assert abs(frac - (math.pi / 2 - 1) / math.pi) < 0.01


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="x"):
        rot6d_to_matrix(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="R"):
        matrix_to_quaternion(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="n"):
        random_rotation(0)
