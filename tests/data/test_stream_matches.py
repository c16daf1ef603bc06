"""The training stream's opt-in epipolar matches (``data.epipolar_matches``)."""

from __future__ import annotations

import sys

import pytest
import torch

from _tiny import SMALL_STREAM
from rayzer.config import load_config
from rayzer.data.stream import BatchLayout, TrainStream
from rayzer.geometry.epipolar import fundamental_matrix, relative_pose, sampson_error

pytest.importorskip("cv2")


def _stream(*overrides: str) -> TrainStream:
    cfg = load_config(
        "tiny-cpu",
        [*SMALL_STREAM, *overrides],
    )
    return TrainStream(cfg.data, 0, BatchLayout(4))


def test_off_by_default_and_the_rest_of_the_sample_unchanged():
    plain = _stream().micro_batch(0)
    assert not any(k.startswith("epipolar") for k in plain)
    with_matches = _stream("data.epipolar_matches=16", "data.epipolar_match_scale=4").micro_batch(0)
    for key, value in plain.items():
        assert torch.equal(with_matches[key], value), key


def _median_error(batch: dict, s: int, c2w: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Median distance (pixels) of sample ``s``'s valid matches from the epipolar lines of
    cameras ``c2w`` (V, 4, 4), ``K`` (V, 4)."""
    errors = []
    for p, (a, b) in enumerate(batch["epipolar_pairs"][s].tolist()):
        ok = batch["epipolar_valid"][s, p]
        if ok.any():
            R, t = relative_pose(c2w[a].double(), c2w[b].double())
            uv = batch["epipolar_uv"][s, p][ok].double()
            F = fundamental_matrix(R, t, K[a].double(), K[b].double(), eps=0.0)
            errors.append(sampson_error(uv[:, :2], uv[:, 2:], F))
    return torch.cat(errors).sqrt().median()


@pytest.mark.parametrize("size", [None, "[24,40]"])
def test_matches_stack_and_lie_on_the_true_epipolar_lines(size):
    """Also at a non-square data.image_size: the coordinates refer to the H × W sample (its
    (H, W) scaled from the 4 × larger render the views are matched on)."""
    over = [f"data.image_size={size}"] if size else []
    batch = _stream("data.epipolar_matches=16", "data.epipolar_match_scale=4", *over).micro_batch(0)
    if size:
        assert batch["image"].shape[-2:] == (24, 40)
    assert batch["epipolar_pairs"].shape == (4, 6, 2)
    assert batch["epipolar_uv"].shape == (4, 6, 16, 4)
    assert batch["epipolar_valid"].shape == (4, 6, 16)
    assert batch["epipolar_valid"].sum() >= 16
    for s in range(4):
        assert _median_error(batch, s, batch["c2w"][s], batch["K"][s]) < 0.5  # px at 32 px


def test_a_non_square_sample_is_matched_on_a_render_of_its_aspect(monkeypatch):
    """The views are matched on a data.epipolar_match_scale × larger load of the sample's own
    H × W (24 × 40 → 96 × 160), not a square of its short side: a square one scaled back to
    H × W puts the matches off in v; on orbit clips, whose epipolar lines are near-horizontal,
    the epipolar test above does not see that."""
    from rayzer.data.clip_sources import SyntheticClips

    sizes = []
    load = SyntheticClips.load

    def spy(self, clip, frames, size=None):
        sizes.append(size)
        return load(self, clip, frames, size)

    monkeypatch.setattr(SyntheticClips, "load", spy)
    over = ("data.epipolar_matches=16", "data.epipolar_match_scale=4", "data.image_size=[24,40]")
    _stream(*over).sample(0)
    assert [tuple(s) for s in sizes] == [(24, 40), (96, 160)]


def test_mirrored_samples_are_matched_on_mirrored_images():
    """Under data.flip_augment the matches follow the mirrored cameras, not the original ones
    (orbit clips keep horizontal epipolar lines horizontal when mirrored, so the original
    cameras still fit the mirrored matches loosely: compare the two)."""
    over = ("data.epipolar_matches=16", "data.epipolar_match_scale=4")
    plain = _stream(*over).micro_batch(0)
    mirrored = _stream(*over, "data.flip_augment=true").micro_batch(0)
    flipped = [s for s in range(4) if torch.equal(mirrored["image"][s], plain["image"][s].flip(-1))]
    assert flipped, "no sample of the micro-batch was mirrored: pick another one"
    for s in flipped:
        right = _median_error(mirrored, s, mirrored["c2w"][s], mirrored["K"][s])
        wrong = _median_error(mirrored, s, plain["c2w"][s], plain["K"][s])
        assert right < 0.5 * wrong, (s, right, wrong)


def test_matches_without_opencv_are_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 raises ImportError
    with pytest.raises(ValueError, match=r"data\.epipolar_matches=16 needs OpenCV: pip install"):
        _stream("data.epipolar_matches=16")


@pytest.mark.parametrize("centre", [(30.0, 40.0), (61.3, 25.7), (45.6, 70.25)])
def test_keypoints_sit_where_the_texture_is(centre):
    """A blob centred at a known continuous point (pixel centres at +0.5) is found there, to
    0.05 px: no 0.25 px shift from OpenCV SIFT's default 2x upscale (opencv#23123)."""
    import numpy as np

    from rayzer.data.matches import _keypoints

    u, v = centre
    ys, xs = np.mgrid[0:96, 0:96] + 0.5
    blob = np.exp(-((xs - u) ** 2 + (ys - v) ** 2) / (2 * 3.0**2))
    points, _ = _keypoints((blob * 255 + 0.5).astype(np.uint8), contrast_threshold=0.02)
    nearest = points[np.linalg.norm(points - [u, v], axis=1).argmin()]
    np.testing.assert_allclose(nearest, [u, v], atol=0.05)
