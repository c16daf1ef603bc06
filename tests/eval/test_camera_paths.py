"""Target cameras with and without the target images in the camera estimator's context: the
without path never lets one target influence another, and registers each target correctly."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from _tiny import tiny_model_config
from rayzer.eval.camera_paths import (
    WithoutTargetsMethod,
    apply_similarity,
    camera_similarity,
    cameras_with_targets,
    cameras_without_targets,
    context_cameras,
)
from rayzer.eval.novel_view import EvalSample, ModelMethod, collate
from rayzer.geometry import (
    align_cameras,
    axis_angle_to_matrix,
    look_at,
    make_c2w,
    project_to_so3,
    random_rotation,
    rotation_angle,
    umeyama,
)
from rayzer.models import CameraPrediction, RayZer

H = W = 16


def tiny_rayzer() -> RayZer:
    cfg = tiny_model_config()
    model = RayZer(cfg).eval()
    # A freshly initialised pose head predicts ~identity for every view; make it image-sensitive
    # so that a leak would show up as a clearly different camera.
    nn.init.normal_(model.camera_estimator.pose_head[2].weight, std=0.5)
    return model


def orbit(v: int) -> torch.Tensor:
    ang = torch.deg2rad(torch.arange(v, dtype=torch.float64) * 12.0)
    eye = torch.stack((3 * torch.sin(ang), 0.3 * torch.cos(2 * ang), -3 * torch.cos(ang)), -1)
    up = torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64).expand(v, 3)
    return look_at(eye, torch.zeros(v, 3, dtype=torch.float64), up)


class GaugeScramblingEstimator:
    """A fake RayZer camera estimator that returns the TRUE cameras of the views it is shown,
    each call in a different random similarity gauge (as a real estimator's canonical frame and
    scale change with its input set). View identity is read from pixel (0, 0)."""

    def __init__(self, gt_c2w: torch.Tensor) -> None:
        self.gt = gt_c2w
        self.gen = torch.Generator().manual_seed(1)
        self.calls: list[list[int]] = []

    def predict_cameras(self, images: torch.Tensor) -> CameraPrediction:
        b, n = images.shape[:2]
        ids = (images[:, :, 0, 0, 0] * 100).round().long()  # (B, n)
        self.calls.append(ids[0].tolist())
        R = random_rotation(b, generator=self.gen, dtype=torch.float64)
        s = torch.rand(b, generator=self.gen, dtype=torch.float64) + 0.5
        t = torch.randn(b, 3, generator=self.gen, dtype=torch.float64)
        c2w = apply_similarity(self.gt[ids], s, R, t)
        K_norm = torch.full((b, n, 4), 0.5, dtype=torch.float64)
        tokens = torch.nn.functional.one_hot(ids, 16).double()
        return CameraPrediction(c2w=c2w, K_norm=K_norm, tokens=tokens, canonical=n // 2)


def tagged_images(v: int) -> torch.Tensor:
    images = torch.rand(1, v, 3, H, W)
    images[0, :, 0, 0, 0] = torch.arange(v) / 100.0
    return images


def test_without_targets_registers_every_target_into_one_frame():
    v = 7
    gt = orbit(v)
    fake = GaugeScramblingEstimator(gt)
    inp, tgt = torch.tensor([0, 3, 6]), torch.tensor([1, 2, 4, 5])
    cams = cameras_without_targets(fake, tagged_images(v), inp, tgt)  # type: ignore[arg-type]

    # One context-only pass, then one pass per target with the context and that target alone.
    assert fake.calls[0] == [0, 3, 6]
    assert [sorted(c) for c in fake.calls[1:]] == [sorted([0, 3, 6, t]) for t in (1, 2, 4, 5)]
    assert all(c == sorted(c) for c in fake.calls)  # frame order kept
    # All V cameras are the truth up to ONE similarity (the context-only pass's gauge).
    aligned, *_ = align_cameras(cams.c2w[0], gt)
    assert torch.allclose(aligned, gt, atol=1e-9)
    assert cams.canonical == 3
    # Tokens: context from the context-only pass, each target's from its own pass.
    assert cams.tokens[0].argmax(-1).tolist() == list(range(v))


def test_without_targets_never_lets_one_target_change_another():
    model = tiny_rayzer()
    images = torch.rand(1, 6, 3, H, W)
    inp, tgt = torch.tensor([0, 2, 5]), torch.tensor([1, 3, 4])
    changed = images.clone()
    changed[0, 3] = torch.rand(3, H, W)  # a different image for target view 3

    with torch.no_grad():
        before = cameras_without_targets(model, images, inp, tgt)
        after = cameras_without_targets(model, changed, inp, tgt)
        ctx = context_cameras(model, images, inp)
    others = [0, 1, 2, 4, 5]
    assert torch.equal(before.c2w[0, others], after.c2w[0, others])
    assert torch.equal(before.K_norm[0, others], after.K_norm[0, others])
    assert (before.c2w[0, 3] - after.c2w[0, 3]).abs().max() > 1e-3  # its own camera does move
    assert torch.equal(before.c2w[0, inp], ctx.c2w[0])  # context cameras: context images only

    # The paper's path is a different computation: one pass, every camera sees every target.
    with torch.no_grad():
        w_before = cameras_with_targets(model, images)
        w_after = cameras_with_targets(model, changed)
    moved = (w_before.c2w[0] - w_after.c2w[0]).abs().amax(dim=(-1, -2))
    canonical = w_before.canonical
    assert all(moved[i] > 1e-4 for i in range(6) if i != canonical)
    assert not torch.allclose(w_before.c2w[0, inp], before.c2w[0, inp], atol=1e-3)


def test_without_targets_renders_do_not_depend_on_other_targets():
    model = tiny_rayzer()
    images = torch.rand(6, 3, H, W)
    sample = EvalSample(images, torch.tensor([0, 2, 5]), torch.tensor([1, 3, 4]))
    changed = EvalSample(images.clone(), sample.input_index, sample.target_index)
    changed.images[3] = torch.rand(3, H, W)
    with torch.no_grad():
        r0 = WithoutTargetsMethod(model)(collate([sample])).render
        r1 = WithoutTargetsMethod(model)(collate([changed])).render
        w0 = ModelMethod(model)(collate([sample])).render
        w1 = ModelMethod(model)(collate([changed])).render
    # Targets 1 and 4 (render slots 0 and 2) are untouched by target 3's image ...
    assert torch.equal(r0[0, [0, 2]], r1[0, [0, 2]])
    # ... whereas with all targets in one pass they move with it.
    assert (w0[0, [0, 2]] - w1[0, [0, 2]]).abs().max() > 1e-5


def test_apply_similarity_matches_align_cameras():
    gen = torch.Generator().manual_seed(3)
    pred = apply_similarity(
        orbit(5)[None],
        torch.tensor([0.7], dtype=torch.float64),
        random_rotation(1, generator=gen, dtype=torch.float64),
        torch.randn(1, 3, generator=gen, dtype=torch.float64),
    )
    aligned, s, R, t = align_cameras(pred, orbit(5)[None])
    assert torch.allclose(apply_similarity(pred, s, R, t), aligned, atol=1e-12)
    assert torch.allclose(aligned, orbit(5)[None], atol=1e-9)


def test_context_cameras_reject_unordered_context():
    with pytest.raises(ValueError, match="increasing"):
        context_cameras(tiny_rayzer(), torch.rand(1, 4, 3, H, W), torch.tensor([2, 0]))


def _similar(c2w: torch.Tensor, seed: int) -> tuple[torch.Tensor, ...]:
    """``c2w`` (B, N, 4, 4) through a random similarity, with that similarity."""
    gen = torch.Generator().manual_seed(seed)
    b = c2w.shape[0]
    s = torch.rand(b, generator=gen, dtype=torch.float64) * 3 + 0.2
    R = random_rotation(b, generator=gen, dtype=torch.float64)
    t = torch.randn(b, 3, generator=gen, dtype=torch.float64)
    return apply_similarity(c2w, s, R, t), s, R, t


def _jitter_rotations(c2w: torch.Tensor, degrees: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(*c2w.shape[:-2], 3, generator=gen), dim=-1)
    turn = axis_angle_to_matrix(axis.double() * math.radians(degrees))
    return make_c2w(turn @ c2w[..., :3, :3], c2w[..., :3, 3])


@pytest.mark.parametrize("num_views", [1, 2, 3, 5])
def test_camera_similarity_recovers_an_exact_similarity(num_views):
    src = torch.stack((orbit(num_views), _jitter_rotations(orbit(num_views), 30.0, 4)))
    dst, s, R, t = _similar(src, num_views)
    s_fit, R_fit, t_fit = camera_similarity(src, dst)
    torch.testing.assert_close(R_fit, R, atol=1e-9, rtol=0)
    if num_views > 1:  # one camera fixes no scale
        torch.testing.assert_close(s_fit, s, atol=1e-9, rtol=0)
        torch.testing.assert_close(t_fit, t, atol=1e-9, rtol=0)
        torch.testing.assert_close(
            apply_similarity(src, s_fit, R_fit, t_fit), dst, atol=1e-9, rtol=0
        )


def test_camera_similarity_follows_the_orientations_when_centres_disagree_with_them():
    """Centres on an orbit, the same in both sets up to the similarity; each set's orientations
    off by its own 10°. The rotation is the one that best agrees with the orientations (the
    carried cameras must look where dst's cameras look), not Umeyama's on the centres; scale
    and translation are the least-squares fit of the centres given it."""
    truth = orbit(5)[None]
    src = _jitter_rotations(truth, 10.0, 1)
    dst, _, R_true, _ = _similar(_jitter_rotations(truth, 10.0, 2), 3)
    s, R, t = camera_similarity(src, dst)
    chordal = project_to_so3((dst[..., :3, :3] @ src[..., :3, :3].transpose(-1, -2)).sum(1))
    torch.testing.assert_close(R, chordal, atol=1e-12, rtol=0)
    _, R_centres, _ = umeyama(src[..., :3, 3], dst[..., :3, 3])
    torch.testing.assert_close(R_centres, R_true, atol=1e-9, rtol=0)  # exact on the centres ...
    assert math.degrees(rotation_angle(R.transpose(-1, -2) @ R_true).item()) > 2.0  # ... not R

    def misfit(rot: torch.Tensor) -> torch.Tensor:  # mean angle, carried vs dst orientations
        carried = rot[:, None] @ src[..., :3, :3]
        return rotation_angle(carried.transpose(-1, -2) @ dst[..., :3, :3]).mean()

    assert misfit(R) < misfit(R_centres)
    # s, t: least squares on the centres given R
    cs, cd = src[0, :, :3, 3], dst[0, :, :3, 3]
    rc = (R[0] @ (cs - cs.mean(0)).T).T
    s_ls = (rc * (cd - cd.mean(0))).sum() / (cs - cs.mean(0)).square().sum()
    torch.testing.assert_close(s[0], s_ls, atol=1e-12, rtol=0)
    torch.testing.assert_close(t[0], cd.mean(0) - s_ls * R[0] @ cs.mean(0), atol=1e-12, rtol=0)


def test_camera_similarity_never_mirrors_the_centres():
    """Centres laid out opposite to what the orientations say (the least-squares scale given R
    is negative): the scale is 0, every carried centre lands on dst's centroid, instead of the
    centres being mirrored while the orientations are not."""
    src = orbit(4)[None]
    dst = src.clone()
    dst[..., :3, 3] = -src[..., :3, 3]
    s, R, t = camera_similarity(src, dst)
    torch.testing.assert_close(R, torch.eye(3, dtype=torch.float64)[None], atol=1e-12, rtol=0)
    assert s.tolist() == [0.0]
    torch.testing.assert_close(t[0], dst[0, :, :3, 3].mean(0), atol=1e-12, rtol=0)


def test_camera_similarity_scale_when_the_source_centres_coincide_or_nearly():
    """Coincident source centres (a model at step 0: every camera at the origin) fix no scale:
    s = 1, so a camera carried with them keeps its own offset (rotated) from dst's centroid.
    Centres 1e-4 apart still fix it: an exact similarity is recovered there too."""
    src = orbit(4)[None].clone()
    src[..., :3, 3] = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    dst, _, R, _ = _similar(src, 5)
    s_fit, R_fit, t_fit = camera_similarity(src, dst)
    assert s_fit.tolist() == [1.0]
    torch.testing.assert_close(R_fit, R, atol=1e-9, rtol=0)
    extra = src[:, :1].clone()
    extra[..., :3, 3] += torch.tensor([0.5, 0.0, 0.0], dtype=torch.float64)
    carried = apply_similarity(extra, s_fit, R_fit, t_fit)[0, 0, :3, 3]
    expected = dst[0, :, :3, 3].mean(0) + R[0] @ torch.tensor([0.5, 0.0, 0.0]).double()
    torch.testing.assert_close(carried, expected, atol=1e-9, rtol=0)

    near = orbit(4)[None].clone()
    near[..., :3, 3] = 1e-4 * near[..., :3, 3]
    dst, s, R, t = _similar(near, 6)
    s_fit, R_fit, t_fit = camera_similarity(near, dst)
    torch.testing.assert_close(s_fit, s, atol=1e-9, rtol=0)
    torch.testing.assert_close(t_fit, t, atol=1e-9, rtol=0)


@pytest.mark.parametrize("layout", ["near_coincident", "collinear", "two_views"])
def test_camera_similarity_recovers_the_rotation_whatever_the_centres(layout):
    """Exact orientations; centres that barely move and disagree between the sets (1e-3 of
    noise each, as a model that keeps its cameras near the identity), or collinear, or only
    two: the rotation is recovered exactly."""
    gen = torch.Generator().manual_seed(7)
    n = 2 if layout == "two_views" else 5
    truth = orbit(n)[None].clone()
    src, dst_pre = truth.clone(), truth.clone()
    if layout == "near_coincident":
        src[..., :3, 3] = 1e-3 * torch.randn(1, n, 3, generator=gen, dtype=torch.float64)
        dst_pre[..., :3, 3] = 1e-3 * torch.randn(1, n, 3, generator=gen, dtype=torch.float64)
    elif layout == "collinear":  # a dolly: the same line in both, positions jittered along it
        along = torch.linspace(0, 1, n, dtype=torch.float64)[:, None]
        src[0, :, :3, 3] = along * torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
        jitter = 0.05 * torch.randn(n, 1, generator=gen, dtype=torch.float64)
        dst_pre[0, :, :3, 3] = (along + jitter) * torch.tensor([1.0, 0.0, 0.0]).double()
    dst, _, R, _ = _similar(dst_pre, 11)
    _, R_fit, _ = camera_similarity(src, dst)
    torch.testing.assert_close(R_fit, R, atol=1e-9, rtol=0)


class CollapsedCentreEstimator(GaugeScramblingEstimator):
    """The true orientations with centres that barely move (1e-3 of fresh noise on every call,
    at a scene ~3 away), each call in a random similarity gauge: a tiny model's cameras."""

    def predict_cameras(self, images: torch.Tensor) -> CameraPrediction:
        collapsed = self.gt.clone()
        collapsed[:, :3, 3] = 1e-3 * torch.randn(len(self.gt), 3, generator=self.gen).double()
        truth, self.gt = self.gt, collapsed
        try:
            out = super().predict_cameras(images)
        finally:
            self.gt = truth
        return out


def test_without_targets_keeps_the_targets_orientation_when_centres_barely_move():
    """Each target's camera must keep its true orientation relative to the context cameras
    (the estimator gets the orientations exactly right). Registering the passes by Umeyama on
    the centres took the rotation from the centres' noise: the targets turned by tens of
    degrees."""
    v = 7
    gt = orbit(v)
    inp, tgt = torch.tensor([0, 3, 6]), torch.tensor([1, 2, 4, 5])
    errors = []
    for seed in range(4):
        fake = CollapsedCentreEstimator(gt)
        fake.gen.manual_seed(seed)
        cams = cameras_without_targets(fake, tagged_images(v), inp, tgt)  # type: ignore[arg-type]
        rot = cams.c2w[0, :, :3, :3].double()
        rel = rot[inp][:, None].transpose(-1, -2) @ rot[tgt][None]  # context j -> target k
        rel_true = gt[inp][:, None, :3, :3].transpose(-1, -2) @ gt[tgt][None, :, :3, :3]
        errors.append(rotation_angle(rel.transpose(-1, -2) @ rel_true).max())
    assert torch.rad2deg(torch.stack(errors)).max() < 1e-4, errors
