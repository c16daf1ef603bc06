"""nerfstudio / instant-ngp / NeRF-synthetic ``transforms*.json`` (also DL3DV, which uses nerfstudio's
layout).

Facts used (nerfstudio data conventions, instant-ngp and NeRF-synthetic files):

* ``frames[i].transform_matrix`` is a 4×4 camera-to-world in OpenGL camera axes (x right, y up,
  z backward): ours is ``transform_matrix @ diag(1, -1, -1, 1)``. The world frame is kept as it is
  in the file (``applied_transform``, if present, is recorded, not undone).
* Intrinsics: ``fl_x, fl_y, cx, cy`` in pixels of a ``w × h`` image, globally or per frame (a frame
  key overrides the global one); or ``camera_angle_x`` (and optionally ``camera_angle_y``), the full
  field of view in radians, with the principal point at the centre (NeRF-synthetic). Missing
  ``fl_y`` = ``fl_x``; missing ``cx, cy`` = image centre. When the stored image has another size
  than ``w × h`` (e.g. DL3DV's ``images_4``) the intrinsics are rescaled by the converter.
* Distortion: ``k1 k2 k3 p1 p2`` (``camera_model`` ``OPENCV`` or absent) is undistorted;
  ``OPENCV_FISHEYE`` / ``is_fisheye`` / ``EQUIRECTANGULAR`` and non-zero ``k4`` are refused.
* ``file_path`` is relative to the JSON file and may lack an extension (NeRF-synthetic
  ``./train/r_0`` -> ``.png``).

``transforms.json`` is used when present; otherwise every ``transforms_<split>.json``
(train, val, test, then others) with the split recorded per frame; ``split=`` picks one file.
Frames are ordered by file path (natural sort) within each file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from rayzer.data.formats.base import (
    IMAGE_EXTENSIONS,
    OPENGL_TO_OPENCV,
    SourceFrame,
    SourceScene,
    as_c2w,
    check_intrinsics,
    natural_key,
    read_file_bytes,
    resolve_dir,
)
from rayzer.data.formats.undistort import Distortion, require_opencv

SPLIT_ORDER = ("train", "val", "test")
INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x", "camera_angle_y")
DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")
PERSPECTIVE_MODELS = (None, "OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "PERSPECTIVE")
SOURCE_CONVENTION = (
    "transforms.json (nerfstudio / instant-ngp / NeRF): transform_matrix = camera-to-world with "
    "OpenGL camera axes (x right, y up, z backward); pixel intrinsics fl_x, fl_y, cx, cy of a w x h "
    "image or camera_angle_x (radians)."
)


def transforms_files(root: Path, split: str | None = None) -> list[tuple[Path, str | None]]:
    """The transforms files to read, with their split name (None for ``transforms.json``)."""
    if root.is_file():
        return [(root, None)]
    if split is not None:
        path = root / ("transforms.json" if split == "all" else f"transforms_{split}.json")
        if not path.is_file():
            raise FileNotFoundError(f"{root}: no {path.name} for split {split!r}")
        return [(path, None if split == "all" else split)]
    if (root / "transforms.json").is_file():
        return [(root / "transforms.json", None)]
    found = {p.stem[len("transforms_") :]: p for p in root.glob("transforms_*.json")}
    order = [s for s in SPLIT_ORDER if s in found] + sorted(set(found) - set(SPLIT_ORDER))
    if not order:
        raise FileNotFoundError(f"{root}: no transforms.json or transforms_<split>.json")
    return [(found[s], s) for s in order]


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("frames"), list) or not doc["frames"]:
        raise ValueError(f"{path}: expected an object with a non-empty 'frames' list")
    return doc


def _resolve_image(json_dir: Path, file_path: str, images: Path | None, where: str) -> Path:
    rel = Path(file_path)
    path = (images / rel.name) if images is not None else json_dir / rel
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return path
    for ext in (".png", ".jpg", ".jpeg"):  # NeRF-synthetic file paths have no extension
        if path.with_name(path.name + ext).is_file():
            return path.with_name(path.name + ext)
    raise FileNotFoundError(f"{where}: image file is missing: {path}")


def _image_size(path: Path) -> tuple[int, int]:
    if not path.is_file():
        raise FileNotFoundError(f"image file is missing: {path}")
    try:
        with Image.open(path) as im:  # reads the header only
            return im.width, im.height
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from None


def _camera(params: dict[str, Any], image: Path, where: str):
    """Pinhole K for the size it refers to, and the distortion, from merged global/frame keys."""
    model = params.get("camera_model")
    if params.get("is_fisheye") or (model is not None and model not in PERSPECTIVE_MODELS):
        name = "fisheye (is_fisheye = true)" if params.get("is_fisheye") else model
        raise ValueError(
            f"{where}: unsupported camera model {name}; only perspective cameras (OPENCV / "
            "PINHOLE, with k1 k2 k3 p1 p2 undistorted) are supported"
        )
    try:
        if "w" in params and "h" in params:
            size = (int(params["w"]), int(params["h"]))
        else:
            size = _image_size(image)
        W, H = size
        if "fl_x" in params:
            fx = float(params["fl_x"])
        elif "camera_angle_x" in params:
            fx = 0.5 * W / math.tan(0.5 * float(params["camera_angle_x"]))
        else:
            raise ValueError(f"{where}: no focal length (fl_x or camera_angle_x)")
        if "fl_y" in params:
            fy = float(params["fl_y"])
        elif "camera_angle_y" in params:
            fy = 0.5 * H / math.tan(0.5 * float(params["camera_angle_y"]))
        else:
            fy = fx
        K = (fx, fy, float(params.get("cx", W / 2)), float(params.get("cy", H / 2)))
        coeffs = {k: float(params.get(k, 0.0)) for k in DISTORTION_KEYS}
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(where):
            raise
        raise ValueError(f"{where}: bad camera parameters ({exc})") from None
    K = check_intrinsics(K, where)
    if coeffs["k4"]:
        raise ValueError(f"{where}: k4 = {coeffs['k4']} is only used by fisheye models (refused)")
    dist = Distortion(
        model or "OPENCV",
        (coeffs["k1"], coeffs["k2"], coeffs["p1"], coeffs["p2"], coeffs["k3"]),
    )
    if dist.is_identity:
        return K, size, None
    require_opencv(dist.model, where)
    return K, size, dist


def read_transforms(
    path: str | Path, images: str | Path | None = None, split: str | None = None
) -> list[SourceScene]:
    """Read ``transforms*.json`` into one :class:`SourceScene` (see module doc).

    Args:
        path: the scene folder (or a transforms JSON file).
        images: take each frame's file name from this folder instead (e.g. DL3DV ``images_4``).
        split: ``train`` / ``val`` / ``test`` (``transforms_<split>.json``) or ``all``
            (``transforms.json``); default: see module doc.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"not found: {root}")
    base = root if root.is_dir() else root.parent
    image_dir = resolve_dir(base, images, "") if images is not None else None
    frames: list[SourceFrame] = []
    meta: dict[str, Any] = {"source_format": "nerfstudio", "source_convention": SOURCE_CONVENTION}
    undistorted = False
    for json_path, split_name in transforms_files(root, split):
        doc = _load(json_path)
        global_params = {k: v for k, v in doc.items() if k != "frames"}
        for key in ("applied_transform", "camera_model", "aabb_scale", "scale", "offset"):
            if key in doc:
                meta.setdefault(f"source_{key}", doc[key])
        entries = []
        for i, fr in enumerate(doc["frames"]):
            where = f"{json_path} frame {i}"
            if not isinstance(fr, dict) or not isinstance(fr.get("file_path"), str):
                raise ValueError(f"{where}: missing 'file_path'")
            if "transform_matrix" not in fr:
                raise ValueError(f"{where} ({fr['file_path']}): missing 'transform_matrix'")
            entries.append(fr)
        entries.sort(key=lambda fr: natural_key(fr["file_path"]))
        for fr in entries:
            where = f"{json_path} frame {fr['file_path']}"
            image = _resolve_image(json_path.parent, fr["file_path"], image_dir, where)
            K, size, dist = _camera({**global_params, **fr}, image, where)
            undistorted |= dist is not None
            c2w = as_c2w(fr["transform_matrix"], where) @ OPENGL_TO_OPENCV
            try:
                rel = image.relative_to(json_path.parent)
            except ValueError:
                rel = image
            extra = {"split": split_name} if split_name is not None else {}
            frames.append(
                SourceFrame(
                    name=image.name,
                    source_file=str(rel),
                    open=read_file_bytes(image),
                    K=K,
                    intrinsics_size=size,
                    c2w=c2w,
                    distortion=dist,
                    extra=extra,
                )
            )
    meta["conversion"] = "c2w = transform_matrix @ diag(1, -1, -1, 1)" + (
        "; lens distortion removed (OpenCV remap onto the same fx, fy, cx, cy)"
        if undistorted
        else ""
    )
    name = (root if root.is_dir() else root.parent).resolve().name
    return [SourceScene(name=name, frames=frames, meta=_jsonable(meta))]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
