"""Infinite, reproducible, resumable training stream of multi-view samples.

Sample numbering (the heart of reproducibility): the run consumes global samples 0, 1, 2, …;
optimizer step ``s`` uses samples ``[s·B, (s+1)·B)`` with B the global batch. Inside a step, the
``world_size × grad_accum`` micro-batches of ``m = B / (world_size · grad_accum)`` samples are
laid out micro-batch-major: micro-batch ``a`` of rank ``r`` holds samples
``s·B + (a·world_size + r)·m + [0, m)``.

Everything about a sample (which clip, which window, which views, which split) is drawn from a
generator seeded by ``(seed, global sample number)`` only. Ranks and DataLoader workers decide
*which* sample numbers a process renders, not *what* they contain, so:

- a run is reproduced by its config + seed, for any number of workers;
- 1 process with batch B and N processes with B/N each see the same global batch (DDP tests);
- resuming at step s restarts the stream at micro-batch ``s · grad_accum`` and reproduces the
  uninterrupted run exactly (no iterator state needs saving).

Each yielded item is a collated micro-batch dict (DESIGN §3 keys):

- ``image`` (m, V, 3, H, W) float in [0, 1], views sorted by frame number;
- ``c2w`` (m, V, 4, 4) ground-truth OpenCV camera-to-world, **normalised** by
  :func:`rayzer.data.sampling.normalize_scene_scale` (canonical middle view = identity, mean
  distance of the other camera centres to it = 1); RayZer never reads them, LVSM trains on them;
- ``K`` (m, V, 4) pixel intrinsics (fx, fy, cx, cy) of these images;
- ``index`` (m, V) frame numbers in the clip; ``input_index`` (m, Vi) and ``target_index``
  (m, Vt) positions into the V views;
- ``scene_scale`` (m,) the factor applied to translations, ``clip_seed`` (m,) provenance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from rayzer.config import DataConfig
from rayzer.data.sampling import SpanCurriculum, normalize_scene_scale, sample_views
from rayzer.data.synthetic import TRAIN_SEEDS, SynthConfig, render_clip

# Separates the data stream's random domain from other uses of the config seed (e.g. model init).
_DATA_DOMAIN = 0x5EED_DA7A


@dataclass(frozen=True)
class BatchLayout:
    """How the global batch is split over ranks and accumulation micro-batches.

    Attributes:
        global_batch: samples per optimizer step (all ranks, all micro-batches).
        world_size: data-parallel processes.
        grad_accum: micro-batches per rank per step.
    """

    global_batch: int
    world_size: int = 1
    grad_accum: int = 1

    def __post_init__(self) -> None:
        parts = self.world_size * self.grad_accum
        if min(self.global_batch, self.world_size, self.grad_accum) < 1:
            raise ValueError(f"batch layout values must be >= 1, got {self}")
        if self.global_batch % parts:
            raise ValueError(
                f"train.batch_size={self.global_batch} is not divisible by world_size × "
                f"grad_accum = {self.world_size} × {self.grad_accum}"
            )

    @property
    def micro_batch(self) -> int:
        """Samples per micro-batch per rank."""
        return self.global_batch // (self.world_size * self.grad_accum)

    def sample_ids(self, rank: int, micro_batch_number: int) -> range:
        """Global sample numbers of the ``micro_batch_number``-th micro-batch of ``rank``."""
        step, accum = divmod(micro_batch_number, self.grad_accum)
        first = step * self.global_batch + (accum * self.world_size + rank) * self.micro_batch
        return range(first, first + self.micro_batch)

    def step_of(self, sample_id: int) -> int:
        """Optimizer step that consumes a global sample."""
        return sample_id // self.global_batch


def sample_generator(seed: int, sample_id: int) -> torch.Generator:
    """A torch generator that depends only on (config seed, global sample number)."""
    state = np.random.SeedSequence([int(seed), _DATA_DOMAIN, int(sample_id)]).generate_state(2)
    gen = torch.Generator()
    gen.manual_seed(int(state[0]) << 32 | int(state[1]))
    return gen


def synth_config(cfg: DataConfig) -> SynthConfig:
    """The :class:`SynthConfig` of the clips: family / frames / size from ``cfg``, rest from
    ``cfg.synth``. Raises ValueError on unknown or conflicting keys."""
    names = {f.name for f in dataclasses.fields(SynthConfig)}
    owned = {"family", "frames", "height", "width"}
    extra = dict(cfg.synth)
    unknown = sorted(set(extra) - names)
    if unknown:
        raise ValueError(
            f"data.synth: unknown SynthConfig option(s) {unknown}; valid: {sorted(names - owned)}"
        )
    clash = sorted(set(extra) & owned)
    if clash:
        raise ValueError(
            f"data.synth must not set {clash}: use data.family / data.frames_per_clip / "
            "data.image_size"
        )
    synth = SynthConfig(
        family=cfg.family,
        frames=cfg.frames_per_clip,
        height=cfg.image_size,
        width=cfg.image_size,
        **extra,
    )
    synth.validate()
    return synth


class TrainStream(IterableDataset):
    """Endless micro-batches of training samples for one rank (see the module docstring).

    Args:
        cfg: the data config (``source`` must be ``"synthetic"`` for now).
        seed: the run seed.
        layout: global batch / world size / accumulation.
        rank: this process's data-parallel rank.
        start: first micro-batch number of this rank (``step · grad_accum`` to resume at a step).
        limit: stop after this many micro-batches (None = endless).
    """

    def __init__(
        self,
        cfg: DataConfig,
        seed: int,
        layout: BatchLayout,
        rank: int = 0,
        start: int = 0,
        limit: int | None = None,
    ) -> None:
        super().__init__()
        if cfg.source != "synthetic":
            raise ValueError(
                f"data.source={cfg.source!r}: the training stream supports only 'synthetic' so far "
                "(real dataset formats come with the data issue)"
            )
        if not 0 <= rank < layout.world_size:
            raise ValueError(f"rank {rank} out of range for world size {layout.world_size}")
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        self.cfg, self.seed, self.layout, self.rank = cfg, int(seed), layout, rank
        self.start, self.limit = start, limit
        self.synth = synth_config(cfg)
        self.curriculum = SpanCurriculum(*cfg.span_range(), cfg.curriculum_steps)

    def sample(self, sample_id: int) -> dict[str, torch.Tensor]:
        """The sample with global number ``sample_id`` (no batch dim)."""
        gen = sample_generator(self.seed, sample_id)
        clip_seed = TRAIN_SEEDS[int(torch.randint(len(TRAIN_SEEDS), (), generator=gen))]
        span = self.curriculum.sample_span(self.layout.step_of(sample_id), gen)
        views = sample_views(
            self.cfg.frames_per_clip,
            self.cfg.num_input_views,
            self.cfg.num_target_views,
            span,
            gen,
        )
        clip = render_clip(clip_seed, self.synth, frames=views.frames)  # only the V views
        c2w, scale = normalize_scene_scale(clip.c2w)
        return {
            "image": clip.images,
            "c2w": c2w,
            "K": clip.K,
            "index": clip.index,
            "input_index": views.input_index,
            "target_index": views.target_index,
            "scene_scale": scale,
            "clip_seed": torch.tensor(clip_seed, dtype=torch.int64),
        }

    def micro_batch(self, number: int) -> dict[str, torch.Tensor]:
        """The ``number``-th micro-batch of this rank, collated."""
        samples = [self.sample(i) for i in self.layout.sample_ids(self.rank, number)]
        return {key: torch.stack([s[key] for s in samples]) for key in samples[0]}

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        # Worker w of W renders micro-batches start + w, start + w + W, …; the DataLoader returns
        # workers' items round-robin, so the stream order does not depend on W.
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        number = self.start + worker
        end = None if self.limit is None else self.start + self.limit
        while end is None or number < end:
            yield self.micro_batch(number)
            number += workers


def _worker_init(_: int) -> None:
    # Rendering is numpy; keep workers from oversubscribing the cores the training step uses.
    torch.set_num_threads(1)


def make_loader(stream: TrainStream, num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """A DataLoader over ``stream`` (items are already micro-batches, so ``batch_size=None``)."""
    return DataLoader(
        stream,
        batch_size=None,
        num_workers=num_workers,
        pin_memory=pin_memory,
        worker_init_fn=_worker_init if num_workers > 0 else None,
        prefetch_factor=2 if num_workers > 0 else None,
    )
