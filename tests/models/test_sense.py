"""The mirror hypothesis and the sense head (``model.sense_head``, rayzer.models.sense)."""

from __future__ import annotations

import math

import pytest
import torch

from _tiny import tiny_model_config
from rayzer.geometry import axis_angle_to_matrix, look_at, matrix_to_axis_angle, se3_inverse
from rayzer.models import RayZer
from rayzer.models.sense import (
    SenseHead,
    mirror_camera_path,
    non_canonical,
    paths_to_mirror,
    sense_labels,
    view_yaw,
)


def orbit_path(angles_deg: list[float], radius: float = 2.0) -> torch.Tensor:
    """(1, V, 4, 4) cameras on a level circle around (0, 0, radius) in the canonical view's
    frame, each looking at that point; angle 0 is the canonical camera (identity)."""
    centre = torch.tensor([0.0, 0.0, radius])
    cams = []
    for a in angles_deg:
        t = math.radians(a)
        eye = centre + radius * torch.tensor([math.sin(t), 0.0, -math.cos(t)])
        cams.append(look_at(eye, centre, torch.tensor([0.0, -1.0, 0.0])))
    path = torch.stack(cams)
    return (se3_inverse(path[len(angles_deg) // 2]) @ path)[None]


def test_mirror_of_an_orbit_is_the_orbit_the_other_way():
    angles = [-24.0, -12.0, 0.0, 9.0, 20.0]
    path = orbit_path(angles)
    assert torch.allclose(path[0, 2], torch.eye(4), atol=1e-6)  # canonical = identity
    mirrored = mirror_camera_path(path)
    assert torch.allclose(mirrored, orbit_path([-a for a in angles]), atol=1e-5)
    assert torch.allclose(mirror_camera_path(mirrored), path, atol=1e-5)  # an involution
    # the yaw of every non-canonical view changes sign, its size does not
    yaw, yaw_m = view_yaw(path), view_yaw(mirrored)
    assert torch.allclose(yaw_m, -yaw, atol=1e-5)
    assert torch.allclose(
        yaw.abs(), torch.deg2rad(torch.tensor([24.0, 12.0, 9.0, 20.0])), atol=1e-4
    )


def test_mirror_keeps_gradients():
    aa = torch.tensor([[[0.0, 0.3, 0.1]]], requires_grad=True)
    c2w = torch.eye(4).repeat(1, 1, 1, 1)
    c2w = torch.cat(
        (torch.cat((axis_angle_to_matrix(aa), torch.ones(1, 1, 3, 1)), -1), c2w[..., 3:, :]), -2
    )
    mirror_camera_path(c2w).sum().backward()
    assert aa.grad is not None and aa.grad.abs().sum() > 0


def test_sense_labels_and_the_decision_to_mirror():
    path = orbit_path([-20.0, -10.0, 0.0, 10.0, 0.5])  # the last view barely turned
    won = torch.tensor([False])
    labels, weights = sense_labels(path, won)
    # the camera moves towards +x while turning: yaw sign of each view, the 0.5° view unlabelled
    yaw = view_yaw(path)[0]
    assert labels[0].tolist() == (yaw > 0).float().tolist()
    assert weights[0].tolist() == [1.0, 1.0, 1.0, 0.0]
    flipped, _ = sense_labels(path, torch.tensor([True]))
    assert (flipped[0, :3] == 1 - labels[0, :3]).all()
    # the head agreeing with the path: keep it; contradicting it on most labelled views: mirror
    agree = torch.where(yaw > 0, 5.0, -5.0)[None]
    assert not paths_to_mirror(path, agree).item()
    assert paths_to_mirror(path, -agree).item()
    mixed = agree.clone()
    mixed[0, 0] *= -1  # one of three labelled views disagrees
    assert not paths_to_mirror(path, mixed).item()


@pytest.mark.parametrize("size", [32, 64])
def test_sense_head_reads_any_size(size):
    head = SenseHead()
    logits = head(torch.rand(2, 5, 3, size, size))
    assert logits.shape == (2, 4) and torch.isfinite(logits).all()


def _model() -> RayZer:
    torch.manual_seed(0)
    return RayZer(
        tiny_model_config(
            keep_input_tokens=True, decoder_readout="sweep", sweep_depths=4, sense_head=True
        )
    )


def test_rayzer_mirror_hypothesis_renders_the_mirrored_path():
    model = _model().train()
    images = torch.rand(2, 6, 3, 16, 16)
    inp, tgt = torch.tensor([0, 2, 5]), torch.tensor([1, 3, 4])
    out = model({"image": images}, inp, tgt)  # training mode: the mirror test runs
    mirror_render = out.extras["mirror_render"]
    assert mirror_render.shape == out.render.shape == (2, 3, 3, 16, 16)
    assert out.extras["sense_logits"].shape == (2, 5) and "mirrored" not in out.cameras.extras
    # the mirror render is the render of the mirrored path, built from the same inputs
    cams = out.cameras
    path = mirror_camera_path(cams.c2w)
    scene = model.reconstruct(images[:, inp], path[:, inp], cams.K_norm[:, inp], inp.expand(2, -1))
    again = model.render(scene, path[:, tgt], cams.K_norm[:, tgt], 16, 16).rgb
    assert torch.allclose(mirror_render, again, atol=1e-6)
    # without a sense head there is no mirror test, and the loss is photometric only
    plain = RayZer(tiny_model_config(keep_input_tokens=True, decoder_readout="sweep")).train()
    assert plain({"image": images}, inp, tgt).extras == {}
    terms = model.loss(out, {"image": images}, None)
    assert {"sense_loss", "mirror_won"} <= set(terms)
    assert set(plain.loss(plain({"image": images}, inp, tgt), {"image": images}, None)) == {
        "loss",
        "mse",
        "psnr",
    }


def test_eval_mode_mirrors_the_paths_the_head_contradicts(monkeypatch):
    model = _model()
    images = torch.rand(3, 5, 3, 16, 16)
    with torch.no_grad():
        # give the estimator distinct, sizeable rotations so that every view is labelled
        model.camera_estimator.pose_head[-1].weight.normal_(std=0.5)
        model.train()
        raw = model.predict_cameras(images)
        assert "mirrored" not in raw.extras  # training mode: no decision
        yaw = view_yaw(raw.c2w)
        assert (yaw.abs() > math.radians(1)).all()
        # a head contradicting sample 0 on every view, sample 1 on one view of four, and
        # agreeing with sample 2
        logits = torch.where(yaw > 0, 4.0, -4.0)
        logits[0] *= -1
        logits[1, 0] *= -1
        monkeypatch.setattr(model.sense_head, "forward", lambda _images: logits)
        model.eval()
        cams = model.predict_cameras(images)
    assert cams.extras["mirrored"].tolist() == [True, False, False]
    assert torch.allclose(cams.c2w[0], mirror_camera_path(raw.c2w[:1])[0], atol=1e-6)
    assert torch.equal(cams.c2w[1:], raw.c2w[1:])
    # the mirrored path's rotations turn the other way
    a = matrix_to_axis_angle(raw.c2w[0, :, :3, :3])
    m = matrix_to_axis_angle(cams.c2w[0, :, :3, :3])
    assert torch.allclose(m, -a, atol=1e-5)


def test_resolved_mirror_test_renders_the_heads_path_and_a_gradient_free_mirror(monkeypatch):
    """model.sense_mirror="resolved": the render (with gradient) uses the path the head
    resolves; the mirror of that path is rendered without gradient."""
    model = _model().train()
    model.cfg.sense.mirror = "resolved"
    images = torch.rand(2, 5, 3, 16, 16)
    inp, tgt = torch.tensor([0, 1, 3]), torch.tensor([2, 4])
    with torch.no_grad():
        model.camera_estimator.pose_head[-1].weight.normal_(std=0.5)
        raw = model.predict_cameras(images)
    yaw = view_yaw(raw.c2w)
    logits = torch.where(yaw > 0, 4.0, -4.0)
    logits[0] *= -1  # the head contradicts sample 0 on every view, agrees with sample 1
    monkeypatch.setattr(model.sense_head, "forward", lambda _images: logits)
    out = model({"image": images}, inp, tgt)
    assert out.cameras.extras["mirrored"].tolist() == [True, False]
    assert torch.allclose(out.cameras.c2w[0], mirror_camera_path(raw.c2w[:1])[0], atol=1e-6)
    assert torch.allclose(out.cameras.c2w[1], raw.c2w[1], atol=1e-6)
    assert out.render.requires_grad and not out.extras["mirror_render"].requires_grad
    assert torch.equal(out.extras["sense_logits"], logits)
    path = mirror_camera_path(out.cameras.c2w)
    scene = model.reconstruct(images[:, inp], path[:, inp], raw.K_norm[:, inp], inp.expand(2, -1))
    again = model.render(scene, path[:, tgt], raw.K_norm[:, tgt], 16, 16).rgb
    assert torch.allclose(out.extras["mirror_render"], again, atol=1e-5)


def test_sense_mirror_must_be_known():
    with pytest.raises(ValueError, match=r"sense\.mirror"):
        tiny_model_config(sense_head=True, sense_mirror="half")


def test_pair_cnn_channels_last_input_unchanged():
    """The sense head's channels-last input layout on the CPU (a speed choice) gives the
    outputs and gradients of the plain NCHW computation."""
    torch.manual_seed(0)
    head = SenseHead(width=16)
    images = torch.rand(2, 4, 3, 16, 16)
    logits = head(images)
    grads = torch.autograd.grad(logits.square().sum(), list(head.parameters()))
    # the same network, fed the NCHW pairs directly
    c = images.shape[1] // 2
    chosen = images[:, non_canonical(4)]
    pairs = torch.cat((chosen, images[:, c : c + 1].expand_as(chosen)), dim=2).flatten(0, 1)
    assert pairs.is_contiguous()
    ref = head.head(head.features(pairs)).view(2, 3)
    ref_grads = torch.autograd.grad(ref.square().sum(), list(head.parameters()))
    torch.testing.assert_close(logits, ref, rtol=1e-5, atol=1e-6)
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
