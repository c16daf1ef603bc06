"""refine_predicted_cameras: what reaches the refinement when the views are larger than the
model's input (depth and opacity resampled)."""

from __future__ import annotations

import pytest
import torch

import rayzer.refine
from rayzer.infer.predict import Cameras
from rayzer.infer.refine_predicted import refine_predicted_cameras


@pytest.mark.parametrize("with_alpha", [False, True])
def test_unknown_depth_does_not_blend_into_known_depth_when_upsampled(monkeypatch, with_alpha):
    """A pixel without depth (0: nothing rendered there) stays unknown at the larger size
    instead of pulling its known neighbours towards the camera (bilinear blending gave 1.5 and
    0.5 for a depth of 2 beside an unknown half, kept where the opacity passed MIN_ALPHA)."""
    seen = {}

    def fake(images, c2w, K, depth, steps, *, held_out=True, anchor=None, progress=None):
        seen["depth"] = depth
        return c2w, K, {"cameras": "refined"}

    monkeypatch.setattr(rayzer.refine, "refine_with_report", fake)
    K = torch.tensor([[8.0, 8.0, 4.0, 4.0]]).repeat(3, 1)
    cams = Cameras(torch.eye(4).repeat(3, 1, 1), K, 8, 8, canonical=1)
    depth = torch.zeros(3, 1, 8, 8)
    depth[..., :4] = 2.0  # the right half: nothing rendered
    alpha = torch.ones(3, 1, 8, 8) if with_alpha else None
    refine_predicted_cameras(torch.rand(3, 3, 16, 16), cams, depth, alpha, 1)
    got = seen["depth"]
    assert got.shape == (3, 16, 16)
    assert ((got == 0) | (got == 2.0)).all(), got[0, 0]
    assert (got[..., :7] == 2.0).all() and (got[..., 9:] == 0).all()
