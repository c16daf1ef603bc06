"""Atomic, safely loadable training checkpoints (writing, training state, resume branches).

Finding and reading checkpoints is :mod:`rayzer.checkpoints`. Layout of a run directory::

    <out_dir>/checkpoints/step_000500/
        model.safetensors   weights (metadata: format, model name, step)
        state.pt            optimizer, scheduler, RNG, step, data-stream and spike-guard state
                            (plain tensors / containers: loads with ``weights_only=True``)
        config.yaml         the full config of the run
        meta.json           human-readable summary (step, model, world size, versions)

A checkpoint is written into a hidden temporary directory beside its final place, flushed to
disk, and renamed into place, so a crash never leaves a half-written ``step_*`` directory; only
complete checkpoints are ever listed. The last ``keep_last`` are kept.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import save_file
from torch import nn

from rayzer.checkpoints import (
    _OLD_STEP_DIR,
    CHECKPOINT_DIR,
    CONFIG_FILE,
    FORMAT,
    META_FILE,
    MODEL_FILE,
    STATE_FILE,
    checkpoint_root,
    checkpoint_step,
    first_non_finite,
    latest_checkpoint,
    list_checkpoints,
    load_model_weights,
    read_model_weights,
    resolve_checkpoint,
)
from rayzer.config import Config, config_to_yaml, load_config

log = logging.getLogger("rayzer.train")
#: ``.tmp-step_N-PID``: a checkpoint being written by process PID (see :func:`save_checkpoint`).
_TMP_STEP_DIR = re.compile(r"^\.tmp-step_\d+-(\d+)$")

__all__ = [
    "CHECKPOINT_DIR",
    "CONFIG_FILE",
    "META_FILE",
    "MODEL_FILE",
    "STATE_FILE",
    "SUPERSEDED_DIR",
    "LoadedCheckpoint",
    "check_intact",
    "checkpoint_root",
    "checkpoint_step",
    "latest_checkpoint",
    "latest_intact_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_model_weights",
    "read_model_weights",
    "resolve_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "supersede_later_checkpoints",
]


# -- RNG state -------------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) RNG states as weights_only-loadable objects."""
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": np_state["bit_generator"],
            "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]},
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- locating checkpoints ----------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temporaries(root: Path) -> list[Path]:
    """Delete ``.tmp-step_N-PID`` folders whose writer is gone (killed mid-write); returns them.

    Why: a kill during a checkpoint write leaves the half-written folder behind, and nothing
    else ever looks at it again (it once added up to 59 MB after three runs). A folder of a
    live process is left alone: it may be a write in progress.
    """
    removed = []
    for p in root.iterdir():
        m = _TMP_STEP_DIR.match(p.name)
        if m is not None and p.is_dir() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def _restore_interrupted_resaves(root: Path) -> None:
    """Tidy a checkpoint folder after an interrupted run: delete the temporary folders of
    writers that are gone (:func:`_remove_stale_temporaries`), put back ``.old-step_N-PID``
    directories whose ``step_N`` is missing (a re-save cut between its two renames) and delete
    those whose ``step_N`` exists (cut after them)."""
    _remove_stale_temporaries(root)
    for p in root.iterdir():
        m = _OLD_STEP_DIR.match(p.name)
        if m is None or not p.is_dir():
            continue
        final = root / f"step_{int(m.group(1)):06d}"
        if final.exists():
            shutil.rmtree(p, ignore_errors=True)
        elif (p / MODEL_FILE).is_file():
            os.replace(p, final)


SUPERSEDED_DIR = "superseded"


def supersede_later_checkpoints(out_dir: str | Path, step: int) -> list[Path]:
    """Move a run's checkpoints newer than ``step`` out of the way; returns their new paths.

    Resuming a run from an older checkpoint starts a new branch of it. The newer checkpoints of
    the old branch must not stay where ``--resume auto`` and keep-last pruning look (both go by
    step number, and would pick or keep the abandoned branch), yet nothing already written may
    be lost: they move to ``checkpoints/superseded/<time>/step_N``.
    """
    root = checkpoint_root(out_dir)
    if root.is_dir():  # an interrupted re-save's .old copy must move with its branch
        _restore_interrupted_resaves(root)
    later = [p for p in list_checkpoints(out_dir) if checkpoint_step(p) > step]
    if not later:
        return []
    dest = root / SUPERSEDED_DIR / time.strftime("%Y%m%d-%H%M%S")
    suffix = 0
    while dest.exists():  # two resumes within one second
        suffix += 1
        dest = dest.with_name(f"{dest.name.split('.')[0]}.{suffix}")
    dest.mkdir(parents=True)
    moved = []
    for p in later:
        name = f"step_{checkpoint_step(p):06d}"
        os.replace(p, dest / name)
        moved.append(dest / name)
    _fsync_dir(root)
    return moved


# -- saving ----------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _file_mode() -> int:
    """The mode ``open()`` gives new files under the current umask (0o644 under umask 022).

    Why: safetensors creates its file 0o600 while ``open()`` honours the umask; a checkpoint
    should not mix private and shared files.
    """
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _write_error(err: BaseException, step: int, root: Path) -> OSError:
    """A one-line OSError for a failed checkpoint write that names the folder and its disk.

    Why: the writers fail with their own words (torch: "PytorchStreamWriter failed writing file
    data/0: file write failed"; safetensors: an I/O error in Rust syntax) that name neither the
    folder nor the cause; a full disk or a file-size limit is the usual one.
    """
    reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
    code = getattr(err, "errno", None)
    if code is None:  # safetensors reports the OS error in its text: "... (os error 28)"
        m = re.search(r"os error (\d+)", str(err))
        code = int(m.group(1)) if m else None
    try:
        free = f"{shutil.disk_usage(root).free / 2**20:.0f} MB free"
    except OSError:
        free = "free space unknown"
    cause = (
        "the disk is full or a file-size limit was hit"
        if code in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
        else "is the disk full?"
    )
    earlier = bool(list_checkpoints(root.parent))  # root is <run>/checkpoints
    kept = "the previous checkpoints are intact" if earlier else "no earlier checkpoint of this run"
    error = OSError(
        f"cannot write checkpoint step {step} in {root} ({free} on that disk; {cause}): "
        f"{reason}; {kept}"
    )
    error.errno = code  # kept for callers, out of the message ("[Errno 28] ..." reads badly)
    return error


def save_checkpoint(
    out_dir: str | Path,
    step: int,
    model: nn.Module,
    state: dict[str, Any],
    cfg: Config,
    keep_last: int = 0,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write checkpoint ``step`` of a run atomically and prune to the last ``keep_last``.

    Args:
        out_dir: run directory; the checkpoint goes to ``out_dir/checkpoints/step_<step>``.
        model: the (unwrapped) model; its ``cfg.name`` is recorded.
        state: optimizer / scheduler / RNG / data state (plain containers of tensors & numbers).
        cfg: the run config (written as ``config.yaml``).
        keep_last: keep only the newest K checkpoints (0 = keep all).
        meta: extra JSON-serialisable facts for ``meta.json``.
    Returns:
        The checkpoint directory.
    """
    root = checkpoint_root(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    _restore_interrupted_resaves(root)
    final = root / f"step_{step:06d}"
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    model_name = getattr(getattr(model, "cfg", None), "name", type(model).__name__.lower())
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp.mkdir()
    try:
        save_file(
            tensors,
            str(tmp / MODEL_FILE),
            metadata={"format": FORMAT, "model": str(model_name), "step": str(step)},
        )
        torch.save(
            {"format": FORMAT, "model": str(model_name), "step": step, **state}, tmp / STATE_FILE
        )
        (tmp / CONFIG_FILE).write_text(config_to_yaml(cfg))
        info = {
            "format": FORMAT,
            "step": step,
            "model": model_name,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "torch": torch.__version__,
            **(meta or {}),
        }
        (tmp / META_FILE).write_text(json.dumps(info, indent=2) + "\n")
        mode = _file_mode()
        for f in tmp.iterdir():
            os.chmod(f, mode)
            _fsync_file(f)
        _fsync_dir(tmp)
        if final.exists():  # re-saving a step (e.g. stop signal right after a periodic save)
            old = root / f".old-{final.name}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(root)
    except Exception as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError | RuntimeError | SafetensorError):  # the writers' I/O errors
            raise _write_error(err, step, root) from err
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if keep_last > 0:
        for old in list_checkpoints(out_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


# -- loading ---------------------------------------------------------------------------------


@dataclass
class LoadedCheckpoint:
    """What :func:`load_checkpoint` found: the directory, its step, training state and config."""

    path: Path
    step: int
    state: dict[str, Any]
    config: Config | None


def load_checkpoint(path: str | Path, model: nn.Module | None = None) -> LoadedCheckpoint:
    """Resolve ``path`` (see :func:`resolve_checkpoint`), load weights into ``model`` (if given)
    and read the training state with ``torch.load(weights_only=True)``.

    Raises:
        FileNotFoundError: missing checkpoint / files. ValueError: corrupt files or a checkpoint
            of another model.
    """
    ckpt = resolve_checkpoint(path)
    if model is not None:
        load_model_weights(ckpt, model)
    state_file = ckpt / STATE_FILE
    if not state_file.is_file():
        raise FileNotFoundError(f"checkpoint {str(ckpt)!r} has no {STATE_FILE} (training state)")
    try:
        state = torch.load(state_file, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated / foreign pickles
        raise ValueError(
            f"checkpoint state {str(state_file)!r} is corrupt or unsafe: {_load_error(err)}"
        ) from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{str(state_file)!r} is not a rayzer training state ({FORMAT})")
    expected = getattr(getattr(model, "cfg", None), "name", None)
    if expected is not None and state.get("model") != expected:
        raise ValueError(
            f"checkpoint {str(ckpt)!r} holds a {state.get('model')!r} model but this run builds "
            f"{expected!r}"
        )
    config = load_config(ckpt / CONFIG_FILE) if (ckpt / CONFIG_FILE).is_file() else None
    return LoadedCheckpoint(path=ckpt, step=int(state["step"]), state=state, config=config)


def _load_error(err: BaseException) -> str:
    """One line of what ``torch.load`` refused. Its weights-only refusals are paragraphs of
    advice (how to load unsafely, where to file an issue) around the one that says what was
    refused (``Trying to load unsupported GLOBAL posix.system …``, ``Unsupported operand 0``)."""
    advice = ("Weights only load failed", "Check the documentation")
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", str(err)) if p.strip()]
    kept = [p for p in paragraphs if not p.startswith(advice)]
    if len(kept) < len(paragraphs) and kept:
        detail = re.sub(r"^.*WeightsUnpickler error:\s*", "", " ".join(kept))
        return f"the weights-only loader refused it ({detail.split('. ')[0].rstrip('.')})"
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def check_intact(ckpt: Path) -> None:
    """Raise unless checkpoint ``ckpt`` loads: readable, finite weights, a readable training
    state and config (what :func:`load_checkpoint` needs, without a model to load into)."""
    tensors, _ = read_model_weights(ckpt)
    bad = first_non_finite(tensors)
    if bad is not None:
        raise ValueError(f"non-finite values (NaN or Inf) in weight tensor {bad!r}")
    del tensors
    load_checkpoint(ckpt)


def latest_intact_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest checkpoint of a run that loads (see :func:`check_intact`), or None when the
    run has none. Skipped newer checkpoints are named in a warning.

    Why: the newest checkpoint is not always usable (a diverged run saved NaN weights, a file
    was damaged); ``--resume auto`` should continue from the newest good one instead of
    failing or crashing later.

    Raises:
        ValueError: the run has checkpoints but none of them loads (each is named).
    """
    skipped: list[str] = []
    for ckpt in reversed(list_checkpoints(out_dir)):
        try:
            check_intact(ckpt)
        except (OSError, ValueError) as err:
            log.warning(f"skipping checkpoint {ckpt}: {err}")
            skipped.append(f"{ckpt.name}: {err}")
            continue
        if skipped:
            log.warning(f"resuming from {ckpt}, the newest intact checkpoint")
        return ckpt
    if skipped:
        raise ValueError(f"no checkpoint of {out_dir} can be resumed: " + "; ".join(skipped[:3]))
    return None
