"""Models: the interface (:mod:`rayzer.models.base`), the registry, and the registered models
(RayZer, the LVSM oracle, E-RayZer, NAS3R, the RayZer paper's ablations); non-learned
baselines."""

from rayzer.models.ablations import RayZerLatentCamera, RayZerNoPlucker, RayZerSceneFirst
from rayzer.models.base import (
    CameraPrediction,
    Capabilities,
    ModelOutput,
    RayModel,
    Rendered,
)
from rayzer.models.baselines import CopyNearest, mean_of_inputs, nearest_input_views
from rayzer.models.erayzer import ERayZer, ERayZerConfig
from rayzer.models.latent_scene import LatentScene
from rayzer.models.lvsm import LVSM
from rayzer.models.nas3r import NAS3R, NAS3RConfig
from rayzer.models.rayzer import RayZer
from rayzer.models.registry import available_models, build_model, model_class, register_model

__all__ = [
    "LVSM",
    "NAS3R",
    "CameraPrediction",
    "Capabilities",
    "CopyNearest",
    "ERayZer",
    "ERayZerConfig",
    "LatentScene",
    "ModelOutput",
    "NAS3RConfig",
    "RayModel",
    "RayZer",
    "RayZerLatentCamera",
    "RayZerNoPlucker",
    "RayZerSceneFirst",
    "Rendered",
    "available_models",
    "build_model",
    "mean_of_inputs",
    "model_class",
    "nearest_input_views",
    "register_model",
]
