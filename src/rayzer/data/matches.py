"""Label-free point correspondences between the views of a sample (SIFT + ratio test + a robust
fundamental-matrix fit), padded to fixed-size tensors so samples stack into batches.

They feed the opt-in epipolar loss of the explicit models (``model.epipolar_loss_weight``,
:mod:`rayzer.geometry.epipolar`): images only, no cameras or depth, so the signal stays
self-supervised. Needs OpenCV (``pip install rayzer[undistort]``: opencv-python-headless).

Conventions: pixel coordinates ``(u, v)`` with the principal point's convention of
:mod:`rayzer.geometry` (pixel ``(i, j)`` covers ``[j, j+1) × [i, i+1)``, centre at +0.5); OpenCV
keypoints put pixel centres at integers, so 0.5 is added. Matching may run on a larger render of
the same views (more keypoints at small sizes); coordinates are then scaled to ``out_size``
(exact in this corner convention: a continuous point ``u`` at size S is ``u · S' / S`` at S').
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import torch
from torch import Tensor

__all__ = ["ViewMatches", "all_pairs", "match_views"]


@dataclass
class ViewMatches:
    """Matches of one sample's V views, P = V(V−1)/2 pairs (every pair, fixed order).

    Attributes:
        pairs: (P, 2) int64 view positions (a, b), a < b, in :func:`all_pairs` order.
        uv: (P, M, 4) float32 ``(u_a, v_a, u_b, v_b)`` in pixels of ``out_size`` images.
        valid: (P, M) bool; padding and pairs that failed the fit are False.
    """

    pairs: Tensor
    uv: Tensor
    valid: Tensor

    def as_batch_entries(self) -> dict[str, Tensor]:
        """The sample-dict keys the training stream adds (``epipolar_*``)."""
        return {
            "epipolar_pairs": self.pairs,
            "epipolar_uv": self.uv,
            "epipolar_valid": self.valid,
        }


def all_pairs(num_views: int) -> Tensor:
    """(V(V−1)/2, 2) int64: every view pair (a, b), a < b, in lexicographic order."""
    if num_views < 2:
        return torch.zeros(0, 2, dtype=torch.int64)
    return torch.tensor(list(combinations(range(num_views), 2)), dtype=torch.int64)


def _cv2():
    try:
        import cv2
    except ImportError as err:  # an optional extra
        raise ImportError(
            "epipolar matches need OpenCV: pip install 'rayzer[undistort]' (opencv-python-headless)"
        ) from err
    return cv2


def _gray_uint8(image: Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] → (H, W) uint8 luminance."""
    rgb = image.detach().float().clamp(0, 1).cpu()
    gray = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return (gray * 255 + 0.5).to(torch.uint8).numpy()


def _keypoints(gray: np.ndarray, contrast_threshold: float) -> tuple[np.ndarray, np.ndarray | None]:
    """SIFT keypoints ``(K, 2)`` float64 ``(u, v)`` in the corner convention of the module
    docstring and their descriptors ``(K, 128)`` (None if none) of an (H, W) uint8 image.

    ``enable_precise_upscale``: OpenCV's default 2x upscale of the first octave places every
    keypoint 0.25 px right of and below the texture (opencv/opencv#23123); with it, OpenCV's
    coordinates put pixel centres exactly at integers, hence + 0.5.
    """
    sift = _cv2().SIFT_create(contrastThreshold=contrast_threshold, enable_precise_upscale=True)
    kps, desc = sift.detectAndCompute(gray, None)
    return np.array([kp.pt for kp in kps], dtype=np.float64).reshape(-1, 2) + 0.5, desc


def match_views(
    images: Tensor,
    max_matches: int = 64,
    out_size: tuple[int, int] | None = None,
    ratio: float = 0.8,
    ransac_px: float = 1.0,
    min_inliers: int = 8,
    min_inlier_ratio: float = 0.5,
    max_gap: int | None = 2,
    contrast_threshold: float = 0.02,
) -> ViewMatches:
    """SIFT correspondences of every view pair of ``images`` (V, 3, H, W) in [0, 1].

    Per pair: mutual-nearest is not required; Lowe's ratio test (``ratio``), then a fundamental
    matrix fitted with OpenCV's USAC-MAGSAC++ (threshold ``ransac_px`` pixels at the matching
    size) keeps its inliers; pairs with fewer than ``min_inliers`` inliers get no matches
    (too few to trust the fit). At most ``max_matches`` per pair (the lowest ratio first).

    Args:
        images: (V, 3, H, W) the views to match (e.g. a 2× render of the training views).
        max_matches: M, the padded length.
        out_size: (H', W') of the images the coordinates refer to (default: (H, W)).
        min_inlier_ratio: a pair whose fit keeps less than this share of the ratio-test matches
            gets none (on repetitive texture a fit to mostly wrong matches still finds
            ``min_inliers`` "inliers").
        max_gap: match only pairs with ``b − a <= max_gap`` (views in capture order: far pairs
            overlap little and give mostly wrong matches); the others stay empty. None: all.
        contrast_threshold: SIFT's contrast threshold (OpenCV's default 0.04 finds few
            keypoints on small renders).

    Returns:
        :class:`ViewMatches` with P = V(V−1)/2 pairs.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images: expected (V, 3, H, W), got {tuple(images.shape)}")
    if max_matches < 1 or min_inliers < 8:
        raise ValueError(
            f"max_matches must be >= 1 and min_inliers >= 8, got {max_matches}, {min_inliers}"
        )
    cv2 = _cv2()
    v, _, h, w = images.shape
    oh, ow = out_size if out_size is not None else (h, w)
    scale = np.array([ow / w, oh / h, ow / w, oh / h], dtype=np.float64)
    feats = [_keypoints(_gray_uint8(images[i]), contrast_threshold) for i in range(v)]
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    pairs = all_pairs(v)
    uv = torch.zeros(len(pairs), max_matches, 4, dtype=torch.float32)
    valid = torch.zeros(len(pairs), max_matches, dtype=torch.bool)
    for p, (a, b) in enumerate(pairs.tolist()):
        if max_gap is not None and b - a > max_gap:
            continue
        (pa, da), (pb, db) = feats[a], feats[b]
        if da is None or db is None or len(da) < 2 or len(db) < 2:
            continue
        knn = matcher.knnMatch(da, db, k=2)
        good = [(m.distance / max(n.distance, 1e-12), m.queryIdx, m.trainIdx) for m, n in knn]
        good = sorted(g for g in good if g[0] < ratio)
        if len(good) < min_inliers:
            continue
        xa = pa[[g[1] for g in good]]
        xb = pb[[g[2] for g in good]]
        try:
            _, mask = cv2.findFundamentalMat(xa, xb, cv2.USAC_MAGSAC, ransac_px, 0.999, 2000)
        except cv2.error:  # USAC asserts when no model fits (degenerate or too few matches)
            mask = None
        if mask is None:
            continue
        keep = np.flatnonzero(mask.ravel())
        if len(keep) < min_inlier_ratio * len(good):
            continue
        # SIFT returns one keypoint per dominant orientation: drop repeated point pairs
        _, first = np.unique(
            np.round(np.concatenate((xa[keep], xb[keep]), 1), 3), axis=0, return_index=True
        )
        keep = keep[np.sort(first)]
        if len(keep) < min_inliers:
            continue
        keep = keep[:max_matches]  # `good` is sorted by ratio, so these are the most distinct
        found = np.concatenate((xa[keep], xb[keep]), axis=1) * scale
        uv[p, : len(keep)] = torch.from_numpy(found).float()
        valid[p, : len(keep)] = True
    return ViewMatches(pairs=pairs, uv=uv, valid=valid)
