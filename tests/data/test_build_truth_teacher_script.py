"""``experiments/issue18_explicit/build_truth_teacher.py``: the ground-truth pose-teacher cache
of the supervised-ceiling probe (experiments/issue18_explicit/README.md) is accepted by the
training stream unchanged, and its cameras are the samples' own (the term is 0 on them)."""

from __future__ import annotations

import pytest
import torch

from _scripts import ROOT, load_script
from _tiny import SMALL_STREAM
from rayzer.config import load_config
from rayzer.data.clip_sources import SyntheticClips, synth_config
from rayzer.data.stream import BatchLayout, TrainStream
from rayzer.models.pose_teacher_loss import pose_teacher_terms


@pytest.fixture(scope="module")
def script():
    with pytest.MonkeyPatch.context() as mp:  # it imports its sibling build_pose_teacher.py
        mp.syspath_prepend(str(ROOT / "experiments/issue18_explicit"))
        yield load_script("experiments/issue18_explicit/build_truth_teacher.py")


def test_the_truth_cache_feeds_the_stream_the_samples_own_relative_poses(script, tmp_path):
    overrides = ["data.family=orbit", *SMALL_STREAM, "data.clip_pool=2"]
    cfg = load_config("tiny-cpu", overrides).data
    teacher = script.truth_teacher(SyntheticClips(synth_config(cfg)), range(2))
    assert teacher.meta["source"].startswith("ground truth") and teacher.registered.all()
    path = tmp_path / "truth.pt"
    teacher.save(path)
    cfg = load_config("tiny-cpu", [*overrides, f"data.pose_teacher={path}"]).data
    batch = TrainStream(cfg, 0, BatchLayout(4)).micro_batch(0)
    assert batch["teacher_valid"].all()
    # the stream's c2w are rescaled (normalize_scene_scale), the teacher's are raw: the term is
    # scale-free, so it must vanish on the truth, and not on identity cameras
    exact = pose_teacher_terms(batch["c2w"], batch["teacher_c2w"], batch["teacher_valid"])
    assert exact["rot_deg"] < 0.05 and exact["trans_deg"] < 0.05
    eye = torch.eye(4).expand_as(batch["c2w"])
    assert pose_teacher_terms(eye, batch["teacher_c2w"], batch["teacher_valid"])["rot_deg"] > 1.0
