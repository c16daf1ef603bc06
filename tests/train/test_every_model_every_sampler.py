"""Issue 18: both curricula (NAS3R's frame gap, E-RayZer's visual overlap) and the flip
augmentation are view samplers of the data stream, usable by every registered model; and the
explicit models train at any view count >= 2 and any size divisible by the patch. One Trainer
step of each model with each sampler, at 3 input + 1 target views of 24 px (not the presets'
4 + 4 at 64 px)."""

from __future__ import annotations

import math

import pytest
import torch

from _tiny import EXPLICIT_TINY, TINY_MODEL
from rayzer.config import load_config
from rayzer.data.stream import TrainStream
from rayzer.train import Trainer

_EXPLICIT = {
    name: [f"model.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in fields.items()]
    for name, fields in EXPLICIT_TINY.items()
}
#: model → (preset, its smallest overrides)
MODELS = {
    "rayzer": ("tiny-cpu", [*TINY_MODEL, "model.sense_head=false"]),
    "lvsm": ("lvsm-tiny-cpu", TINY_MODEL),
    "erayzer": ("erayzer-tiny-cpu", _EXPLICIT["erayzer"]),
    "nas3r": ("nas3r-tiny-cpu", _EXPLICIT["nas3r"]),
}
SAMPLERS = {
    "frame_gap": ["data.gap_start=3", "data.gap_end_min=6", "data.gap_end_max=11"],
    "overlap": ["data.overlap_lo_start=0.6", "data.overlap_lo_end=0.6"],
}
DATA = [
    "data.image_size=24",
    "data.frames_per_clip=12",
    "data.num_input_views=3",
    "data.num_target_views=1",
    "data.span_min=4",
    "data.span_start_max=12",
    "data.span_end_max=12",
    "data.curriculum_steps=4",
    "data.flip_augment=true",
    "train.batch_size=2",
    "train.steps=4",
    "train.warmup_steps=1",
    "train.log_every=1",
    "train.ckpt_every=0",
    "train.image_every=0",
]


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_model_trains_with_every_view_sampler(model, sampler, tmp_path):
    preset, sizes = MODELS[model]
    cfg = load_config(preset, [*sizes, *DATA, f"data.view_sampler={sampler}", *SAMPLERS[sampler]])
    trainer = Trainer(cfg, tmp_path / "run")
    try:
        stream = TrainStream(cfg.data, 0, trainer.layout)
        batch = stream.micro_batch(0)
        assert batch["image"].shape == (2, 4, 3, 24, 24)
        assert batch["input_index"].shape == (2, 3) and batch["target_index"].shape == (2, 1)
        frames = batch["index"]
        inputs = frames.gather(1, batch["input_index"])
        targets = frames.gather(1, batch["target_index"])
        if sampler == "frame_gap":  # the target lies between the context ends
            assert torch.all(targets > inputs.amin(1, keepdim=True))
            assert torch.all(targets < inputs.amax(1, keepdim=True))
        else:  # the window's ends overlap at least the lowest target, up to the sampler's slack
            source = stream.sources[0]
            for clip_id, f in zip(batch["clip_id"].tolist(), frames, strict=True):
                clip = next(c for c in range(len(source)) if source.clip_id(c) == clip_id)
                gap = int(f[-1] - f[0])
                assert float(source.overlap_curve(clip).overlap[gap]) >= 0.6 - 0.05, gap
        before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
        stats = trainer.train_step(iter(TrainStream(cfg.data, 0, trainer.layout)))
        assert not stats.skipped and math.isfinite(stats.terms["loss"]) and stats.grad_norm > 0
        moved = [n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])]
        assert moved, "the update changed no weight"
    finally:
        trainer.close()


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_model_trains_at_a_non_square_size(model, tmp_path):
    """data.image_size=[24, 40] (patch 8), the first step in the low-resolution phase at the
    same aspect (16 × 24): two Trainer steps of each model, finite, moving the weights."""
    preset, sizes = MODELS[model]
    data = [d for d in DATA if not d.startswith("data.image_size=")]
    size = ["data.image_size=[24,40]", "data.low_res_size=16", "data.low_res_steps=1"]
    cfg = load_config(preset, [*sizes, *data, *size])
    trainer = Trainer(cfg, tmp_path / "run")
    try:
        stream = TrainStream(cfg.data, 0, trainer.layout, patch_size=8)
        assert stream.micro_batch(0)["image"].shape == (2, 4, 3, 16, 24)
        assert stream.micro_batch(1)["image"].shape == (2, 4, 3, 24, 40)
        before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
        batches = iter(trainer.stream)
        for _ in range(2):
            stats = trainer.train_step(batches)
            assert not stats.skipped and math.isfinite(stats.terms["loss"]), stats
        assert stats.grad_norm > 0
        moved = [n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])]
        assert moved, "the updates changed no weight"
    finally:
        trainer.close()
