"""Removing lens distortion at conversion time (OpenCV's remap; optional extra ``[undistort]``).

Our scene folders hold pinhole images only. A source camera with radial-tangential (Brown–Conrady)
distortion — COLMAP ``SIMPLE_RADIAL``, ``RADIAL``, ``OPENCV``, ``FULL_OPENCV`` or nerfstudio /
instant-ngp ``k1 k2 k3 p1 p2`` — is undistorted onto a pinhole image of the SAME size and the SAME
``fx, fy, cx, cy``: every output pixel centre is a pinhole ray, mapped through the distortion model
to the source image and sampled bilinearly; pixels that map outside the source are black. Fisheye
and other models are refused by the readers with a message naming the model.

We use OpenCV (``cv2.initUndistortRectifyMap`` + ``cv2.remap``), the reference implementation of
exactly this model, instead of re-implementing it. It is an optional dependency: without it a
source that NEEDS undistortion is refused with a clear message (all-zero coefficients never need
it). OpenCV puts pixel centres at integer coordinates, we (and COLMAP) at +0.5, so the principal
point handed to OpenCV is ``(cx - 0.5, cy - 0.5)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

INSTALL_HINT = "pip install 'rayzer[undistort]' (opencv-python-headless)"


@dataclass(frozen=True)
class Distortion:
    """Radial-tangential distortion in OpenCV's coefficient order.

    Attributes:
        model: the source's camera-model name (for messages and metadata), e.g. ``"OPENCV"``.
        coeffs: ``(k1, k2, p1, p2[, k3[, k4, k5, k6]])``: OpenCV order, 4, 5 or 8 values. With 8 the
            radial factor is the rational ``(1 + k1 r² + k2 r⁴ + k3 r⁶) / (1 + k4 r² + k5 r⁴ + k6 r⁶)``
            (COLMAP ``FULL_OPENCV``).
    """

    model: str
    coeffs: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.coeffs) not in (4, 5, 8):
            raise ValueError(f"distortion needs 4, 5 or 8 OpenCV coefficients, got {self.coeffs}")
        if not all(np.isfinite(self.coeffs)):
            raise ValueError(f"{self.model} distortion coefficients are not finite: {self.coeffs}")

    @property
    def is_identity(self) -> bool:
        return not any(self.coeffs)

    def as_dict(self) -> dict[str, float | str]:
        names = ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6")
        return {"model": self.model, **{n: float(c) for n, c in zip(names, self.coeffs)}}


def have_opencv() -> bool:
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def require_opencv(model: str, where: str) -> None:
    """Raise a clear ValueError when undistortion is needed but OpenCV is not installed."""
    if not have_opencv():
        raise ValueError(
            f"{where}: camera model {model} has lens distortion and must be undistorted, which "
            f"needs OpenCV: {INSTALL_HINT}"
        )


def undistort_image(
    image: Image.Image, K: tuple[float, float, float, float], distortion: Distortion
) -> Image.Image:
    """Undistort ``image`` onto a pinhole image with the same size and intrinsics ``K``.

    Args:
        image: the distorted source image (any PIL mode; the mode is kept).
        K: ``(fx, fy, cx, cy)`` in pixels of ``image`` (corner convention, centres at +0.5).
        distortion: the source's distortion.
    Returns:
        The undistorted image, same size and mode; black where no source pixel maps.
    """
    if distortion.is_identity:
        return image
    import cv2

    fx, fy, cx, cy = K
    K_cv = np.array([[fx, 0.0, cx - 0.5], [0.0, fy, cy - 0.5], [0.0, 0.0, 1.0]])
    dist = np.asarray(distortion.coeffs, dtype=np.float64)
    map_x, map_y = cv2.initUndistortRectifyMap(
        K_cv, dist, None, K_cv, (image.width, image.height), cv2.CV_32FC1
    )
    mode = image.mode
    if mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in mode else "RGB")
    out = cv2.remap(
        np.asarray(image),
        map_x,
        map_y,
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return Image.fromarray(out)  # uint8 (H, W[, C]) keeps L / RGB / RGBA
