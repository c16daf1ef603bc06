"""COLMAP sparse models (text or binary), read with pycolmap (optional extra ``[colmap]``).

COLMAP stores, per image, the world-to-camera pose (``cam_from_world``: quaternion ``qvec`` in
(w, x, y, z) order + ``tvec``) in OpenCV camera axes, and per camera a model with pixel intrinsics
whose principal point is measured from the image corner (pixel centres at +0.5) — our convention,
so the only conversion is the inversion to camera-to-world.

We read the model with pycolmap rather than a hand-written parser: it handles text and binary,
every camera model, and the rig / frame files of COLMAP >= 3.12.

Camera models: ``SIMPLE_PINHOLE`` and ``PINHOLE`` are used as they are; ``SIMPLE_RADIAL``,
``RADIAL``, ``OPENCV`` and ``FULL_OPENCV`` are undistorted at conversion (see
:mod:`rayzer.data.formats.undistort`, needs OpenCV); every other model (fisheye, FOV, thin prism,
equirectangular, division, ...) is refused with an error naming it.

Layouts found automatically: the model folder itself, ``<project>/sparse/0``, ``<project>/sparse``
and nerfstudio's ``<project>/colmap/sparse/0``; images from ``<project>/images`` (or ``images=``).
Frames are ordered by image name (natural sort); images registered in the model but missing on
disk are an error, images on disk that the model did not register are skipped (counted in meta).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rayzer.data.formats.base import (
    SourceFrame,
    SourceScene,
    check_intrinsics,
    natural_key,
    read_file_bytes,
    resolve_dir,
    w2c_to_c2w,
)
from rayzer.data.formats.undistort import Distortion, require_opencv

MODEL_SUBDIRS = ("", "sparse/0", "sparse", "colmap/sparse/0", "colmap/sparse")
INSTALL_HINT = "pip install 'rayzer[colmap]' (pycolmap)"
UNDISTORT_NOTE = "; lens distortion removed (OpenCV remap onto the same fx, fy, cx, cy)"
SOURCE_CONVENTION = (
    "COLMAP: per image cam_from_world (world-to-camera, qvec (w,x,y,z) + tvec), OpenCV camera "
    "axes; pixel intrinsics with the principal point from the image corner."
)


def _is_model_dir(path: Path) -> bool:
    return any((path / f"cameras.{ext}").is_file() for ext in ("bin", "txt")) and any(
        (path / f"images.{ext}").is_file() for ext in ("bin", "txt")
    )


def find_model_dir(path: str | Path) -> Path | None:
    """The COLMAP model folder at or below ``path`` (see module doc), or None."""
    path = Path(path)
    for sub in MODEL_SUBDIRS:
        candidate = path / sub if sub else path
        if candidate.is_dir() and _is_model_dir(candidate):
            return candidate
    return None


def _find_images_dir(root: Path, model_dir: Path) -> Path:
    # The project folder is the one holding `sparse/` (or `colmap/`); try it and its parents.
    for base in (root, model_dir, *model_dir.parents[:3]):
        if (base / "images").is_dir():
            return base / "images"
    raise FileNotFoundError(
        f"{root}: no images/ folder found next to the COLMAP model {model_dir}; pass --images DIR"
    )


def camera_intrinsics(
    model: str, params: np.ndarray, where: str
) -> tuple[tuple[float, float, float, float], Distortion | None]:
    """Map a COLMAP camera model + params to pinhole ``(fx, fy, cx, cy)`` and a distortion.

    Raises ValueError naming ``where`` and the model for unsupported models.
    """
    p = [float(v) for v in params]
    if model == "SIMPLE_PINHOLE":
        K, dist = (p[0], p[0], p[1], p[2]), None
    elif model == "PINHOLE":
        K, dist = (p[0], p[1], p[2], p[3]), None
    elif model == "SIMPLE_RADIAL":
        K, dist = (p[0], p[0], p[1], p[2]), Distortion(model, (p[3], 0.0, 0.0, 0.0))
    elif model == "RADIAL":
        K, dist = (p[0], p[0], p[1], p[2]), Distortion(model, (p[3], p[4], 0.0, 0.0))
    elif model == "OPENCV":
        K, dist = tuple(p[:4]), Distortion(model, tuple(p[4:8]))
    elif model == "FULL_OPENCV":
        K, dist = tuple(p[:4]), Distortion(model, tuple(p[4:12]))
    else:
        raise ValueError(
            f"{where}: unsupported COLMAP camera model {model} (supported: SIMPLE_PINHOLE, "
            "PINHOLE, and SIMPLE_RADIAL / RADIAL / OPENCV / FULL_OPENCV, which are undistorted); "
            "undistort the model first, e.g. with `colmap image_undistorter`"
        )
    K = check_intrinsics(K, where)
    if dist is not None and dist.is_identity:
        dist = None
    if dist is not None:
        require_opencv(model, where)
    return K, dist  # type: ignore[return-value]


def _cam_from_world(image: Any) -> np.ndarray:
    # pycolmap >= 3.12 exposes cam_from_world() as a method (derived from rig + frame), older
    # versions as a property.
    pose = image.cam_from_world
    pose = pose() if callable(pose) else pose
    return np.asarray(pose.matrix(), dtype=np.float64)


def read_colmap(path: str | Path, images: str | Path | None = None) -> list[SourceScene]:
    """Read a COLMAP sparse model into one :class:`SourceScene` (see module doc).

    Args:
        path: the model folder or a project folder holding ``sparse/0`` etc.
        images: the image folder (default: ``images/`` of the project).
    """
    try:
        import pycolmap
    except ImportError:
        raise ValueError(f"{path}: reading COLMAP models needs pycolmap: {INSTALL_HINT}") from None
    root = Path(path)
    model_dir = find_model_dir(root)
    if model_dir is None:
        raise FileNotFoundError(
            f"{root}: no COLMAP model (cameras.bin/txt + images.bin/txt) in it or in "
            f"{', '.join(s for s in MODEL_SUBDIRS if s)}"
        )
    try:
        rec = pycolmap.Reconstruction(str(model_dir))
    except Exception as exc:  # pycolmap raises ValueError / RuntimeError with the parser's message
        raise ValueError(f"{model_dir}: cannot read the COLMAP model: {exc}") from None
    image_dir = resolve_dir(root, images, "images") if images is not None else None
    image_dir = image_dir or _find_images_dir(root, model_dir)
    if not image_dir.is_dir():
        raise FileNotFoundError(f"image folder not found: {image_dir}")

    cameras: dict[int, tuple] = {}
    for cam_id, cam in rec.cameras.items():
        where = f"{model_dir} camera {cam_id}"
        K, dist = camera_intrinsics(cam.model.name, np.asarray(cam.params), where)
        cameras[cam_id] = (K, (int(cam.width), int(cam.height)), dist)

    # pycolmap >= 3.12: has_pose; older: registered
    registered = [
        im for im in rec.images.values() if getattr(im, "has_pose", getattr(im, "registered", True))
    ]
    if not registered:
        raise ValueError(f"{model_dir}: the COLMAP model has no registered images")
    registered.sort(key=lambda im: natural_key(im.name))
    frames = []
    for im in registered:
        where = f"{model_dir} image {im.name}"
        if im.camera_id not in cameras:
            raise ValueError(f"{where}: refers to camera {im.camera_id}, which is not in the model")
        K, size, dist = cameras[im.camera_id]
        c2w = w2c_to_c2w(_cam_from_world(im), where)
        frames.append(
            SourceFrame(
                name=Path(im.name).name,
                source_file=str(Path(image_dir.name) / im.name),
                open=read_file_bytes(image_dir / im.name),
                K=K,
                intrinsics_size=size,
                c2w=c2w,
                distortion=dist,
                extra={"colmap_image_id": int(im.image_id), "colmap_camera_id": int(im.camera_id)},
            )
        )
    models = sorted({rec.cameras[c].model.name for c in cameras})
    meta = {
        "source_format": "colmap",
        "source_convention": SOURCE_CONVENTION,
        "conversion": "c2w = inverse(cam_from_world); intrinsics as stored"
        + (UNDISTORT_NOTE if any(cam[2] is not None for cam in cameras.values()) else ""),
        "colmap_model": str(model_dir),
        "colmap_camera_models": models,
        "colmap_num_points3D": int(rec.num_points3D()),
        "colmap_unregistered_images": len(rec.images) - len(registered),
    }
    # name the scene after the project folder, not after `sparse/0`
    scene_dir = root.resolve()
    while scene_dir.name in ("0", "sparse", "colmap") and scene_dir.parent != scene_dir:
        scene_dir = scene_dir.parent
    return [SourceScene(name=scene_dir.name, frames=frames, meta=meta)]
