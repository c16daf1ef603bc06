"""Shared pieces of ``rayzer bench reliability``: running the real CLI in a subprocess, judging
its failure, tiny training configs, checkpoints and scene folders.

A *clean failure* is what a user should see on bad input: exit code 2 (``rayzer: error: …``),
one message naming the problem and the file, no Python traceback, and no partial output.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: A RayZer small enough to train a step in ~0.1 s on one core: dim 32, 1+1+1 layers, 16 px,
#: 2 + 2 views, batch 4 (the sizes of the CI tests).
TINY_TRAIN = [
    "model.dim=32",
    "model.num_heads=2",
    "model.patch_size=8",
    "model.cam_layers=1",
    "model.scene_layers=1",
    "model.dec_layers=1",
    "model.num_scene_tokens=8",
    "model.pos_enc_dim=16",
    "data.image_size=16",
    "data.frames_per_clip=8",
    "data.num_input_views=2",
    "data.num_target_views=2",
    "data.span_min=4",
    "data.span_start_max=5",
    "data.span_end_max=8",
    "data.curriculum_steps=4",
    "data.num_workers=0",
    "train.batch_size=4",
    "train.warmup_steps=2",
    "train.lr=3e-3",
    "train.log_every=1",
    "train.image_every=0",
    "train.num_threads=1",
]


@dataclass
class Check:
    """One row of the reliability table: ``trials`` attempts, ``failures`` of them wrong.

    ``cases`` holds one record per trial (what was done, what happened) for the JSON report.
    """

    check: str
    trials: int = 0
    failures: int = 0
    detail: str = ""
    cases: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    #: a second view of trials counted in another row (left out of the totals)
    subset: bool = False

    def add(self, case: dict[str, Any], ok: bool) -> None:
        """Record one trial (``case`` gains ``ok``)."""
        self.trials += 1
        self.failures += 0 if ok else 1
        self.cases.append({**case, "ok": ok})

    def row(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "trials": self.trials,
            "failures": self.failures,
            "detail": self.detail,
        }


@dataclass
class CliRun:
    """A finished ``rayzer`` subprocess."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def message(self) -> str:
        """The last non-empty line of stderr (where ``rayzer: error: …`` goes)."""
        lines = [x for x in self.stderr.splitlines() if x.strip()]
        return lines[-1] if lines else ""


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child ``rayzer``: one OpenMP thread (the bench runs children in
    parallel on few cores), no Gradio analytics."""
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def rayzer_argv(*args: str | Path) -> list[str]:
    """The command line of the real CLI in this interpreter."""
    return [sys.executable, "-m", "rayzer.cli", *map(str, args)]


def run_cli(
    *args: str | Path,
    timeout: float = 300,
    cwd: Path | None = None,
    preexec_fn: Callable[[], None] | None = None,
    env: dict[str, str] | None = None,
) -> CliRun:
    """Run ``rayzer <args>`` to completion (killed after ``timeout`` s: returncode -9)."""
    argv = rayzer_argv(*args)
    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=env or child_env(),
        preexec_fn=preexec_fn,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        err += f"\n[bench: killed after {timeout:g} s]"
    return CliRun(argv, proc.returncode, out, err, time.monotonic() - start)


def judge_failure(run: CliRun, names: Sequence[str], absent: Sequence[Path] = ()) -> str | None:
    """Why ``run`` is *not* a clean failure, or None when it is: exit code 2, no traceback, a
    ``rayzer: error:`` message containing every string of ``names`` (file names, the problem),
    and none of the ``absent`` paths (outputs that must not be left) exists."""
    if run.returncode == 0:
        return "exited 0"
    if run.returncode != 2:
        return f"exit code {run.returncode}"
    if "Traceback" in run.stderr:
        return "traceback"
    if not run.message.startswith("rayzer: error:"):
        return f"last line is not a rayzer error: {run.message[:200]!r}"
    missing = [n for n in names if n not in run.message]
    if missing:
        return f"message does not name {missing}"
    left = [str(p) for p in absent if p.exists() or _staging_leftovers(p)]
    if left:
        return f"left {left}"
    return None


def _staging_leftovers(out: Path) -> list[Path]:
    """Hidden staging folders (``.<name>.*``) of an atomic output writer."""
    if not out.parent.is_dir():
        return []
    return [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def judge_success(run: CliRun, outputs: Sequence[Path] = ()) -> str | None:
    """Why ``run`` did not succeed cleanly, or None: exit code 0, no traceback, ``outputs``
    exist."""
    if run.returncode != 0:
        return f"exit code {run.returncode}: {run.message[:300]}"
    if "Traceback" in run.stderr:
        return "traceback on stderr"
    missing = [str(p) for p in outputs if not p.exists()]
    return f"missing outputs {missing}" if missing else None


def tiny_checkpoint(root: Path, *overrides: str, step: int = 1) -> Path:
    """A randomly initialised tiny checkpoint written by the project's own checkpoint code."""
    import torch

    from rayzer.config import load_config
    from rayzer.models import build_model
    from rayzer.train.checkpoint import save_checkpoint

    cfg = load_config("tiny-cpu", [*TINY_TRAIN, *overrides])
    torch.manual_seed(0)
    return save_checkpoint(root, step, build_model(cfg.model), {}, cfg)


def synthetic_scene(folder: Path, frames: int = 6, size: int = 16, seed: int = 5) -> Path:
    """A posed scene folder (images/ + cameras.json) of a built-in synthetic orbit."""
    from rayzer.data.synthetic import synth_command

    synth_command("orbit", seed, frames, size, str(folder))
    return folder


def write_photos(folder: Path, count: int, size: tuple[int, int] = (40, 32)) -> list[Path]:
    """``count`` smooth random JPEG photos of ``size = (W, H)`` named ``img<i>.jpg``."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(folder)))
    paths = []
    for i in range(count):
        coarse = (rng.random((4, 4, 3)) * 255).astype(np.uint8)
        path = folder / f"img{i}.jpg"
        Image.fromarray(coarse).resize(size, Image.BILINEAR).save(path)
        paths.append(path)
    return paths


def wait_for(predicate: Callable[[], bool], timeout: float, poll: float = 0.05) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return predicate()


def stop(proc: subprocess.Popen, sig: int = signal.SIGKILL, timeout: float = 60) -> None:
    """Send ``sig`` to a child still running and reap it (SIGKILL after ``timeout``)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
