"""Python API: run RayZer on your own photos or video.

Example::

    from rayzer import api

    model = api.load_model()                      # the bundled RayZer; load_model("explicit"):
                                                  # the bundled depth + Gaussians model;
                                                  # load_model("run/dir"): your checkpoint
    views = api.load_views("photos/", model)      # capture order, fitted to the model input
    cams = api.predict_cameras(model, views)      # OpenCV c2w (V, 4, 4), pixel K (V, 4)
    back = api.render_views(model, views, cams)   # (V, 3, H, W) the views rendered back
    path = api.path_through(cams, 30)             # novel cameras through the views
    novel = api.render_views(model, views, cams, targets=path)
    api.export("out/", views, cams)               # images/, cameras.json, sparse/0, transforms.json

    api.run_inference(images="photos/", out="out/")   # everything `rayzer infer` does

Conventions: images ``(V, 3, H, W)`` float in [0, 1]; cameras OpenCV camera-to-world and pixel
intrinsics ``(fx, fy, cx, cy)`` (principal point from the image corner); the canonical view
(``Cameras.canonical``: the middle one, or the first for NAS3R) has the identity camera and the translation scale is arbitrary.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rayzer.bundled import has_bundled_model
from rayzer.data.formats.video import VIDEO_EXTENSIONS
from rayzer.data.images import (
    PreparedViews,
    load_image_files,
    load_image_folder,
    load_video_frames,
)
from rayzer.infer.model import LoadedModel, load_model
from rayzer.infer.outputs import write_exports
from rayzer.infer.pipeline import InferenceResult, run_inference
from rayzer.infer.predict import (
    Cameras,
    build_scene,
    predict_cameras,
    render_scene,
    render_views,
)
from rayzer.infer.trajectory import path_through, spiral_around
from rayzer.utils.atomic import staged_output


def load_views(
    source: str | Path | Sequence[str | Path],
    model: LoadedModel,
    *,
    size: int | None = None,
    aspect: str = "square",
    max_views: int = 64,
    skip_bad: bool = False,
) -> PreparedViews:
    """Load a folder of images, a video file or a list of image files as model input views.

    ``size`` defaults to the model's training size; see :mod:`rayzer.data.images` for the
    resize / crop policy, ordering and the conversions applied.
    """
    size = size if size is not None else model.image_size
    if isinstance(source, str | Path):
        path = Path(source)
        if path.suffix.lower() in VIDEO_EXTENSIONS and not path.is_dir():
            return load_video_frames(path, size, model.patch_size, aspect, max_views)
        return load_image_folder(path, size, model.patch_size, aspect, max_views, skip_bad)
    return load_image_files(source, size, model.patch_size, aspect, max_views, skip_bad)


def export(
    out: str | Path, views: PreparedViews, cameras: Cameras, overwrite: bool = False
) -> Path:
    """Write ``images/`` + ``cameras.json`` (scene folder), ``sparse/0`` (COLMAP text) and
    ``transforms.json`` (nerfstudio) for the views and their cameras, atomically."""
    if len(views) != len(cameras) or (views.height, views.width) != (
        cameras.height,
        cameras.width,
    ):
        raise ValueError(
            f"{len(views)} views of {views.width}x{views.height} do not match {len(cameras)} "
            f"cameras of {cameras.width}x{cameras.height}"
        )
    with staged_output(out, overwrite) as tmp:
        write_exports(tmp, views.images, views.names, cameras, scene=Path(out).name)
    return Path(out)


__all__ = [
    "Cameras",
    "InferenceResult",
    "LoadedModel",
    "PreparedViews",
    "build_scene",
    "export",
    "has_bundled_model",
    "load_model",
    "load_views",
    "path_through",
    "predict_cameras",
    "render_scene",
    "render_views",
    "run_inference",
    "spiral_around",
]
