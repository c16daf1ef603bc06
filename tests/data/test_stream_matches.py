"""The training stream's opt-in epipolar matches (``data.epipolar_matches``)."""

from __future__ import annotations

import pytest
import torch

from rayzer.config import load_config
from rayzer.data.stream import BatchLayout, TrainStream
from rayzer.geometry.epipolar import fundamental_matrix, relative_pose, sampson_error

pytest.importorskip("cv2")


def _stream(*overrides: str) -> TrainStream:
    cfg = load_config(
        "tiny-cpu",
        [
            "data.image_size=32",
            "data.frames_per_clip=24",
            "data.num_input_views=2",
            "data.num_target_views=2",
            "data.span_min=4",
            "data.span_start_max=6",
            "data.span_end_max=6",
            *overrides,
        ],
    )
    return TrainStream(cfg.data, 0, BatchLayout(4))


def test_off_by_default_and_the_rest_of_the_sample_unchanged():
    plain = _stream().micro_batch(0)
    assert not any(k.startswith("epipolar") for k in plain)
    with_matches = _stream("data.epipolar_matches=16", "data.epipolar_match_scale=4").micro_batch(0)
    for key, value in plain.items():
        assert torch.equal(with_matches[key], value), key


@pytest.mark.parametrize("flip", ["false", "true"])
def test_matches_stack_and_lie_on_the_true_epipolar_lines(flip):
    batch = _stream(
        "data.epipolar_matches=16", "data.epipolar_match_scale=4", f"data.flip_augment={flip}"
    ).micro_batch(0)
    assert batch["epipolar_pairs"].shape == (4, 6, 2)
    assert batch["epipolar_uv"].shape == (4, 6, 16, 4)
    assert batch["epipolar_valid"].shape == (4, 6, 16)
    valid = batch["epipolar_valid"]
    assert valid.sum() >= 16
    pairs = batch["epipolar_pairs"]
    errors = []
    for s in range(4):
        for p in range(6):
            ok = valid[s, p]
            if not ok.any():
                continue
            a, b = pairs[s, p].tolist()
            c2w, K = batch["c2w"][s].double(), batch["K"][s].double()
            R, t = relative_pose(c2w[a], c2w[b])
            uv = batch["epipolar_uv"][s, p][ok].double()
            F = fundamental_matrix(R, t, K[a], K[b], eps=0.0)
            errors.append(sampson_error(uv[:, :2], uv[:, 2:], F))
    # mirrored samples are matched on mirrored images: the matches follow the mirrored cameras
    assert torch.cat(errors).sqrt().median() < 0.5  # pixels at 32 px
