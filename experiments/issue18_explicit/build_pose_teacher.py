"""Build (and score) the label-free pose-teacher cache of a fixed pool of walk training clips.

The teacher (:func:`rayzer.refine.teacher_cameras.teacher_cameras`) solves all frames of each clip
from a larger render (default 256 px, 4x the training size) with a fixed focal prior (fx/W = 1.25,
E-RayZer's ``focal_init``; the generator's focal is NOT used). The truth is read only to score
the teacher: median relative rotation / translation-direction error over pairs of registered
frames (all pairs, and pairs at most 8 frames apart; identity cameras' rotation error next to
it), share of frames registered, CPU s per clip.

Usage (shards run side by side, then merged):
    python build_pose_teacher.py --start 0 --count 32 --out T0.pt
    python build_pose_teacher.py --start 32 --count 32 --out T1.pt
    python build_pose_teacher.py --merge T0.pt T1.pt --out teacher.pt --json summary.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from rayzer.config import DataConfig
from rayzer.data.clip_sources import SyntheticClips, synth_config
from rayzer.data.pose_teacher import PoseTeacher
from rayzer.refine.teacher_cameras import build_pose_teacher


def pair_errors(pred: torch.Tensor, true: torch.Tensor, valid: torch.Tensor, max_gap: int | None):
    """Relative rotation / translation-direction errors (deg) over frame pairs a < b, both valid."""
    rot, trans = [], []
    idx = torch.nonzero(valid).ravel().tolist()
    for a in idx:
        for b in idx:
            if b <= a or (max_gap is not None and b - a > max_gap):
                continue
            tp = torch.linalg.inv(pred[a].double()) @ pred[b].double()
            tt = torch.linalg.inv(true[a].double()) @ true[b].double()
            r = tp[:3, :3].T @ tt[:3, :3]
            rot.append(float(torch.rad2deg(torch.arccos(((r.trace() - 1) / 2).clamp(-1, 1)))))
            cos = tp[:3, 3] @ tt[:3, 3] / (tp[:3, 3].norm() * tt[:3, 3].norm()).clamp_min(1e-12)
            trans.append(float(torch.rad2deg(torch.arccos(cos.clamp(-1, 1)))))
    return rot, trans


def score(teacher: PoseTeacher, source: SyntheticClips) -> dict:
    """Per-clip and pooled accuracy of the teacher against the generator's cameras."""
    rows, pooled = [], {"all": ([], [], []), "gap<=8": ([], [], [])}
    frames = torch.arange(teacher.num_frames)
    for i, cid in enumerate(teacher.clip_ids.tolist()):
        true = source.load(cid - source.clip_id(0), frames, 8).c2w  # tiny render: cameras only
        row = {"clip_id": cid, "registered": int(teacher.registered[i].sum())}
        identity = torch.eye(4).expand_as(true)
        for key, gap in (("all", None), ("gap<=8", 8)):
            r, t = pair_errors(teacher.c2w[i], true, teacher.registered[i], gap)
            r0, _ = pair_errors(identity, true, teacher.registered[i], gap)
            pooled[key][0].extend(r)
            pooled[key][1].extend(t)
            pooled[key][2].extend(r0)
            row[key] = {
                "rot_med": float(np.median(r)) if r else None,
                "trans_med": float(np.median(t)) if t else None,
                "identity_rot_med": float(np.median(r0)) if r0 else None,
            }
        rows.append(row)
    n = teacher.registered.numel()
    out = {
        "clips": len(rows),
        "frames_registered_share": float(teacher.registered.sum()) / max(n, 1),
        "clips_with_any_registered": sum(r["registered"] > 0 for r in rows),
    }
    for key, (r, t, r0) in pooled.items():
        out[key] = {
            "pairs": len(r),
            "rot_median_deg": float(np.median(r)) if r else None,
            "identity_rot_median_deg": float(np.median(r0)) if r0 else None,
            "trans_dir_median_deg": float(np.median(t)) if t else None,
            "rot_share_below_5deg": float(np.mean(np.array(r) < 5)) if r else None,
            "trans_share_below_20deg": float(np.mean(np.array(t) < 20)) if t else None,
        }
    return {"summary": out, "per_clip": rows}


#: Meta keys that differ between shards of one cache (the rest say how the cameras were made).
_SHARD_OWN = ("cpu_s_per_clip", "cpu_s_total")


def merge_shards(parts: list[PoseTeacher]) -> PoseTeacher:
    """One cache of shards built side by side: their clips in order, the first shard's meta
    with the CPU seconds pooled (per clip: the mean over all clips; total: the sum). Shards
    made with other settings (``size``, ``focal_prior``, ``max_pair_gap``, ``synth`` …) are
    refused: the merged meta would claim the first shard's for all."""
    meta = dict(parts[0].meta)
    made = {k: v for k, v in meta.items() if k not in _SHARD_OWN}
    for n, part in enumerate(parts[1:], 1):
        other = {k: v for k, v in part.meta.items() if k not in _SHARD_OWN}
        if other != made:
            differ = sorted(k for k in made.keys() | other.keys() if made.get(k) != other.get(k))
            raise ValueError(
                f"shard {n} was made with other settings than shard 0: "
                + ", ".join(f"{k} {other.get(k)!r} (shard 0: {made.get(k)!r})" for k in differ)
            )
    clips = sum(len(p.clip_ids) for p in parts)
    meta["cpu_s_per_clip"] = sum(p.meta["cpu_s_per_clip"] * len(p.clip_ids) for p in parts) / clips
    if all("cpu_s_total" in p.meta for p in parts):
        meta["cpu_s_total"] = sum(p.meta["cpu_s_total"] for p in parts)
    return PoseTeacher(
        torch.cat([p.clip_ids for p in parts]),
        torch.cat([p.c2w for p in parts]),
        torch.cat([p.registered for p in parts]),
        meta,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="walk")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--focal-prior", type=float, default=1.25)
    ap.add_argument("--max-gap", type=int, default=None, help="match frames at most this far apart")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--merge", nargs="*", default=None)
    ap.add_argument("--out", required=True)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    source = SyntheticClips(
        synth_config(DataConfig(family=args.family, frames_per_clip=args.frames, image_size=64))
    )
    if args.merge:
        teacher = merge_shards([PoseTeacher.load(p) for p in args.merge])
    else:
        t0 = time.process_time()
        teacher = build_pose_teacher(
            source,
            range(args.start, args.start + args.count),
            args.size,
            args.focal_prior,
            log=lambda row: print(json.dumps(row), flush=True),
            max_pair_gap=args.max_gap,
        )
        teacher.meta["cpu_s_total"] = time.process_time() - t0
    teacher.save(args.out)
    result = {"meta": teacher.meta, **score(teacher, source)}
    print(json.dumps(result["summary"] | {"meta": teacher.meta}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
