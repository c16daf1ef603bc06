"""LLFF ``poses_bounds.npy`` + images (the NeRF "forward-facing" scenes, Mip-NeRF 360).

Facts used (LLFF's ``imgs2poses`` output, as read by the NeRF / LLFF loaders):

* ``poses_bounds.npy`` is ``(N, 17)``: per image a ``3×5`` matrix (row-major, 15 values) and two
  depth bounds (near, far).
* The ``3×5`` matrix is ``[R | t | hwf]``: columns 0-2 are the camera axes in world coordinates in
  the order (down, right, backwards) — "DRB" — column 3 is the camera centre, column 4 is
  ``(image height, image width, focal length in pixels)`` of the full-resolution images; the
  principal point is the image centre and fx = fy.
* Rows follow the SORTED image file names of ``images/`` (the registered images only).

So in OpenCV axes (x right, y down, z forward): ``c2w[:, 0] = right = col 1``,
``c2w[:, 1] = down = col 0``, ``c2w[:, 2] = forward = -col 2``, ``c2w[:, 3] = col 3``. The world
frame is COLMAP's, kept as is. Images from ``images_<k>`` (``images=``) have their focal length
rescaled from ``hwf`` by the converter. Bounds are kept per frame as ``near`` / ``far``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rayzer.data.formats.base import (
    SourceFrame,
    SourceScene,
    as_c2w,
    check_intrinsics,
    list_images,
    read_file_bytes,
    resolve_dir,
)

POSES_FILE = "poses_bounds.npy"
SOURCE_CONVENTION = (
    "LLFF poses_bounds.npy: per image [R|t|hwf] (3x5) + near, far; R columns = camera (down, right, "
    "backwards) axes in world coordinates, t = camera centre, hwf = (H, W, focal) of the "
    "full-resolution images, principal point at the centre."
)


def llff_to_c2w(pose: np.ndarray) -> np.ndarray:
    """``(3, 5)`` LLFF ``[down, right, back | t | hwf]`` -> ``(4, 4)`` OpenCV camera-to-world."""
    c2w = np.eye(4)
    c2w[:3, 0] = pose[:, 1]  # right
    c2w[:3, 1] = pose[:, 0]  # down
    c2w[:3, 2] = -pose[:, 2]  # forward = -backwards
    c2w[:3, 3] = pose[:, 3]
    return c2w


def read_llff(path: str | Path, images: str | Path | None = None) -> list[SourceScene]:
    """Read an LLFF scene folder (``poses_bounds.npy`` + ``images/``) into one scene.

    Args:
        path: the scene folder.
        images: image folder to use (e.g. ``images_4``; default ``images``).
    """
    root = Path(path)
    npy = root / POSES_FILE
    if not npy.is_file():
        raise FileNotFoundError(f"{root}: {POSES_FILE} not found")
    try:
        arr = np.load(npy, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{npy}: cannot read ({exc})") from None
    if arr.ndim != 2 or arr.shape[1] != 17 or arr.shape[0] < 1:
        raise ValueError(f"{npy}: expected an (N, 17) array, got shape {arr.shape}")
    image_dir = resolve_dir(root, images, "images")
    if not image_dir.is_dir():
        raise FileNotFoundError(f"{root}: image folder not found: {image_dir}")
    files = list_images(image_dir)
    if len(files) != len(arr):
        raise ValueError(
            f"{npy} has {len(arr)} poses but {image_dir} holds {len(files)} images; LLFF rows "
            "follow the sorted image names, so the two must match"
        )
    # LLFF sorts with Python's default string order, not naturally.
    files = sorted(files, key=lambda p: p.name)
    frames = []
    for i, (row, file) in enumerate(zip(arr, files)):
        where = f"{npy} row {i} ({file.name})"
        pose = np.asarray(row[:15], dtype=np.float64).reshape(3, 5)
        if not np.all(np.isfinite(row)):
            raise ValueError(f"{where}: non-finite values")
        height, width, focal = pose[:, 4]
        if height < 1 or width < 1:
            raise ValueError(f"{where}: bad image size h={height}, w={width}")
        c2w = as_c2w(llff_to_c2w(pose), where)
        K = check_intrinsics((focal, focal, width / 2, height / 2), where)
        frames.append(
            SourceFrame(
                name=file.name,
                source_file=str(Path(image_dir.name) / file.name),
                open=read_file_bytes(file),
                K=K,
                intrinsics_size=(round(width), round(height)),
                c2w=c2w,
                extra={"near": float(row[15]), "far": float(row[16])},
            )
        )
    meta = {
        "source_format": "llff",
        "source_convention": SOURCE_CONVENTION,
        "conversion": "c2w columns = (col1, col0, -col2, col3) of the LLFF matrix; fx = fy = focal, "
        "cx, cy = centre, rescaled to the stored image",
    }
    return [SourceScene(name=root.resolve().name, frames=frames, meta=meta)]
