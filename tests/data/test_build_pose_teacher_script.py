"""``experiments/issue18_explicit/build_pose_teacher.py``'s shard merge (the cache and JSON
behind experiments/issue18_explicit/README.md's pose-teacher table)."""

from __future__ import annotations

import pytest
import torch

from _scripts import load_script
from rayzer.data.pose_teacher import PoseTeacher


@pytest.fixture(scope="module")
def script():
    return load_script("experiments/issue18_explicit/build_pose_teacher.py")


def _shard(ids: list[int], per_clip: float, **made) -> PoseTeacher:
    n = len(ids)
    meta = {"family": "walk", "cpu_s_per_clip": per_clip, "cpu_s_total": per_clip * n + 1.0}
    meta |= {"size": 256, "max_pair_gap": None} | made
    registered = torch.ones(n, 24, dtype=torch.bool)
    return PoseTeacher(torch.tensor(ids), torch.eye(4).repeat(n, 24, 1, 1), registered, meta)


def test_merged_shards_pool_their_cpu_seconds(script):
    merged = script.merge_shards([_shard([0, 1], 10.0), _shard([2, 3, 4, 5], 16.0)])
    assert merged.clip_ids.tolist() == [0, 1, 2, 3, 4, 5]
    assert merged.meta["cpu_s_per_clip"] == pytest.approx(14.0)
    assert merged.meta["cpu_s_total"] == pytest.approx(21.0 + 65.0)  # not the first shard's


def test_shards_made_with_other_settings_are_refused(script):
    """The merged cache keeps the first shard's meta: a shard matched at another gap (or size)
    would be recorded as made like the first."""
    with pytest.raises(ValueError, match=r"shard 1 .*max_pair_gap 1 \(shard 0: None\)"):
        script.merge_shards([_shard([0, 1], 10.0), _shard([2, 3], 10.0, max_pair_gap=1)])
    with pytest.raises(ValueError, match="size 128"):
        script.merge_shards([_shard([0], 1.0), _shard([1], 1.0), _shard([2], 1.0, size=128)])
