"""Interpolation protocol: interpolating the true cameras of a constant-speed path reproduces
the true in-between cameras, in-between frames are chosen as documented, and the interpolation
renders never read the in-between (target) images."""

from __future__ import annotations

import math

import pytest
import torch

from _tiny import tiny_model_config
from rayzer.eval.interpolation import (
    InterpolationMethod,
    gt_interpolation_errors,
    inbetween_frames,
    interpolate_at_frames,
    interpolation_sample,
)
from rayzer.eval.novel_view import CopyNearestMethod, collate, evaluate
from rayzer.geometry import axis_angle_to_matrix, look_at, make_c2w, rotation_error_deg
from rayzer.models import RayZer

RADIUS = 2.5


def orbit(frames: int, step_deg: float) -> torch.Tensor:
    """Constant-speed orbit about the world y axis at a fixed height, looking at the origin."""
    ang = torch.deg2rad(torch.arange(frames, dtype=torch.float64) * step_deg)
    eye = torch.stack(
        (RADIUS * torch.sin(ang), torch.full_like(ang, -0.7), -RADIUS * torch.cos(ang)), -1
    )
    up = torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64).expand(frames, 3)
    return look_at(eye, torch.zeros(frames, 3, dtype=torch.float64), up)


def test_interpolated_orbit_rotations_are_exact_and_centres_on_the_chord():
    step = 4.0
    cams = orbit(25, step)
    keys = [0, 8, 16, 24]
    query = [f for f in range(25) if f not in keys]
    c2w, _ = interpolate_at_frames(cams[keys], torch.tensor(keys), torch.tensor(query))
    rot = rotation_error_deg(c2w[:, :3, :3], cams[query, :3, :3])
    assert rot.max() < 1e-6  # Slerp of a rotation about a fixed axis at constant speed: exact
    # Centres are linear between keys, i.e. on the chord of the circle: in the key pair's
    # frame (bisector = x axis) the true centre is r (cos θ, sin θ) with θ = (2u - 1) h and the
    # interpolated one r (cos h, (2u - 1) sin h), h = half the key-to-key arc, u = (f - a) / 8.
    half = math.radians(8 * step) / 2
    for f, centre in zip(query, c2w[:, :3, 3]):
        u = (f % 8) / 8
        theta = (2 * u - 1) * half
        gap = RADIUS * math.hypot(
            math.cos(theta) - math.cos(half), math.sin(theta) - (2 * u - 1) * math.sin(half)
        )
        assert centre[1].item() == pytest.approx(-0.7)  # height kept
        assert (centre - cams[f, :3, 3]).norm().item() == pytest.approx(gap, abs=1e-9)
    # The largest miss is the sagitta r (1 - cos h), at the middle of a segment.
    mid = query.index(4)
    assert (c2w[mid, :3, 3] - cams[4, :3, 3]).norm().item() == pytest.approx(
        RADIUS * (1 - math.cos(half)), abs=1e-12
    )


def test_interpolating_a_constant_speed_dolly_with_pan_is_exact():
    frames = torch.arange(13, dtype=torch.float64)
    R = axis_angle_to_matrix(torch.stack([torch.zeros(13), frames * 0.05, torch.zeros(13)], -1))
    centres = torch.stack([0.3 * frames, 0.1 * frames, -0.2 * frames], -1)
    cams = make_c2w(R, centres)
    keys = [0, 5, 12]
    query = list(range(13))
    c2w, _ = interpolate_at_frames(cams[keys], torch.tensor(keys), torch.tensor(query))
    assert torch.allclose(c2w, cams, atol=1e-12)
    assert torch.equal(c2w[keys], cams[keys])  # key frames are returned exactly
    errors = gt_interpolation_errors(cams[keys], keys, cams[[1, 7]], [1, 7])
    assert errors["rot_err_deg_max"] < 1e-6 and errors["centre_err_max"] < 1e-9


def test_interpolate_at_frames_refuses_out_of_range():
    cams = orbit(5, 10.0)
    with pytest.raises(ValueError, match="outside"):
        interpolate_at_frames(cams[[1, 3]], torch.tensor([1, 3]), torch.tensor([4]))
    with pytest.raises(ValueError, match="increasing"):
        interpolate_at_frames(cams[[3, 1]], torch.tensor([3, 1]), torch.tensor([2]))


def test_inbetween_frames():
    assert inbetween_frames([2, 5, 9], 10) == [3, 4, 6, 7, 8]
    assert inbetween_frames([0, 20], 3) == [1, 10, 19]
    assert inbetween_frames([4, 5], 3) == []


def test_interpolation_method_never_reads_in_between_images():
    cfg = tiny_model_config()
    model = RayZer(cfg).eval()
    ctx = torch.rand(3, 3, 16, 16)
    between = torch.rand(4, 3, 16, 16)
    sample = interpolation_sample("s", ctx, [0, 4, 8], between, [1, 3, 5, 6])
    assert sample.frame_index.tolist() == [0, 1, 3, 4, 5, 6, 8]
    assert sample.input_index.tolist() == [0, 3, 6]
    assert torch.equal(sample.images[sample.target_index], between)
    method = InterpolationMethod(model, view_positions=torch.tensor([0, 2, 4]))
    other = interpolation_sample("s", ctx, [0, 4, 8], torch.rand(4, 3, 16, 16), [1, 3, 5, 6])
    with torch.no_grad():
        a = method(collate([sample])).render
        b = method(collate([other])).render
    assert torch.equal(a, b)
    # Through the evaluation core, beside copy-nearest (frame 3 copies frame 4, etc.).
    res = evaluate(CopyNearestMethod(), [sample], keep_renders=1)
    assert torch.equal(res.renders[0][1], ctx[1])
    assert evaluate(method, [sample]).summary["psnr"] is not None
