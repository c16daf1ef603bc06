"""What every format reader returns: scenes of frames in OUR conventions.

A reader turns its source convention into ours once, here at the edge (:mod:`rayzer`):

* ``c2w``: ``(4, 4)`` float64 camera-to-world, OpenCV camera axes (x right, y down, z forward), in
  the source's world frame and scale (conversion never normalises; the training loader does);
* ``K``: ``(fx, fy, cx, cy)`` in pixels of an image of size ``intrinsics_size = (W, H)``, principal
  point from the top-left image corner (pixel centres at +0.5); ``intrinsics_size = None`` means
  "of the source image as stored"; ``K_normalized = True`` means divided by the image size
  (RealEstate10K), i.e. given for a 1×1 image. The converter rescales them to the size of the
  image actually written.

Pixels are opened lazily (``SourceFrame.open``), in frame order, so a long video or a big scene is
never held in memory.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from rayzer.data.formats.undistort import Distortion

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# OpenGL / NeRF camera axes (x right, y up, z backward) -> OpenCV (x right, y down, z forward):
# negate the camera's y and z axes, i.e. right-multiply the c2w by diag(1, -1, -1, 1).
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])

Payload = bytes | Image.Image


@dataclass
class SourceFrame:
    """One frame of a source scene.

    Attributes:
        name: proposed output file name (basename with extension); the converter makes names unique.
        source_file: where the frame came from (path relative to the source, or a descriptor such
            as ``chunk.torch#key/3`` or ``video.mp4#frame=120``), recorded in ``cameras.json``.
        open: returns the encoded image bytes (copied verbatim when no pixel change is needed) or a
            decoded PIL image. May raise FileNotFoundError / ValueError naming the file.
        K: ``(fx, fy, cx, cy)`` for an image of ``intrinsics_size`` (see module doc), or None.
        intrinsics_size: ``(W, H)`` the intrinsics refer to; None = the source image's size.
        K_normalized: ``K`` is divided by the image size (for a 1×1 image).
        c2w: ``(4, 4)`` OpenCV camera-to-world, or None for unposed sources.
        distortion: lens distortion to remove (None = pinhole).
        extra: extra per-frame JSON entries (e.g. ``timestamp``, ``near``/``far``, ``split``).
    """

    name: str
    source_file: str
    open: Callable[[], Payload]
    K: tuple[float, float, float, float] | None = None
    intrinsics_size: tuple[int, int] | None = None
    K_normalized: bool = False
    c2w: np.ndarray | None = None
    distortion: Distortion | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SourceScene:
    """A scene read from a source: its frames in output order and scene-level metadata.

    ``meta`` holds JSON-serialisable top-level entries for ``cameras.json`` (``source_format``,
    ``source_convention``, ``conversion``, ...).
    """

    name: str
    frames: Sequence[SourceFrame]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def posed(self) -> bool:
        return bool(self.frames) and self.frames[0].c2w is not None


def natural_key(text: str) -> list:
    """Sort key that orders digit runs numerically (``img2`` < ``img10``), case-insensitively.

    Hand-written (3 lines) rather than a dependency on ``natsort`` for this one use.
    """
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", text)]


def read_file_bytes(path: Path) -> Callable[[], bytes]:
    """A lazy opener returning the bytes of ``path`` (FileNotFoundError naming it if missing)."""

    def _open() -> bytes:
        if not path.is_file():
            raise FileNotFoundError(f"image file is missing: {path}")
        return path.read_bytes()

    return _open


def as_c2w(matrix: Any, where: str) -> np.ndarray:
    """Parse a 3×4 or 4×4 pose into a finite float64 4×4 (ValueError naming ``where`` otherwise)."""
    try:
        m = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: pose is not a numeric matrix ({exc})") from None
    if m.shape == (3, 4):
        m = np.vstack([m, [0.0, 0.0, 0.0, 1.0]])
    if m.shape != (4, 4):
        raise ValueError(f"{where}: pose must be 3x4 or 4x4, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{where}: pose has non-finite entries")
    return m


def w2c_to_c2w(w2c: np.ndarray, where: str) -> np.ndarray:
    """Invert a world-to-camera 4×4 (after checking that it is finite and invertible).

    The exact inverse, not ``R^T``: stored rotations are orthonormal only to their printed
    precision, and the exact inverse reproduces the source's own camera-to-world. Rigidity is
    checked by the converter.
    """
    w2c = as_c2w(w2c, where)
    if abs(np.linalg.det(w2c[:3, :3])) < 1e-8:
        raise ValueError(f"{where}: world-to-camera rotation is singular")
    c2w = np.linalg.inv(w2c)
    c2w[3] = (0.0, 0.0, 0.0, 1.0)  # exact, not 1e-17 round-off
    return c2w


def check_intrinsics(K: Sequence[float], where: str) -> tuple[float, float, float, float]:
    """Return ``K`` as 4 floats; ValueError unless finite with positive focal lengths."""
    try:
        fx, fy, cx, cy = (float(v) for v in K)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: intrinsics must be 4 numbers (fx, fy, cx, cy): {exc}") from None
    if not all(math.isfinite(v) for v in (fx, fy, cx, cy)):
        raise ValueError(f"{where}: intrinsics must be finite, got {(fx, fy, cx, cy)}")
    if fx <= 0 or fy <= 0:
        raise ValueError(f"{where}: focal lengths must be > 0, got fx={fx}, fy={fy}")
    return fx, fy, cx, cy


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder`` (no hidden files), in natural order."""
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def resolve_dir(root: Path, folder: str | Path | None, default: str) -> Path:
    """An image folder option: as given if it exists (absolute or relative to the working
    directory), else relative to the source ``root``; ``default`` (under ``root``) when None."""
    if folder is None:
        return root / default
    folder = Path(folder)
    return folder if folder.is_absolute() or folder.exists() else root / folder
