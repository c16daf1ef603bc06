"""The opt-in pose-teacher term of the explicit-3D models (issue 18, our addition)."""

import math

import pytest
import torch

from _tiny import assert_aux_term_reaches_poses, build_explicit
from rayzer.geometry import axis_angle_to_matrix, make_c2w
from rayzer.models.erayzer import ERayZerConfig
from rayzer.models.losses import photometric_loss
from rayzer.models.nas3r import NAS3RConfig
from rayzer.models.pose_teacher_loss import pose_teacher_terms
from rayzer.models.views import gather_views

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _cameras(v: int = 4, seed: int = 0) -> torch.Tensor:
    """(1, V, 4, 4) cameras a few degrees and a unit-ish step apart."""
    gen = torch.Generator().manual_seed(seed)
    rot = axis_angle_to_matrix(0.1 * torch.randn(v, 3, generator=gen))
    return make_c2w(rot, torch.randn(v, 3, generator=gen))[None]


def _gauge(c2w: torch.Tensor, scale: float) -> torch.Tensor:
    """The same cameras in another world frame and scale (what a teacher hands over)."""
    g = make_c2w(axis_angle_to_matrix(torch.tensor([0.3, -0.2, 0.5])), torch.tensor([1.0, 2, 3]))
    out = g @ c2w
    out[..., :3, 3] *= scale
    return out


def test_zero_at_the_teachers_poses_in_any_gauge_and_positive_off_them():
    teacher = _cameras()
    valid = torch.ones(1, 4, dtype=torch.bool)
    at = pose_teacher_terms(_gauge(teacher, 3.0), teacher, valid)
    assert at["loss"] < 1e-5 and at["rot_deg"] < 1e-3 and at["trans_deg"] < 0.05  # fp32 acos near 1
    off = pose_teacher_terms(_cameras(seed=1), teacher, valid)
    assert off["loss"] > 0.1 and off["rot_deg"] > 1.0 and off["trans_deg"] > 5.0


def test_logged_errors_are_the_true_angles():
    teacher = torch.eye(4).repeat(1, 2, 1, 1)
    teacher[0, 1, 0, 3] = 1.0  # view 1 one unit along x
    pred = teacher.clone()
    pred[0, 1, :3, :3] = axis_angle_to_matrix(torch.tensor([0.0, math.radians(10.0), 0.0]))
    pred[0, 1, :3, 3] = torch.tensor([1.0, 1.0, 0.0])  # 45° off in direction
    terms = pose_teacher_terms(pred, teacher, torch.ones(1, 2, dtype=torch.bool))
    assert terms["rot_deg"].item() == pytest.approx(10.0, abs=1e-3)
    assert terms["trans_deg"].item() == pytest.approx(45.0, abs=1e-3)
    expected = math.radians(10.0) + 1 - math.cos(math.radians(45.0))
    assert terms["loss"].item() == pytest.approx(expected, abs=1e-5)
    assert terms["rot_loss"].item() == pytest.approx(math.radians(10.0), abs=1e-5)
    assert terms["trans_loss"].item() == pytest.approx(1 - math.cos(math.radians(45.0)), abs=1e-5)


def test_the_two_parts_sum_to_the_loss_and_carry_their_own_gradients():
    teacher = _cameras()
    valid = torch.tensor([[True, True, False, True]])  # a masked view: parts use the same mask
    pred = _cameras(seed=1).requires_grad_(True)
    terms = pose_teacher_terms(pred, teacher, valid)
    assert torch.allclose(terms["rot_loss"] + terms["trans_loss"], terms["loss"], atol=1e-6)
    (g_rot,) = torch.autograd.grad(terms["rot_loss"], pred, retain_graph=True)
    (g_trans,) = torch.autograd.grad(terms["trans_loss"], pred, retain_graph=True)
    (g_all,) = torch.autograd.grad(terms["loss"], pred)
    assert torch.allclose(g_rot + g_trans, g_all, atol=1e-6)
    # rotation reads only the rotation block; the translation part depends on both (the
    # relative translation is rotated into view a's frame), so only the first is checked
    assert g_rot[..., :3, 3].abs().max() == 0 and g_rot[..., :3, :3].abs().max() > 0
    assert g_trans.abs().max() > 0


def test_the_loss_sums_each_pair_before_the_mean_bit_for_bit():
    """``loss`` is the mean over pairs of (rotation + translation), summed per pair first, as
    before the term returned its parts: runs must stay bit-reproducible. The parts' sum
    rounds differently on these inputs, so computing the loss that way fails here."""
    parts_sum_differs = False
    for v, seed in [(4, 2), (5, 3), (6, 1)]:
        pred, teacher, valid = _cameras(v, seed), _cameras(v), torch.ones(1, v, dtype=torch.bool)
        per_pair = []
        for a, b in torch.triu_indices(v, v, offset=1).T.tolist():
            # a lone pair's parts are exactly its angle and its 1 - cos
            pair = pose_teacher_terms(pred[:, [a, b]], teacher[:, [a, b]], valid[:, [a, b]])
            per_pair.append(pair["rot_loss"] + pair["trans_loss"])
        terms = pose_teacher_terms(pred, teacher, valid)
        assert torch.equal(terms["loss"], torch.stack(per_pair).sum() / len(per_pair))
        parts_sum_differs |= not torch.equal(terms["rot_loss"] + terms["trans_loss"], terms["loss"])
    assert parts_sum_differs  # else these inputs could not tell the two ways apart


def test_pairs_the_teacher_failed_on_contribute_nothing():
    teacher, pred = _cameras(), _cameras(seed=1)
    valid = torch.tensor([[True, True, False, True]])
    wild = pred.clone()
    wild[0, 2] = _cameras(seed=7)[0, 2] * 5  # view 2 anywhere: no effect
    wild[0, 2, 3] = torch.tensor([0.0, 0, 0, 1])
    a = pose_teacher_terms(pred, teacher, valid)
    b = pose_teacher_terms(wild, teacher, valid)
    torch.testing.assert_close(a["loss"], b["loss"])
    pred.requires_grad_(True)
    pose_teacher_terms(pred, teacher, valid)["loss"].backward()
    assert pred.grad[0, 2].abs().sum() == 0 and pred.grad[0, 0].abs().sum() > 0
    none = pose_teacher_terms(pred, teacher, torch.zeros(1, 4, dtype=torch.bool))
    assert none["loss"] == 0 and math.isnan(none["rot_deg"])


def test_a_view_the_teacher_did_not_solve_may_hold_nan():
    teacher, pred = _cameras(), _cameras(seed=1).requires_grad_(True)
    valid = torch.tensor([[True, True, False, True]])
    clean = pose_teacher_terms(pred, teacher, valid)
    teacher[0, 2] = torch.nan
    dirty = pose_teacher_terms(pred, teacher, valid)
    for key in ("loss", "rot_deg", "trans_deg"):
        torch.testing.assert_close(dirty[key], clean[key])
    dirty["loss"].backward()
    assert torch.isfinite(pred.grad).all() and pred.grad[0, 2].abs().sum() == 0
    # a non-finite camera marked valid is left out too, not a NaN loss
    nan_valid = pose_teacher_terms(pred.detach(), teacher, torch.ones(1, 4, dtype=torch.bool))
    torch.testing.assert_close(nan_valid["loss"], clean["loss"])


def test_a_translation_near_zero_gets_a_bounded_gradient_towards_the_teacher():
    teacher = torch.eye(4).repeat(1, 2, 1, 1)
    teacher[0, 1, :3, 3] = torch.tensor([0.0, 0.0, 1.0])
    pred = torch.eye(4).repeat(1, 2, 1, 1)
    pred[0, 1, :3, 3] = 1e-6
    pred.requires_grad_(True)
    pose_teacher_terms(pred, teacher, torch.ones(1, 2, dtype=torch.bool))["loss"].backward()
    g = pred.grad[0, 1, :3, 3]
    assert torch.isfinite(g).all() and g.norm() < 1e3
    assert g[2] < 0 and g[2].abs() > 10 * g[:2].abs().max()  # descent moves t along +z


def _batch(v: int = 4) -> dict:
    torch.manual_seed(0)
    teacher = _cameras(v)
    return {
        "image": torch.rand(1, v, 3, 32, 32),
        "teacher_c2w": teacher,
        "teacher_valid": torch.ones(1, v, dtype=torch.bool),
    }


@pytest.mark.parametrize("kind", ["erayzer", "nas3r"])
def test_weight_zero_leaves_the_loss_as_before(kind):
    batch = _batch()
    model = build_explicit(kind)
    assert model.cfg.pose_teacher_weight == 0.0
    out = model(batch, [0, 2], [1, 3])
    terms = model.loss(out, batch, None)
    before = photometric_loss(out.render, gather_views(batch["image"], out.target_index))
    assert terms.keys() == before.keys()
    for key in terms:
        assert torch.equal(terms[key], before[key])


@pytest.mark.parametrize("kind", ["erayzer", "nas3r"])
def test_teacher_term_reaches_the_pose_head(kind):
    batch = _batch()
    model = build_explicit(kind, pose_teacher_weight=0.5)
    out = model(batch, [0, 2], [1, 3])
    terms = model.loss(out, batch, None)
    assert terms["teacher_rot_deg"] > 0 and terms["teacher_trans_deg"] > 0
    assert_aux_term_reaches_poses(model, batch, out, terms, "teacher", 0.5)


def test_missing_teacher_is_a_clear_error():
    model = build_explicit("erayzer", pose_teacher_weight=1.0)
    batch = {"image": torch.rand(1, 4, 3, 32, 32)}
    out = model(batch, [0, 2], [1, 3])
    with pytest.raises(ValueError, match=r"data\.pose_teacher"):
        model.loss(out, batch, None)


@pytest.mark.parametrize("config", [ERayZerConfig, NAS3RConfig])
@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_weight_must_be_finite_and_not_negative(config, bad):
    with pytest.raises(ValueError, match=r"model\.pose_teacher_weight must be a finite number"):
        config(pose_teacher_weight=bad)


@pytest.mark.parametrize("degrees", [180.0, 179.99, 179.5, 170.0])
def test_a_rotation_error_near_180_degrees_gets_a_finite_gradient(degrees):
    """asin's derivative is infinite at a 180° error (fp32 rounds to it within ~0.04°): the
    backward pass made NaN there (seen once in a pose-only training run of E-RayZer)."""
    teacher = torch.eye(4).repeat(1, 2, 1, 1)
    teacher[0, 1, :3, 3] = torch.tensor([1.0, 0.0, 0.0])
    pred = teacher.clone()
    pred[0, 1, :3, :3] = axis_angle_to_matrix(torch.tensor([0.0, math.radians(degrees), 0.0]))
    pred.requires_grad_(True)
    terms = pose_teacher_terms(pred, teacher, torch.ones(1, 2, dtype=torch.bool))
    assert terms["rot_deg"].item() == pytest.approx(degrees, abs=0.05)  # the value is exact
    terms["loss"].backward()
    assert torch.isfinite(pred.grad).all()
    if degrees < 179.8:  # below the clamp the rotation still pulls towards the teacher
        assert pred.grad[0, 1, :3, :3].abs().sum() > 0
