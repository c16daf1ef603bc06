"""The solver of the label-free pose teacher (:mod:`rayzer.data.pose_teacher`): classical cameras
of every frame of a clip from its images alone, by :func:`rayzer.refine.matched_cameras.
cameras_from_matches` with a fixed focal prior (no focal search, the bundle adjustment holds it).

Label-free: the images are the only input; the focal is a prior (default E-RayZer's
``focal_init``, fx / W = 1.25), not the generator's. Needs OpenCV and SciPy.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rayzer.data.pose_teacher import DEFAULT_FOCAL_PRIOR, PoseTeacher, synth_facts
from rayzer.refine.matched_cameras import MatchConfig, cameras_from_matches

__all__ = ["build_pose_teacher", "teacher_cameras"]


def teacher_cameras(
    images: Tensor,
    focal_prior: float = DEFAULT_FOCAL_PRIOR,
    refine_focal: bool = False,
    min_inliers: int = 20,
    max_pair_gap: int | None = None,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Classical cameras of the frames of one clip from their images alone.

    Args:
        images: (F, 3, S, S) float in [0, 1], the frames in capture order (a larger render
            than the training size: more keypoints, better-conditioned essential matrices).
        focal_prior: fx / W of the shared focal; with ``refine_focal`` False (default) the
            bundle adjustment holds it and there is no focal search.
        min_inliers: pairs with fewer essential-matrix inliers are dropped.
        max_pair_gap: match only frames at most this many apart (None: every pair;
            :attr:`rayzer.refine.matched_cameras.MatchConfig.max_pair_gap`).

    Returns:
        c2w (F, 4, 4) float32 (identity where not registered), registered (F,) bool and the
        matcher's report.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"teacher_cameras: images must be (F, 3, S, S), got {tuple(images.shape)}")
    f, _, h, w = images.shape
    photos = [
        (images[i].permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
        for i in range(f)
    ]
    K = torch.tensor([[focal_prior * w, focal_prior * w, w / 2, h / 2]]).expand(f, 4).clone()
    cfg = MatchConfig(
        focal_search=False,
        refine_focal=refine_focal,
        min_inliers=min_inliers,
        max_pair_gap=max_pair_gap,
    )
    res = cameras_from_matches(
        photos,
        [(0.0, 0.0, float(w), float(h))] * f,
        torch.eye(4).expand(f, 4, 4).clone(),
        K,
        (h, w),
        anchor=f // 2,
        config=cfg,
    )
    return res.c2w.float(), res.registered.bool(), res.report


def build_pose_teacher(
    source,
    clips: Sequence[int],
    size: int,
    focal_prior: float = DEFAULT_FOCAL_PRIOR,
    refine_focal: bool = False,
    log=None,
    max_pair_gap: int | None = None,
) -> PoseTeacher:
    """Solve the teacher cameras of ``clips`` (indices into ``source``, a
    :class:`rayzer.data.clip_sources.ClipSource`) from all their frames loaded at ``size``.

    ``log``: optional callable receiving one dict per clip (clip id, frames registered, CPU s).
    ``max_pair_gap``: match only frames at most this many apart (None: every pair).
    """
    ids, c2ws, regs, cpu = [], [], [], []
    frames = None
    for clip in clips:
        n = source.num_frames(clip)
        if frames is None:
            frames = n
        elif n != frames:
            raise ValueError(f"pose teacher: clips of {frames} and {n} frames cannot share a cache")
        t0 = time.process_time()
        data = source.load(clip, torch.arange(n), size)
        c2w, reg, _ = teacher_cameras(
            data.images, focal_prior, refine_focal, max_pair_gap=max_pair_gap
        )
        seconds = time.process_time() - t0
        ids.append(source.clip_id(clip))
        c2ws.append(c2w)
        regs.append(reg)
        cpu.append(seconds)
        if log is not None:
            log({"clip_id": ids[-1], "registered": int(reg.sum()), "cpu_s": round(seconds, 2)})
    meta = {
        "size": int(size),
        "frames": int(frames or 0),
        "focal_prior": float(focal_prior),
        "refine_focal": bool(refine_focal),
        "max_pair_gap": max_pair_gap,
        "cpu_s_per_clip": float(np.mean(cpu)) if cpu else 0.0,
    }
    synth = getattr(source, "synth", None)
    if synth is not None:
        meta["family"] = synth.family
        meta["synth"] = synth_facts(synth)  # the stream refuses other settings
    return PoseTeacher(
        torch.tensor(ids, dtype=torch.int64),
        torch.stack(c2ws) if c2ws else torch.zeros(0, 0, 4, 4),
        torch.stack(regs) if regs else torch.zeros(0, 0, dtype=torch.bool),
        meta,
    )
