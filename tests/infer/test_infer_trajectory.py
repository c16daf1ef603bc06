"""Novel-view paths: the smooth path passes through the predicted cameras in order; the spiral
circles the canonical view and looks at the point where object-centric cameras converge."""

from __future__ import annotations

import math

import torch

from rayzer.geometry import look_at, orbit_path
from rayzer.infer.predict import Cameras
from rayzer.infer.trajectory import axes_convergence, path_through, spiral_around, spiral_scale


def _orbit(num: int = 7, radius: float = 3.0, arc: float = 60.0) -> Cameras:
    """Cameras on an arc around the point (1, 2, 0.5), all looking at it."""
    c2w = orbit_path(
        (1.0, 2.0, 0.5),
        radius,
        10.0,
        num,
        start_azimuth_deg=-arc / 2,
        arc_deg=arc,
        dtype=torch.float64,
    )
    K = torch.tensor([40.0, 40.0, 16.0, 16.0], dtype=torch.float64).expand(num, 4)
    return Cameras(c2w, K.clone(), 32, 32, canonical=num // 2)


def test_path_passes_through_the_cameras_in_order() -> None:
    cams = _orbit()
    path = path_through(cams, (len(cams) - 1) * 4 + 1)
    torch.testing.assert_close(path.c2w[::4], cams.c2w, atol=1e-6, rtol=0)
    steps = (path.c2w[1:, :3, 3] - path.c2w[:-1, :3, 3]).norm(dim=-1)
    assert steps.max() < 2 * steps.min()  # smooth: no jumps between samples


def test_converging_axes_give_the_focus_depth() -> None:
    cams = _orbit()
    point, cond = axes_convergence(cams.c2w)
    torch.testing.assert_close(point, torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64))
    assert cond > 1e-3
    info = spiral_scale(cams.c2w, cams.canonical)
    assert info.focus_from_axes and math.isclose(info.focus_depth, 3.0, rel_tol=1e-6)


def test_spiral_circles_the_canonical_view_and_looks_at_the_focus() -> None:
    cams = _orbit()
    spiral, info = spiral_around(cams, 24)
    ref = cams.c2w[cams.canonical].float()
    offsets = spiral.c2w[:, :3, 3] - ref[:3, 3]
    local = offsets @ ref[:3, :3]  # in the canonical camera frame
    torch.testing.assert_close(
        local[:, :2].norm(dim=-1), torch.full((24,), info.radius), atol=1e-5, rtol=0
    )
    assert local[:, 2].abs().max() < 1e-5  # planar, around the canonical centre
    focus = ref[:3, 3] + info.focus_depth * ref[:3, 2]
    to_focus = torch.nn.functional.normalize(focus - spiral.c2w[:, :3, 3], dim=-1)
    torch.testing.assert_close(to_focus, spiral.c2w[:, :3, 2], atol=1e-5, rtol=0)
    torch.testing.assert_close(spiral.K, cams.K[cams.canonical].float().expand(24, 4))


def test_forward_facing_and_degenerate_cameras_fall_back() -> None:
    eye = torch.tensor([[x, 0.0, 0.0] for x in (-0.2, -0.1, 0.0, 0.1, 0.2)], dtype=torch.float64)
    c2w = look_at(eye, eye + torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), (0.0, -1.0, 0.0))
    info = spiral_scale(c2w, 2)  # parallel axes: no convergence point
    assert not info.focus_from_axes
    # 5 × the median distance from the canonical camera (the lower middle: 0.1) and half of it
    assert math.isclose(info.focus_depth, 0.5, rel_tol=1e-9)
    assert math.isclose(info.radius, 0.05, rel_tol=1e-9)
    same = torch.eye(4, dtype=torch.float64).expand(4, 4, 4)  # an untrained model's output
    info = spiral_scale(same, 2)
    assert info.focus_depth == 1.0 and 0 < info.radius <= 0.5
