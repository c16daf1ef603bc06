"""What a pose head could score on the held-out orbit set WITHOUT reading the direction of motion
from the images (experiments/issue18_explicit/README.md, "Pose only").

The orbit's azimuth step has a random sign per clip. A head that knows each view's frame index
(or learns the average motion) but not which way the camera turns can at best predict the true
motion for one sign and its mirror image for the other. This scores that bound on the bench's
held-out ``even`` set: the true relative poses where the scene turns one way, and the mirrored
ones (``M·T·M``, M = diag(−1, 1, 1, 1): the rotation about the camera's vertical axis and the
sideways translation reversed) where it turns the other, for either choice of the "known" sign.
Also prints how many test scenes turn each way (:func:`turn_sign`; a scene that does not turn
one way, none on orbit, is kept true). Cameras only (cheap).

Usage: python experiments/issue18_explicit/probe_orbit_sign_bound.py [--scenes 32]
"""

from __future__ import annotations

import argparse
import json

import torch

from rayzer.config import DataConfig, load_config
from rayzer.data.clip_sources import synth_config
from rayzer.eval.novel_view import EvalSample
from rayzer.eval.poses import pose_report
from rayzer.eval.synthetic_test_set import synthetic_test_sets
from rayzer.eval.turns import turn_signs
from rayzer.geometry import relative_pose_errors, se3_inverse


def bench_even_set(data: DataConfig, scenes: int) -> list[EvalSample]:
    """The held-out ``even`` samples of ``rayzer bench quality`` (its defaults: the first
    ``scenes`` TEST_SEEDS, the widest training span, protocol seed 0) for ``data``."""
    return synthetic_test_sets(
        synth_config(data),
        scenes,
        data.num_input_views,
        data.num_target_views,
        span=data.span_range()[2],
        protocols=("even",),
        seed=0,
    )["even"]


def turn_sign(c2w: torch.Tensor) -> float:
    """+1 / −1 / 0: the turn direction of one sample's (V, 4, 4) true cameras about the camera's
    vertical (y) axis, step by step (the library's :func:`rayzer.eval.turns.turn_signs`, which
    ``rayzer bench quality`` / ``rayzer eval`` split their pose read-outs by; 0: they do not turn
    one way).

    Until review R1 (after f27d376) this was the sign of the first-to-last rotation alone, which
    wraps beyond 180°: the bench's even scene 29 turns ~180° over its views, + at every step, and
    was counted − (20 − / 12 + instead of 19 / 13)."""
    return float(turn_signs(c2w).item())


def mirrored_relatives(c2w: torch.Tensor) -> torch.Tensor:
    """(V, 4, 4) cameras → cameras whose relative poses to view 0 are the mirrored truth."""
    m = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0], dtype=c2w.dtype))
    rel = se3_inverse(c2w[0])[None] @ c2w  # relative to view 0 (any gauge will do)
    return m @ rel @ m


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="erayzer-tiny-cpu")
    ap.add_argument("--scenes", type=int, default=32)
    args = ap.parse_args()
    samples = bench_even_set(load_config(args.config, []).data, args.scenes)
    gt = torch.stack([s.c2w.double() for s in samples])
    signs = [turn_sign(c) for c in gt]
    out = {
        "scenes": len(samples),
        "turn_plus": signs.count(1.0),
        "turn_minus": signs.count(-1.0),
        "turn_none": signs.count(0.0),  # kept true by the prior below (no direction to mirror)
    }
    for known in (1.0, -1.0):
        pred = torch.stack(
            [c if s != -known else mirrored_relatives(c) for c, s in zip(gt, signs, strict=True)]
        )
        rep = pose_report(pred, gt)
        out[f"known_sign_{'+' if known > 0 else '-'}"] = {
            "rot_med": rep["rot_err_deg_median"],
            "trans_med": rep["trans_dir_err_deg_median"],
            "rpa": rep["rpa"],
        }
    out["identity_rot_med"] = rep["identity_rot_err_deg_median"]
    ident = torch.eye(4, dtype=gt.dtype).expand_as(gt)
    rot = relative_pose_errors(ident, gt)["rot_deg"]
    turn = torch.tensor(signs)
    out["identity_rot_med_by_turn"] = {
        "plus": rot[turn > 0].median().item(),
        "minus": rot[turn < 0].median().item(),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
