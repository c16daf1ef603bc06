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


def test_infer_refines_on_the_device_of_the_model_input(monkeypatch):
    """``rayzer infer --refine`` refines where the model's input views are (the model's device:
    CUDA for a model on CUDA), not on the CPU. No GPU here, so the views are on the ``meta``
    device as a stand-in and the refinement is a recording stand-in (it hands the cameras back
    on the CPU: a meta tensor cannot be copied anywhere). The depth, opacity and cameras come
    from the CPU, as the pipeline holds them; the kept cameras stay there."""
    from types import SimpleNamespace

    from rayzer.infer.pipeline import _refine

    seen = {}

    def fake(images, c2w, K, depth, steps, *, held_out=True, anchor=None, progress=None):
        seen.update(images=images.device, c2w=c2w.device, K=K.device, depth=depth.device)
        return torch.eye(4).repeat(3, 1, 1), torch.ones(3, 4), {"cameras": "refined"}

    monkeypatch.setattr(rayzer.refine, "refine_with_report", fake)
    K = torch.tensor([[8.0, 8.0, 4.0, 4.0]]).repeat(3, 1)
    cams = Cameras(torch.eye(4).repeat(3, 1, 1), K, 8, 8, canonical=1)
    depth, alpha = torch.ones(3, 1, 8, 8), torch.ones(3, 1, 8, 8)
    pred = SimpleNamespace(cams=cams, depth=depth, alpha=alpha)
    x = torch.zeros(3, 3, 8, 8, device="meta")
    got, report = _refine(x, pred, 1)
    meta = torch.device("meta")
    assert seen == {"images": meta, "c2w": meta, "K": meta, "depth": meta}
    assert report["cameras"] == "refined"
    assert got.c2w.device == got.K.device == torch.device("cpu")
    assert torch.equal(got.K, torch.ones(3, 4))
