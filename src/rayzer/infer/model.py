"""Load a RayZer for inference: the bundled model or any training checkpoint.

Loading reuses :mod:`rayzer.train.checkpoint` (safetensors weights checked against the model's
keys and shapes) and the checkpoint's ``config.yaml`` (model sizes and the training input size).
The training state (``state.pt``) is not needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from rayzer.config import Config, load_config
from rayzer.models import RayZer
from rayzer.models.bundled import bundled_checkpoint
from rayzer.train.checkpoint import CONFIG_FILE, load_model_weights, resolve_checkpoint
from rayzer.train.optim import apply_translation_schedule


@dataclass
class LoadedModel:
    """A RayZer ready for inference.

    Attributes:
        model: the network, in eval mode, on ``device``.
        image_size: its training input size (square side, pixels): the default inference size.
        checkpoint: the checkpoint directory it came from (None for an in-memory model).
        bundled: whether it is the model shipped with the package.
        step: training step of the checkpoint (None if unknown).
        config: the checkpoint's full config (None for an in-memory model).
    """

    model: RayZer
    image_size: int
    checkpoint: Path | None = None
    bundled: bool = False
    step: int | None = None
    config: Config | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def patch_size(self) -> int:
        return self.model.cfg.patch_size

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @classmethod
    def from_module(cls, model: RayZer, image_size: int) -> LoadedModel:
        """Wrap a RayZer built in memory (e.g. during training) for the inference API."""
        if not isinstance(model, RayZer):
            raise ValueError(f"expected a RayZer model, got {type(model).__name__}")
        return cls(model=model.eval(), image_size=int(image_size))


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine")
        return torch.device(name)
    raise ValueError(f"--device must be auto, cpu or cuda, got {name!r}")


def _read_config(path: Path) -> Config:
    file = path / CONFIG_FILE
    if not file.is_file():
        raise FileNotFoundError(
            f"checkpoint {str(path)!r} has no {CONFIG_FILE} (it holds the model sizes needed to "
            "build the network)"
        )
    try:
        return load_config(file)
    # A damaged YAML can fail in the YAML parser, OmegaConf or the dataclass checks; all of them
    # mean the same thing to the user.
    except Exception as err:
        raise ValueError(f"checkpoint config {str(file)!r} is corrupt or invalid: {err}") from err


def load_model(ckpt: str | Path | None = None, device: str | torch.device = "auto") -> LoadedModel:
    """Load the bundled RayZer (``ckpt=None``) or a checkpoint for inference.

    Args:
        ckpt: checkpoint directory, its ``model.safetensors``, or a training run directory (the
            latest checkpoint in it); None = the model shipped inside the package.
        device: ``auto`` | ``cpu`` | ``cuda``.
    Raises:
        FileNotFoundError: no such checkpoint, no bundled model (the message says to pass a
            checkpoint), or no ``config.yaml``.
        ValueError: a checkpoint of another model (e.g. LVSM), corrupt weights / config, or
            weights that do not match the configured architecture.
    """
    dev = resolve_device(device)
    path = bundled_checkpoint() if ckpt is None else resolve_checkpoint(ckpt)
    cfg = _read_config(path)
    if cfg.model.name != "rayzer":
        raise ValueError(
            f"checkpoint {str(path)!r} holds a {cfg.model.name!r} model; inference needs a RayZer "
            "checkpoint (it predicts its own cameras; LVSM needs ground-truth cameras)"
        )
    model = RayZer(cfg.model)
    metadata = load_model_weights(path, model)
    step = metadata.get("step")
    step = int(step) if step is not None and str(step).isdigit() else None
    apply_translation_schedule(model, cfg.train, step)
    return LoadedModel(
        model=model.eval().to(dev),
        image_size=cfg.data.image_size,
        checkpoint=path,
        bundled=ckpt is None,
        step=step,
        config=cfg,
    )
