"""Write a pose-teacher cache whose cameras are the GROUND TRUTH of a pool of training clips:
the supervised-ceiling probe of experiments/issue18_explicit/README.md ("The supervised ceiling").

Not label-free and not a library feature: the cache has the layout of
:class:`rayzer.data.pose_teacher.PoseTeacher` (so the stream's checks and the opt-in
``model.pose_teacher_weight`` term use it unchanged), but its ``c2w`` are the generator's cameras
of every frame, all registered, and ``meta["source"]`` says so. The term compares relative poses
only, so the truth's gauge and scale do not matter.

The cameras of a synthetic clip do not depend on the image size, so each clip is rendered at
8 px (cameras only, as ``build_pose_teacher.score`` does). The cache is scored against the truth
with the same ``score`` as the classical teacher (a self-check: every error must be ~0).

Usage:
    python build_truth_teacher.py --family orbit --count 256 --out truth_orbit256.pt --json s.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from build_pose_teacher import score  # the sibling probe (run from this folder's script path)

from rayzer.config import DataConfig
from rayzer.data.clip_sources import SyntheticClips, synth_config
from rayzer.data.pose_teacher import PoseTeacher, synth_facts

#: Render size of the camera-only loads (the cameras do not depend on it).
CAMERA_LOAD_SIZE = 8


def truth_teacher(source: SyntheticClips, clips: range) -> PoseTeacher:
    """The generator's c2w (OpenCV camera-to-world) of every frame of ``clips`` (indices into
    ``source``, i.e. the stream's ``data.clip_pool`` order), all frames registered."""
    t0 = time.process_time()
    ids, c2ws = [], []
    for clip in clips:
        frames = torch.arange(source.num_frames(clip))
        c2ws.append(source.load(clip, frames, CAMERA_LOAD_SIZE).c2w.float())
        ids.append(source.clip_id(clip))
    c2w = torch.stack(c2ws)
    synth = source.synth
    meta = {
        "source": "ground truth (ceiling probe, not label-free)",
        "family": synth.family,
        "synth": synth_facts(synth),  # the stream refuses other generator settings
        "frames": int(synth.frames),
        # the classical builder's fields, filled for what this cache is: no images are solved
        # (size: the camera-only render), no focal prior is used, nothing is refined
        "size": CAMERA_LOAD_SIZE,
        "focal_prior": None,
        "refine_focal": False,
        "cpu_s_per_clip": (time.process_time() - t0) / max(len(ids), 1),
    }
    meta["cpu_s_total"] = meta["cpu_s_per_clip"] * len(ids)
    return PoseTeacher(
        torch.tensor(ids, dtype=torch.int64),
        c2w,
        torch.ones(c2w.shape[:2], dtype=torch.bool),
        meta,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="orbit")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--count", type=int, default=256, help="the first N clips (data.clip_pool=N)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    source = SyntheticClips(
        synth_config(DataConfig(family=args.family, frames_per_clip=args.frames, image_size=64))
    )
    if args.count > len(source):
        raise SystemExit(f"--count {args.count}: the synthetic source has {len(source)} clips")
    teacher = truth_teacher(source, range(args.count))
    teacher.save(args.out)
    check = score(PoseTeacher.load(args.out), source)["summary"]  # must be ~0 everywhere
    result = {"meta": teacher.meta, "self_check": check}
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
