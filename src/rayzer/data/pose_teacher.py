"""A label-free pose teacher for the explicit models: classical cameras of whole training clips,
solved once from feature matches and cached, handed to the training stream per sample (the
solver: :mod:`rayzer.refine.teacher_cameras`).

Why: on the walk family E-RayZer's and NAS3R's pose heads stay at the identity under the render
loss (and under the epipolar loss), while the classical pipeline of
:func:`rayzer.refine.matched_cameras.cameras_from_matches` (SIFT, essential matrices, rotation
averaging, bundle adjustment) recovers walk cameras to about a degree from a larger render of the
same frames. The teacher hands those cameras to the opt-in ``model.pose_teacher_weight`` term
(:mod:`rayzer.models.pose_teacher_loss`), which compares *relative* poses only, so the teacher's
gauge and scale do not matter.

Label-free: the teacher reads images only. Its focal is a fixed prior (by default E-RayZer's
``focal_init`` = 1.25 × the width, held by the bundle adjustment), never the generator's focal;
the ground-truth cameras of a clip are not read.

Cost: solving every frame of a clip takes seconds to tens of seconds of CPU, so the teacher runs
on a fixed pool of clips (``data.clip_pool``: the first N clips of the source) before training
(:func:`rayzer.refine.teacher_cameras.build_pose_teacher`), and the stream only looks the cameras up
(:meth:`PoseTeacher.lookup`).

Cache file (``torch.save``, loaded with ``weights_only=True``): a dict with ``clip_ids`` (N,)
int64 (:meth:`rayzer.data.clip_sources.ClipSource.clip_id`), ``c2w`` (N, F, 4, 4) float32 OpenCV
camera-to-world of every frame (in the teacher's own gauge and scale), ``registered`` (N, F) bool
(frames the teacher solved; the others carry no information), and ``meta`` (a dict of plain
values: family, frames, size, focal prior, timings; ``synth``: :func:`synth_facts` of synthetic
clips).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

#: The teacher's default focal prior (fx / W): E-RayZer's ``focal_init``, a label-free choice.
DEFAULT_FOCAL_PRIOR = 1.25

#: The cache file's tensors (module docstring).
_TENSOR_KEYS = ("clip_ids", "c2w", "registered")


@dataclass
class PoseTeacher:
    """Cached teacher cameras of a pool of clips (module docstring for the file layout).

    Attributes:
        clip_ids: (N,) int64 clip ids; c2w: (N, F, 4, 4) float32; registered: (N, F) bool.
        meta: plain facts about how the cache was made.
    """

    clip_ids: Tensor
    c2w: Tensor
    registered: Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.clip_ids.ndim != 1:
            raise ValueError(
                f"pose teacher: clip_ids must be 1-D, got {tuple(self.clip_ids.shape)}"
            )
        n = self.clip_ids.shape[0]
        if self.c2w.ndim != 4 or self.c2w.shape[0] != n or self.c2w.shape[2:] != (4, 4):
            raise ValueError(f"pose teacher: c2w of shape {tuple(self.c2w.shape)} for {n} clips")
        if self.registered.shape != self.c2w.shape[:2]:
            raise ValueError(
                f"pose teacher: registered {tuple(self.registered.shape)} does not match c2w "
                f"{tuple(self.c2w.shape)}"
            )
        self._row = {int(c): i for i, c in enumerate(self.clip_ids.tolist())}
        if len(self._row) != n:  # a repeated id would silently keep only its last row
            ids, counts = self.clip_ids.unique(return_counts=True)
            raise ValueError(f"pose teacher: clip ids repeat: {ids[counts > 1][:5].tolist()}")
        if not torch.isfinite(self.c2w[self.registered]).all():
            raise ValueError("pose teacher: non-finite cameras of registered frames")

    @property
    def num_frames(self) -> int:
        return int(self.c2w.shape[1])

    def holds(self, clip_id: int) -> bool:
        """Whether the cache has the cameras of clip ``clip_id``."""
        return int(clip_id) in self._row

    def lookup(self, clip_id: int, frames: Tensor) -> tuple[Tensor, Tensor]:
        """Teacher cameras of ``frames`` (V,) of clip ``clip_id``: c2w (V, 4, 4) float32 and
        valid (V,) bool (all False for a clip the cache does not hold)."""
        frames = torch.as_tensor(frames, dtype=torch.int64).reshape(-1)
        row = self._row.get(int(clip_id))
        if row is None:
            eye = torch.eye(4).expand(len(frames), 4, 4).clone()
            return eye, torch.zeros(len(frames), dtype=torch.bool)
        return self.c2w[row, frames].clone(), self.registered[row, frames].clone()

    def save(self, path: str | Path) -> None:
        """Atomic write (a temporary file, then a rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        payload = {
            "clip_ids": self.clip_ids,
            "c2w": self.c2w,
            "registered": self.registered,
            "meta": self.meta,
        }
        torch.save(payload, tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> PoseTeacher:
        """Read a cache written by :meth:`save` (weights-only unpickling)."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"data.pose_teacher: no such file {path}")
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # any unpickling failure means a bad file
            raise ValueError(
                f"data.pose_teacher: {path} is not a pose-teacher cache ({err})"
            ) from err
        if not isinstance(raw, dict):
            raise ValueError(
                f"data.pose_teacher: {path} is not a pose-teacher cache (a {type(raw).__name__}, "
                "not a dict)"
            )
        missing = [k for k in _TENSOR_KEYS if k not in raw]
        if missing:
            raise ValueError(f"data.pose_teacher: {path} lacks {missing}")
        not_tensors = [k for k in _TENSOR_KEYS if not isinstance(raw[k], Tensor)]
        meta = raw.get("meta", {})
        if not_tensors or not isinstance(meta, dict):
            raise ValueError(
                f"data.pose_teacher: {path} is not a pose-teacher cache ({not_tensors or 'meta'} "
                "of the wrong type)"
            )
        try:
            return cls(
                raw["clip_ids"].long(),
                raw["c2w"].float(),
                raw["registered"].bool(),
                dict(meta),
            )
        except ValueError as err:
            raise ValueError(f"{err} (in {path})") from None


def check_teacher_matches(teacher: PoseTeacher, family: str, frames: int, path: str) -> None:
    """Refuse a cache made for another family or clip length than the stream's."""
    meta_family = teacher.meta.get("family")
    if meta_family is not None and meta_family != family:
        raise ValueError(
            f"data.pose_teacher: {path} was made for the {meta_family!r} family, the stream "
            f"draws {family!r}"
        )
    if teacher.num_frames and teacher.num_frames != frames:
        raise ValueError(
            f"data.pose_teacher: {path} holds {teacher.num_frames} frames per clip, the stream's "
            f"clips have {frames} (data.frames_per_clip)"
        )


def synth_facts(synth: Any) -> dict[str, Any]:
    """The fields of a :class:`rayzer.data.synthetic.SynthConfig` that decide a clip's scene and
    cameras (all but the image size), tuples as lists: what a cache records in
    ``meta["synth"]`` and the stream compares."""
    facts = dataclasses.asdict(synth)
    return {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in facts.items()
        if k not in ("height", "width")
    }


def check_teacher_synth(teacher: PoseTeacher, synth: Any, path: str) -> None:
    """Refuse a cache of synthetic clips made with other generator settings than the stream's
    (``data.synth``: the same clip ids are then other scenes and camera paths). Caches without
    ``meta["synth"]`` are not checked."""
    made = teacher.meta.get("synth")
    if made is None:
        return
    now = synth_facts(synth)
    differ = sorted(k for k in set(made) | set(now) if made.get(k) != now.get(k))
    if differ:
        raise ValueError(
            f"data.pose_teacher: {path} was made from synthetic clips with other settings: "
            + ", ".join(f"{k} {made.get(k)!r} (stream: {now.get(k)!r})" for k in differ)
        )


def check_teacher_covers(teacher: PoseTeacher, clip_ids: Sequence[int], path: str) -> None:
    """Refuse a cache that lacks some of the clips the stream draws (``clip_ids``: those of the
    clip pool): their samples would silently carry no teacher (the term is then 0), which is
    what a stale cache or a forgotten ``data.clip_pool`` looks like."""
    missing = [c for c in clip_ids if not teacher.holds(c)]
    if missing:
        raise ValueError(
            f"data.pose_teacher: {path} lacks {len(missing)} of the {len(clip_ids)} clips the "
            f"stream draws (clip ids {missing[:5]}{'…' if len(missing) > 5 else ''}): set "
            "data.clip_pool to the clips the cache was built for, or rebuild it"
        )


__all__ = [
    "DEFAULT_FOCAL_PRIOR",
    "PoseTeacher",
    "check_teacher_covers",
    "check_teacher_matches",
    "check_teacher_synth",
    "synth_facts",
]
