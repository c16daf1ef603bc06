"""A classical reference for camera accuracy: pycolmap incremental SfM on a sample's images.

Used by ``rayzer eval --colmap`` mainly on scenes WITHOUT ground-truth cameras: COLMAP's
cameras stand in for the truth and our predicted cameras are compared with them on the views
COLMAP registered (gauge-free pairwise metrics, :func:`rayzer.eval.camera_metrics.pairwise_summary`).
On posed scenes COLMAP is also scored against the truth, as a classical baseline.

The run: the sample's original images (full resolution, longer side capped at
``max_image_size``) are linked into a work folder; SIFT features (one shared SIMPLE_RADIAL
camera, as our model predicts one focal for all views), exhaustive matching, incremental mapping
with a fixed random seed; the reconstruction with the most registered images is used. COLMAP
cameras use OpenCV axes, so ``c2w = inverse(cam_from_world)`` directly.

pycolmap is an optional extra (``pip install rayzer[colmap]``). When it is missing, or fewer
than two images register, the result is ``{"status": "skipped", "reason": ...}`` — never an
error and never a made-up number.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rayzer.eval.camera_metrics import pairwise_summary
from rayzer.geometry import relative_pose_errors

INSTALL_HINT = "pip install 'rayzer[colmap]' (or pip install pycolmap)"


class ColmapFailed(RuntimeError):
    """COLMAP ran but gave no usable reconstruction (the message says why)."""


@dataclass
class ColmapCameras:
    """Cameras of the images COLMAP registered.

    Attributes:
        c2w: ``{image name: (4, 4) float64 OpenCV camera-to-world}``.
        num_images: images given to COLMAP.
        num_points3D: points of the chosen reconstruction.
    """

    c2w: dict[str, np.ndarray]
    num_images: int
    num_points3D: int


def colmap_unavailable_reason() -> str | None:
    """None when pycolmap can be imported, else why not (with the install hint)."""
    try:
        import pycolmap  # noqa: F401
    except ImportError as exc:
        return f"pycolmap is not installed ({exc}); {INSTALL_HINT}"
    return None


def run_colmap(
    image_files: Sequence[str | os.PathLike],
    workdir: str | os.PathLike,
    *,
    max_image_size: int = 1024,
    num_threads: int | None = None,
    seed: int = 0,
) -> ColmapCameras:
    """Incremental SfM on ``image_files`` (module docstring) inside ``workdir`` (created; the
    caller deletes it).

    Raises:
        ImportError: no pycolmap. ColmapFailed: fewer than 2 images registered.
        ValueError: duplicate image file names.
    """
    import pycolmap

    files = [Path(f) for f in image_files]
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise ValueError(f"COLMAP reference: duplicate image file names in {names}")
    work = Path(workdir)
    image_dir = work / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    for f in files:
        try:
            os.symlink(f.resolve(), image_dir / f.name)
        except OSError:  # file systems without symlinks
            shutil.copy2(f, image_dir / f.name)
    database = work / "database.db"
    sparse = work / "sparse"
    sparse.mkdir(exist_ok=True)
    threads = int(num_threads or torch.get_num_threads())

    old_level = pycolmap.logging.minloglevel
    # COLMAP logs hundreds of INFO lines per run, and its failures come back as our reason.
    pycolmap.logging.minloglevel = 3
    try:
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.num_threads = threads
        extraction.max_image_size = max_image_size
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = "SIMPLE_RADIAL"
        pycolmap.extract_features(
            database,
            image_dir,
            image_names=names,
            camera_mode=pycolmap.CameraMode.SINGLE,
            reader_options=reader,
            extraction_options=extraction,
            device=pycolmap.Device.cpu,
        )
        matching = pycolmap.FeatureMatchingOptions()
        matching.num_threads = threads
        pycolmap.match_exhaustive(database, matching_options=matching, device=pycolmap.Device.cpu)
        mapping = pycolmap.IncrementalPipelineOptions()
        mapping.num_threads = threads
        mapping.min_model_size = 2
        mapping.random_seed = seed
        mapping.mapper.random_seed = seed
        mapping.triangulation.random_seed = seed
        recs = pycolmap.incremental_mapping(database, image_dir, sparse, options=mapping)
    except Exception as exc:  # pycolmap raises RuntimeError / ValueError with COLMAP's message
        raise ColmapFailed(f"COLMAP failed: {exc}") from None
    finally:
        pycolmap.logging.minloglevel = old_level
    if not recs:
        raise ColmapFailed("COLMAP registered no image pair (no reconstruction)")
    rec = max(recs.values(), key=lambda r: r.num_reg_images())
    from rayzer.data.formats.colmap import _cam_from_world

    c2w: dict[str, np.ndarray] = {}
    for im in rec.images.values():
        if not getattr(im, "has_pose", getattr(im, "registered", True)):
            continue
        w2c = np.vstack([_cam_from_world(im), [0.0, 0.0, 0.0, 1.0]])
        c2w[im.name] = np.linalg.inv(w2c)
    if len(c2w) < 2:
        raise ColmapFailed(f"COLMAP registered {len(c2w)} of {len(files)} images (need 2)")
    return ColmapCameras(c2w, len(files), int(rec.num_points3D()))


def _pair_errors(pred: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
    err = relative_pose_errors(pred.double(), ref.double())
    return err["rot_deg"], err["trans_deg"]


def colmap_reference(
    pred_c2w: Tensor,
    image_files: Sequence[str | os.PathLike],
    workdir: str | os.PathLike,
    gt_c2w: Tensor | None = None,
    **colmap_kwargs: Any,
) -> dict[str, Any]:
    """Our cameras against COLMAP's on the views it registered (module docstring).

    Args:
        pred_c2w: (V, 4, 4) our predicted cameras of the V images ``image_files``.
        gt_c2w: (V, 4, 4) ground truth, if any (then COLMAP is scored against it too).
    Returns:
        ``{"status": "ok", "registered": n, "num_images": V, "registered_images",
        "num_points3D", "ours_vs_colmap": {...}, "colmap_vs_gt": {...} | None,
        "ours_vs_gt_on_registered": {...} | None, "raw": {same keys: (rot_deg, trans_deg)
        pair errors, for pooling}}`` or ``{"status": "skipped", "reason": ...}``.
    """
    reason = colmap_unavailable_reason()
    if reason is not None:
        return {"status": "skipped", "reason": reason}
    try:
        cams = run_colmap(image_files, workdir, **colmap_kwargs)
    except ColmapFailed as exc:
        return {"status": "skipped", "reason": str(exc)}
    names = [Path(f).name for f in image_files]
    keep = [i for i, n in enumerate(names) if n in cams.c2w]
    ref = torch.from_numpy(np.stack([cams.c2w[names[i]] for i in keep]))
    pred = pred_c2w.detach().cpu()
    raw = {"ours_vs_colmap": _pair_errors(pred[keep], ref)}
    if gt_c2w is not None:
        gt = gt_c2w.detach().cpu()
        raw["colmap_vs_gt"] = _pair_errors(ref, gt[keep])
        raw["ours_vs_gt_on_registered"] = _pair_errors(pred[keep], gt[keep])
    out: dict[str, Any] = {
        "status": "ok",
        "registered": len(keep),
        "num_images": len(names),
        "registered_images": [names[i] for i in keep],
        "num_points3D": cams.num_points3D,
    }
    for key in ("ours_vs_colmap", "colmap_vs_gt", "ours_vs_gt_on_registered"):
        out[key] = pairwise_summary(*raw[key]) if key in raw else None
    out["raw"] = raw
    return out
