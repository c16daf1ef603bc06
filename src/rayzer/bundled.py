"""The models shipped inside the package, picked by name wherever a checkpoint is accepted.

Two bundled models, each a checkpoint directory under ``rayzer/assets/<folder>/`` (as written by
:mod:`rayzer.train.checkpoint`, without the training state)::

    name       folder             what
    default    rayzer-default     RayZer: the best renders and cameras at this scale (used
                                  when no checkpoint is given)
    explicit   explicit-default   an explicit-3D model (E-RayZer or NAS3R): depth maps and 3D
                                  Gaussians besides cameras and renders

    model.safetensors   weights (safetensors metadata: format, model name, step)
    config.yaml         the training config: model sizes, and ``data.image_size`` = input size
    meta.json           optional provenance (training run, steps, data, metrics)

**Picking one.** ``--ckpt explicit`` (or ``default``; ``bundled`` is another name for the
default) selects a bundled model in ``rayzer infer / eval / demo / serve / bench real-cameras``
and in :func:`rayzer.api.load_model`. A bundled name is a single bare word, and it wins over a
folder of the same name in the working directory, so a command means the same thing wherever
it runs; such a folder is written ``./explicit`` (any path with a separator is a path), and
the shadowing is logged as a warning. In Python a :class:`pathlib.Path` is always a path: only
a ``str`` is looked up as a name.

A source checkout or a wheel built before a model was trained has no such folder; asking
for it then raises :class:`BundledModelMissing` with a message that says to pass ``--ckpt``.
To ship a trained checkpoint, copy it in with :func:`install_bundled_model` (it checks that the
checkpoint loads as a model that predicts cameras, and for the ``explicit`` slot that it
outputs depth and Gaussians).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from rayzer.utils.atomic import staged_dir

log = logging.getLogger(__name__)

BUNDLED_FILES = ("model.safetensors", "config.yaml")
OPTIONAL_FILES = ("meta.json",)


@dataclass(frozen=True)
class BundledSlot:
    """One bundled model: the name users pass, its folder under ``rayzer/assets/`` and what
    :func:`install_bundled_model` requires of a checkpoint put there."""

    name: str
    folder: str
    description: str
    explicit_3d: bool  # must output depth maps and 3D Gaussians


DEFAULT = "default"
EXPLICIT = "explicit"
SLOTS = {
    DEFAULT: BundledSlot(DEFAULT, "rayzer-default", "the default model (RayZer)", False),
    EXPLICIT: BundledSlot(
        EXPLICIT, "explicit-default", "the explicit-3D model (depth + 3D Gaussians)", True
    ),
}
#: Other names accepted for a slot (``bundled``: what ``rayzer bench quality --runs`` used first).
ALIASES = {"bundled": DEFAULT}
#: Kept for callers of the single-model API: the default model's folder name.
BUNDLED_NAME = SLOTS[DEFAULT].folder


#: ``--help`` text of every ``--ckpt`` that accepts a bundled model (the CLIs pass it as ``str``:
#: argparse's ``type=Path`` would turn ``./explicit`` into ``explicit``).
CKPT_HELP = (
    "checkpoint dir, its model.safetensors, or a training run dir; or a bundled model by name: "
    "'default' (RayZer, used when --ckpt is not given) or 'explicit' (an explicit-3D model: "
    "depth maps and 3D Gaussians); a folder with such a name is passed as ./NAME"
)


class BundledModelMissing(FileNotFoundError):
    """This install carries no bundled model of that name (pass a checkpoint explicitly)."""


def _slot(name: str) -> BundledSlot:
    key = ALIASES.get(name, name)
    if key not in SLOTS:
        raise ValueError(f"no bundled model named {name!r} (bundled models: {names_text()})")
    return SLOTS[key]


def names_text() -> str:
    """The bundled names for messages: ``default, explicit``."""
    return ", ".join(SLOTS)


def bundled_model_dir(name: str = DEFAULT) -> Path:
    """Where bundled model ``name`` lives inside the installed package (it may not exist)."""
    return Path(str(resources.files("rayzer") / "assets" / _slot(name).folder))


def has_bundled_model(name: str = DEFAULT) -> bool:
    """True when bundled model ``name`` (weights and config) is present."""
    folder = bundled_model_dir(name)
    return all((folder / file).is_file() for file in BUNDLED_FILES)


def bundled_checkpoint(name: str = DEFAULT) -> Path:
    """The checkpoint directory of bundled model ``name``.

    Raises:
        BundledModelMissing: this install does not carry it.
    """
    folder = bundled_model_dir(name)
    if not has_bundled_model(name):
        missing = [file for file in BUNDLED_FILES if not (folder / file).is_file()]
        raise BundledModelMissing(
            f"no bundled model in this install for {_slot(name).description} ({folder} lacks "
            f"{', '.join(missing)}); pass --ckpt PATH (a checkpoint directory, its "
            "model.safetensors, or a training run directory)"
        )
    return folder


def bundled_name(ckpt: str | os.PathLike | None) -> str | None:
    """The bundled model a checkpoint argument names, or None when it is a path.

    ``None`` names the default; a ``str`` that is exactly a bundled name or alias (no path
    separator) names that model; anything else, including every :class:`pathlib.Path`, is a path.
    """
    if ckpt is None:
        return DEFAULT
    if not isinstance(ckpt, str):
        return None
    key = ALIASES.get(ckpt, ckpt)
    return key if key in SLOTS else None


def checkpoint_location(ckpt: str | os.PathLike | None) -> str | os.PathLike:
    """Where a checkpoint argument points, for output-folder checks before anything is loaded:
    a bundled model's folder in the package (which may not exist), else the argument itself."""
    name = bundled_name(ckpt)
    return bundled_model_dir(name) if name is not None else ckpt  # type: ignore[return-value]


def resolve_model(ckpt: str | os.PathLike | None) -> tuple[Path, str | None]:
    """A checkpoint argument as ``(path, bundled name or None)``; see the module docstring.

    The path of a bundled model is its checkpoint directory; any other argument is returned as
    a path for :func:`rayzer.checkpoints.resolve_checkpoint`.

    Raises:
        BundledModelMissing: a bundled name this install does not carry.
        FileNotFoundError: a bare word that is neither a bundled name nor an existing path (the
            message lists the bundled names, for a mistyped one).
    """
    name = bundled_name(ckpt)
    if name is not None:
        if isinstance(ckpt, str) and Path(ckpt).exists():
            log.warning(
                f"checkpoint {ckpt!r} names the bundled {name!r} model; the folder ./{ckpt} here "
                f"is not used (pass ./{ckpt} for it)"
            )
        return bundled_checkpoint(name), name
    path = Path(ckpt)  # type: ignore[arg-type]  # None was handled above
    if isinstance(ckpt, str) and os.sep not in ckpt and "/" not in ckpt and not path.exists():
        raise FileNotFoundError(
            f"checkpoint {ckpt!r} does not exist (and is not a bundled model: {names_text()})"
        )
    return path, None


def install_bundled_model(
    checkpoint: str | Path,
    dest: str | Path | None = None,
    meta: dict | None = None,
    *,
    name: str = DEFAULT,
) -> Path:
    """Copy a trained checkpoint into the package as bundled model ``name`` (atomically).

    The checkpoint is loaded first (:func:`rayzer.checkpoints.load_trained_model`), so a
    checkpoint of a model that needs ground-truth cameras, a corrupt one or one without
    ``config.yaml`` is refused; so is, for the ``explicit`` slot, a model that does not output
    both depth maps and 3D Gaussians. Only the weights, the config and ``meta.json`` are copied
    (no optimizer state).

    Args:
        checkpoint: checkpoint directory, its ``model.safetensors`` or a run directory.
        dest: target folder (default: :func:`bundled_model_dir` of ``name``).
        meta: provenance merged into ``meta.json`` (e.g. the command, training time, metrics);
            the checkpoint's step and folder name are always recorded.
        name: the slot: ``default`` or ``explicit``.
    Returns:
        The bundled model folder.
    """
    from rayzer.checkpoints import load_trained_model

    slot = _slot(name)
    loaded = load_trained_model(checkpoint, device="cpu")
    caps = loaded.model.capabilities
    if not caps.predicts_cameras:
        raise ValueError(
            f"checkpoint {str(checkpoint)!r} holds a {loaded.model.name!r} model, which does not "
            "predict cameras: it cannot be a bundled model"
        )
    if slot.explicit_3d and not (caps.outputs_depth and caps.outputs_gaussians):
        raise ValueError(
            f"checkpoint {str(checkpoint)!r} holds a {loaded.model.name!r} model, which does not "
            f"output depth maps and 3D Gaussians: it cannot be {slot.description}"
        )
    meta_extra = dict(meta or {})  # copied: the caller's dict is not modified
    dest = Path(dest) if dest is not None else bundled_model_dir(slot.name)
    with staged_dir(dest, overwrite=True) as tmp:
        tmp.mkdir()
        for file in BUNDLED_FILES + OPTIONAL_FILES:
            if (loaded.path / file).is_file():
                shutil.copy2(loaded.path / file, tmp / file)
        meta_path = tmp / "meta.json"
        record = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        record.update(meta_extra)
        record["bundled_from"] = loaded.path.name  # no machine-specific absolute path
        record["bundled_as"] = slot.name
        record["step"] = loaded.step
        meta_path.write_text(json.dumps(record, indent=2) + "\n")
    return dest
