"""The pose-teacher term of IDENTITY cameras on the very training batches a run logged, next to
the run's logged term: what a logged ``teacher`` / ``teacher_rot_deg`` is to be read against
(experiments/issue18_explicit/README.md, "The supervised ceiling").

Rebuilds the run's stream (its config.yaml: seed, pool, curriculum, cache) and draws the views
of each logged step's batch without rendering them (``TrainStream._choose_views``, as
tests/data/test_pose_teacher.py does), looks the cache's cameras up and scores identity
cameras with :func:`rayzer.models.pose_teacher_loss.pose_teacher_terms`. Prints one JSON line
per logged step. Single process, batch of one micro-batch (no gradient accumulation).

Usage: python probe_term_vs_identity.py RUN > RUN_term_vs_identity.jsonl
"""

from __future__ import annotations

import json
import sys

import torch

from rayzer.config import load_config
from rayzer.data.pose_teacher import PoseTeacher
from rayzer.data.stream import BatchLayout, TrainStream, sample_generator
from rayzer.models.pose_teacher_loss import pose_teacher_terms


def main(run: str) -> None:
    cfg = load_config(f"{run}/config.yaml", [])
    teacher = PoseTeacher.load(cfg.data.pose_teacher)
    layout = BatchLayout(cfg.train.batch_size)
    stream = TrainStream(cfg.data, cfg.train.seed, layout)
    source = stream.sources[0]
    with open(f"{run}/metrics.jsonl") as f:
        logged = {row["step"]: row for row in map(json.loads, f) if "teacher" in row}
    for step in sorted(logged):
        c2w, valid = [], []
        for sid in layout.sample_ids(0, step - 1):  # the batch of the step-th update
            gen = sample_generator(cfg.train.seed, sid)
            clip, views = stream._choose_views(source, layout.step_of(sid), gen)
            t, v = teacher.lookup(source.clip_id(clip), views.frames)
            c2w.append(t)
            valid.append(v)
        t, v = torch.stack(c2w), torch.stack(valid)
        out = pose_teacher_terms(torch.eye(4).expand_as(t).clone(), t, v)
        row = logged[step]
        print(
            json.dumps(
                {
                    "step": step,
                    "identity_term": round(float(out["loss"]), 3),
                    "identity_rot_deg": round(float(out["rot_deg"]), 2),
                    "logged_term": round(row["teacher"], 3),
                    "logged_rot_deg": round(row["teacher_rot_deg"], 2),
                    "logged_trans_deg": round(row["teacher_trans_deg"], 2),
                }
            )
        )


if __name__ == "__main__":
    main(sys.argv[1])
