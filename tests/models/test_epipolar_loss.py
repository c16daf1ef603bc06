"""The opt-in epipolar loss term of the explicit-3D models (issue 18, our addition)."""

import math

import pytest
import torch

from _tiny import assert_aux_term_reaches_poses, build_explicit
from rayzer.data.matches import match_views
from rayzer.data.synthetic import SynthConfig, render_clip
from rayzer.geometry.intrinsics import normalize_intrinsics
from rayzer.models.epipolar_loss import batch_epipolar_loss
from rayzer.models.erayzer import ERayZerConfig
from rayzer.models.losses import photometric_loss
from rayzer.models.nas3r import NAS3RConfig
from rayzer.models.views import gather_views

pytest.importorskip("cv2")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def sample():
    """4 views (frames 0, 2, 4, 6) of an orbit clip at 32 px, matched on a 4× render."""
    frames = [0, 2, 4, 6]
    clip = render_clip(5, SynthConfig(height=32, width=32), frames=frames)
    big = render_clip(5, SynthConfig(height=128, width=128), frames=frames)
    found = match_views(big.images, max_matches=32, out_size=(32, 32))
    batch = {"image": clip.images[None]} | {k: v[None] for k, v in found.as_batch_entries().items()}
    return batch, clip


def test_matches_are_padded_pairs_and_mostly_on_the_true_epipolar_lines(sample):
    batch, clip = sample
    assert batch["epipolar_pairs"].shape == (1, 6, 2)
    assert batch["epipolar_uv"].shape == (1, 6, 32, 4)
    assert batch["epipolar_valid"].sum() >= 8  # at least one pair fitted
    K_norm = normalize_intrinsics(clip.K[None], 32, 32)
    at_truth = batch_epipolar_loss(batch, clip.c2w[None], K_norm)
    turned = clip.c2w.clone()
    turned[1:, :3, :3] = turned[1:, :3, :3].flip(-1)  # nonsense rotations
    assert at_truth < 0.5 * batch_epipolar_loss(batch, turned[None], K_norm)


@pytest.mark.parametrize("kind", ["erayzer", "nas3r"])
def test_weight_zero_leaves_the_loss_as_before(kind, sample):
    batch, _ = sample
    model = build_explicit(kind)
    assert model.cfg.epipolar_loss_weight == 0.0
    out = model(batch, [0, 2], [1, 3])
    terms = model.loss(out, batch, None)
    before = photometric_loss(out.render, gather_views(batch["image"], out.target_index))
    assert terms.keys() == before.keys() and "epipolar" not in terms
    for key in terms:
        assert torch.equal(terms[key], before[key])


@pytest.mark.parametrize("kind", ["erayzer", "nas3r"])
def test_epipolar_term_reaches_the_pose_head(kind, sample):
    """From the heads' start (NAS3R: exactly the identity, t = 0) the term alone moves them."""
    batch, _ = sample
    model = build_explicit(kind, epipolar_loss_weight=2.0)
    out = model(batch, [0, 2], [1, 3])
    terms = model.loss(out, batch, None)
    assert_aux_term_reaches_poses(model, batch, out, terms, "epipolar", 2.0)


def test_missing_matches_are_a_clear_error():
    model = build_explicit("erayzer", epipolar_loss_weight=1.0)
    batch = {"image": torch.rand(1, 4, 3, 32, 32)}
    out = model(batch, [0, 2], [1, 3])
    with pytest.raises(ValueError, match=r"data\.epipolar_matches > 0"):
        model.loss(out, batch, None)


@pytest.mark.parametrize("config", [ERayZerConfig, NAS3RConfig])
@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_weight_must_be_finite_and_not_negative(config, bad):
    with pytest.raises(ValueError, match=r"model\.epipolar_loss_weight must be a finite number"):
        config(epipolar_loss_weight=bad)
