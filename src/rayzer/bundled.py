"""The default RayZer model shipped inside the package, used when no checkpoint is given.

It lives at ``rayzer/assets/rayzer-default/`` (a checkpoint directory as written by
:mod:`rayzer.train.checkpoint`, without the training state)::

    model.safetensors   weights (safetensors metadata: format, model name, step)
    config.yaml         the training config: model sizes, and ``data.image_size`` = input size
    meta.json           optional provenance (training run, steps, data, metrics)

A source checkout or a wheel built before the model was trained has no such folder; asking
for it then raises :class:`BundledModelMissing` with a message that says to pass ``--ckpt``.
To ship a trained checkpoint, copy it in with :func:`install_bundled_model` (it checks that the
checkpoint loads as a model that predicts cameras first).
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

from rayzer.utils.atomic import staged_dir

BUNDLED_NAME = "rayzer-default"
BUNDLED_FILES = ("model.safetensors", "config.yaml")
OPTIONAL_FILES = ("meta.json",)


class BundledModelMissing(FileNotFoundError):
    """This install carries no bundled model (pass a checkpoint explicitly)."""


def bundled_model_dir() -> Path:
    """Where the bundled checkpoint lives inside the installed package (it may not exist)."""
    return Path(str(resources.files("rayzer") / "assets" / BUNDLED_NAME))


def has_bundled_model() -> bool:
    """True when the bundled checkpoint (weights and config) is present."""
    folder = bundled_model_dir()
    return all((folder / name).is_file() for name in BUNDLED_FILES)


def bundled_checkpoint() -> Path:
    """The bundled checkpoint directory.

    Raises:
        BundledModelMissing: this install has no bundled model.
    """
    folder = bundled_model_dir()
    if not has_bundled_model():
        missing = [name for name in BUNDLED_FILES if not (folder / name).is_file()]
        raise BundledModelMissing(
            f"no bundled model in this install ({folder} lacks {', '.join(missing)}); pass "
            "--ckpt PATH (a checkpoint directory, its model.safetensors, or a training run "
            "directory)"
        )
    return folder


def install_bundled_model(
    checkpoint: str | Path, dest: str | Path | None = None, meta: dict | None = None
) -> Path:
    """Copy a trained checkpoint (of a model that predicts cameras) into the package as the bundled model (atomically).

    The checkpoint is loaded first (:func:`rayzer.checkpoints.load_trained_model`), so a checkpoint of
    a model that needs ground-truth cameras, a corrupt one or one without ``config.yaml`` is refused. Only the weights,
    the config and ``meta.json`` are copied (no optimizer state).

    Args:
        checkpoint: checkpoint directory, its ``model.safetensors`` or a run directory.
        dest: target folder (default: :func:`bundled_model_dir`).
        meta: provenance merged into ``meta.json`` (e.g. the command, training time, metrics);
            the checkpoint's step and folder name are always recorded.
    Returns:
        The bundled model folder.
    """
    from rayzer.checkpoints import load_trained_model

    loaded = load_trained_model(checkpoint, device="cpu")
    if not loaded.model.capabilities.predicts_cameras:
        raise ValueError(
            f"checkpoint {str(checkpoint)!r} holds a {loaded.model.name!r} model, which does not "
            "predict cameras: it cannot be the bundled model"
        )
    meta_extra = dict(meta or {})  # copied: the caller's dict is not modified
    dest = Path(dest) if dest is not None else bundled_model_dir()
    with staged_dir(dest, overwrite=True) as tmp:
        tmp.mkdir()
        for name in BUNDLED_FILES + OPTIONAL_FILES:
            if (loaded.path / name).is_file():
                shutil.copy2(loaded.path / name, tmp / name)
        meta_path = tmp / "meta.json"
        record = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        record.update(meta_extra)
        record["bundled_from"] = loaded.path.name  # no machine-specific absolute path
        record["step"] = loaded.step
        meta_path.write_text(json.dumps(record, indent=2) + "\n")
    return dest
