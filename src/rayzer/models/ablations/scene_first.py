"""Scene-first RayZer: the paper's ablation of the order of camera and scene estimation.

RayZer estimates the cameras first and builds the scene from images *and* their predicted
rays. Here the scene representation comes first, from images alone, and the cameras are
estimated afterwards against it (as a localiser registers views to a map):

1. scene: the reconstructor reads the views' raw patch tokens (with their [patch position ‖
   image index] embedding) and no camera information — no rays, no fusion MLP;
2. cameras: RayZer's camera estimator, its camera tokens attending jointly with all views'
   patch tokens *and* the n latent scene tokens built in step 1 from the same views; SE(3)
   poses relative to the middle view and one focal, exactly as RayZer's;
3. rendering: RayZer's decoder on the targets' predicted Plücker rays and the scene tokens.

Our interpretation, where the paper's one line leaves room: the scene the cameras are
registered to (step 2) is built from the views :meth:`predict_cameras` is given — all V views
in training and in the paper's evaluation protocol — while the scene that is rendered is
rebuilt from the input views only (:meth:`reconstruct`), so no target pixel reaches a render
except through the cameras, as in RayZer. Training and evaluation then run the same
computation; the price is one more reconstructor pass per step. Nothing tells the camera-free
scene which frame the cameras will be in: the renderer must relate the two, which is what the
ablation tests. RayZer's sense head and readouts work unchanged (they read the cameras).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from rayzer.model_config import RayZerConfig
from rayzer.models.base import CameraPrediction
from rayzer.models.latent_scene import LatentScene
from rayzer.models.rayzer import RayZer
from rayzer.models.registry import register_model
from rayzer.models.tokenizer import view_positions as frame_positions


@dataclass
class SceneFirstConfig(RayZerConfig):
    """RayZer's config; ``scene.num_tokens`` must be positive (the cameras attend to them)."""

    name: str = "rayzer-scene-first"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.scene.num_tokens < 1:
            raise ValueError(
                "rayzer-scene-first registers cameras to the latent scene tokens: "
                f"model.scene.num_tokens must be >= 1, got {self.scene.num_tokens}"
            )


@register_model("rayzer-scene-first")
class RayZerSceneFirst(RayZer):
    """RayZer with the scene built before, and without, the cameras (module docstring)."""

    display_name = "RayZer (scene first)"
    config_class = SceneFirstConfig

    def __init__(self, cfg: SceneFirstConfig) -> None:
        super().__init__(cfg)
        # The scene is built from images alone: no ray embedding, nothing to fuse them with.
        del self.input_ray_embed, self.fuse

    def scene_tokens(self, images: Tensor, positions: Tensor) -> Tensor:
        """Views (B, V, 3, H, W) at frame positions (B, V) → the reconstructor's output
        (B, n [+ V·N], d), from their image tokens alone."""
        return self.reconstructor(self.tokenizer(images, positions).flatten(1, 2))

    def estimate_cameras(self, images: Tensor) -> CameraPrediction:
        """Cameras of the V views (B, V, 3, H, W), registered to the n latent scene tokens
        built from them first."""
        b, v = images.shape[:2]
        scene = self.scene_tokens(images, frame_positions(b, v, images.device))
        context = scene[:, : self.cfg.scene.num_tokens]
        return self.camera_estimator(images, self.tokenizer, context=context)

    def reconstruct(
        self, images: Tensor, c2w: Tensor, K_norm: Tensor, view_positions: Tensor | None = None
    ) -> LatentScene:
        """Input views (B, Vi, 3, H, W) → the latent scene. The tokens do not read the cameras
        c2w (B, Vi, 4, 4), K_norm (B, Vi, 4); the scene keeps them for the sweep readout."""
        if view_positions is None:
            view_positions = frame_positions(images.shape[0], images.shape[1], images.device)
        return LatentScene(self.scene_tokens(images, view_positions), images, c2w, K_norm)
