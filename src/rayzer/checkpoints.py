"""The on-disk checkpoint format and the one loader of trained models.

Layout of a run directory::

    <out_dir>/checkpoints/step_000500/
        model.safetensors   weights (metadata: format, model name, step)
        state.pt            training state (written and read by :mod:`rayzer.train.checkpoint`)
        config.yaml         the full config of the run
        meta.json           human-readable summary (step, model, world size, versions)

This module finds checkpoints and reads them: :func:`load_trained_model` builds the model a
checkpoint's ``config.yaml`` names (through the registry, so any registered model loads) and
loads its weights. Evaluation, inference, the demo and the benchmarks all load through it;
writing checkpoints and the training state belong to the trainer.

Older checkpoints load as they are: their flat ``model`` config is migrated by
:func:`rayzer.config.load_config`, and the weight names of RayZer are unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from rayzer.config import Config, load_config
from rayzer.models import RayModel, build_model

CHECKPOINT_DIR = "checkpoints"
MODEL_FILE = "model.safetensors"
STATE_FILE = "state.pt"
CONFIG_FILE = "config.yaml"
META_FILE = "meta.json"
FORMAT = "rayzer-checkpoint-v1"
_STEP_DIR = re.compile(r"^step_(\d+)$")


# -- locating checkpoints ----------------------------------------------------------------------


def checkpoint_root(out_dir: str | Path) -> Path:
    return Path(out_dir) / CHECKPOINT_DIR


#: ``.old-step_N-PID``: a checkpoint being replaced by a re-save of the same step (see
#: :func:`save_checkpoint`); complete, and the only copy of step N if the swap was interrupted.
_OLD_STEP_DIR = re.compile(r"^\.old-step_(\d+)-\d+$")


def checkpoint_step(path: Path) -> int:
    """Step number of a checkpoint directory listed by :func:`list_checkpoints`."""
    m = _STEP_DIR.match(path.name) or _OLD_STEP_DIR.match(path.name)
    if m is None:
        raise ValueError(f"{str(path)!r} is not a checkpoint directory (step_N)")
    return int(m.group(1))


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary directories are ignored).

    A step whose re-save was interrupted between its two renames is listed by its
    ``.old-step_N-PID`` directory (the next save of the run puts it back in place).
    """
    root = checkpoint_root(out_dir)
    if not root.is_dir():
        return []
    found: dict[int, Path] = {}
    for p in sorted(root.iterdir()):
        m = _STEP_DIR.match(p.name) or _OLD_STEP_DIR.match(p.name)
        if m and p.is_dir() and (p / MODEL_FILE).is_file():
            step = int(m.group(1))
            if step not in found or _STEP_DIR.match(p.name):  # step_N wins over a leftover
                found[step] = p
    return [found[k] for k in sorted(found)]


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    ckpts = list_checkpoints(out_dir)
    return ckpts[-1] if ckpts else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from a checkpoint dir, its ``model.safetensors``, a run directory or
    its ``checkpoints/`` folder (→ the latest checkpoint in it).

    Raises:
        FileNotFoundError: nothing there, or a run directory without checkpoints.
    """
    p = Path(path)
    if p.is_file() and p.name == MODEL_FILE:
        p = p.parent
    if not p.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if (p / MODEL_FILE).is_file():
        return p
    run_dir = p.parent if p.name == CHECKPOINT_DIR else p
    latest = latest_checkpoint(run_dir)
    if latest is None:
        raise FileNotFoundError(
            f"{str(path)!r} is neither a checkpoint (no {MODEL_FILE}) nor a run directory with "
            f"checkpoints in {CHECKPOINT_DIR}/"
        )
    return latest


# -- reading ---------------------------------------------------------------------------------


def read_model_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a checkpoint's ``model.safetensors`` (path: checkpoint or file).

    Raises:
        FileNotFoundError: no weights file; ValueError: the file is corrupt / not safetensors.
    """
    p = Path(path)
    file = p if p.suffix == ".safetensors" else p / MODEL_FILE
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint weights {str(file)!r} not found")
    try:
        with safe_open(str(file), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open API)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ValueError(
            f"checkpoint weights {str(file)!r} are corrupt or unreadable: {err}"
        ) from err
    return tensors, metadata


def first_non_finite(tensors: dict[str, torch.Tensor]) -> str | None:
    """Name of the first floating-point tensor (in name order) holding a NaN or an infinity."""
    for name in sorted(tensors):
        t = tensors[name]
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return name
    return None


def load_model_weights(path: str | Path, model: nn.Module) -> dict[str, str]:
    """Load ``model.safetensors`` into ``model`` after checking it belongs to this model and
    that every weight is finite.

    Why the finiteness check: a run that diverged (or a damaged file) saves NaN / Inf weights
    that load without complaint and then crash far from the cause (a segfault in a backward
    pass when resuming) or quietly produce NaN renders.

    Raises:
        ValueError: corrupt file, non-finite weights (the file and the first bad tensor are
            named), or weights of another model (name, missing / unexpected keys or shapes).
    """
    tensors, metadata = read_model_weights(path)
    bad = first_non_finite(tensors)
    if bad is not None:
        p = Path(path)
        file = p if p.suffix == ".safetensors" else p / MODEL_FILE
        raise ValueError(
            f"checkpoint weights {str(file)!r} hold non-finite values (NaN or Inf), first in "
            f"tensor {bad!r}: the run diverged or the file is damaged; use an earlier checkpoint"
        )
    expected = getattr(getattr(model, "cfg", None), "name", None)
    saved = metadata.get("model")
    if expected is not None and saved is not None and saved != expected:
        raise ValueError(
            f"checkpoint {str(path)!r} holds a {saved!r} model but this run builds {expected!r}"
        )
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    shapes = sorted(
        f"{k}: checkpoint {tuple(tensors[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(tensors)
        if tensors[k].shape != own[k].shape
    )
    if missing or unexpected or shapes:
        problems = []
        if missing:
            problems.append(f"missing keys {missing[:5]}{' …' if len(missing) > 5 else ''}")
        if unexpected:
            problems.append(
                f"unexpected keys {unexpected[:5]}{' …' if len(unexpected) > 5 else ''}"
            )
        if shapes:
            problems.append(f"shape mismatches {shapes[:5]}{' …' if len(shapes) > 5 else ''}")
        raise ValueError(
            f"checkpoint {str(path)!r} does not match this model "
            f"(different architecture or sizes?): {'; '.join(problems)}"
        )
    model.load_state_dict(tensors)
    return metadata


@dataclass
class TrainedModel:
    """A model loaded from a checkpoint (eval mode, on the requested device).

    Attributes:
        model: the network; config: the checkpoint's full config; step: its training step
            (None when unknown); path: the checkpoint directory.
    """

    model: RayModel
    config: Config
    step: int | None
    path: Path


def read_checkpoint_config(ckpt: Path) -> Config:
    """The validated ``config.yaml`` of checkpoint directory ``ckpt`` (old layouts migrated).

    Raises:
        FileNotFoundError: no config file. ValueError: a corrupt or invalid config.
    """
    file = ckpt / CONFIG_FILE
    if not file.is_file():
        raise FileNotFoundError(
            f"checkpoint {str(ckpt)!r} has no {CONFIG_FILE} (it holds the model sizes needed to "
            "build the network)"
        )
    try:
        return load_config(file)
    # A damaged YAML can fail in the YAML parser, OmegaConf or the dataclass checks; all of them
    # mean the same thing to the user.
    except Exception as err:
        raise ValueError(f"checkpoint config {str(file)!r} is corrupt or invalid: {err}") from err


def load_trained_model(path: str | Path, device: torch.device | str = "cpu") -> TrainedModel:
    """Build the model of a checkpoint (or of the latest checkpoint of a run directory) from
    its ``config.yaml`` and load its weights; eval mode.

    Raises:
        FileNotFoundError: no checkpoint / config. ValueError: a corrupt or invalid config,
            weights of another architecture, or a model name that is not registered.
    """
    ckpt = resolve_checkpoint(path)
    cfg = read_checkpoint_config(ckpt)
    model = build_model(cfg.model)
    meta = load_model_weights(ckpt, model)
    step: Any = meta.get("step", ckpt.name.removeprefix("step_"))
    step = int(step) if str(step).isdigit() else None
    return TrainedModel(model.to(device).eval(), cfg, step, ckpt)
