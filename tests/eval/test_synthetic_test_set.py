"""The fixed synthetic test set: deterministic, held out, interpolating, and a real pose test."""

from __future__ import annotations

import argparse
import dataclasses

import pytest
import torch

from rayzer.bench.quality import build_test_sets
from rayzer.config import load_config
from rayzer.data.clip_sources import synth_config
from rayzer.data.synthetic import TEST_SEEDS
from rayzer.eval.synthetic_test_set import gt_rotation_stats, synthetic_test_sets


def default_data(**changes):
    """tiny-cpu's data config at 16 px (camera paths do not depend on the resolution)."""
    data = load_config("tiny-cpu").data
    return dataclasses.replace(data, image_size=16, **changes)


def bench_args(**kw) -> argparse.Namespace:
    base = {"test_scenes": 32, "span": None, "protocol_seed": 0, "min_gt_rotation": None}
    return argparse.Namespace(**{**base, **kw})


def test_builder_is_deterministic_held_out_and_interpolating():
    synth = synth_config(default_data())
    a = synthetic_test_sets(synth, 3, 4, 4, seed=0)
    b = synthetic_test_sets(synth, 3, 4, 4, seed=0)
    for protocol in ("even", "random"):
        assert len(a[protocol]) == 3
        for sa, sb in zip(a[protocol], b[protocol], strict=True):
            assert sa.name == sb.name
            for key in ("images", "input_index", "target_index", "frame_index", "c2w", "K"):
                assert torch.equal(getattr(sa, key), getattr(sb, key)), key
            assert int(sa.name.rsplit("_", 1)[1]) in TEST_SEEDS
            frames = sa.frame_index.tolist()
            assert frames == sorted(frames) and len(set(frames)) == 8
            assert {0, 7} <= set(sa.input_index.tolist())  # both window ends are inputs
            assert len(sa.target_index) == 4 and sa.images.shape == (8, 3, 16, 16)
    # even: the whole 24-frame clip, evenly spaced; random: a different (seeded) draw
    assert a["even"][0].frame_index.tolist() == [0, 3, 7, 10, 13, 16, 20, 23]
    assert a["even"][0].target_index.tolist() == [1, 3, 4, 6]
    c = synthetic_test_sets(synth, 3, 4, 4, seed=1, protocols=("random",))
    assert any(
        not torch.equal(x.frame_index, y.frame_index)
        for x, y in zip(a["random"], c["random"], strict=True)
    )
    # images of the same frame agree between protocols (rendered once per scene)
    ev, rd = a["even"][0], a["random"][0]
    common = set(ev.frame_index.tolist()) & set(rd.frame_index.tolist())
    for f in common:
        i = ev.frame_index.tolist().index(f)
        j = rd.frame_index.tolist().index(f)
        assert torch.equal(ev.images[i], rd.images[j])


def test_default_set_is_a_real_pose_test():
    """The default orbit test set (32 scenes, tiny-cpu views and span) has a median GT
    relative rotation of at least 15° between the views of a sample, in both protocols."""
    sets, info = build_test_sets(default_data(), bench_args())
    for protocol in ("even", "random"):
        stats = gt_rotation_stats(sets[protocol])
        assert stats["median_deg"] >= 15.0
        assert info["protocols"][protocol]["gt_rel_rot_deg_median"] == stats["median_deg"]
    assert info["min_gt_rotation_deg"] == 15.0 and info["span"] == 24


def test_a_set_without_rotation_fails_loudly():
    # walk barely rotates: enforcing the orbit minimum fails; by default it is reported only
    with pytest.raises(ValueError, match="not a test of pose learning"):
        build_test_sets(default_data(family="walk"), bench_args(test_scenes=4, min_gt_rotation=15))
    _, info = build_test_sets(default_data(family="walk"), bench_args(test_scenes=4))
    assert info["protocols"]["even"]["gt_rel_rot_deg_median"] < 15.0
    # shrinking the orbit window below the bar is refused
    with pytest.raises(ValueError, match="not a test of pose learning"):
        build_test_sets(default_data(), bench_args(test_scenes=4, span=8))


def test_bad_arguments():
    synth = synth_config(default_data())
    with pytest.raises(ValueError, match="span"):
        synthetic_test_sets(synth, 2, 4, 4, span=30)
    with pytest.raises(ValueError, match="protocol"):
        synthetic_test_sets(synth, 2, 4, 4, protocols=("odd",))
    with pytest.raises(ValueError, match="num_scenes"):
        synthetic_test_sets(synth, 0, 4, 4)
