"""SE(3): assembly, closed-form inverse, composition, canonical frames, look-at cameras."""

from __future__ import annotations

import pytest
import torch

from rayzer.geometry import (
    look_at,
    make_c2w,
    project_points,
    relative_to_canonical,
    se3_compose,
    se3_inverse,
)


def rel(c2w: torch.Tensor, i: int, j: int) -> torch.Tensor:
    return se3_inverse(c2w[..., i, :, :]) @ c2w[..., j, :, :]


def test_make_c2w_layout_and_broadcast(random_c2w):
    T = random_c2w(5)
    R, t = T[:, :3, :3], T[:, :3, 3]
    built = make_c2w(R, t)
    assert torch.equal(built, T)
    torch.testing.assert_close(
        built[:, 3], torch.tensor([0.0, 0, 0, 1], dtype=T.dtype).expand(5, 4)
    )
    # One rotation, several translations.
    assert make_c2w(R[0], t).shape == (5, 4, 4)


def test_se3_inverse_is_inverse(random_c2w):
    T = random_c2w(3, 7)
    eye = torch.eye(4, dtype=T.dtype).expand_as(T)
    torch.testing.assert_close(se3_inverse(T) @ T, eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(T @ se3_inverse(T), eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(se3_inverse(T), torch.linalg.inv(T))
    Tf = T.float()
    assert se3_inverse(Tf).dtype == torch.float32


def test_se3_compose_broadcast_and_apply_order(random_c2w):
    A, B = random_c2w(1)[0], random_c2w(6)
    C = se3_compose(A, B)
    assert C.shape == (6, 4, 4)
    p = torch.tensor([0.3, -1.0, 2.0, 1.0], dtype=A.dtype)
    torch.testing.assert_close(C @ p, (A @ (B @ p)[..., None]).squeeze(-1))


def test_relative_poses_compose(random_c2w):
    c2w = random_c2w(2, 5)
    for i, j, k in [(0, 1, 2), (3, 1, 4), (4, 4, 0), (2, 0, 2)]:
        torch.testing.assert_close(
            rel(c2w, i, j) @ rel(c2w, j, k), rel(c2w, i, k), atol=1e-12, rtol=0
        )


@pytest.mark.parametrize("index", [0, 2, -1])
def test_relative_to_canonical(random_c2w, index):
    c2w = random_c2w(3, 5)
    out = relative_to_canonical(c2w, index)
    assert out.shape == c2w.shape
    # Exact identity at the canonical view (bitwise, not just close).
    assert torch.equal(out[:, index], torch.eye(4, dtype=c2w.dtype).expand(3, 4, 4))
    for v in range(5):
        torch.testing.assert_close(out[:, v], rel(c2w, index, v))
    # Invariant to a global rigid transform of all cameras (world change: c2w -> G @ c2w).
    G = random_c2w(3)[:, None]
    torch.testing.assert_close(relative_to_canonical(G @ c2w, index), out, atol=1e-12, rtol=0)


def test_relative_to_canonical_gradient_and_errors(random_c2w):
    c2w = random_c2w(4).requires_grad_(True)
    relative_to_canonical(c2w, 1).sum().backward()
    assert torch.isfinite(c2w.grad).all()
    with pytest.raises(ValueError, match="index"):
        relative_to_canonical(c2w, 4)
    with pytest.raises(ValueError, match="c2w"):
        relative_to_canonical(torch.eye(4), 0)


def test_look_at_axes_and_target_at_principal_point(gen):
    eye = torch.randn(20, 3, generator=gen, dtype=torch.float64) * 3
    target = torch.randn(20, 3, generator=gen, dtype=torch.float64)
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    c2w = look_at(eye, target, up)
    R = c2w[:, :3, :3]
    torch.testing.assert_close(
        R.transpose(-1, -2) @ R, torch.eye(3, dtype=R.dtype).expand(20, 3, 3)
    )
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(20, dtype=R.dtype))
    torch.testing.assert_close(c2w[:, :3, 3], eye)
    z = torch.nn.functional.normalize(target - eye, dim=-1)
    torch.testing.assert_close(R[..., :, 2], z)
    # x (image right) is horizontal; -y (image up) points as much along `up` as possible.
    torch.testing.assert_close(
        R[..., :, 0] @ up, torch.zeros(20, dtype=R.dtype), atol=1e-12, rtol=0
    )
    up_perp = torch.nn.functional.normalize(up - (z @ up)[:, None] * z, dim=-1)
    torch.testing.assert_close(-R[..., :, 1], up_perp)
    K = torch.tensor([100.0, 90.0, 31.5, 24.5], dtype=torch.float64)
    uv, depth = project_points(target[:, None], c2w, K)
    torch.testing.assert_close(uv[:, 0], K[2:].expand(20, 2))
    torch.testing.assert_close(depth[:, 0], (target - eye).norm(dim=-1))


def test_look_at_known_orientation_and_sequences():
    # Looking along +x with z up: image right is world -y, image down is world -z.
    c2w = look_at([0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0])
    expected = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    torch.testing.assert_close(c2w[:3, :3], expected)


def test_look_at_degenerate_up_gives_valid_rotation():
    eye = torch.tensor([[0.0, 0.0, 5.0], [0.0, 0.0, -5.0]], dtype=torch.float64)
    c2w = look_at(
        eye, torch.zeros(3, dtype=torch.float64), torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    )
    R = c2w[:, :3, :3]
    assert torch.isfinite(R).all()
    torch.testing.assert_close(R.transpose(-1, -2) @ R, torch.eye(3, dtype=R.dtype).expand(2, 3, 3))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(2, dtype=R.dtype))
    torch.testing.assert_close(R[:, :, 2], -torch.nn.functional.normalize(eye, dim=-1))


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="T"):
        se3_inverse(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="t"):
        make_c2w(torch.eye(3), torch.zeros(4))
