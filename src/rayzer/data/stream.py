"""Infinite, reproducible, resumable training stream of multi-view samples.

Sample numbering (the heart of reproducibility): the run consumes global samples 0, 1, 2, …;
optimizer step ``s`` uses samples ``[s·B, (s+1)·B)`` with B the global batch. Inside a step, the
``world_size × grad_accum`` micro-batches of ``m = B / (world_size · grad_accum)`` samples are
laid out micro-batch-major: micro-batch ``a`` of rank ``r`` holds samples
``s·B + (a·world_size + r)·m + [0, m)``.

Everything about a sample (which source of a mix, which clip, which window, which views, which
split) is drawn from a generator seeded by ``(seed, global sample number)`` only. Ranks and
DataLoader workers decide *which* sample numbers a process renders, not *what* they contain, so:

- a run is reproduced by its config + seed, for any number of workers;
- 1 process with batch B and N processes with B/N each see the same global batch (DDP tests);
- resuming at step s restarts the stream at micro-batch ``s · grad_accum`` and reproduces the
  uninterrupted run exactly (no iterator state needs saving).

Clips come from one or several :class:`rayzer.data.clip_sources.ClipSource` (``data.source``:
built-in synthetic scenes, scene folders, RealEstate10K chunks; several entries are mixed with
``data.source_weights``). One sample draws, in this order: the source (only when there are
several), a clip uniformly within it, then the views and their input/target split by
``data.view_sampler``: the frame-span curriculum (capped at the clip's frame count,
:func:`rayzer.data.sampling.sample_views`), NAS3R's frame-gap or E-RayZer's visual-overlap
schedule (:mod:`rayzer.data.view_samplers`; the overlap sampler may redraw the clip); last, with
``data.flip_augment``, whether to mirror the sample (:func:`rayzer.data.augment.flip_clip`).

Each yielded item is a collated micro-batch dict (keys: :mod:`rayzer`), (H, W) =
``data.image_size`` (an int S: H = W = S; for the samples of the first ``data.low_res_steps``
steps the low-resolution size, :meth:`rayzer.config.DataConfig.image_hw_at`):

- ``image`` (m, V, 3, H, W) float in [0, 1], views sorted by frame number;
- ``c2w`` (m, V, 4, 4) ground-truth OpenCV camera-to-world, **normalised** by
  :func:`rayzer.geometry.normalize_scene_scale` (canonical middle view = identity, mean
  distance of the other camera centres to it = 1); RayZer never reads them, LVSM trains on them;
  NaN for unposed scenes;
- ``K`` (m, V, 4) pixel intrinsics (fx, fy, cx, cy) of these images (NaN when unposed);
- ``posed`` (m,) bool, whether ``c2w`` / ``K`` are known;
- ``index`` (m, V) frame numbers in the clip; ``input_index`` (m, Vi) and ``target_index``
  (m, Vt) positions into the V views;
- ``scene_scale`` (m,) the factor applied to translations (NaN when unposed);
- with ``data.epipolar_matches`` = M > 0: ``epipolar_pairs`` (m, P, 2), ``epipolar_uv``
  (m, P, M, 4), ``epipolar_valid`` (m, P, M), SIFT matches, a padded slot for every view pair
  (P = V(V−1)/2) filled for views at most 2 apart (:func:`rayzer.data.matches.match_views`),
  label-free;
- with ``data.pose_teacher``: ``teacher_c2w`` (m, V, 4, 4) the cached label-free classical
  cameras of the views (:mod:`rayzer.data.pose_teacher`; the teacher's own gauge and scale) and
  ``teacher_valid`` (m, V) whether the teacher solved each view (the cache must hold every
  clip of ``data.clip_pool``, one source only);
- provenance: ``source_index`` (m,) entry of ``data.source``, ``clip_id`` (m,) the clip in that
  source (:meth:`ClipSource.clip_id`: the seed of a synthetic clip, the scene number of a real
  one), ``clip_seed`` (m,) = ``clip_id`` (the name of the synthetic-only stream, kept).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from rayzer.config import DataConfig
from rayzer.data.augment import flip_clip
from rayzer.data.clip_sources import (
    ClipSource,
    SyntheticClips,
    choose_source,
    open_clip_sources,
)
from rayzer.data.sampling import SpanCurriculum, ViewSample, sample_views
from rayzer.data.synthetic import SynthConfig
from rayzer.data.view_samplers import FrameGapCurriculum, OverlapCurriculum
from rayzer.geometry import normalize_scene_scale

#: Clips tried per sample before the overlap sampler gives up on reaching its target.
OVERLAP_TRIES = 16

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


class TrainStream(IterableDataset):
    """Endless micro-batches of training samples for one rank (see the module docstring).

    Args:
        cfg: the data config (``source``, ``source_weights``, views, curriculum, size).
        seed: the run seed.
        layout: global batch / world size / accumulation.
        rank: this process's data-parallel rank.
        start: first micro-batch number of this rank (``step · grad_accum`` to resume at a step).
        limit: stop after this many micro-batches (None = endless).
        require_poses: skip scenes without cameras (the LVSM oracle trains on them).
        sources: already opened clip sources (default: opened from ``cfg``).
        patch_size: the model's patch size: the long side of a non-square size's
            low-resolution phase is rounded to a multiple of it (:meth:`DataConfig.image_hw_at`).
    """

    def __init__(
        self,
        cfg: DataConfig,
        seed: int,
        layout: BatchLayout,
        rank: int = 0,
        start: int = 0,
        limit: int | None = None,
        require_poses: bool = False,
        sources: Sequence[ClipSource] | None = None,
        patch_size: int = 1,
    ) -> None:
        super().__init__()
        self.patch_size = int(patch_size)
        if cfg.epipolar_matches > 0:  # fail before any work, not in the first sample
            from rayzer.data.formats.undistort import INSTALL_HINT, have_opencv

            if not have_opencv():
                raise ValueError(
                    f"data.epipolar_matches={cfg.epipolar_matches} needs OpenCV: {INSTALL_HINT}"
                )
        if not 0 <= rank < layout.world_size:
            raise ValueError(f"rank {rank} out of range for world size {layout.world_size}")
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        self.cfg, self.seed, self.layout, self.rank = cfg, int(seed), layout, rank
        self.start, self.limit = start, limit
        self.curriculum = SpanCurriculum(*cfg.span_range(), cfg.curriculum_steps)
        self.frame_gap = FrameGapCurriculum(
            cfg.gap_start, cfg.gap_end_min, cfg.gap_end_max, cfg.curriculum_steps
        )
        self.overlap = OverlapCurriculum(
            cfg.overlap_lo_start, cfg.overlap_lo_end, cfg.curriculum_steps
        )
        self.sources = (
            list(sources) if sources is not None else open_clip_sources(cfg, require_poses)
        )
        if len(self.sources) != len(cfg.source_list()):
            raise ValueError(
                f"got {len(self.sources)} sources for {len(cfg.source_list())} data.source entries"
            )
        self.probabilities = torch.tensor(cfg.source_probabilities(), dtype=torch.float64)
        self.teacher = None
        if cfg.pose_teacher:
            self.teacher = self._open_teacher()

    def _open_teacher(self):
        """The ``data.pose_teacher`` cache, checked against the stream: one source (the cache is
        keyed by clip id, which two sources may share), no mirroring (the cached cameras are of
        the unmirrored frames), the family, clip length and synthetic settings, and every clip of
        the pool."""
        from rayzer.data.pose_teacher import (
            PoseTeacher,
            check_teacher_covers,
            check_teacher_matches,
            check_teacher_synth,
        )

        cfg, path = self.cfg, self.cfg.pose_teacher
        if cfg.flip_augment:
            raise ValueError("data.pose_teacher does not support data.flip_augment")
        if len(self.sources) != 1:
            raise ValueError(
                f"data.pose_teacher holds the clips of one source, keyed by clip id; got "
                f"{len(self.sources)} data.source entries"
            )
        teacher = PoseTeacher.load(path)
        check_teacher_matches(teacher, cfg.family, cfg.frames_per_clip, path)
        source = self.sources[0]
        if isinstance(source, SyntheticClips):
            check_teacher_synth(teacher, source.synth, path)
        pool = self._pool_size(source)
        if pool > len(teacher.clip_ids):  # more clips than the cache holds: no need to list them
            raise ValueError(
                f"data.pose_teacher: {path} holds {len(teacher.clip_ids)} clips, the stream "
                f"draws from {pool} (data.clip_pool={cfg.clip_pool}): set data.clip_pool to the "
                "clips the cache was built for"
            )
        check_teacher_covers(teacher, [source.clip_id(c) for c in range(pool)], path)
        return teacher

    def _pool_size(self, source: ClipSource) -> int:
        """How many clips of ``source`` the stream draws from: the first ``data.clip_pool``
        (0: all of them)."""
        pool = self.cfg.clip_pool
        return min(len(source), pool) if pool > 0 else len(source)

    @property
    def synth(self) -> SynthConfig:
        """The :class:`SynthConfig` of the synthetic source (AttributeError if there is none)."""
        for source in self.sources:
            if isinstance(source, SyntheticClips):
                return source.synth
        raise AttributeError("the stream has no synthetic source")

    def sample(self, sample_id: int) -> dict[str, torch.Tensor]:
        """The sample with global number ``sample_id`` (no batch dim)."""
        gen = sample_generator(self.seed, sample_id)
        # A single source draws nothing here, so a synthetic-only stream is unchanged.
        s = choose_source(self.probabilities, gen) if len(self.sources) > 1 else 0
        source = self.sources[s]
        step = self.layout.step_of(sample_id)
        clip, views = self._choose_views(source, step, gen)
        hw, v = self.cfg.image_hw_at(step, self.patch_size), len(views.frames)
        # a square size is asked for as an int, as before (sources may be user subclasses)
        size = hw[0] if hw[0] == hw[1] else hw
        data = source.load(clip, views.frames, size)  # only the V views
        if data.images.shape != (v, 3, *hw):
            raise ValueError(
                f"{source.describe(clip)}: loaded images of shape {tuple(data.images.shape)}, "
                f"expected {(v, 3, *hw)}"
            )
        flip = self.cfg.flip_augment and bool(torch.rand((), generator=gen) < 0.5)
        if flip:
            data = flip_clip(data)
        matches = {}
        if self.cfg.epipolar_matches > 0:
            matches = self._matches(source, clip, views.frames, hw, flip, data.images)
        teacher = {}
        if self.teacher is not None:
            t_c2w, t_valid = self.teacher.lookup(source.clip_id(clip), views.frames)
            teacher = {"teacher_c2w": t_c2w, "teacher_valid": t_valid}
        if data.c2w is not None:
            c2w, scale = normalize_scene_scale(data.c2w)
            K = data.K
        else:
            c2w = torch.full((v, 4, 4), float("nan"))
            K = torch.full((v, 4), float("nan"))
            scale = torch.tensor(float("nan"))
        clip_id = torch.tensor(source.clip_id(clip), dtype=torch.int64)
        return {
            "image": data.images,
            "c2w": c2w.float(),
            "K": K.float(),
            "posed": torch.tensor(data.c2w is not None),
            "index": views.frames,
            "input_index": views.input_index,
            "target_index": views.target_index,
            "scene_scale": scale.float(),
            "source_index": torch.tensor(s, dtype=torch.int64),
            "clip_id": clip_id,
            "clip_seed": clip_id,
            **matches,
            **teacher,
        }

    def _matches(self, source, clip, frames, hw, flip, images) -> dict[str, torch.Tensor]:
        """``epipolar_*`` entries (:mod:`rayzer.data.matches`) of the sample's views, matched
        on a ``data.epipolar_match_scale`` × larger load (mirrored like the sample)."""
        from rayzer.data.matches import match_views  # needs opencv: only when asked for

        scale = self.cfg.epipolar_match_scale
        if scale > 1:
            big_hw = (hw[0] * scale, hw[1] * scale)
            big = source.load(clip, frames, big_hw[0] if hw[0] == hw[1] else big_hw)
            images = (flip_clip(big) if flip else big).images
        found = match_views(images, self.cfg.epipolar_matches, out_size=hw)
        return found.as_batch_entries()

    def _choose_views(
        self, source: ClipSource, step: int, gen: torch.Generator
    ) -> tuple[int, ViewSample]:
        """A clip of ``source`` and the views of one sample from it (``data.view_sampler``).

        With ``overlap``, a clip whose widest window still overlaps more than the drawn target
        is skipped and another drawn (up to :data:`OVERLAP_TRIES` times; then the last clip's
        widest window is used)."""
        cfg = self.cfg
        vi, vt = cfg.num_input_views, cfg.num_target_views
        num_clips = self._pool_size(source)  # data.clip_pool 0: all, the draw unchanged
        for _ in range(OVERLAP_TRIES if cfg.view_sampler == "overlap" else 1):
            clip = int(torch.randint(num_clips, (), generator=gen))
            num_frames = source.num_frames(clip)
            if cfg.view_sampler == "span":
                span = min(self.curriculum.sample_span(step, gen), num_frames)
                return clip, sample_views(num_frames, vi, vt, span, gen)
            if cfg.view_sampler == "frame_gap":
                return clip, self.frame_gap.sample(num_frames, vi, vt, step, gen)
            views = self.overlap.sample(source.overlap_curve(clip), vi, vt, step, gen)
            if views is not None:
                return clip, views
        return clip, sample_views(num_frames, vi, vt, num_frames, gen)

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
    # Rendering / decoding is numpy and PIL; keep workers from oversubscribing the cores the
    # training step uses.
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
