"""Writers for the camera formats other tools read: a COLMAP text model and a nerfstudio
``transforms.json``. Both take OUR convention (OpenCV camera-to-world, pixel intrinsics with the
principal point from the image corner) and convert once, here, at the edge:

* COLMAP stores world-to-camera (``cam_from_world``) as a unit quaternion ``(qw, qx, qy, qz)``
  plus ``tvec``, in OpenCV camera axes and with the same pixel convention as ours: the only
  conversion is the inversion.
* nerfstudio stores camera-to-world ``transform_matrix`` in OpenGL camera axes (x right, y up,
  z backward): ``transform_matrix = c2w @ diag(1, -1, -1, 1)``; intrinsics ``fl_x fl_y cx cy``
  in pixels of a ``w × h`` image.

The readers in :mod:`rayzer.data.formats.colmap` / :mod:`~rayzer.data.formats.nerfstudio` read
these files back to the same cameras (tested). The COLMAP text format is a few lines per image,
so it is written by hand rather than through ``pycolmap`` (an optional extra): exporting must
work in the core install.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rayzer.data.formats.base import OPENGL_TO_OPENCV
from rayzer.data.scene_folder import check_c2w
from rayzer.geometry import matrix_to_quaternion


def _cameras(c2w: Any, K: Any, sizes: Any, names: Sequence[str]) -> tuple[np.ndarray, ...]:
    c2w = np.asarray(torch.as_tensor(c2w).detach().cpu(), dtype=np.float64)
    K = np.asarray(torch.as_tensor(K).detach().cpu(), dtype=np.float64)
    V = len(names)
    sizes = np.broadcast_to(np.asarray(sizes, dtype=np.int64), (V, 2))
    if c2w.shape != (V, 4, 4) or K.shape != (V, 4):
        raise ValueError(
            f"expected c2w ({V}, 4, 4) and K ({V}, 4) for {V} names, got {c2w.shape} and {K.shape}"
        )
    for i, name in enumerate(names):
        check_c2w(c2w[i], f"camera {name}")
        if not np.all(np.isfinite(K[i])) or K[i, 0] <= 0 or K[i, 1] <= 0:
            raise ValueError(f"camera {name}: invalid intrinsics {K[i].tolist()}")
        if " " in name or not name:
            raise ValueError(f"image name {name!r} must be non-empty without spaces")
    return c2w, K, sizes


def _num(x: float) -> str:
    return f"{float(x):.17g}"  # round-trips float64 exactly


def write_colmap_text(
    model_dir: str | Path, names: Sequence[str], c2w: Any, K: Any, sizes: Any
) -> Path:
    """Write ``cameras.txt``, ``images.txt`` and an empty ``points3D.txt`` into ``model_dir``.

    Args:
        model_dir: the model folder (e.g. ``<project>/sparse/0``), created if needed.
        names: image file names relative to the project's image folder (no spaces).
        c2w: ``(V, 4, 4)`` OpenCV camera-to-world; K: ``(V, 4)`` pixel ``(fx, fy, cx, cy)``.
        sizes: ``(W, H)`` shared by all images or ``(V, 2)`` per image.
    Returns:
        ``model_dir``. Images with identical intrinsics and size share one PINHOLE camera.
    """
    c2w, K, sizes = _cameras(c2w, K, sizes, names)
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    camera_ids: dict[tuple, int] = {}
    cam_lines, image_lines = [], []
    w2c = np.linalg.inv(c2w)
    quats = matrix_to_quaternion(torch.from_numpy(w2c[:, :3, :3])).numpy()
    for i, name in enumerate(names):
        key = (int(sizes[i, 0]), int(sizes[i, 1]), *(float(v) for v in K[i]))
        if key not in camera_ids:
            camera_ids[key] = len(camera_ids) + 1
            cam_lines.append(
                f"{camera_ids[key]} PINHOLE {key[0]} {key[1]} " + " ".join(map(_num, key[2:]))
            )
        pose = " ".join(map(_num, [*quats[i], *w2c[i, :3, 3]]))
        image_lines += [f"{i + 1} {pose} {camera_ids[key]} {name}", ""]  # no 2-D points
    header = "# Camera list with one line of data per camera:\n#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n"
    (model_dir / "cameras.txt").write_text(
        header + f"# Number of cameras: {len(cam_lines)}\n" + "\n".join(cam_lines) + "\n"
    )
    header = (
        "# Image list with two lines of data per image:\n"
        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n"
        "#   POINTS2D[] as (X, Y, POINT3D_ID)\n"
        f"# Number of images: {len(names)}, mean observations per image: 0\n"
    )
    (model_dir / "images.txt").write_text(header + "\n".join(image_lines) + "\n")
    (model_dir / "points3D.txt").write_text(
        "# 3D point list with one line of data per point:\n"
        "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n"
        "# Number of points: 0, mean track length: 0\n"
    )
    return model_dir


def write_transforms_json(
    path: str | Path,
    file_paths: Sequence[str],
    c2w: Any,
    K: Any,
    sizes: Any,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a nerfstudio ``transforms.json``.

    Args:
        path: the JSON file to write.
        file_paths: image paths relative to the JSON file's folder (e.g. ``images/000.png``).
        c2w: ``(V, 4, 4)`` OpenCV camera-to-world; K: ``(V, 4)`` pixel intrinsics.
        sizes: ``(W, H)`` or ``(V, 2)``.
        extra: additional top-level keys.
    Returns:
        ``path``. Intrinsics shared by all frames go to the top level, otherwise per frame.
    """
    c2w, K, sizes = _cameras(c2w, K, sizes, [Path(p).name for p in file_paths])
    shared = bool(np.all(K[0] == K) and np.all(sizes == sizes[0]))

    def intrinsics(i: int) -> dict[str, Any]:
        fx, fy, cx, cy = (float(v) for v in K[i])
        return {
            "fl_x": fx,
            "fl_y": fy,
            "cx": cx,
            "cy": cy,
            "w": int(sizes[i, 0]),
            "h": int(sizes[i, 1]),
        }

    doc: dict[str, Any] = {"camera_model": "OPENCV"}
    if shared:
        doc.update(intrinsics(0))
    doc.update({"k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0})
    doc.update(extra or {})
    frames = []
    for i, file in enumerate(file_paths):
        frame: dict[str, Any] = {
            "file_path": str(file),
            "transform_matrix": (
                c2w[i] @ OPENGL_TO_OPENCV
            ).tolist(),  # diag(1,-1,-1,1) = own inverse
        }
        if not shared:
            frame.update(intrinsics(i))
        frames.append(frame)
    doc["frames"] = frames
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path
