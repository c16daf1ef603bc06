"""Load a model for inference: a bundled model (by name, :mod:`rayzer.bundled`) or any
training checkpoint.

Loading goes through the one checkpoint loader, :func:`rayzer.checkpoints.load_trained_model`
(the checkpoint's ``config.yaml`` names the registered model and its sizes; safetensors weights
checked against the model's keys and shapes). The training state (``state.pt``) is not needed.
Inference predicts cameras from images alone, so the model must have
``capabilities.predicts_cameras``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from rayzer.bundled import resolve_model
from rayzer.checkpoints import load_trained_model, resolve_checkpoint
from rayzer.config import Config
from rayzer.models import RayModel
from rayzer.utils.device import resolve_device


@dataclass
class LoadedModel:
    """A model ready for inference.

    Attributes:
        model: the network, in eval mode, on ``device`` (``capabilities.predicts_cameras``).
        image_size: its training input size (pixels; the short side of a non-square
            ``data.image_size``): the default inference size (short side).
        checkpoint: the checkpoint directory it came from (None for an in-memory model).
        bundled: whether it is a model shipped with the package.
        bundled_name: which one (``default`` | ``explicit``), None for a checkpoint path.
        step: training step of the checkpoint (None if unknown).
        config: the checkpoint's full config (None for an in-memory model).
    """

    model: RayModel
    image_size: int
    checkpoint: Path | None = None
    bundled: bool = False
    bundled_name: str | None = None
    step: int | None = None
    config: Config | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def patch_size(self) -> int:
        """Image sides must be divisible by this (:attr:`RayModel.image_multiple`)."""
        return self.model.image_multiple

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @classmethod
    def from_module(cls, model: RayModel, image_size: int) -> LoadedModel:
        """Wrap a model built in memory (e.g. during training) for the inference API."""
        _check_predicts_cameras(model, type(model).__name__)
        return cls(model=model.eval(), image_size=int(image_size))


def _check_predicts_cameras(model: object, where: str) -> None:
    caps = getattr(model, "capabilities", None)
    if not isinstance(model, RayModel) or caps is None or not caps.predicts_cameras:
        name = getattr(model, "name", "") or type(model).__name__
        raise ValueError(
            f"{where} holds a {name!r} model, which does not predict cameras; inference needs a "
            "model that does (one that needs ground-truth cameras, like LVSM, cannot run on "
            "unposed photos)"
        )


def load_model(ckpt: str | Path | None = None, device: str | torch.device = "auto") -> LoadedModel:
    """Load a bundled model or a checkpoint for inference.

    Args:
        ckpt: checkpoint directory, its ``model.safetensors``, or a training run directory (the
            latest checkpoint in it); None = the default model shipped inside the package (the
            bundled RayZer); the ``str`` ``"explicit"`` = the bundled explicit-3D model (depth
            and Gaussians), ``"default"`` = the default one (:func:`rayzer.bundled.resolve_model`:
            a name wins over a folder of that name, which is passed as ``"./explicit"``).
        device: ``auto`` | ``cpu`` | ``cuda``.
    Raises:
        FileNotFoundError: no such checkpoint, no bundled model (the message says to pass a
            checkpoint), or no ``config.yaml``.
        ValueError: a model that does not predict cameras (e.g. LVSM), corrupt weights /
            config, or weights that do not match the configured architecture.
    """
    dev = resolve_device(device)
    location, name = resolve_model(ckpt)
    path = resolve_checkpoint(location)
    trained = load_trained_model(path, dev)
    _check_predicts_cameras(trained.model, f"checkpoint {str(path)!r}")
    return LoadedModel(
        model=trained.model,
        image_size=trained.config.data.short_side,
        checkpoint=trained.path,
        bundled=name is not None,
        bundled_name=name,
        step=trained.step,
        config=trained.config,
    )
