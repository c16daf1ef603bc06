"""Two-view geometry of every pair of photos: SIFT matches at the photos' resolution and the
relative pose of each pair from its essential matrix (OpenCV).

The first stage of :func:`rayzer.refine.matched_cameras.cameras_from_matches`. Needs OpenCV
(``pip install 'rayzer[undistort]'``: opencv-python-headless).

Conventions: keypoints in a shared *working frame*, the model's square (or kept-aspect) crop
scaled to about the photos' resolution, so all views share one pinhole ``K = (f, f, cx, cy)``
(pixel centres at +0.5, as :mod:`rayzer.geometry`); keypoints outside the crop are kept (they
are still projections through the same ``K``). Relative poses: ``x_j = R_ij x_i + t_ij`` for a
point ``x_i`` in camera ``i``'s frame (OpenCV's ``recoverPose``), ``|t_ij| = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from rayzer.data.matches import _cv2, _keypoints

__all__ = ["PairGeometry", "ViewFeatures", "detect_features", "match_pairs", "pair_poses"]


@dataclass
class ViewFeatures:
    """SIFT keypoints of one view.

    Attributes:
        uv: ``(K, 2)`` float64 keypoints in working-frame pixels.
        desc: ``(K, 128)`` float32 descriptors (``(0, 128)`` when none).
    """

    uv: np.ndarray
    desc: np.ndarray


@dataclass
class PairGeometry:
    """Matches and two-view pose of the pair ``(i, j)``, ``i < j``.

    Attributes:
        i, j: view positions.
        matches: ``(M, 2)`` int64 keypoint indices (into view i's, view j's keypoints) after the
            ratio test.
        inliers: ``(N,)`` indices into ``matches`` consistent with the pose (epipolar and
            cheirality); empty when no pose was found.
        R: ``(3, 3)`` relative rotation (None without a pose); t: ``(3,)`` unit translation.
        parallax_deg: median angle between the rotation-compensated rays of the inliers (a
            small one means a short baseline and a poorly known translation direction).
        homography_inliers: matches one homography explains (at the same threshold); when it
            is about as many as the essential matrix's inliers, the pair is near-planar or a
            pure rotation, and its essential matrix (hence its rotation) may be the wrong one of
            two that fit (COLMAP's two-view geometry makes the same test). -1: not measured.
    """

    i: int
    j: int
    matches: np.ndarray
    inliers: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    R: np.ndarray | None = None
    t: np.ndarray | None = None
    parallax_deg: float = 0.0
    homography_inliers: int = -1

    @property
    def num_inliers(self) -> int:
        return len(self.inliers)

    @property
    def homography_ratio(self) -> float:
        """Homography inliers per pose inlier (0 without a pose)."""
        return max(self.homography_inliers, 0) / self.num_inliers if self.num_inliers else 0.0


def _gray(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB or (H, W) → (H, W) uint8 luminance."""
    if image.ndim == 2:
        return image.astype(np.uint8)
    rgb = image.astype(np.float32)
    gray = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    return np.clip(gray + 0.5, 0, 255).astype(np.uint8)


def detect_features(
    image: np.ndarray,
    to_work: tuple[float, float, float],
    max_side: int = 1024,
    contrast_threshold: float = 0.02,
) -> ViewFeatures:
    """SIFT keypoints of one photo, in working-frame pixels.

    Args:
        image: ``(H, W, 3)`` uint8 RGB photo (or ``(H, W)`` gray) at its own resolution.
        to_work: ``(s, ox, oy)``: a photo pixel ``(u, v)`` is ``(s u + ox, s v + oy)`` in the
            working frame.
        max_side: photos with a longer side are shrunk to it before detection (coordinates are
            mapped back to the photo's pixels).
        contrast_threshold: SIFT's (OpenCV's default 0.04 finds few keypoints on small photos).
    """
    cv2 = _cv2()
    gray = _gray(image)
    h, w = gray.shape
    shrink = min(1.0, max_side / max(h, w))
    if shrink < 1.0:
        size = (round(w * shrink), round(h * shrink))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    uv, desc = _keypoints(gray, contrast_threshold)
    # corner convention: a continuous point scales exactly with the image
    uv = uv / np.array([gray.shape[1] / w, gray.shape[0] / h])
    s, ox, oy = to_work
    uv = uv * s + np.array([ox, oy])
    if desc is None:
        desc = np.zeros((0, 128), dtype=np.float32)
    return ViewFeatures(uv=uv, desc=desc.astype(np.float32))


def match_pairs(
    feats: list[ViewFeatures],
    ratio: float = 0.8,
    max_matches: int = 2000,
    max_gap: int | None = None,
) -> list[PairGeometry]:
    """Ratio-test matches of every pair of views (no pose yet), strongest first, at most
    ``max_matches`` per pair; one keypoint of view j is used once (the best ratio wins).
    ``max_gap``: only pairs ``(i, j)`` with ``j - i <= max_gap`` (None: all pairs)."""
    cv2 = _cv2()
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    out = []
    for i, j in combinations(range(len(feats)), 2):
        if max_gap is not None and j - i > max_gap:
            continue
        da, db = feats[i].desc, feats[j].desc
        m = np.zeros((0, 2), dtype=np.int64)
        if len(da) >= 2 and len(db) >= 2:
            knn = matcher.knnMatch(da, db, k=2)
            good = sorted(
                (a.distance / max(b.distance, 1e-12), a.queryIdx, a.trainIdx)
                for a, b in (p for p in knn if len(p) == 2)
            )
            good = [g for g in good if g[0] < ratio]
            _, first = np.unique([g[2] for g in good], return_index=True) if good else (0, [])
            m = np.array([good[k][1:] for k in sorted(first)], dtype=np.int64).reshape(-1, 2)
            m = m[:max_matches]
        out.append(PairGeometry(i, j, m))
    return out


def _normalised(uv: np.ndarray, K: tuple[float, float, float, float]) -> np.ndarray:
    """(N, 2) pixels → (N, 3) rays ``K^-1 (u, v, 1)``."""
    fx, fy, cx, cy = K
    return np.stack([(uv[:, 0] - cx) / fx, (uv[:, 1] - cy) / fy, np.ones(len(uv))], 1)


def pair_poses(
    feats: list[ViewFeatures],
    pairs: list[PairGeometry],
    K: tuple[float, float, float, float],
    threshold_px: float = 1.5,
    min_matches: int = 15,
) -> list[PairGeometry]:
    """Each pair's relative pose from an essential matrix (OpenCV's USAC-MAGSAC++ at
    ``threshold_px`` working-frame pixels, then ``recoverPose``'s cheirality check) for the
    shared intrinsics ``K``, and the matches a homography explains (``homography_inliers``).
    Pairs with fewer than ``min_matches`` ratio-test matches, or where no model fits, keep no
    pose. Returns new :class:`PairGeometry` objects."""
    cv2 = _cv2()
    Km = np.array([[K[0], 0, K[2]], [0, K[1], K[3]], [0, 0, 1]], dtype=np.float64)
    out = []
    for p in pairs:
        q = PairGeometry(p.i, p.j, p.matches)
        out.append(q)
        if len(p.matches) < max(min_matches, 5):
            continue
        xa = feats[p.i].uv[p.matches[:, 0]]
        xb = feats[p.j].uv[p.matches[:, 1]]
        try:
            E, mask = cv2.findEssentialMat(
                xa, xb, Km, method=cv2.USAC_MAGSAC, prob=0.9999, threshold=threshold_px
            )
        except cv2.error:  # USAC asserts when no model fits (degenerate or too few matches)
            continue
        if E is None or mask is None or E.shape != (3, 3):
            continue
        n, R, t, pose_mask = cv2.recoverPose(E, xa, xb, Km, mask=mask.copy())
        keep = np.flatnonzero(pose_mask.ravel() > 0)
        if n < 5 or len(keep) < 5:
            continue
        q.inliers, q.R, q.t = keep, R, t.ravel() / max(np.linalg.norm(t), 1e-12)
        ra = _normalised(xa[keep], K) @ R.T
        rb = _normalised(xb[keep], K)
        cos = (ra * rb).sum(1) / np.linalg.norm(ra, axis=1) / np.linalg.norm(rb, axis=1)
        q.parallax_deg = float(np.degrees(np.median(np.arccos(np.clip(cos, -1, 1)))))
        if p.homography_inliers < 0:  # once per pair: it does not depend on K
            p.homography_inliers = homography_inliers(xa, xb, threshold_px)
        q.homography_inliers = p.homography_inliers
    return out


def homography_inliers(xa: np.ndarray, xb: np.ndarray, threshold_px: float) -> int:
    """Matches ``xa (M, 2) → xb (M, 2)`` (pixels) one homography explains (USAC-MAGSAC++ at
    ``threshold_px``); 0 when none fits. Independent of the focal."""
    cv2 = _cv2()
    if len(xa) < 4:
        return 0
    try:
        H, mask = cv2.findHomography(xa, xb, cv2.USAC_MAGSAC, threshold_px, confidence=0.9999)
    except cv2.error:  # USAC asserts when no model fits
        return 0
    return 0 if H is None or mask is None else int(mask.sum())
