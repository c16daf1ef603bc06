"""The training stream with the explicit-3D view samplers and the flip augmentation."""

from __future__ import annotations

import torch

from rayzer.config import load_config
from rayzer.data.augment import flip_clip
from rayzer.data.clip_sources import Clip
from rayzer.data.stream import BatchLayout, TrainStream
from rayzer.geometry import look_at

SIZE = 16


def _config(*overrides: str):
    return load_config(
        "tiny-cpu",
        [
            f"data.image_size={SIZE}",
            "data.frames_per_clip=24",
            "data.num_input_views=2",
            "data.num_target_views=2",
            "data.curriculum_steps=4",
            *overrides,
        ],
    )


def _project(c2w: torch.Tensor, K: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Pixel (u, v) of world point ``x`` (3,) in the OpenCV camera ``c2w`` (4, 4), K (4,)."""
    p = torch.linalg.inv(c2w)[:3] @ torch.cat((x, x.new_ones(1)))
    return torch.stack((K[0] * p[0] / p[2] + K[2], K[1] * p[1] / p[2] + K[3]))


def test_flip_mirrors_images_intrinsics_and_projections():
    eye = torch.tensor([[2.0, 0.5, 1.0], [0.3, -2.0, 0.8]], dtype=torch.float64)
    c2w = look_at(eye, torch.zeros_like(eye), torch.tensor([0.0, 0.0, 1.0]).double().expand(2, 3))
    K = torch.tensor([[20.0, 21.0, 9.0, 7.5], [19.0, 19.0, 7.0, 8.5]], dtype=torch.float64)
    images = torch.rand(2, 3, SIZE, SIZE, dtype=torch.float64)
    flipped = flip_clip(Clip(images, c2w, K))
    assert torch.equal(flipped.images, images.flip(-1))
    assert torch.allclose(flipped.K[:, 2], SIZE - K[:, 2]) and torch.equal(flipped.K[:, 3], K[:, 3])
    # proper rotations stay proper
    assert torch.allclose(torch.linalg.det(flipped.c2w[:, :3, :3]), torch.ones(2).double())
    # the mirrored world point projects to the mirrored pixel column in every view
    mirror = torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    for x in torch.randn(5, 3, dtype=torch.float64) * 0.3:
        for v in range(2):
            u = _project(c2w[v], K[v], x)
            u_flip = _project(flipped.c2w[v], flipped.K[v], x * mirror)
            assert torch.allclose(u_flip, torch.stack((SIZE - u[0], u[1])), atol=1e-9)
    # an unposed clip flips only its images
    unposed = flip_clip(Clip(images, None, None))
    assert unposed.c2w is None and torch.equal(unposed.images, images.flip(-1))


def test_frame_gap_stream_puts_targets_between_the_context_ends():
    cfg = _config(
        "data.view_sampler=frame_gap",
        "data.gap_start=4",
        "data.gap_end_min=8",
        "data.gap_end_max=20",
    )
    stream = TrainStream(cfg.data, 0, BatchLayout(8))
    for step in (0, 5):
        b = stream.micro_batch(step)
        lo, hi = stream.frame_gap.gap_range(step)
        frames = b["index"]
        inputs = frames.gather(1, b["input_index"])
        targets = frames.gather(1, b["target_index"])
        gap = inputs[:, -1] - inputs[:, 0]
        assert torch.all(gap >= lo) and torch.all(gap <= min(hi, 23)), (step, gap)
        assert torch.all(targets > inputs[:, :1]) and torch.all(targets < inputs[:, -1:])


def test_overlap_stream_meets_its_target_and_is_reproducible():
    cfg = _config(
        "data.view_sampler=overlap", "data.overlap_lo_start=0.6", "data.overlap_lo_end=0.6"
    )
    stream = TrainStream(cfg.data, 0, BatchLayout(4))
    b = stream.micro_batch(0)
    again = TrainStream(cfg.data, 0, BatchLayout(4)).micro_batch(0)
    assert torch.equal(b["index"], again["index"]) and torch.equal(b["image"], again["image"])
    # every window's ends overlap at least the lowest target, up to the sampler's tolerance
    source = stream.sources[0]
    for clip_id, frames in zip(b["clip_id"].tolist(), b["index"], strict=True):
        clip = next(c for c in range(len(source)) if source.clip_id(c) == clip_id)
        curve = source.overlap_curve(clip)
        gap = int(frames[-1] - frames[0])
        assert float(curve.overlap[gap]) >= 0.6 - 0.05, (clip_id, gap)


def test_flip_augment_flips_about_half_of_the_samples():
    plain = TrainStream(_config().data, 0, BatchLayout(16)).micro_batch(0)
    aug = TrainStream(_config("data.flip_augment=true").data, 0, BatchLayout(16)).micro_batch(0)
    assert torch.equal(plain["index"], aug["index"])  # the flip draw comes after the views
    same = [torch.equal(a, p) for a, p in zip(aug["image"], plain["image"], strict=True)]
    flipped = [
        torch.equal(a, p.flip(-1)) for a, p in zip(aug["image"], plain["image"], strict=True)
    ]
    assert all(s or f for s, f in zip(same, flipped, strict=True))
    assert 2 <= sum(flipped) <= 14
