"""Models: RayZer (main), the LVSM oracle and non-learned baselines."""

from rayzer.models.baselines import CopyNearest, mean_of_inputs, nearest_input_views
from rayzer.models.config import ModelConfig
from rayzer.models.latent_scene import LatentScene
from rayzer.models.lvsm import LVSM
from rayzer.models.rayzer import CameraPrediction, RayZer, RayZerOutput


def build_model(cfg: ModelConfig) -> RayZer | LVSM:
    """Instantiate the model named by ``cfg.name``."""
    return {"rayzer": RayZer, "lvsm": LVSM}[cfg.name](cfg)


__all__ = [
    "LVSM",
    "CameraPrediction",
    "CopyNearest",
    "LatentScene",
    "ModelConfig",
    "RayZer",
    "RayZerOutput",
    "build_model",
    "mean_of_inputs",
    "nearest_input_views",
]
