"""Reading a training run's history: ``metrics.jsonl`` records, elapsed minutes, checkpoints.

Used by the benchmarks to draw learning curves of runs made by :mod:`rayzer.train` (whose
logger writes one JSON line per logged step: ``step``, ``time``, ``step_time``, ``cpu_s``,
``loss``, ``psnr`` …, and event lines with an ``event`` key).

Minutes are on one of two clocks (:data:`CLOCKS`): ``wall`` (from the ``time`` stamps) or
``process`` (process CPU, from ``cpu_s``: the CPU seconds of the training process since its
``train()`` started; runs logged before ``cpu_s`` existed have no process minutes).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from rayzer.train.checkpoint import CHECKPOINT_DIR, list_checkpoints
from rayzer.train.logger import METRICS_FILE


def run_dir_of(ckpt: Path) -> Path:
    """The run directory of a checkpoint (``<run>/checkpoints/step_N``)."""
    return ckpt.parent.parent if ckpt.parent.name == CHECKPOINT_DIR else ckpt.parent


def read_metrics(run_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Scalar records (deduplicated by step, sorted) and events of a run's ``metrics.jsonl``.

    A ``resume`` event drops what was logged for later steps before it (an abandoned branch),
    and the first record logged after it gets ``resumed: True``: a new invocation of
    ``train()``, whose ``cpu_s`` restarted at 0 (:func:`minutes_at` adds the earlier total).
    """
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return [], []
    scalars: dict[int, dict[str, Any]] = {}
    events = []
    resumed = False  # the next scalar record is the first of a resumed invocation
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash
        if "event" in rec:
            if rec["event"] == "resume":  # steps logged after the resumed one were abandoned
                step = int(rec["step"])
                scalars = {k: v for k, v in scalars.items() if k <= step}
                events = [e for e in events if int(e.get("step", 0)) <= step]
                resumed = True
            events.append(rec)
        elif "step" in rec:
            if resumed:
                rec["resumed"], resumed = True, False
            scalars[int(rec["step"])] = rec  # after a resume the later record wins
    return [scalars[k] for k in sorted(scalars)], events


def _float(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


#: The clocks of :func:`minutes_at` (the values of ``train.time_budget_clock``).
CLOCKS = ("wall", "process")


def minutes_at(
    scalars: list[dict[str, Any]], steps: list[int], clock: str = "wall"
) -> list[float | None]:
    """Minutes since the run's first step at each step on ``clock`` (:data:`CLOCKS`),
    interpolated between log records.

    ``wall``: the start is estimated as ``time₁ − step₁ · step_time₁``. ``process``: the logged
    ``cpu_s`` (process CPU since training started, 0 at the first step); a resumed run restarts
    ``cpu_s`` at 0, so at the first record of a resumed invocation (``resumed``, set by
    :func:`read_metrics`, or a drop of ``cpu_s``) the previous total is added (the CPU of the
    resumed invocation before its first record is counted from there; the earlier one's after
    its last kept record is not). None everywhere when the run logged no ``cpu_s``.
    """
    if clock not in CLOCKS:
        raise ValueError(f"unknown clock {clock!r} (expected one of {', '.join(CLOCKS)})")
    if clock == "process":
        return _process_minutes_at(scalars, steps)
    recs = [r for r in scalars if "time" in r and "step_time" in r]
    if not recs:
        return [None] * len(steps)
    t0 = _float(recs[0]["time"]) - recs[0]["step"] * _float(recs[0]["step_time"])
    xs = np.array([0.0] + [r["step"] for r in recs])
    ys = np.array([0.0] + [(_float(r["time"]) - t0) / 60.0 for r in recs])
    last_rate = _float(recs[-1]["step_time"]) / 60.0
    out: list[float | None] = []
    for s in steps:
        if s <= xs[-1]:
            out.append(float(np.interp(s, xs, ys)))
        else:
            out.append(float(ys[-1] + (s - xs[-1]) * last_rate))
    return out


def _process_minutes_at(scalars: list[dict[str, Any]], steps: list[int]) -> list[float | None]:
    """:func:`minutes_at` on the process clock (``cpu_s``)."""
    recs = [r for r in scalars if "cpu_s" in r and math.isfinite(_float(r["cpu_s"]))]
    if not recs:
        return [None] * len(steps)
    xs, ys = [0.0], [0.0]
    offset, prev = 0.0, 0.0
    for r in recs:
        cpu = _float(r["cpu_s"])
        # a resumed invocation: its clock restarted at 0. A drop alone misses a resume whose
        # first record logs more CPU than the earlier invocation's last (a short first run)
        if cpu < prev or r.get("resumed"):
            offset += prev
        prev = cpu
        xs.append(float(r["step"]))
        ys.append((offset + cpu) / 60.0)
    # past the last record: the last interval's CPU per step
    rate = (ys[-1] - ys[-2]) / max(xs[-1] - xs[-2], 1.0)
    return [
        float(np.interp(s, xs, ys)) if s <= xs[-1] else ys[-1] + (s - xs[-1]) * rate for s in steps
    ]


def run_summary(run_dir: Path, ckpt: Path, step: int) -> dict[str, Any]:
    """Training facts of a run from its ``metrics.jsonl`` and checkpoints: ``minutes`` (wall)
    and ``cpu_minutes`` (process CPU; None for runs logged without ``cpu_s``) at ``step``."""
    scalars, events = read_metrics(run_dir)
    stops = [e.get("reason") for e in events if e.get("event") == "stop"]
    skipped = [e for e in events if e.get("event") == "skipped_update"]
    step_times = [_float(r["step_time"]) for r in scalars if "step_time" in r]
    tail = scalars[-5:]
    return {
        "run_dir": str(run_dir),
        "checkpoint": str(ckpt),
        "step": step,
        "minutes": minutes_at(scalars, [step])[0],
        "cpu_minutes": minutes_at(scalars, [step], "process")[0],
        "sec_per_step_median": float(np.median(step_times)) if step_times else None,
        "stopped_by": stops[-1] if stops else None,
        "skipped_updates": len(skipped),
        "final_train_loss": _mean_key(tail, "loss"),
        "final_train_psnr": _mean_key(tail, "psnr"),
        "num_checkpoints": len(list_checkpoints(run_dir)),
    }


def _mean_key(records: list[dict[str, Any]], key: str) -> float | None:
    vals = [_float(r[key]) for r in records if key in r]
    vals = [v for v in vals if math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


def train_curve(run_dir: Path, clock: str = "wall") -> list[dict[str, Any]]:
    """Training loss / PSNR vs step and minutes on ``clock`` (from ``metrics.jsonl``)."""
    scalars, _ = read_metrics(run_dir)
    minutes = minutes_at(scalars, [r["step"] for r in scalars], clock)
    return [
        {
            "step": r["step"],
            "minutes": m,
            "loss": _float(r.get("loss")),
            "psnr": _float(r.get("psnr")),
        }
        for r, m in zip(scalars, minutes, strict=True)
    ]


def pick_checkpoints(ckpts: list[Path], points: int) -> list[Path]:
    """At most ``points`` checkpoints evenly spread over the run, always the last one."""
    if points <= 0 or not ckpts:
        return []
    if len(ckpts) <= points:
        return list(ckpts)
    if points == 1:
        return [ckpts[-1]]
    idx = np.unique(np.round(np.linspace(0, len(ckpts) - 1, points)).astype(int))
    return [ckpts[i] for i in idx]
