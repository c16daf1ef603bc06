"""The label-free pose teacher's cache and its entries in the training stream
(``data.pose_teacher``, ``data.clip_pool``)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from _tiny import SMALL_STREAM
from rayzer.config import load_config
from rayzer.data.clip_sources import SyntheticClips, synth_config
from rayzer.data.pose_teacher import PoseTeacher
from rayzer.data.stream import BatchLayout, TrainStream, sample_generator
from rayzer.data.synthetic import SynthConfig, render_clip


def _overrides(*extra: str) -> list[str]:
    return ["data.family=walk", *SMALL_STREAM, *extra]


def _stream(*extra: str) -> TrainStream:
    return TrainStream(load_config("tiny-cpu", _overrides(*extra)).data, 0, BatchLayout(4))


def _teacher(clip_ids, frames: int = 24, family: str = "walk") -> PoseTeacher:
    n = len(clip_ids)
    c2w = torch.eye(4).repeat(n, frames, 1, 1)
    c2w[..., 0, 3] = torch.arange(frames, dtype=torch.float32)  # frame k at x = k
    c2w[..., 1, 3] = torch.tensor(clip_ids, dtype=torch.float32)[:, None]  # clip id at y
    registered = torch.ones(n, frames, dtype=torch.bool)
    registered[:, 3] = False
    return PoseTeacher(torch.tensor(clip_ids), c2w, registered, {"family": family})


def test_cache_round_trip_and_lookup(tmp_path):
    path = tmp_path / "t.pt"
    _teacher([5, 9]).save(path)
    loaded = PoseTeacher.load(path)
    c2w, valid = loaded.lookup(9, torch.tensor([1, 3, 7]))
    assert c2w[:, 0, 3].tolist() == [1.0, 3.0, 7.0] and c2w[:, 1, 3].tolist() == [9.0] * 3
    assert valid.tolist() == [True, False, True]
    c2w, valid = loaded.lookup(4, torch.tensor([0, 1]))  # not in the pool
    assert not valid.any() and torch.equal(c2w, torch.eye(4).repeat(2, 1, 1))


def test_bad_cache_files_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        PoseTeacher.load(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_text("not a cache")
    with pytest.raises(ValueError, match=r"junk\.pt is not a pose-teacher cache"):
        PoseTeacher.load(junk)
    torch.save({"clip_ids": torch.zeros(1)}, tmp_path / "part.pt")
    with pytest.raises(ValueError, match=r"part\.pt lacks"):
        PoseTeacher.load(tmp_path / "part.pt")


def _raw(**changes) -> dict:
    """The fields of a good one-clip cache file, some replaced (unchecked: saved as they are)."""
    good = _teacher([5])
    return {"clip_ids": good.clip_ids, "c2w": good.c2w, "registered": good.registered} | changes


_TWO_FIVES = {
    "clip_ids": torch.tensor([5, 5]),
    "c2w": torch.eye(4).repeat(2, 24, 1, 1),
    "registered": torch.ones(2, 24, dtype=torch.bool),
}


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (torch.zeros(3), r"bad\.pt is not a pose-teacher cache \(a Tensor, not a dict"),
        (_raw(clip_ids=[5]), r"bad\.pt is not a pose-teacher cache \(\['clip_ids'\] of the wrong"),
        (_raw(meta=[1]), r"bad\.pt is not a pose-teacher cache \(meta of the wrong type"),
        (_TWO_FIVES, r"clip ids repeat: \[5\] \(in .*bad\.pt\)"),
        (_raw(clip_ids=torch.tensor([[5]])), r"clip_ids must be 1-D, got \(1, 1\) \(in .*bad"),
        (_raw(c2w=torch.full((1, 24, 4, 4), torch.nan)), r"non-finite cameras .*bad\.pt"),
    ],
    ids=["not-a-dict", "list-ids", "list-meta", "repeated-ids", "2d-ids", "nan-cameras"],
)
def test_malformed_caches_are_refused_with_the_file_named(tmp_path, payload, error):
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=error):
        PoseTeacher.load(tmp_path / "bad.pt")


def test_unregistered_frames_may_hold_anything(tmp_path):
    c2w = torch.eye(4).repeat(1, 24, 1, 1)
    c2w[0, 3] = torch.nan  # frame 3 is not registered
    registered = torch.ones(1, 24, dtype=torch.bool)
    registered[0, 3] = False
    PoseTeacher(torch.tensor([5]), c2w, registered).save(tmp_path / "t.pt")
    _, valid = PoseTeacher.load(tmp_path / "t.pt").lookup(5, torch.tensor([2, 3]))
    assert valid.tolist() == [True, False]


def test_off_by_default_and_the_rest_of_the_sample_unchanged(tmp_path):
    plain = _stream("data.clip_pool=3").micro_batch(0)
    assert "teacher_c2w" not in plain
    _teacher([0, 1, 2]).save(tmp_path / "t.pt")
    taught = _stream("data.clip_pool=3", f"data.pose_teacher={tmp_path / 't.pt'}").micro_batch(0)
    for key, value in plain.items():
        assert torch.equal(taught[key], value), key
    assert taught["teacher_c2w"].shape == (4, 4, 4, 4)
    # the views' frames and clips come back
    torch.testing.assert_close(taught["teacher_c2w"][..., 0, 3], plain["index"].float())
    torch.testing.assert_close(
        taught["teacher_c2w"][..., 1, 3], plain["clip_id"][:, None].float().expand(-1, 4)
    )
    assert torch.equal(taught["teacher_valid"], plain["index"] != 3)


def test_a_cache_that_lacks_clips_of_the_pool_is_refused(tmp_path):
    """Samples of the clips it lacks would carry no teacher, silently (a stale cache, or a
    forgotten data.clip_pool: 32 cached clips of a million)."""
    _teacher([0, 2, 5]).save(tmp_path / "t.pt")
    with pytest.raises(ValueError, match=r"t\.pt lacks 1 of the 3 clips .*\(clip ids \[1\]\)"):
        _stream("data.clip_pool=3", f"data.pose_teacher={tmp_path / 't.pt'}")
    with pytest.raises(ValueError, match=r"t\.pt holds 3 clips, the stream draws from 1000000"):
        _stream(f"data.pose_teacher={tmp_path / 't.pt'}")
    _stream("data.clip_pool=1", f"data.pose_teacher={tmp_path / 't.pt'}")  # clip 0: held


def test_a_cache_is_refused_for_a_mix_of_sources(tmp_path):
    """Clip ids are per source (a scene folder's scene 0 and synthetic seed 0 share id 0)."""
    _teacher([0, 1, 2]).save(tmp_path / "t.pt")
    cfg = load_config("tiny-cpu", _overrides(f"data.pose_teacher={tmp_path / 't.pt'}")).data
    cfg = dataclasses.replace(cfg, source="synthetic, synthetic")  # as a scene folder would be
    with pytest.raises(ValueError, match="one source, keyed by clip id; got 2"):
        TrainStream(cfg, 0, BatchLayout(4), sources=[SyntheticClips(synth_config(cfg))] * 2)


def test_clip_pool_draws_only_the_first_clips():
    stream = _stream("data.clip_pool=3")
    ids = torch.cat([stream.micro_batch(i)["clip_id"] for i in range(6)])
    assert set(ids.tolist()) <= {0, 1, 2} and len(set(ids.tolist())) > 1
    with pytest.raises(ValueError, match=r"data\.clip_pool must be >= 0"):
        _stream("data.clip_pool=-1")


def test_a_cache_of_another_family_or_length_is_refused(tmp_path):
    _teacher([1], family="orbit").save(tmp_path / "o.pt")
    with pytest.raises(ValueError, match="'orbit' family"):
        _stream(f"data.pose_teacher={tmp_path / 'o.pt'}")
    _teacher([1], frames=12).save(tmp_path / "s.pt")
    with pytest.raises(ValueError, match="12 frames per clip"):
        _stream(f"data.pose_teacher={tmp_path / 's.pt'}")


def test_a_teacher_weight_without_a_cache_is_refused_with_the_config():
    with pytest.raises(ValueError, match=r"model\.pose_teacher_weight=0\.5 needs"):
        load_config("erayzer-tiny-cpu", ["model.pose_teacher_weight=0.5"])


def test_the_teacher_recovers_a_walk_clips_relative_poses_from_images_alone():
    """Frames 0, 4, …, 20 of a walk clip at 128 px, focal prior 1.25 (the truth is ~1.04)."""
    pytest.importorskip("cv2")
    pytest.importorskip("scipy")
    clip = render_clip(
        1, SynthConfig(family="walk", frames=24, height=128, width=128), range(0, 24, 4)
    )
    from rayzer.refine.teacher_cameras import teacher_cameras

    c2w, registered, _ = teacher_cameras(clip.images)
    assert registered.all()
    from rayzer.models.pose_teacher_loss import pose_teacher_terms

    terms = pose_teacher_terms(c2w[None], clip.c2w[None], registered[None])
    identity = pose_teacher_terms(torch.eye(4).repeat(1, 6, 1, 1), clip.c2w[None], registered[None])
    # walk hardly rotates: with the wrong focal the teacher's rotations beat the identity's by
    # little (1.44° against 1.68° here, mean over pairs); its translations carry the signal
    assert terms["rot_deg"] < 2.0 and terms["rot_deg"] < identity["rot_deg"]
    assert terms["trans_deg"] < 35.0  # chance: 90°


# The first 4 samples' clips and frames (seed 7, tiny-cpu, walk) as the stream drew them at
# 5828166, before data.clip_pool existed: with clip_pool 0 the draw must not change.
_DRAWS_BEFORE_CLIP_POOL = {
    "span": (
        [341500, 173034, 200118, 696285],
        [
            [14, 15, 16, 18, 20, 21, 22, 23],
            [1, 2, 5, 6, 8, 10, 11, 12],
            [6, 7, 8, 10, 11, 12, 13, 14],
            [2, 3, 4, 6, 7, 8, 9, 10],
        ],
    ),
    "overlap": (
        [341500, 173034, 200118, 696285],
        [
            [3, 4, 5, 6, 7, 8, 9, 10],
            [15, 16, 17, 18, 19, 20, 21, 22],
            [0, 1, 2, 3, 4, 5, 6, 7],
            [7, 8, 9, 10, 11, 12, 13, 14],
        ],
    ),
    "frame_gap": (
        [341500, 173034, 200118, 696285],
        [
            [10, 12, 13, 14, 16, 17, 19, 20],
            [9, 12, 14, 15, 16, 17, 18, 19],
            [2, 4, 5, 6, 8, 9, 10, 12],
            [10, 11, 12, 15, 16, 17, 18, 20],
        ],
    ),
}


@pytest.mark.parametrize("sampler", sorted(_DRAWS_BEFORE_CLIP_POOL))
def test_without_a_clip_pool_the_stream_draws_as_before(sampler):
    cfg = load_config(
        "tiny-cpu", ["data.family=walk", "data.image_size=32", f"data.view_sampler={sampler}"]
    ).data
    assert cfg.clip_pool == 0 and not cfg.pose_teacher
    stream = TrainStream(cfg, 7, BatchLayout(4))
    source = stream.sources[0]
    ids, frames = [], []
    for sample_id in range(4):  # what TrainStream.sample draws, without rendering the views
        gen = sample_generator(7, sample_id)
        clip, views = stream._choose_views(source, stream.layout.step_of(sample_id), gen)
        ids.append(source.clip_id(clip))
        frames.append(views.frames.tolist())
    assert (ids, frames) == _DRAWS_BEFORE_CLIP_POOL[sampler]


def test_a_cache_of_other_synthetic_settings_is_refused(tmp_path, monkeypatch):
    """The same clip ids are other scenes and camera paths under other data.synth settings."""
    import rayzer.refine.teacher_cameras as tc

    def solve(images, *args, **kwargs):  # the cache's facts, not the solver, are under test here
        return torch.eye(4).repeat(len(images), 1, 1), torch.ones(len(images), dtype=torch.bool), {}

    monkeypatch.setattr(tc, "teacher_cameras", solve)
    cfg = load_config("tiny-cpu", _overrides()).data
    teacher = tc.build_pose_teacher(SyntheticClips(synth_config(cfg)), [0, 1], 8)
    assert teacher.meta["synth"]["walk_step"] == [0.03, 0.08]
    teacher.save(tmp_path / "t.pt")
    pool = ("data.clip_pool=2", f"data.pose_teacher={tmp_path / 't.pt'}")
    _stream(*pool)  # the settings it was made with
    with pytest.raises(ValueError, match=r"t\.pt was made .* walk_step \[0\.03, 0\.08\] \(stream"):
        _stream(*pool, "data.synth={walk_step: [0.1, 0.2]}")
