"""One typed configuration tree for every command: ``model``, ``data`` and ``train`` sections.

Presets are YAML files (``configs/<name>.yaml`` in the repository, shipped inside the package
as ``rayzer/configs``) merged over the dataclass defaults, then dotted ``key=value`` overrides
from the command line. Unknown keys and ill-typed values are errors that name the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rayzer.models.config import ModelConfig


@dataclass
class DataConfig:
    """What one training sample looks like.

    Attributes:
        source: ``"synthetic"`` (built-in scenes) or a dataset path / manifest.
        family: synthetic family, ``"orbit"`` or ``"walk"``.
        image_size: square side H = W of the model input.
        num_input_views, num_target_views: views that build the scene / that are rendered.
    """

    source: str = "synthetic"
    family: str = "orbit"
    image_size: int = 64
    num_input_views: int = 4
    num_target_views: int = 4

    @property
    def num_views(self) -> int:
        return self.num_input_views + self.num_target_views


@dataclass
class TrainConfig:
    """Optimisation settings (the training loop reads these)."""

    batch_size: int = 8
    lr: float = 1e-3
    seed: int = 0


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def preset_path(name_or_path: str | Path) -> Path:
    """Resolve ``tiny-cpu`` / ``tiny-cpu.yaml`` / a file path to an existing YAML file."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    stem = path.name.removesuffix(".yaml")
    packaged = resources.files("rayzer") / "configs" / f"{stem}.yaml"
    if packaged.is_file():
        return Path(str(packaged))
    raise FileNotFoundError(
        f"config {str(name_or_path)!r} is neither a file nor a preset; presets: {', '.join(list_presets())}"
    )


def list_presets() -> list[str]:
    """Names of the presets shipped with the package."""
    folder = resources.files("rayzer") / "configs"
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def load_config(preset: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults ← preset YAML ← ``key=value`` overrides, validated against :class:`Config`.

    Raises:
        ValueError: an unknown key, a value of the wrong type, or a malformed override.
    """
    base = OmegaConf.structured(Config)
    try:
        if preset is not None:
            path = preset_path(preset)
            base = OmegaConf.merge(base, OmegaConf.load(path))
        for item in overrides or []:
            if "=" not in item:
                raise ValueError(f"override {item!r} is not of the form key=value")
        if overrides:
            base = OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))
        cfg = OmegaConf.to_object(base)
    except OmegaConfBaseException as err:
        raise ValueError(f"invalid config ({preset or 'defaults'}): {err}") from err
    assert isinstance(cfg, Config)
    return cfg


def config_to_yaml(cfg: Config) -> str:
    """Serialise a config (e.g. next to a checkpoint) so that the run can be reproduced."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
