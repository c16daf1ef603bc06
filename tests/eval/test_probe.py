"""Pose probing: an MLP on frozen camera tokens recovers poses that the tokens encode, not
poses they do not, deterministically; and the token collection uses the frozen estimator."""

from __future__ import annotations

import pytest
import torch

from rayzer.eval.probe import (
    ProbeConfig,
    ProbeSample,
    probe_features,
    probe_targets,
    run_pose_probe,
)
from rayzer.geometry import (
    axis_angle_to_matrix,
    make_c2w,
    matrix_to_rot6d,
    normalize_scene_scale,
    rot6d_to_matrix,
)

V, D = 5, 24
CFG = ProbeConfig(steps=400)


def random_cameras(gen: torch.Generator) -> torch.Tensor:
    """V cameras with rotations up to ~70° apart and random centres."""
    axis_angle = torch.randn(V, 3, generator=gen, dtype=torch.float64) * 0.6
    return make_c2w(
        axis_angle_to_matrix(axis_angle), torch.randn(V, 3, generator=gen, dtype=torch.float64)
    )


def oracle_tokens(c2w: torch.Tensor) -> torch.Tensor:
    """A fake camera estimator whose token i holds view i's true pose relative to the canonical
    view (6-D rotation, normalised translation), zero-padded to D."""
    rel, _ = normalize_scene_scale(c2w, V // 2)
    pose = torch.cat((matrix_to_rot6d(rel[:, :3, :3]), rel[:, :3, 3]), -1)
    return torch.cat((pose, torch.zeros(V, D - 9, dtype=pose.dtype)), -1).float()


def samples(n: int, seed: int, oracle: bool) -> list[ProbeSample]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        c2w = random_cameras(gen)
        tokens = oracle_tokens(c2w) if oracle else torch.randn(V, D, generator=gen)
        out.append(ProbeSample(tokens, c2w))
    return out


def test_probe_recovers_poses_from_oracle_tokens():
    report = run_pose_probe(samples(60, 0, True), samples(20, 1, True), CFG)
    assert report["probe"]["R_at"]["@10"] >= 0.95
    assert report["probe"]["t_at"]["@0.3"] >= 0.9
    # The constant probe (training mean) is the floor, and far below.
    assert report["constant_baseline"]["R_at"]["@10"] < 0.5
    assert report["num_train_views"] == 60 * (V - 1) and report["num_test_views"] == 20 * (V - 1)


def test_probe_learns_nothing_from_random_tokens():
    report = run_pose_probe(samples(60, 0, False), samples(20, 1, False), CFG)
    assert report["probe"]["R_at"]["@10"] < 0.2
    assert report["probe"]["rot_err_deg_median"] > 20.0


def test_probe_is_deterministic():
    a = run_pose_probe(samples(20, 0, False), samples(5, 1, False), ProbeConfig(steps=50))
    b = run_pose_probe(samples(20, 0, False), samples(5, 1, False), ProbeConfig(steps=50))
    assert a == b


def test_features_and_targets_layout():
    gen = torch.Generator().manual_seed(0)
    c2w = random_cameras(gen)
    tokens = torch.arange(V, dtype=torch.float32)[:, None].expand(V, 3)
    feats = probe_features(tokens)
    assert feats.shape == (V - 1, 6)
    assert feats[:, 0].tolist() == [0, 1, 3, 4] and (feats[:, 3:] == V // 2).all()
    target = probe_targets(c2w)
    rel, _ = normalize_scene_scale(c2w, V // 2)
    assert torch.allclose(rot6d_to_matrix(target[:, :6]), rel[[0, 1, 3, 4], :3, :3], atol=1e-9)
    assert torch.allclose(target[:, 6:], rel[[0, 1, 3, 4], :3, 3])


def test_bad_sample_is_refused():
    with pytest.raises(ValueError, match="tokens must be"):
        ProbeSample(torch.zeros(3, 4), torch.eye(4).expand(2, 4, 4))
