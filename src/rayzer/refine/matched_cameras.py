"""Cameras from feature matches: a label-free, classical start for the photometric refinement.

A tiny model trained on two CPU cores predicts near-identity cameras on real photos, and a
photometric descent from there moves them by a few degrees at most. Real photos do have hundreds
of SIFT matches per pair at their own resolution, so the cameras are solved from those:

1. SIFT keypoints of every photo at its own resolution (long side capped), ratio-test matches of
   every pair (:mod:`rayzer.refine.pair_geometry`);
2. each pair's relative pose from its essential matrix (USAC-MAGSAC++ and cheirality) at a
   starting focal; pairs with fewer than ``min_inliers`` inliers are dropped, and so are
   near-planar or pure-rotation pairs (a homography explains as many of their matches as the
   essential matrix, which may then be the wrong one of two: COLMAP's two-view test);
3. the views joined by kept pairs form groups, each a reconstruction of its own; every group
   of ``min_views`` views or more is tried (most views first) and the one registering the most
   views is kept: in each, global rotations by rotation averaging
   (:mod:`rayzer.geometry.rotation_averaging`) of the group's pairs, the reference view fixed;
   pairs that disagree with the averaged rotations dropped; views of other groups are not
   registered;
4. tracks (matches chained over views), translations view by view from the triangulated tracks
   with the rotations known (linear least squares, robust reweighting), then a bundle adjustment
   of every registered pose, the shared focal and the points on the reprojection error
   (``scipy.optimize.least_squares``, sparse Jacobian, soft-L1 loss);
5. the focal (``focal_search``): steps 2-4 from each starting focal of a log grid around the
   model's (0.5-4x), keeping the start whose bundle adjustment ends with the lowest (truncated)
   reprojection error among those registering the most views on checked rotations (a loop of
   three views: an unchecked tree of pairs fits its tracks more easily). Self-calibration from
   the fundamental matrices alone is degenerate on object-centred captures (the optical axes
   meet near the object), and the model's focal can be 2.5x off, so the reprojection error of
   whole reconstructions decides; when the chosen reconstruction's bundle adjustment moved
   the focal far from its start (``repose_factor``), the pairs are posed again at the focal it
   reached and the reconstruction solved again from there (``_repose``): the essential
   matrices and the near-planar test of step 2 were made at the start, and at a focal far off
   the wide-baseline pairs fit their essential matrix worse than a homography and were left out;
6. the evidence: when the averaging dropped a large share of the pairs it checked (those of the
   registered group), or no three registered views close a loop, or the loop closes at fewer
   than half of the starting focals registering as many views (the search prefers a start
   whose loop closes, so one such start checks nothing), ``report["warning"]`` says the
   registration may be wrong; above ``reject_dropped_share`` it is taken as wrong and the
   input cameras are kept.

Gauge: the reference view (the model's canonical view when it is registered) keeps the model's
camera; the scale makes the median depth of the points in the reference view ``depth_scale``
(e.g. the model's median depth there, so the model's depth and Gaussians stay consistent).

Conventions: OpenCV camera-to-world ``(V, 4, 4)`` and pixel intrinsics ``(V, 4)`` of the model's
``H × W`` image; each photo maps to it through its crop box (the resize-to-cover + centre-crop of
:mod:`rayzer.data.images`); keypoints outside the box still count. Needs OpenCV (``pip install
'rayzer[undistort]'``) and SciPy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rayzer.geometry.rotation_averaging import average_rotations
from rayzer.refine.pair_geometry import (
    PairGeometry,
    ViewFeatures,
    detect_features,
    match_pairs,
    pair_poses,
)

__all__ = ["MatchConfig", "MatchedCameras", "cameras_from_matches", "opencv_missing_reason"]


@dataclass
class MatchConfig:
    """Options of :func:`cameras_from_matches`.

    Attributes:
        max_side: photos with a longer side are shrunk to it for SIFT.
        ratio: Lowe's ratio test.
        threshold_px: essential-matrix inlier threshold, pixels of the photos.
        min_inliers: a pair with fewer pose inliers is dropped.
        focal_search: try the starting focals ``f0 · focal_factors`` (f0: the model's), each
            through a cheap reconstruction (at most ``search_max_tracks`` tracks, bundle
            adjustment passes of ``search_ba_evals`` evaluations), and start
            from the one that registers the most views (then: with a loop of three checking its
            rotations and at most ``max_dropped_share`` dropped) with the lowest reprojection
            error after the bundle adjustment; the prior stays unless another ranks higher or
            has below ``focal_margin`` times its error. Off: the prior is the start.
        repose_factor: when the chosen start's bundle adjustment moved the focal by more than
            this factor, every pair is posed again at the reached focal and the reconstruction
            solved again from those poses; kept unless it ranks below the first as the focal
            search ranks (fewer registered views; as many, but its rotations unchecked when the
            first's were checked) (None: off; not tried when nothing was registered).
        refine_focal: the bundle adjustment also fits the shared focal, within a factor
            ``focal_range`` of its start in each of its two passes.
        min_points: a view needs this many triangulated points to get a translation.
        ba_loss / ba_scale_px: robust loss of the bundle adjustment and its scale (photo px).
        ba_max_evals: function evaluations of each of the two bundle-adjustment passes.
        ba_lsmr_tol: tolerance (``atol`` = ``btol``) of the LSMR solve in each step of the
            bundle adjustment (None: SciPy's default, 1e-6). At 1e-6 the steps are inexact
            along the flat focal-depth direction and the adjustment stops (evaluation limit or
            ``ftol``) short of its minimum, where it started (fox 20-27: from 79.5 px it ends
            at 81.0, from 81.5 at 81.5); at 1e-10 it converges in 3-17 evaluations, at more CPU
            per step. Off by default: converged, fox 20-27 comes closer to the scene's cameras
            (0.155 -> 0.125 deg) but fox 39-46 and two temple windows move away from them
            (0.076 -> 0.172 deg, pycolmap's 0.168; 0.83 / 0.82 -> 1.02 deg)
            (``experiments/issue19_refinement/matches_precision``).
        outlier_px: observations reprojecting further than this after the first pass are
            dropped before the second.
        max_pair_residual_deg: pairs whose relative rotation disagrees with the averaged
            rotations by more than this are dropped and the rotations averaged again.
        max_homography_ratio: a pair whose matches a homography explains more than this many
            times its pose inliers is near-planar or a pure rotation (its essential matrix may
            be the wrong one of two) and is left out of the averaging (None: kept).
        max_dropped_share: when the averaging drops more than this share of the pairs, or no
            three registered views form a checked loop, the report's ``warning`` says the
            evidence is weak (the cameras are still used).
        reject_dropped_share: above this share of dropped pairs the registration is taken to
            be wrong and the input cameras are kept.
        min_views: fewer registered views than this register none: a lone pair has no other
            view to check its essential matrix against (a wrong one is common on repeated or
            symmetric structure).
        max_pair_gap: match only views at most this many apart in the given order (photos in
            capture order, e.g. video frames: COLMAP's sequential matching); tracks still chain
            through the matched pairs. None (default): every pair. Fewer pairs cost less and,
            where distant views share only repeated texture, carry fewer wrong essential
            matrices into the rotation averaging. 1 leaves a chain of neighbours: no three views
            close a loop, so the averaging cannot tell a wrong pair (it drops none) and the
            evidence is always weak (:func:`_judge`); 2 is the least gap that can close loops
            (``i, i+1, i+2``). Neighbours of short steps may all be near-planar
            (``max_homography_ratio``): the tests' 6-frame walk registers nothing at gap 1.
    """

    max_side: int = 1024
    ratio: float = 0.8
    threshold_px: float = 1.5
    min_inliers: int = 20
    focal_search: bool = True
    focal_factors: tuple[float, ...] = tuple(2 ** (k / 4) for k in range(-4, 9))
    search_max_tracks: int = 1000
    search_ba_evals: int = 10
    repose_factor: float | None = 1.05
    refine_focal: bool = True
    focal_range: float = 2.0
    focal_margin: float = 1.0
    min_points: int = 8
    ba_loss: str = "soft_l1"
    ba_scale_px: float = 1.5
    ba_max_evals: int = 50
    ba_lsmr_tol: float | None = None
    outlier_px: float = 4.0
    max_pair_residual_deg: float = 5.0
    min_views: int = 3
    max_homography_ratio: float | None = 1.0
    max_dropped_share: float = 0.25
    reject_dropped_share: float = 0.5
    max_pair_gap: int | None = None

    def __post_init__(self) -> None:
        if self.max_pair_gap is not None and self.max_pair_gap < 1:
            raise ValueError(
                f"MatchConfig.max_pair_gap must be >= 1 or None, got {self.max_pair_gap}"
            )


@dataclass
class MatchedCameras:
    """Result of :func:`cameras_from_matches`.

    Attributes:
        c2w: ``(V, 4, 4)`` float32 OpenCV camera-to-world; the input cameras where not
            registered.
        K: ``(V, 4)`` float32 pixel intrinsics of the ``H × W`` model image (registered views
            share the solved focal, principal point at the photos' centre); the input ones where
            not registered.
        registered: ``(V,)`` bool views whose camera comes from the matches.
        report: JSON-ready figures: pairs tried / kept and their inlier counts, focal search,
            reference view, points, reprojection error before / after the bundle adjustment
            (photo pixels), seconds per stage, and ``warning`` when some or all views kept the
            input cameras.
    """

    c2w: Tensor
    K: Tensor
    registered: Tensor
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def num_registered(self) -> int:
        return int(self.registered.sum())


def opencv_missing_reason() -> str | None:
    """Why the matches cannot run here (OpenCV or SciPy missing), or None."""
    try:
        import cv2  # noqa: F401
    except ImportError:
        return (
            "cameras from matches need OpenCV: pip install 'rayzer[undistort]' "
            "(opencv-python-headless)"
        )
    try:
        import scipy.optimize  # noqa: F401
    except ImportError:
        return "cameras from matches need SciPy: pip install scipy"
    return None


# -- small geometry helpers (numpy, float64) ------------------------------------------------------


def _rotvec_to_matrix(w: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(w.reshape(-1, 3)).as_matrix()


def _project(
    R: np.ndarray, t: np.ndarray, X: np.ndarray, f: float, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``(N, 2)`` and depths ``(N,)`` of points ``X (N, 3)`` in cameras ``(R, t)``
    given per point (``(N, 3, 3)``, ``(N, 3)``)."""
    Xc = np.einsum("nij,nj->ni", R, X) + t
    z = Xc[:, 2]
    zs = np.where(np.abs(z) < 1e-9, 1e-9, z)
    return f * Xc[:, :2] / zs[:, None] + c, z


def _triangulate(rays: list[np.ndarray], Rs: list[np.ndarray], ts: list[np.ndarray]) -> np.ndarray:
    """Linear (DLT) triangulation from normalised rays ``(x, y, 1)`` in cameras ``(R, t)``."""
    rows = []
    for x, R, t in zip(rays, Rs, ts, strict=True):
        P = np.concatenate([R, t[:, None]], 1)
        rows.append(x[0] * P[2] - P[0])
        rows.append(x[1] * P[2] - P[1])
    _, _, vt = np.linalg.svd(np.asarray(rows))
    X = vt[-1]
    return X[:3] / X[3] if abs(X[3]) > 1e-12 else np.full(3, np.nan)


class _Tracks:
    """Matches chained over views (union-find over ``(view, keypoint)``); a track that meets a
    view twice is dropped (two different keypoints cannot be one point). ``max_tracks``: keep
    only that many, the longest first (the focal search's cheap reconstructions)."""

    def __init__(self, pairs: list[PairGeometry], max_tracks: int | None = None) -> None:
        parent: dict[tuple[int, int], tuple[int, int]] = {}

        def find(a):
            while parent.setdefault(a, a) != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for p in pairs:
            for k in p.inliers:
                a = find((p.i, int(p.matches[k, 0])))
                b = find((p.j, int(p.matches[k, 1])))
                if a != b:
                    parent[a] = b
        groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for node in list(parent):
            groups.setdefault(find(node), []).append(node)
        self.obs: list[list[tuple[int, int]]] = []  # per track: (view, keypoint)
        for members in groups.values():
            views = [v for v, _ in members]
            if len(members) >= 2 and len(set(views)) == len(views):
                self.obs.append(sorted(members))
        if max_tracks is not None and len(self.obs) > max_tracks:
            # stable: equally long tracks keep their order, so the choice is deterministic
            self.obs = sorted(self.obs, key=len, reverse=True)[:max_tracks]


# -- the pipeline ---------------------------------------------------------------------------------


def _working_frame(
    boxes: Sequence[Sequence[float]], hw: tuple[int, int]
) -> tuple[float, list[tuple[float, float, float]]]:
    """``rho`` (working px per model px) and each photo's ``(s, ox, oy)`` to the working frame:
    the model's crop at about the photos' own resolution."""
    W = hw[1]
    per_px = [(b[2] - b[0]) / W for b in boxes]
    rho = float(np.median(per_px))
    maps = []
    for b in boxes:
        s = rho * W / (b[2] - b[0])
        maps.append((s, -b[0] * s, -b[1] * s))
    return rho, maps


def _average(v: int, kept: list[PairGeometry], ref: int):
    """Rotation averaging of the kept pairs, weighted by their inlier counts."""
    return average_rotations(
        v,
        [(p.i, p.j) for p in kept],
        torch.from_numpy(np.stack([p.R for p in kept])),
        [float(p.num_inliers) for p in kept],
        anchor=ref,
    )


def _groups(kept: list[PairGeometry], anchor: int) -> list[tuple[int, list[PairGeometry]]]:
    """The groups of views joined by kept pairs, best first (most views, then most inliers),
    each as ``(reference view, its pairs)``: the reference is the model's canonical view when it
    is in the group, else the group's view with most inliers. Groups share no pair, so each is
    a reconstruction of its own (with its own gauge)."""
    count: dict[int, int] = {}
    parent: dict[int, int] = {}

    def find(a: int) -> int:
        while parent.setdefault(a, a) != a:
            a = parent[a]
        return a

    for p in kept:
        count[p.i] = count.get(p.i, 0) + p.num_inliers
        count[p.j] = count.get(p.j, 0) + p.num_inliers
        parent[find(p.i)] = find(p.j)
    members: dict[int, list[int]] = {}
    for k in count:
        members.setdefault(find(k), []).append(k)
    ranked = sorted(
        members.values(), key=lambda g: (len(g), sum(count[k] for k in g)), reverse=True
    )
    out = []
    for g in ranked:
        ref = anchor if anchor in g else max(g, key=count.get)
        out.append((ref, [p for p in kept if find(p.i) == find(g[0])]))
    return out


def _choose_reference(kept: list[PairGeometry], anchor: int) -> int:
    """A view of the largest group of views joined by kept pairs (most views, then most
    inliers): the model's canonical view if it is in that group, else the group's view with
    most inliers (:func:`_groups`)."""
    return _groups(kept, anchor)[0][0]


def _initial_partner(kept: list[PairGeometry], ref: int, R: np.ndarray) -> tuple[int, np.ndarray]:
    """The reference's partner for the first triangulation (wide parallax, many inliers) and its
    translation from the pair's essential matrix."""
    cands = [p for p in kept if ref in (p.i, p.j)]
    p = max(cands, key=lambda q: min(q.parallax_deg, 10.0) * math.sqrt(q.num_inliers))
    if p.i == ref:  # x_j = R_ij x_ref + t_ij
        return p.j, p.t.copy()
    # x_ref = R_ij x_i + t_ij  →  x_i = R_ij^T x_ref − R_ij^T t_ij
    return p.i, -p.R.T @ p.t


def _solve_translation(
    R: np.ndarray, X: np.ndarray, rays: np.ndarray, f: float, iters: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Translation of a camera with known rotation ``R`` seeing points ``X (N, 3)`` along
    normalised rays ``(N, 2)``: linear least squares of ``(R X + t)_xy − ray (R X + t)_z = 0``,
    reweighted by depth and a Cauchy weight of the pixel error. Returns ``(t, pixel error)``."""
    RX = X @ R.T
    A = np.zeros((2 * len(X), 3))
    A[0::2, 0] = 1.0
    A[0::2, 2] = -rays[:, 0]
    A[1::2, 1] = 1.0
    A[1::2, 2] = -rays[:, 1]
    b = np.empty(2 * len(X))
    b[0::2] = rays[:, 0] * RX[:, 2] - RX[:, 0]
    b[1::2] = rays[:, 1] * RX[:, 2] - RX[:, 1]
    w = np.ones(len(X))
    t = np.zeros(3)
    err = np.full(len(X), np.inf)
    for _ in range(iters):
        ww = np.repeat(np.sqrt(w), 2)
        t = np.linalg.lstsq(A * ww[:, None], b * ww, rcond=None)[0]
        z = RX[:, 2] + t[2]
        err = f * np.linalg.norm(
            (RX[:, :2] + t[:2]) / np.where(z > 1e-9, z, 1e-9)[:, None] - rays, axis=1
        )
        err = np.where(z > 1e-9, err, np.inf)
        scale = max(float(np.median(err[np.isfinite(err)])) if np.isfinite(err).any() else 1.0, 1.0)
        w = np.where(np.isfinite(err), 1.0 / (1.0 + (err / (2 * scale)) ** 2), 0.0)
        w = w / np.maximum(np.abs(z), 1e-6) ** 2  # the linear residual is depth × pixel error
    return t, err


class _Reconstruction:
    """Poses (world-to-camera, reference at identity), the tracks' points, their observations."""

    def __init__(self, feats, tracks: _Tracks, f: float, c: np.ndarray, R: np.ndarray) -> None:
        self.feats, self.tracks, self.f, self.c = feats, tracks, f, c
        self.R = R.copy()
        self.t: dict[int, np.ndarray] = {}
        self.X = np.full((len(tracks.obs), 3), np.nan)

    def ray(self, view: int, kp: int) -> np.ndarray:
        u, v = self.feats[view].uv[kp]
        return np.array([(u - self.c[0]) / self.f, (v - self.c[1]) / self.f, 1.0])

    def triangulate(self, max_err_px: float = 4.0, min_angle_deg: float = 0.25) -> None:
        """(Re)triangulate every track seen by two or more posed views; points behind a camera,
        with a large reprojection error or nearly parallel rays are dropped (NaN)."""
        for k, obs in enumerate(self.tracks.obs):
            seen = [(v, kp) for v, kp in obs if v in self.t]
            self.X[k] = np.nan
            if len(seen) < 2:
                continue
            rays = [self.ray(v, kp) for v, kp in seen]
            Rs = [self.R[v] for v, _ in seen]
            ts = [self.t[v] for v, _ in seen]
            X = _triangulate(rays, Rs, ts)
            if not np.isfinite(X).all():
                continue
            centres = np.stack([-R.T @ t for R, t in zip(Rs, ts, strict=True)])
            dirs = X - centres
            dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
            angle = np.degrees(np.arccos(np.clip(dirs @ dirs.T, -1, 1))).max()
            Xc = np.stack([R @ X + t for R, t in zip(Rs, ts, strict=True)])
            if (Xc[:, 2] <= 1e-9).any() or angle < min_angle_deg:
                continue
            px = self.f * Xc[:, :2] / Xc[:, 2:3] + self.c
            uv = np.stack([self.feats[v].uv[kp] for v, kp in seen])
            if np.linalg.norm(px - uv, axis=1).max() > max_err_px:
                continue
            self.X[k] = X

    def observations(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(views (N,), points (N,), uv (N, 2))`` of triangulated points in posed views."""
        views, points, uv = [], [], []
        for k, obs in enumerate(self.tracks.obs):
            if not np.isfinite(self.X[k]).all():
                continue
            for v, kp in obs:
                if v in self.t:
                    views.append(v)
                    points.append(k)
                    uv.append(self.feats[v].uv[kp])
        return (
            np.array(views, dtype=np.int64),
            np.array(points, dtype=np.int64),
            np.array(uv).reshape(-1, 2),
        )

    def errors(self) -> np.ndarray:
        """Pixel reprojection error of every observation."""
        views, points, uv = self.observations()
        if not len(views):
            return np.zeros(0)
        t = np.stack([self.t[v] for v in views])
        px, z = _project(self.R[views], t, self.X[points], self.f, self.c)
        return np.where(z > 0, np.linalg.norm(px - uv, axis=1), np.inf)

    def register_views(self, candidates: list[int], min_points: int, max_err_px: float) -> None:
        """Add views one at a time (the one seeing most points first), each by its translation
        given the averaged rotation, re-triangulating after each."""
        left = [v for v in candidates if v not in self.t]
        while left:
            best, best_n = None, 0
            for v in left:
                n = sum(
                    1
                    for k, obs in enumerate(self.tracks.obs)
                    if np.isfinite(self.X[k]).all() and any(o[0] == v for o in obs)
                )
                if n > best_n:
                    best, best_n = v, n
            if best is None or best_n < min_points:
                return
            ks, rays = [], []
            for k, obs in enumerate(self.tracks.obs):
                if not np.isfinite(self.X[k]).all():
                    continue
                for v, kp in obs:
                    if v == best:
                        ks.append(k)
                        rays.append(self.ray(v, kp)[:2])
            t, err = _solve_translation(self.R[best], self.X[ks], np.array(rays), self.f)
            left.remove(best)
            if int((err < max_err_px).sum()) < min_points:
                continue
            self.t[best] = t
            self.triangulate(max_err_px)


def _bundle_adjust(
    rec: _Reconstruction, fixed: int, cfg: MatchConfig, max_err_px: float | None
) -> None:
    """Poses of the registered views but ``fixed``, the shared focal and the points, on the
    reprojection error (robust loss); observations above ``max_err_px`` (if given) dropped
    first. Updates ``rec`` in place."""
    from scipy.optimize import least_squares
    from scipy.sparse import coo_matrix

    views, points, uv = rec.observations()
    if max_err_px is not None and len(views):
        keep = rec.errors() < max_err_px
        views, points, uv = views[keep], points[keep], uv[keep]
    if len(views) < 2 * rec.X.shape[1]:
        return
    free = sorted(v for v in rec.t if v != fixed)
    slot = {v: k for k, v in enumerate(free)}
    used = np.unique(points)
    pslot = np.full(len(rec.X), -1)
    pslot[used] = np.arange(len(used))
    nc, nf = 6 * len(free), 1 if cfg.refine_focal else 0

    order = sorted(rec.t)
    vslot = np.full(len(rec.R), -1)
    vslot[order] = np.arange(len(order))
    R_init = np.stack([rec.R[k] for k in order])
    t_init = np.stack([rec.t[k] for k in order])
    free_rows = vslot[free]
    obs_view = vslot[views]
    obs_point = pslot[points]

    def unpack(x):
        R, t = R_init.copy(), t_init.copy()
        if free:
            cam = x[:nc].reshape(-1, 6)
            R[free_rows] = _rotvec_to_matrix(cam[:, :3]) @ R_init[free_rows]
            t[free_rows] = cam[:, 3:]
        f = rec.f * math.exp(x[nc]) if nf else rec.f
        return R, t, f, x[nc + nf :].reshape(-1, 3)

    def residuals(x):
        R, t, f, X = unpack(x)
        px, z = _project(R[obs_view], t[obs_view], X[obs_point], f, rec.c)
        res = px - uv
        res[z <= 1e-9] = 1e3  # a point behind a camera: a large, constant error
        return res.ravel()

    x0 = np.concatenate([np.concatenate([np.zeros(3), rec.t[k]]) for k in free] or [np.zeros(0)])
    x0 = np.concatenate([x0, np.zeros(nf), rec.X[used].ravel()])
    rows = np.arange(len(views))
    r_idx, c_idx = [], []
    cam_of = np.array([slot.get(int(k), -1) for k in views])
    has = cam_of >= 0
    for d in range(6):
        for o in (0, 1):
            r_idx.append(2 * rows[has] + o)
            c_idx.append(6 * cam_of[has] + d)
    for d in range(3):
        for o in (0, 1):
            r_idx.append(2 * rows + o)
            c_idx.append(nc + nf + 3 * obs_point + d)
    if nf:
        r_idx.append(np.arange(2 * len(views)))
        c_idx.append(np.full(2 * len(views), nc))
    r_all, c_all = np.concatenate(r_idx), np.concatenate(c_idx)
    J = coo_matrix(
        (np.ones(len(r_all), dtype=np.int8), (r_all, c_all)), shape=(2 * len(views), len(x0))
    )
    # the focal moves at most by focal_range either way: with little rotation and a forward
    # motion it is barely constrained, and a free one can run away with the depths
    lower = np.full(len(x0), -np.inf)
    upper = np.full(len(x0), np.inf)
    if nf:
        lower[nc], upper[nc] = -math.log(cfg.focal_range), math.log(cfg.focal_range)
    sol = least_squares(
        residuals,
        x0,
        bounds=(lower, upper),
        jac_sparsity=J.tocsr(),
        method="trf",
        loss=cfg.ba_loss,
        f_scale=cfg.ba_scale_px,
        x_scale="jac",
        max_nfev=cfg.ba_max_evals,
        ftol=1e-6,
        tr_options={}
        if cfg.ba_lsmr_tol is None
        else {"atol": cfg.ba_lsmr_tol, "btol": cfg.ba_lsmr_tol},
    )
    R, t, f, X = unpack(sol.x)
    for v in free:
        rec.R[v], rec.t[v] = R[vslot[v]], t[vslot[v]]
    rec.f = f
    rec.X[used] = X


@dataclass
class _Solution:
    """One reconstruction at one starting focal (working-frame pixels).

    ``kept``: the pairs used (pose inliers, not near-planar, agreeing after averaging);
    ``considered``: the pairs of the group solved (enough pose inliers, not near-planar: the
    averaging's input, the pairs it checked); ``registered``: ``(V,)`` bool, views with
    ``min_points`` good observations (none when fewer than ``min_views``); ``score_px``: the
    root mean square reprojection error after the bundle adjustment, each observation's error
    capped at ``outlier_px`` (a truncated quadratic: a focal that explains the tracks better
    scores lower, outliers weigh the same at any focal). ``failure``: why nothing could be
    registered (None when something was)."""

    start_f: float
    posed: list[PairGeometry]
    considered: int = 0
    kept: list[PairGeometry] = field(default_factory=list)
    planar: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    ref: int = 0
    avg: Any = None
    rec: _Reconstruction | None = None
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    registered: np.ndarray | None = None
    score_px: float = math.inf
    failure: str | None = None
    subsampled: bool = False

    @property
    def num_registered(self) -> int:
        return 0 if self.registered is None else int(self.registered.sum())

    @property
    def focal(self) -> float:
        return self.rec.f if self.rec is not None else self.start_f


def _solve(
    feats: list[ViewFeatures],
    posed: list[PairGeometry],
    f: float,
    c: np.ndarray,
    v: int,
    anchor: int,
    cfg: MatchConfig,
    max_tracks: int | None = None,
) -> _Solution:
    """Steps 2-4 of the module docstring at the starting focal ``f`` from the pairs' poses at
    it: pairs kept, rotation averaging (twice when pairs disagree), registration, bundle
    adjustment (the focal moves within ``focal_range`` per pass)."""
    sol = _Solution(f, posed)
    enough = [p for p in posed if p.num_inliers >= cfg.min_inliers]
    if not enough:
        sol.failure = (
            f"no pair of views has {cfg.min_inliers} feature matches consistent with one "
            "essential matrix: the model's cameras are kept"
        )
        return sol
    # near-planar or pure-rotation pairs: a homography explains as many matches as the
    # essential matrix, which may then be the wrong one of two that fit (a wrong rotation)
    limit = cfg.max_homography_ratio
    planar = [p for p in enough if limit is not None and p.homography_ratio > limit]
    sol.planar = [f"{p.i}-{p.j}" for p in planar]
    kept = [p for p in enough if p not in planar]
    if not kept:
        sol.failure = (
            f"all {len(enough)} matched pairs are near-planar or pure rotations (a homography "
            "explains their matches as well as an essential matrix): the model's cameras are kept"
        )
        return sol
    # Each group of views joined by kept pairs is a reconstruction of its own. The best-ranked
    # one (most views) may still fail to register min_views views (a chain of weak pairs, as
    # lego 92-99's {0, 1, 6, 7} at some focals), so every group of min_views views or more is
    # tried and the one registering the most views wins (then one whose rotations are checked,
    # :func:`_checked`; then the better-ranked group).
    groups = _groups(kept, anchor)
    tries = [g for g in groups if len({k for p in g[1] for k in (p.i, p.j)}) >= cfg.min_views]
    best: _Solution | None = None
    for ref, pairs in tries or groups[:1]:
        one = _solve_group(replace(sol), pairs, ref, feats, f, c, v, anchor, cfg, max_tracks)
        if best is None or (one.num_registered, _checked(one, cfg)) > (
            best.num_registered,
            _checked(best, cfg),
        ):
            best = one
    assert best is not None
    return best


def _solve_group(
    sol: _Solution,
    pairs: list[PairGeometry],
    ref: int,
    feats: list[ViewFeatures],
    f: float,
    c: np.ndarray,
    v: int,
    anchor: int,
    cfg: MatchConfig,
    max_tracks: int | None,
) -> _Solution:
    """Steps 3-4 on one group of views joined by ``pairs``, ``ref`` holding the gauge: the
    averaging checks exactly these pairs, so they are the ``considered`` ones of the evidence
    (pairs of other groups are never compared with anything)."""
    kept = pairs
    sol.considered = len(kept)
    avg = _average(v, kept, ref)
    # pairs the averaged rotations disagree with (a wrong essential matrix: repeated texture,
    # a nearly planar scene) are dropped and the rotations averaged again without them
    bad = avg.residual_deg.numpy() > cfg.max_pair_residual_deg
    sol.dropped = [f"{p.i}-{p.j}" for p, b in zip(kept, bad, strict=True) if b]
    if bad.any():
        kept = [p for p, b in zip(kept, bad, strict=True) if not b]
        if not kept:  # every pair disagrees with the others: nothing to build on
            sol.failure = (
                f"the relative rotations of all {len(bad)} matched pairs disagree with each "
                f"other by more than {cfg.max_pair_residual_deg}°: the model's cameras are kept"
            )
            return sol
        ref = _choose_reference(kept, anchor)  # the group may have split
        avg = _average(v, kept, ref)
    sol.kept, sol.ref, sol.avg = kept, ref, avg
    R = avg.R.numpy()
    connected = [k for k in range(v) if bool(avg.connected[k])]
    tracks = _Tracks(kept, max_tracks)
    sol.subsampled = max_tracks is not None and len(tracks.obs) == max_tracks
    rec = _Reconstruction(feats, tracks, f, c, R)
    rec.t[ref] = np.zeros(3)
    partner, t_partner = _initial_partner(kept, ref, R)
    rec.t[partner] = t_partner
    rec.triangulate(cfg.outlier_px)
    rec.register_views(connected, cfg.min_points, cfg.outlier_px)
    sol.before = _stats(rec.errors())
    _bundle_adjust(rec, ref, cfg, None)
    rec.triangulate(cfg.outlier_px)  # points the first pass made consistent come back
    _bundle_adjust(rec, ref, cfg, cfg.outlier_px)
    err = rec.errors()
    sol.rec, sol.after = rec, _stats(err)
    views, _, _ = rec.observations()
    counts = np.bincount(views[err < cfg.outlier_px], minlength=v)
    registered = np.array([k in rec.t and counts[k] >= cfg.min_points for k in range(v)])
    if registered.sum() < cfg.min_views:
        registered[:] = False
        sol.failure = (
            f"fewer than {cfg.min_views} views could be registered together from the matches: "
            "the model's cameras are kept"
        )
    sol.registered = registered
    if len(err):
        sol.score_px = float(np.sqrt(np.mean(np.minimum(err, cfg.outlier_px) ** 2)))
    return sol


def _search_focal(
    feats: list[ViewFeatures],
    matched: list[PairGeometry],
    f0: float,
    c: np.ndarray,
    v: int,
    anchor: int,
    cfg: MatchConfig,
) -> tuple[_Solution, list[dict[str, Any]] | None]:
    """The reconstruction at the chosen starting focal and the candidates' figures (None without
    the search).

    Each candidate ``f0 · factor`` gets its pair poses and a cheap reconstruction (at most
    ``search_max_tracks`` tracks); the one registering the most views, then with its rotations
    checked (:func:`_checked`), then with the lowest ``score_px`` wins; the prior ``f0`` is kept
    unless the winner ranks higher on the first two or scores below ``focal_margin`` times the
    prior's (ties keep the prior). The winner is solved again with every track when its tracks
    were capped."""
    K = lambda f: (f, f, c[0], c[1])  # noqa: E731
    if not cfg.focal_search:
        posed = pair_poses(feats, matched, K(f0), cfg.threshold_px, cfg.min_inliers)
        return _solve(feats, posed, f0, c, v, anchor, cfg), None
    tried: list[dict[str, Any]] = []
    sols: list[tuple[float, _Solution]] = []
    for a in cfg.focal_factors:
        posed = pair_poses(feats, matched, K(f0 * a), cfg.threshold_px, cfg.min_inliers)
        cheap = replace(cfg, ba_max_evals=cfg.search_ba_evals)
        sol = _solve(feats, posed, f0 * a, c, v, anchor, cheap, cfg.search_max_tracks)
        sols.append((a, sol))
        tried.append(
            {
                "factor": round(a, 4),
                "registered": sol.num_registered,
                "focal_after_ba": round(sol.focal / f0, 4),
                "score_px": round(sol.score_px, 4) if math.isfinite(sol.score_px) else None,
                "checked": _checked(sol, cfg),
            }
        )
    prior = next((s for a, s in sols if a == 1.0), sols[0][1])

    best = min((s for _, s in sols), key=lambda s: (*_rank(s, cfg), s.score_px))
    better = _rank(best, cfg) < _rank(prior, cfg) or (
        _rank(best, cfg) == _rank(prior, cfg) and best.score_px < cfg.focal_margin * prior.score_px
    )
    chosen = best if better else prior
    for t, (_, s) in zip(tried, sols, strict=True):
        t["chosen"] = s is chosen
    if not chosen.subsampled and cfg.search_ba_evals >= cfg.ba_max_evals:  # nothing was cut
        return chosen, tried
    return _solve(feats, chosen.posed, chosen.start_f, c, v, anchor, cfg), tried


def _repose(
    feats: list[ViewFeatures],
    matched: list[PairGeometry],
    sol: _Solution,
    c: np.ndarray,
    v: int,
    anchor: int,
    cfg: MatchConfig,
) -> tuple[_Solution, dict[str, Any] | None]:
    """``sol``, or the reconstruction solved again from the pairs posed at the focal its bundle
    adjustment reached, and what was done (None when not tried; focals in working pixels).

    The pairs' essential matrices, their inliers and the near-planar test are made at the
    starting focal. The search's winning start can be far from the focal the bundle adjustment
    ends at (fox 20-27: start 0.6x the prior, 50.5 px, ending at 79.5; truth 81.5), and at such
    a focal the wide-baseline pairs fit a homography better than their essential matrix: 4 of
    the 28 pairs were left out as near-planar, all wide ones, and the cameras rested on the
    short baselines (0.24 deg median against pycolmap's 0.06). Posed again at the reached focal
    none was left out and the error fell to 0.16 deg. Tried once: the second solve's focal
    moves about 2 % more."""
    if cfg.repose_factor is None or sol.rec is None or sol.num_registered == 0:
        return sol, None  # nothing registered: its focal is no better a start than the search's
    start, reached = sol.start_f, sol.rec.f
    if abs(math.log(reached / start)) <= math.log(cfg.repose_factor):
        return sol, None
    posed = pair_poses(feats, matched, (reached, reached, c[0], c[1]), cfg.threshold_px,
                       cfg.min_inliers)  # fmt: skip
    again = _solve(feats, posed, reached, c, v, anchor, cfg)
    kept = again.rec is not None and _rank(again, cfg) <= _rank(sol, cfg)
    info = {
        "start_px": start,
        "reached_px": reached,
        "kept": kept,
        "registered_before": sol.num_registered,
        "registered_after": again.num_registered,
        "near_planar_before": len(sol.planar),
        "near_planar_after": len(again.planar),
    }
    return (again if kept else sol), info


def _rank(sol: _Solution, cfg: MatchConfig) -> tuple[int, bool]:
    """How the focal search and the re-pose order reconstructions, lower first: more registered
    views, then rotations checked (:func:`_checked`). A reconstruction whose rotations nothing
    checks (no loop, or many pairs dropped) fits its tracks more easily, so its reprojection
    error is not comparable with a checked one's (temple ring 0-7: a start whose best group
    failed fell back to a tree of 2 pairs, scored 0.19 px against 0.28 px, and won): among as
    many views the checked ones come first."""
    return -sol.num_registered, not _checked(sol, cfg)


def _checked(sol: _Solution, cfg: MatchConfig) -> bool:
    """Whether a reconstruction registered views on evidence that is not weak (:func:`_judge`:
    a loop of three registered views, at most ``max_dropped_share`` of its pairs dropped)."""
    if sol.registered is None or not sol.registered.any():
        return False
    _, weak, _ = _judge(sol.dropped, sol.considered, _triplets(sol.kept, sol.registered), cfg)
    return not weak


def _loop_at_starts(tried: list[dict[str, Any]] | None) -> tuple[int, int] | None:
    """``(checked, starts)``: of the starting focals registering the most views, how many
    have their rotations checked (:func:`_checked`); None without a focal search or when no
    start registered anything.

    The search ranks checked starts first, so the chosen one is checked whenever any is; its
    loop is evidence only if it does not hinge on the start. A loop of marginal pairs that
    closes at one start of several is selection, not a check (lego 92-99's neighbour window
    31-38 with the E-RayZer prior: the loop 3-4-7 closes only at 0.5x the prior, 1 of 3
    starts registering 3 views, and the cameras are 13° off at half the true focal; in every
    registration under 3° on the real scenes the loop closed at all or all but two of the
    starts). Fewer than half makes the evidence weak."""
    if not tried:
        return None
    top = max(t["registered"] for t in tried)
    if top == 0:
        return None
    same = [t for t in tried if t["registered"] == top]
    return sum(bool(t["checked"]) for t in same), len(same)


def _judge(
    dropped: list[str], considered: int, triplets: int, cfg: MatchConfig
) -> tuple[dict[str, Any], list[str], str | None]:
    """The evidence behind a registration: ``(figures, reasons it is weak, why it is taken as
    wrong or None)``. Weak: the averaging dropped more than ``max_dropped_share`` of the
    ``considered`` pairs (a wrong set of pairs can still agree with itself: the near-planar
    pairs of a wide-baseline window), or no three registered views close a loop (each rotation
    rests on one essential matrix). Wrong: more than ``reject_dropped_share`` dropped."""
    share = len(dropped) / max(considered, 1)
    weak = []
    if share > cfg.max_dropped_share:
        weak.append(
            f"{len(dropped)} of {considered} matched pairs disagree with the averaged rotations"
        )
    if triplets < 1:
        weak.append("no three registered views check each other's rotations")
    figures = {
        "pairs_considered": considered,
        "pairs_dropped_share": round(share, 3),
        "triplets": triplets,
        "weak": bool(weak),
    }
    wrong = None
    if share > cfg.reject_dropped_share:
        wrong = (
            f"{len(dropped)} of {considered} matched pairs ({share:.0%}) disagree with the "
            f"averaged rotations, more than {cfg.reject_dropped_share:.0%}"
        )
    return figures, weak, wrong


def _triplets(kept: list[PairGeometry], views: np.ndarray) -> int:
    """Triangles of kept pairs among ``views``: loops whose rotations were checked against
    each other."""
    edges = {(p.i, p.j) for p in kept if views[p.i] and views[p.j]}
    nodes = sorted({k for e in edges for k in e})
    return sum(
        1
        for x in range(len(nodes))
        for y in range(x + 1, len(nodes))
        for z in range(y + 1, len(nodes))
        if {(nodes[x], nodes[y]), (nodes[y], nodes[z]), (nodes[x], nodes[z])} <= edges
    )


def _stats(err: np.ndarray) -> dict[str, float | int]:
    fin = err[np.isfinite(err)]
    if not len(fin):
        return {"observations": 0}
    return {
        "observations": len(err),
        "rms_px": round(float(np.sqrt(np.mean(np.minimum(fin, 1e3) ** 2))), 3),
        "median_px": round(float(np.median(fin)), 3),
        "share_under_2px": round(float(np.mean(err < 2.0)), 3),
    }


def cameras_from_matches(
    photos: Sequence[np.ndarray],
    boxes: Sequence[Sequence[float]],
    c2w: Tensor,
    K: Tensor,
    image_hw: tuple[int, int],
    *,
    anchor: int = 0,
    depth_scale: float | Sequence[float | None] | None = None,
    config: MatchConfig | None = None,
) -> MatchedCameras:
    """Cameras of ``V`` photos from their feature matches (module docstring).

    Args:
        photos: V ``(H_i, W_i, 3)`` uint8 RGB photos at their own resolution (or ``(H_i, W_i)``
            gray), in view order.
        boxes: V crop boxes ``(x0, y0, x1, y1)`` in photo pixels that map onto the model's
            ``image_hw`` image (:attr:`rayzer.data.images.PreparedView.box`).
        c2w: ``(V, 4, 4)`` the model's cameras (the gauge, and what unregistered views keep).
        K: ``(V, 4)`` their pixel intrinsics of the ``image_hw`` image (the focal prior).
        image_hw: ``(H, W)`` of the model image.
        anchor: the view that holds the gauge (the model's canonical view).
        depth_scale: the median depth of the points in the reference view (None: 1); or one
            value per view (e.g. the model's median depth of each), of which the reference
            view's is used (the reference is ``anchor`` only when a kept pair has it).
        config: :class:`MatchConfig`.
    Returns:
        :class:`MatchedCameras`. When no pair has ``min_inliers`` pose inliers, every view keeps
        its input camera and ``report["warning"]`` says so (no exception).
    Raises:
        ImportError: OpenCV or SciPy missing (the message names the extra).
        ValueError: inconsistent shapes.
    """
    reason = opencv_missing_reason()
    if reason is not None:
        raise ImportError(reason)
    cfg = config or MatchConfig()
    v = len(photos)
    if len(boxes) != v or c2w.shape != (v, 4, 4) or K.shape != (v, 4) or v < 2:
        raise ValueError(
            f"cameras_from_matches: expected >= 2 photos with one box and camera each, got "
            f"{v} photos, {len(boxes)} boxes, c2w {tuple(c2w.shape)}, K {tuple(K.shape)}"
        )
    if not 0 <= anchor < v:
        raise ValueError(f"anchor {anchor} is not a view of {v}")
    if not (depth_scale is None or np.isscalar(depth_scale) or len(depth_scale) == v):
        raise ValueError(f"depth_scale: expected one value or {v}, got {len(depth_scale)}")
    if v < cfg.min_views:  # decided before the matching, which takes seconds to minutes
        return MatchedCameras(
            c2w.detach().float().clone(),
            K.detach().float().clone(),
            torch.zeros(v, dtype=torch.bool),
            {
                "views": v,
                "pairs": 0,
                "pairs_kept": 0,
                "seconds": 0.0,
                "warning": f"{v} photos: cameras from matches need at least {cfg.min_views} (a "
                "lone pair has no other view to check its essential matrix against): the "
                "model's cameras are kept",
            },
        )
    H, W = image_hw
    t0 = time.perf_counter()
    clock: dict[str, float] = {}
    rho, maps = _working_frame(boxes, image_hw)
    feats = [detect_features(p, m, cfg.max_side) for p, m in zip(photos, maps, strict=True)]
    matched = match_pairs(feats, cfg.ratio, max_gap=cfg.max_pair_gap)
    clock["match"] = time.perf_counter() - t0
    c = np.array([rho * W / 2, rho * H / 2])
    f0 = float(K[:, :2].double().mean()) * rho
    sol, tried = _search_focal(feats, matched, f0, c, v, anchor, cfg)
    sol, reposed = _repose(feats, matched, sol, c, v, anchor, cfg)
    clock["solve"] = time.perf_counter() - t0 - clock["match"]
    posed = sol.posed
    report: dict[str, Any] = {
        "views": v,
        "keypoints": [len(x.uv) for x in feats],
        "pairs": len(posed),
        "pairs_kept": len(sol.kept),
        "pair_inliers": {f"{p.i}-{p.j}": p.num_inliers for p in posed},
        "pair_homography_inliers": {f"{p.i}-{p.j}": p.homography_inliers for p in posed},
        "min_inliers": cfg.min_inliers,
        "focal_prior_px": round(f0 / rho, 3),
        "focal_start_px": round(sol.start_f / rho, 3),
        "focal_search": tried,
        "reposed": None
        if reposed is None
        else {k: round(x / rho, 3) if k.endswith("_px") else x for k, x in reposed.items()},
        "photo_px_per_model_px": round(rho, 4),
        "pairs_near_planar": sol.planar,
        "pairs_dropped_by_rotation_averaging": sol.dropped,
    }
    out_c2w, out_K = c2w.detach().float().clone(), K.detach().float().clone()
    registered = torch.zeros(v, dtype=torch.bool)
    rec = sol.rec
    if rec is None:
        report["warning"] = sol.failure
        report["seconds"] = round(time.perf_counter() - t0, 2)
        return MatchedCameras(out_c2w, out_K, registered, report)

    reg = sol.registered if sol.registered is not None else np.zeros(v, dtype=bool)
    evidence, weak, wrong = _judge(sol.dropped, sol.considered, _triplets(sol.kept, reg), cfg)
    loop_at = _loop_at_starts(tried)
    if loop_at is not None:
        evidence["starts_checked"] = loop_at
        if 0 < 2 * loop_at[0] < loop_at[1]:  # none checked: weak already (no loop)
            weak.append(
                f"the rotations close a checked loop at only {loop_at[0]} of the {loop_at[1]} "
                "starting focals that register as many views (the search prefers such a start, "
                "so its loop alone checks nothing)"
            )
            evidence["weak"] = True

    # gauge: the reference view's median point depth is depth_scale
    ref = sol.ref
    views, points, _ = rec.observations()
    good = rec.errors() < cfg.outlier_px
    views, points = views[good], points[good]
    in_ref = points[views == ref]
    depths = (rec.X[in_ref] @ rec.R[ref].T + rec.t[ref])[:, 2] if len(in_ref) else np.ones(1)
    target = depth_scale if depth_scale is None or np.isscalar(depth_scale) else depth_scale[ref]
    target = float(target or 1.0)
    scale = target / max(float(np.median(depths)), 1e-9)
    ref_c2w = c2w[ref].detach().double()
    k_new = torch.tensor([rec.f / rho, rec.f / rho, W / 2, H / 2], dtype=torch.float32)
    if not wrong:
        for k in np.flatnonzero(reg):
            w2c = torch.eye(4, dtype=torch.float64)
            w2c[:3, :3] = torch.from_numpy(rec.R[k])
            w2c[:3, 3] = torch.from_numpy(rec.t[k] * scale)
            out_c2w[k] = (ref_c2w @ torch.linalg.inv(w2c)).float()
            out_K[k] = k_new
            registered[k] = True
    clock["finish"] = time.perf_counter() - t0 - sum(clock.values())
    report.update(
        {
            "reference_view": ref,
            "anchor_view": anchor,
            "registered": registered.tolist(),
            "num_registered": int(registered.sum()),
            "evidence": evidence,
            "points": int(np.isfinite(rec.X).all(1).sum()),
            "rotation_averaging_residual_deg_median": round(
                float(np.nanmedian(sol.avg.residual_deg.numpy())), 3
            ),
            "focal_px": round(rec.f / rho, 3),
            "reprojection_before_ba": sol.before,
            "reprojection_after_ba": sol.after,
            "depth_scale": target,
            "seconds_by_stage": {k: round(s, 2) for k, s in clock.items()},
            "seconds": round(time.perf_counter() - t0, 2),
        }
    )
    if wrong:
        report["warning"] = (
            f"the registration is likely wrong ({wrong}): the model's cameras are kept"
        )
    elif sol.failure is not None:
        report["warning"] = sol.failure
    else:
        notes = []
        if weak:
            notes.append(
                f"weak evidence for the registration ({'; '.join(weak)}): the cameras may be "
                "wrong, check them"
            )
        if not registered.all():
            missing = [k for k in range(v) if not registered[k]]
            notes.append(
                f"views {missing} could not be registered from the matches (too few matches "
                "joining them to the others): they keep the model's cameras"
            )
        if notes:
            report["warning"] = "; ".join(notes)
    return MatchedCameras(out_c2w, out_K, registered, report)
