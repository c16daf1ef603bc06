"""Training under faults for ``rayzer bench reliability``: SIGKILL at random moments and inside
checkpoint writes, SIGTERM / SIGINT, a full disk, two trainings on one run folder, and
DDP / gradient accumulation against one process.

Every training is a real ``rayzer train`` subprocess of the tiny configuration
(:data:`~rayzer.bench.reliability_tools.TINY_TRAIN`); "bit-identical" compares every weight
tensor of the final checkpoint with ``torch.equal`` and every step's logged loss exactly.
"""

from __future__ import annotations

import json
import math
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rayzer.bench.reliability_tools import (
    TINY_TRAIN,
    Check,
    child_env,
    judge_failure,
    rayzer_argv,
    run_cli,
    stop,
    wait_for,
)
from rayzer.checkpoints import (
    CHECKPOINT_DIR,
    list_checkpoints,
    read_checkpoint_config,
    read_model_weights,
)
from rayzer.train.checkpoint import load_checkpoint

#: Checkpoint every other step: a kill mid-interval makes the resume replay steps (RNG, data
#: order and optimizer state must all come back).
CKPT_EVERY = 2


def train_args(steps: int, *extra: str) -> list[str]:
    """``rayzer train`` arguments of the tiny run (``--out`` and ``--resume`` added by callers)."""
    return [
        "train",
        "--config",
        "tiny-cpu",
        *TINY_TRAIN,
        f"train.steps={steps}",
        f"train.ckpt_every={CKPT_EVERY}",
        *extra,
    ]


def step_losses(out: Path) -> dict[int, float]:
    """The loss of each step in ``out/metrics.jsonl`` (the last record wins: a resume replays
    the steps after its checkpoint)."""
    losses: dict[int, float] = {}
    path = out / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill
                continue
            if "event" not in record and "loss" in record:
                losses[int(record["step"])] = float(record["loss"])
    return losses


def final_weights(out: Path) -> tuple[int, dict[str, torch.Tensor]]:
    """Step and tensors of the newest checkpoint of run folder ``out``."""
    ckpts = list_checkpoints(out)
    if not ckpts:
        return 0, {}
    tensors, meta = read_model_weights(ckpts[-1])
    return int(meta.get("step", -1)), tensors


def unloadable_checkpoints(out: Path) -> list[str]:
    """Checkpoints of ``out`` that do not load (weights, state, config) — must stay empty."""
    from rayzer.models import build_model

    bad = []
    for ckpt in list_checkpoints(out):
        try:
            load_checkpoint(ckpt, build_model(read_checkpoint_config(ckpt).model))
        except (OSError, ValueError) as err:
            bad.append(f"{ckpt.name}: {err}")
    return bad


def temp_folders(out: Path) -> list[str]:
    """Hidden temporaries of unfinished checkpoint writes under ``out/checkpoints``."""
    root = out / CHECKPOINT_DIR
    return sorted(p.name for p in root.glob(".tmp-*")) if root.is_dir() else []


def max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference over all shared tensors (inf if the key sets differ)."""
    if set(a) != set(b) or not a:
        return math.inf
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


@dataclass
class Reference:
    """An uninterrupted tiny run: what every interrupted chain must reproduce exactly."""

    out: Path
    steps: int
    startup_s: float
    step_s: float
    weights: dict[str, torch.Tensor]
    losses: dict[int, float]

    def same_as(self, out: Path) -> str | None:
        """Why run folder ``out`` differs from the reference, or None when bit-identical."""
        step, weights = final_weights(out)
        if step != self.steps:
            return f"ended at step {step}, not {self.steps}"
        if set(weights) != set(self.weights):
            return "different weight names"
        differ = [k for k in weights if not torch.equal(weights[k], self.weights[k])]
        if differ:
            diff = max_abs_diff(weights, self.weights)
            return f"{len(differ)} weight tensors differ (max |diff| {diff:.3g})"
        losses = step_losses(out)
        if losses != self.losses:
            bad = [s for s in self.losses if losses.get(s) != self.losses[s]]
            return f"losses differ at steps {bad[:5]}"
        return None


def _wait_for_steps(proc: subprocess.Popen, out: Path, steps: int) -> None:
    """Wait until ``out`` logged ``steps`` steps or ``proc`` ended (at most 300 s)."""
    wait_for(lambda: len(step_losses(out)) >= steps or proc.poll() is not None, 300)


def _launch(args: list[str], out: Path, **kwargs: Any) -> subprocess.Popen:
    return subprocess.Popen(
        rayzer_argv(*args, "--out", out),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        **kwargs,
    )


def reference_run(out: Path, quick: bool = False) -> Reference:
    """Train the tiny run once without interruption and time its start-up and steps."""
    steps = 8 if quick else 24
    shutil.rmtree(out, ignore_errors=True)
    start = time.monotonic()
    proc = _launch([*train_args(steps), "--resume", "auto"], out)
    wait_for(lambda: 1 in step_losses(out) or proc.poll() is not None, 300, 0.02)
    startup = time.monotonic() - start
    _, err = proc.communicate(timeout=600)
    total = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"the reference training failed: {err[-2000:]}")
    _, weights = final_weights(out)
    return Reference(out, steps, startup, (total - startup) / steps, weights, step_losses(out))


#: Where a kill lands (cycled within a chain): anywhere in the process's life (start-up and
#: resume included), inside a checkpoint write, or while it trains (after its first step).
KILL_MODES = ("anywhere", "inside checkpoint write", "while training")


def _step_records(out: Path) -> int:
    path = out / "metrics.jsonl"
    if not path.is_file():
        return 0
    return sum('"event"' not in line for line in path.read_text().splitlines())


def _kill_once(ref: Reference, out: Path, rng: random.Random, mode: str) -> dict:
    """Start ``rayzer train --resume auto`` on ``out`` and SIGKILL it at a random moment of
    the kind ``mode`` (:data:`KILL_MODES`). The record says what happened."""
    done = max(step_losses(out), default=0)
    remaining = ref.steps - done
    before = _step_records(out)
    proc = _launch([*train_args(ref.steps), "--resume", "auto"], out)
    start = time.monotonic()
    root = out / CHECKPOINT_DIR
    if mode == "inside checkpoint write":
        # Start watching at a random moment of the run, then kill as soon as a write starts
        # (plus a random part of a typical write, so the kill lands at different files).
        wait_for(lambda: proc.poll() is not None, rng.uniform(0.5, 1.0) * ref.startup_s)

        mine = f"-{proc.pid}"  # not a temp folder an earlier kill left behind

        def writing() -> bool:
            return proc.poll() is not None or (
                root.is_dir()
                and any(
                    e.name.startswith(".tmp-") and e.name.endswith(mine) for e in os.scandir(root)
                )
            )

        wait_for(writing, 300, 0.001)
        time.sleep(rng.uniform(0.0, 0.02))
    elif mode == "while training":
        wait_for(lambda: _step_records(out) > before or proc.poll() is not None, 300, 0.005)
        delay = rng.uniform(0.0, 0.9) * max(0, remaining - 1) * ref.step_s
        wait_for(lambda: proc.poll() is not None, delay, 0.005)
    else:
        delay = rng.uniform(0.0, 1.0) * (ref.startup_s + remaining * ref.step_s)
        wait_for(lambda: proc.poll() is not None, delay, 0.005)
    at = time.monotonic() - start
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=120)
    pid_temps = [t for t in temp_folders(out) if t.endswith(f"-{proc.pid}")]
    return {
        "mode": mode,
        "at_s": round(at, 3),
        "killed": killed,
        "returncode": proc.returncode,
        "steps_logged_before": done,
        "steps_logged_after": max(step_losses(out), default=0),
        "steps_run_before_kill": _step_records(out) - before,
        "kill_left_temp_folder": bool(pid_temps),
        "unloadable": unloadable_checkpoints(out) if killed else [],
    }


def _chain(ref: Reference, out: Path, seed: int, kills: int) -> dict:
    """Up to ``kills`` SIGKILLs of one run (kinds of moment cycled: :data:`KILL_MODES`), then a
    resume to the end, compared with the reference."""
    rng = random.Random(seed)
    shutil.rmtree(out, ignore_errors=True)
    records = []
    for k in range(kills):
        record = _kill_once(ref, out, rng, KILL_MODES[k % len(KILL_MODES)])
        records.append(record)
        if not record["killed"]:  # the run ended before the kill: nothing left to interrupt
            break
    final = run_cli(*train_args(ref.steps), "--resume", "auto", "--out", out, timeout=600)
    why = ref.same_as(out) if final.returncode == 0 else f"resume failed: {final.message}"
    return {"seed": seed, "kills": records, "different": why, "temps_left": temp_folders(out)}


def kill_check(ref: Reference, folder: Path, seed: int, kills: int, jobs: int) -> list[Check]:
    """≥ ``kills`` SIGKILLs over chains of 3 (run ``jobs`` at a time): loadability after each
    kill, bit-identity of each chain's end."""
    per_chain = min(3, kills)
    chains: list[dict] = []
    delivered = 0
    while delivered < kills:  # a run that ends before its kill adds a chain
        need = math.ceil((kills - delivered) / per_chain)
        seeds = [seed * 1000 + len(chains) + i for i in range(need)]
        with ThreadPoolExecutor(jobs) as pool:
            new = list(pool.map(lambda s: _chain(ref, folder / f"chain{s}", s, per_chain), seeds))
        chains += new
        delivered = sum(r["killed"] for c in chains for r in c["kills"])
    kill = Check("SIGKILL of `train --resume auto`, then every checkpoint loads")
    identical = Check("resume after SIGKILLs = uninterrupted run (bit-identical)")
    inside = 0
    for chain in chains:
        for record in chain["kills"]:
            if record["killed"]:
                inside += record["kill_left_temp_folder"]
                kill.add({"chain": chain["seed"], **record}, not record["unloadable"])
        identical.add(
            {"chain": chain["seed"], "kills": sum(r["killed"] for r in chain["kills"]),
             "different": chain["different"], "temps_left": chain["temps_left"]},
            chain["different"] is None and not chain["temps_left"],
        )  # fmt: skip
    unloadable = sum(len(c["unloadable"]) for c in kill.cases)
    startup = sum(c["steps_run_before_kill"] == 0 and not c["kill_left_temp_folder"]
                  for c in kill.cases)  # fmt: skip
    kill.detail = (
        f"{kill.trials} kills at seeded random moments: {inside} inside a checkpoint write "
        f"(temp folder left), {kill.trials - inside - startup} while training, {startup} during "
        f"start-up / resume; {unloadable} unloadable checkpoints"
    )
    kill.figures = {"kills": kill.trials, "inside_write": inside, "startup": startup,
                    "unloadable": unloadable}  # fmt: skip
    same = identical.trials - identical.failures
    identical.detail = (
        f"{same}/{identical.trials} chains ({ref.steps} steps, checkpoint every {CKPT_EVERY}) "
        "end with bit-identical weights and per-step losses; no temp folder left"
    )
    identical.figures = {"chains": identical.trials, "bit_identical": same}
    return [kill, identical]


def signal_check(ref: Reference, folder: Path, repeats: int = 2) -> Check:
    """SIGTERM / SIGINT mid-run: exit 0 and a checkpoint of the running step; a resume then
    ends bit-identical to the reference."""
    check = Check("SIGTERM / SIGINT: final checkpoint, exit 0, exact resume")
    for r in range(repeats):
        for sig in (signal.SIGTERM, signal.SIGINT):
            out = folder / f"{sig.name}-{r}"
            shutil.rmtree(out, ignore_errors=True)
            after = 2 + (r * 7 + sig) % max(1, ref.steps - 4)
            proc = _launch([*train_args(ref.steps), "--resume", "auto"], out)
            _wait_for_steps(proc, out, after)
            sent = proc.poll() is None
            if sent:
                proc.send_signal(sig)
            stdout, stderr = proc.communicate(timeout=120)
            last = max(step_losses(out), default=0)
            step, _ = final_weights(out)
            why = None
            if not sent:
                why = "the run ended before the signal"
            elif proc.returncode != 0 or f"stopped ({sig.name})" not in stdout:
                why = f"exit code {proc.returncode}: {stderr[-300:]}"
            elif step != last:
                why = f"last checkpoint is step {step}, the last step run was {last}"
            elif unloadable_checkpoints(out):
                why = f"unloadable: {unloadable_checkpoints(out)}"
            else:
                resumed = run_cli(*train_args(ref.steps), "--resume", "auto", "--out", out)
                why = ref.same_as(out) if resumed.returncode == 0 else resumed.message
            check.add({"signal": sig.name, "after_steps": last, "different": why}, why is None)
    check.detail = (
        f"{check.trials - check.failures}/{check.trials} stopped with exit 0 and a checkpoint "
        "of the running step, then resumed bit-identical to the uninterrupted run"
    )
    return check


def _fsize_limit(limit: int):
    def apply() -> None:  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    return apply


def disk_check(folder: Path, quick: bool = False) -> Check:
    """A full disk (file-size limit ``RLIMIT_FSIZE`` in the child, which makes writes past it
    fail with EFBIG as on a full disk) while ``rayzer train`` writes a checkpoint: exit 2 with
    one message naming the checkpoint folder, the earlier checkpoint intact, no temp left."""
    check = Check("full disk (RLIMIT_FSIZE) at a checkpoint write")
    base = folder / "base"
    shutil.rmtree(base, ignore_errors=True)
    first = run_cli(*train_args(2), "--out", base)
    if first.returncode != 0:
        raise RuntimeError(f"training the disk-check base run failed: {first.stderr[-2000:]}")
    (ckpt,) = list_checkpoints(base)
    largest = max(p.stat().st_size for p in ckpt.iterdir())
    limits = [16_384, largest - 1] if quick else [16_384, 262_144, largest // 2, largest - 1]
    for limit in limits:
        out = folder / f"limit-{limit}"
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(base, out)
        (out / "train.lock").unlink(missing_ok=True)
        run = run_cli(
            *train_args(4), "--resume", "auto", "--out", out, preexec_fn=_fsize_limit(limit)
        )
        why = judge_failure(run, [str(out / CHECKPOINT_DIR)])
        names = [p.name for p in list_checkpoints(out)]
        if why is None and names != [ckpt.name]:
            why = f"checkpoints after the failure: {names}"
        if why is None and (unloadable_checkpoints(out) or temp_folders(out)):
            why = f"damaged: {unloadable_checkpoints(out)} temps {temp_folders(out)}"
        check.add({"limit_bytes": limit, "message": run.message, "problem": why}, why is None)
    # a fresh run that cannot write its first checkpoint
    out = folder / "fresh"
    shutil.rmtree(out, ignore_errors=True)
    run = run_cli(*train_args(2), "--out", out, preexec_fn=_fsize_limit(limits[-1]))
    why = judge_failure(run, [str(out / CHECKPOINT_DIR)])
    if why is None and (list_checkpoints(out) or temp_folders(out)):
        why = "left a partial checkpoint"
    check.add({"limit_bytes": limits[-1], "fresh": True, "message": run.message,
               "problem": why}, why is None)  # fmt: skip
    check.detail = (
        f"file-size limits {', '.join(map(str, limits))} B: exit 2 naming the checkpoint "
        "folder, earlier checkpoint loads, no partial checkpoint"
    )
    return check


def lock_check(folder: Path) -> Check:
    """A second ``rayzer train`` on a run folder in use (with and without ``--resume auto``)
    is refused naming the folder, and adds nothing to it."""
    check = Check("second training on a run folder in use is refused")
    out = folder / "run"
    shutil.rmtree(out, ignore_errors=True)
    first = _launch([*train_args(100_000), "--resume", "auto"], out)
    try:
        _wait_for_steps(first, out, 1)
        for extra in (["--resume", "auto"], []):
            run = run_cli(*train_args(100_000), *extra, "--out", out)
            why = judge_failure(run, [str(out), "in use"])
            check.add({"second": " ".join(extra) or "fresh", "message": run.message,
                       "problem": why}, why is None)  # fmt: skip
    finally:
        stop(first, signal.SIGTERM)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(x)["step"] for x in lines if '"event"' not in x]
    duplicated = len(steps) != len(set(steps))
    check.add({"first_exit": first.returncode, "duplicated_steps": duplicated},
              first.returncode == 0 and not duplicated)  # fmt: skip
    check.detail = "refused with exit 2 naming the folder; the first run's log has no duplicates"
    return check


def ddp_check(folder: Path, quick: bool = False) -> Check:
    """Largest weight difference after training on one global batch of 4: 1 process vs
    1 process with accumulation 2, 2-process DDP (gloo), and 2-process DDP with accumulation 2.
    A failure is a difference above 1e-5 (float32 sums in another order differ by ulps)."""
    steps = 2 if quick else 4
    args = train_args(steps, f"train.ckpt_every={steps}")
    runs = {
        "1 process": ([], 1),
        "1 process, accumulation 2": (["train.grad_accum=2"], 1),
        "2-process DDP": ([], 2),
        "2-process DDP, accumulation 2": (["train.grad_accum=2"], 2),
    }
    results: dict[str, tuple[dict[str, torch.Tensor], dict[int, float], str]] = {}
    for name, (extra, procs) in runs.items():
        out = folder / name.replace(" ", "_").replace(",", "")
        shutil.rmtree(out, ignore_errors=True)
        argv = [*args, *extra, "--out", str(out)]
        if procs > 1:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc_per_node", str(procs), "-m", "rayzer.cli", *argv]  # fmt: skip
        else:
            cmd = rayzer_argv(*argv)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), timeout=600)
        error = "" if proc.returncode == 0 else proc.stderr[-500:]
        _, weights = final_weights(out)
        results[name] = (weights, step_losses(out), error)
    check = Check("DDP / accumulation = 1 process (same global batch)")
    pairs = [("1 process", name) for name in list(runs)[1:]]
    pairs.append(("1 process, accumulation 2", "2-process DDP, accumulation 2"))
    for base, name in pairs:
        ref_w, ref_l, ref_err = results[base]
        weights, losses, error = results[name]
        if base != "1 process":
            name = f"{name} vs {base}"
        diff = max_abs_diff(weights, ref_w)
        loss_diff = max((abs(losses[s] - ref_l[s]) for s in ref_l if s in losses), default=0.0)
        equal = (
            bool(weights)
            and set(weights) == set(ref_w)
            and all(torch.equal(weights[k], ref_w[k]) for k in ref_w)
        )
        check.figures[name] = {"max_abs_weight_diff": diff, "bit_equal": equal,
                               "max_abs_loss_diff": loss_diff}  # fmt: skip
        ok = not error and not ref_err and diff <= 1e-5 and len(losses) == steps
        check.add({"run": name, "max_abs_weight_diff": diff, "bit_equal": equal,
                   "max_abs_loss_diff": loss_diff, "error": error or ref_err}, ok)  # fmt: skip
    check.detail = f"{steps} steps, batch 4; max abs weight difference vs 1 process: " + "; ".join(
        f"{k}: {v['max_abs_weight_diff']:.2g}" + (" (bit-equal)" if v["bit_equal"] else "")
        for k, v in check.figures.items()
    )
    return check
