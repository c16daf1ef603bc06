"""Inference on tensors: predict cameras, build the latent scene, render views at cameras.

Shapes: one capture at a time, images ``(V, 3, H, W)`` float in [0, 1] in capture order (the
canonical view's camera is the identity: the middle one, ``V // 2``, or the first for NAS3R;
``Cameras.canonical`` says which). Cameras are OpenCV
camera-to-world ``(V, 4, 4)`` and PIXEL intrinsics ``(V, 4)`` of ``H × W`` images; they are
normalised only when handed to the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from rayzer.data.images import PreparedViews, load_image_files, load_image_folder
from rayzer.geometry import denormalize_intrinsics, normalize_intrinsics
from rayzer.infer.model import LoadedModel


@dataclass
class Cameras:
    """Cameras of ``V`` views.

    Attributes:
        c2w: ``(V, 4, 4)`` float32 OpenCV camera-to-world (x right, y down, z forward).
        K: ``(V, 4)`` float32 pixel intrinsics ``(fx, fy, cx, cy)`` of ``height × width`` images,
            principal point from the top-left corner.
        height, width: image size the intrinsics refer to.
        canonical: index of the canonical (identity) view for predicted cameras, else None.
    """

    c2w: Tensor
    K: Tensor
    height: int
    width: int
    canonical: int | None = None

    def __post_init__(self) -> None:
        v = self.c2w.shape[0]
        if self.c2w.shape != (v, 4, 4) or self.K.shape != (v, 4):
            raise ValueError(
                f"Cameras: expected c2w (V, 4, 4) and K (V, 4), got {tuple(self.c2w.shape)} and "
                f"{tuple(self.K.shape)}"
            )

    def __len__(self) -> int:
        return int(self.c2w.shape[0])

    @property
    def K_norm(self) -> Tensor:
        """``(V, 4)`` intrinsics normalised by the image size (the model's convention)."""
        return normalize_intrinsics(self.K, self.height, self.width)


def as_images(images: Any, model: LoadedModel) -> Tensor:
    """``(V, 3, H, W)`` float32 in [0, 1] from a tensor / array, prepared views, a folder or a
    list of image files (the latter two with the default policy of :mod:`rayzer.data.images`)."""
    if isinstance(images, str | Path):
        images = load_image_folder(images, model.image_size, model.patch_size)
    elif isinstance(images, Sequence) and images and isinstance(images[0], str | Path):
        images = load_image_files(images, model.image_size, model.patch_size)
    if isinstance(images, PreparedViews):
        images = images.images
    if isinstance(images, np.ndarray):
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"image arrays must be (V, H, W, 3), got {images.shape}")
        scale = 255.0 if images.dtype == np.uint8 else 1.0
        images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2) / scale
    if not isinstance(images, Tensor):
        raise ValueError(
            "images must be a (V, 3, H, W) tensor, a (V, H, W, 3) array, PreparedViews, a folder "
            f"or a list of image files, got {type(images).__name__}"
        )
    if images.ndim == 5 and images.shape[0] == 1:
        images = images[0]
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (V, 3, H, W), got {tuple(images.shape)}")
    return images.float()


@torch.inference_mode()
def predict_cameras(model: LoadedModel, images: Any) -> Cameras:
    """Predict the cameras of ``V >= 2`` views in capture order (see :func:`as_images`).

    Returns:
        :class:`Cameras` on the CPU: the canonical view (``Cameras.canonical``: ``V // 2`` for
        RayZer and E-RayZer, 0 for NAS3R) = identity, one shared focal
        (``fx = fy`` in pixels) and the principal point at the image centre.
    """
    x = as_images(images, model).to(model.device)
    pred = model.model.predict_cameras(x[None])
    h, w = x.shape[-2:]
    K = denormalize_intrinsics(pred.K_norm[0].float(), h, w)
    return Cameras(pred.c2w[0].float().cpu(), K.cpu(), h, w, canonical=pred.canonical)


@torch.inference_mode()
def build_scene(model: LoadedModel, images: Any, cameras: Cameras) -> Any:
    """The latent scene (batch of 1) from the views and their cameras (all views are inputs)."""
    x = as_images(images, model).to(model.device)
    if len(cameras) != x.shape[0] or (cameras.height, cameras.width) != tuple(x.shape[-2:]):
        raise ValueError(
            f"{len(cameras)} cameras of {cameras.height}x{cameras.width} images do not match "
            f"{x.shape[0]} images of {x.shape[-2]}x{x.shape[-1]}"
        )
    dev = model.device
    return model.model.reconstruct(x[None], cameras.c2w[None].to(dev), cameras.K_norm[None].to(dev))


@torch.inference_mode()
def render_scene(
    model: LoadedModel,
    scene: Any,
    targets: Cameras,
    chunk: int = 8,
    progress: bool = False,
    desc: str = "render",
) -> Tensor:
    """Render ``targets`` from a scene, ``chunk`` views at a time: ``(Vt, 3, H, W)`` CPU."""
    return render_scene_with_depth(model, scene, targets, chunk, progress, desc)[0]


@torch.inference_mode()
def render_scene_with_depth(
    model: LoadedModel,
    scene: Any,
    targets: Cameras,
    chunk: int = 8,
    progress: bool = False,
    desc: str = "render",
) -> tuple[Tensor, Tensor | None]:
    """RGB ``(Vt, 3, H, W)`` and, for models with ``capabilities.outputs_depth``, camera
    z-depth ``(Vt, 1, H, W)`` (else None), both on the CPU."""
    return render_scene_depth_alpha(model, scene, targets, chunk, progress, desc)[:2]


@torch.inference_mode()
def render_scene_depth_alpha(
    model: LoadedModel,
    scene: Any,
    targets: Cameras,
    chunk: int = 8,
    progress: bool = False,
    desc: str = "render",
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """As :func:`render_scene_with_depth`, plus the accumulated opacity ``(Vt, 1, H, W)`` in
    [0, 1] where the model defines one (else None): where it is low the depth is a guess."""
    dev = model.device
    rgb, depth, alpha = [], [], []
    starts = range(0, len(targets), max(1, chunk))
    for s in tqdm(starts, desc=desc, unit="chunk", disable=not progress, leave=False):
        sl = slice(s, s + chunk)
        out = model.model.render(
            scene,
            targets.c2w[None, sl].to(dev),
            targets.K_norm[None, sl].to(dev),
            targets.height,
            targets.width,
        )
        rgb.append(out.rgb[0].float().cpu())
        if out.depth is not None:
            depth.append(out.depth[0].float().cpu())
        if out.alpha is not None:
            alpha.append(out.alpha[0].float().cpu())
    has_depth = model.model.capabilities.outputs_depth and len(depth) == len(rgb)
    has_alpha = len(alpha) == len(rgb)
    return (
        torch.cat(rgb),
        torch.cat(depth) if has_depth else None,
        torch.cat(alpha) if has_alpha else None,
    )


def render_views(
    model: LoadedModel,
    images: Any,
    cameras: Cameras,
    targets: Cameras | None = None,
    chunk: int = 8,
    progress: bool = False,
) -> Tensor:
    """Build the scene from ``images`` with their ``cameras``, render ``targets`` (default: the
    input cameras, i.e. the views rendered back): ``(Vt, 3, H, W)`` in [0, 1] on the CPU."""
    scene = build_scene(model, images, cameras)
    return render_scene(model, scene, targets or cameras, chunk, progress)
