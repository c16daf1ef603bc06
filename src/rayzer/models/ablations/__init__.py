"""The RayZer paper's ablations, each a registered model in its own
file, built from RayZer's parts rather than switches inside :class:`rayzer.models.RayZer`:

* ``rayzer-latent-camera`` (:mod:`.latent_camera`): a learned latent code per view instead of
  SE(3) cameras and Plücker rays;
* ``rayzer-no-plucker`` (:mod:`.no_plucker`): SE(3) cameras, fed to the transformers as one
  token per view instead of per-pixel Plücker rays;
* ``rayzer-scene-first`` (:mod:`.scene_first`): the scene built from images alone, cameras
  estimated afterwards against it.
"""

from rayzer.models.ablations.latent_camera import LatentCameraConfig, RayZerLatentCamera
from rayzer.models.ablations.no_plucker import NoPluckerConfig, RayZerNoPlucker
from rayzer.models.ablations.scene_first import RayZerSceneFirst, SceneFirstConfig

__all__ = [
    "LatentCameraConfig",
    "NoPluckerConfig",
    "RayZerLatentCamera",
    "RayZerNoPlucker",
    "RayZerSceneFirst",
    "SceneFirstConfig",
]
