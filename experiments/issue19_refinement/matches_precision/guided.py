"""Guided matching after the first reconstruction (issue 19, fox 20-27): tried outside the
library, measured, not kept (README, "Guided matching and track length").

With the cameras of :func:`rayzer.refine.matched_cameras.cameras_from_matches`' first solve,
every pair of registered views is matched again among the keypoints near each one's epipolar
line, the tracks rebuilt from those matches, triangulated with the solved cameras, and the
bundle adjustment (both passes) run again from them. ``install`` puts that step after the
re-pose (``_repose``) of the library's pipeline, so ``rayzer bench real-cameras`` runs it
(bench_guided.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

import rayzer.refine.matched_cameras as mc
from rayzer.refine.pair_geometry import PairGeometry, ViewFeatures

LOG: list[dict[str, Any]] = []  # what each guided step did (install)


def fundamental_from_poses(Ri, ti, Rj, tj, K) -> np.ndarray:
    """``(3, 3)`` F with ``x_j^T F x_i = 0`` from world-to-camera poses (``x = R X + t``) and the
    shared ``K = (fx, fy, cx, cy)``."""
    R = Rj @ Ri.T
    t = tj - R @ ti
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    Kinv = np.linalg.inv(np.array([[K[0], 0, K[2]], [0, K[1], K[3]], [0, 0, 1.0]]))
    return Kinv.T @ (tx @ R) @ Kinv


def guided_matches(
    fa: ViewFeatures, fb: ViewFeatures, F: np.ndarray, band_px: float, ratio: float = 0.8,
    max_distance: float = 0.7,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Candidates: the other view's keypoints within ``band_px`` of the epipolar line (each
    point's distance to the other's line, both ways); the nearest descriptor passes the ratio
    test against the second nearest *in the band*, lies within ``max_distance`` (unit-norm
    SIFT; COLMAP's default 0.7) and is mutual. Returns ``(M, 2)`` indices and ``(M,)``
    descriptor distances, nearest first."""
    if not len(fa.uv) or not len(fb.uv):
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    xa = np.concatenate([fa.uv, np.ones((len(fa.uv), 1))], 1)
    xb = np.concatenate([fb.uv, np.ones((len(fb.uv), 1))], 1)
    la, lb = xa @ F.T, xb @ F
    alg = la @ xb.T
    inside = (np.abs(alg) / np.hypot(la[:, 0], la[:, 1])[:, None] < band_px) & (
        np.abs(alg) / np.hypot(lb[:, 0], lb[:, 1])[None, :] < band_px
    )
    ua = fa.desc / np.maximum(np.linalg.norm(fa.desc, axis=1, keepdims=True), 1e-12)
    ub = fb.desc / np.maximum(np.linalg.norm(fb.desc, axis=1, keepdims=True), 1e-12)
    d = np.where(inside, np.sqrt(np.maximum(2.0 - 2.0 * (ua @ ub.T), 0.0)), np.inf)
    rows = np.arange(len(d))
    best = np.argmin(d, axis=1)
    d1 = d[rows, best]
    d2 = np.partition(d, 1, axis=1)[:, 1] if d.shape[1] > 1 else np.full(len(d), np.inf)
    back = np.argmin(d, axis=0)
    ok = np.isfinite(d1) & (d1 < max_distance) & (d1 < ratio * d2) & (back[best] == rows)
    order = np.argsort(d1[ok], kind="stable")
    return np.stack([rows[ok], best[ok]], 1).astype(np.int64)[order], d1[ok][order]


class Tracks:
    """``mc._Tracks`` with two ways of handling a track that meets a view twice:
    ``consistent=False``: as the library, every match joined, such tracks dropped whole
    (``conflicts`` tracks, ``conflict_obs`` observations; the same tracks as ``mc._Tracks``);
    ``consistent=True``: matches joined best first (``scores``), one that would make its
    track meet a view twice refused (``conflicts`` counts refused matches)."""

    def __init__(self, pairs, scores=None, consistent=False):
        parent: dict = {}
        views_of: dict = {}

        def find(a):
            while parent.setdefault(a, a) != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        edges = []
        for n, p in enumerate(pairs):
            s = scores[n] if scores is not None else np.arange(len(p.matches), dtype=float)
            edges += [(float(s[k]), p.i, int(p.matches[k, 0]), p.j, int(p.matches[k, 1]))
                      for k in p.inliers]  # fmt: skip
        if consistent:
            edges.sort(key=lambda e: e[0])
        self.conflicts = self.conflict_obs = 0
        for _, i, ka, j, kb in edges:
            a, b = find((i, ka)), find((j, kb))
            if a == b:
                continue
            if consistent:
                va, vb = views_of.get(a, {a[0]}), views_of.get(b, {b[0]})
                if va & vb:
                    self.conflicts += 1
                    continue
                views_of[b] = va | vb
                views_of.pop(a, None)
            parent[a] = b
        groups: dict = {}
        for node in list(parent):
            groups.setdefault(find(node), []).append(node)
        self.obs = []
        for members in groups.values():
            views = [v for v, _ in members]
            if len(members) >= 2 and len(set(views)) == len(views):
                self.obs.append(sorted(members))
            elif len(members) >= 2:
                self.conflicts += 1
                self.conflict_obs += len(members)


def track_figures(rec, cfg) -> dict[str, Any]:
    """Points and observations below ``outlier_px``, observations per point, and the
    histogram of track lengths (2, 3, ... views)."""
    err = rec.errors()
    _, points, _ = rec.observations()
    good = err < cfg.outlier_px
    n = np.bincount(points[good])
    n = n[n > 0]
    return {
        "points": len(n),
        "observations": int(good.sum()),
        "per_point": round(float(n.mean()), 3) if len(n) else 0.0,
        "lengths_2_up": np.bincount(n, minlength=9)[2:].tolist(),
    }


def resolve(feats, sol, tracks, c, cfg):
    """The second solve: ``tracks`` triangulated with ``sol``'s cameras (registered views),
    then the library's two bundle-adjustment passes (the reference view fixed)."""
    rec, reg = sol.rec, np.flatnonzero(sol.registered)
    new = mc._Reconstruction(feats, tracks, rec.f, c, rec.R)
    new.t = {int(k): rec.t[k].copy() for k in reg}
    new.triangulate(cfg.outlier_px)
    mc._bundle_adjust(new, sol.ref, cfg, None)
    new.triangulate(cfg.outlier_px)
    mc._bundle_adjust(new, sol.ref, cfg, cfg.outlier_px)
    err = new.errors()
    views, _, _ = new.observations()
    counts = np.bincount(views[err < cfg.outlier_px], minlength=len(sol.registered))
    registered = np.array([k in new.t and counts[k] >= cfg.min_points for k in range(len(counts))])
    out = replace(sol, rec=new, after=mc._stats(err), registered=registered)
    if len(err):
        out.score_px = float(np.sqrt(np.mean(np.minimum(err, cfg.outlier_px) ** 2)))
    return out


def guided_solve(feats, sol, c, cfg, band_px=2.0, ratio=0.8, max_distance=0.7,
                 consistent=True, min_len=2):  # fmt: skip
    """``(solution, figures)``: ``sol`` solved again on guided matches of every pair of its
    registered views (tracks shorter than ``min_len`` views left out); kept only when it
    registers as many views."""
    if sol.rec is None or sol.num_registered < cfg.min_views:
        return sol, None
    rec, reg = sol.rec, np.flatnonzero(sol.registered)
    K = (rec.f, rec.f, float(c[0]), float(c[1]))
    pairs, scores = [], []
    for a, i in enumerate(reg):
        for j in reg[a + 1 :]:
            F = fundamental_from_poses(rec.R[i], rec.t[i], rec.R[j], rec.t[j], K)
            m, dist = guided_matches(feats[i], feats[j], F, band_px, ratio, max_distance)
            pairs.append(PairGeometry(int(i), int(j), m, np.arange(len(m))))
            scores.append(dist)
    tracks = Tracks(pairs, scores, consistent)
    tracks.obs = [t for t in tracks.obs if len(t) >= min_len]
    out = resolve(feats, sol, tracks, c, cfg)
    info = {
        "band_px": band_px, "ratio": ratio, "consistent": consistent, "min_len": min_len,
        "matches": int(sum(len(p.matches) for p in pairs)), "tracks": len(tracks.obs),
        "conflicts": tracks.conflicts, **track_figures(out.rec, cfg),
        "registered_after": out.num_registered, "kept": out.num_registered >= sol.num_registered,
    }  # fmt: skip
    return (out if info["kept"] else sol), info


def install(**kw) -> None:
    """Run :func:`guided_solve` (options ``kw``) after the library's re-pose in
    ``cameras_from_matches``; each step's figures go to :data:`LOG`."""
    original = mc._repose

    def _repose_then_guided(feats, matched, sol, c, v, anchor, cfg):
        sol, reposed = original(feats, matched, sol, c, v, anchor, cfg)
        first = track_figures(sol.rec, cfg) if sol.rec is not None else {}
        sol, info = guided_solve(feats, sol, c, cfg, **kw)
        LOG.append({"first": first, "guided": info})
        return sol, reposed

    mc._repose = _repose_then_guided


def keypoints_near_projections(rec, feats, c, min_len=2, max_len=2, limit=400):
    """Where the points seen by ``min_len``-``max_len`` registered views project inside another
    registered view (first ``limit`` such points): how often that view has a keypoint within
    1 / 2 px of the projection. Few: the feature was not detected there, so no matching can
    lengthen the track. Returns ``{"projections", "within_1px", "within_2px", "chance_2px"}``
    (chance: what a random position would get, keypoints per px² of their bounding box x 4 pi;
    the projections land anywhere in the crop, the keypoints lie anywhere in the photo)."""
    from scipy.spatial import cKDTree

    trees = {v: cKDTree(feats[v].uv) for v in rec.t}
    err = rec.errors()
    _, points, _ = rec.observations()
    n = np.bincount(points[err < 4.0], minlength=len(rec.X))
    out = {"projections": 0, "within_1px": 0, "within_2px": 0}
    for k in np.flatnonzero((n >= min_len) & (n <= max_len))[:limit]:
        seen = {v for v, _ in rec.tracks.obs[k]}
        for v in rec.t:
            if v in seen:
                continue
            Xc = rec.R[v] @ rec.X[k] + rec.t[v]
            if Xc[2] <= 0:
                continue
            px = rec.f * Xc[:2] / Xc[2] + c
            lo, hi = feats[v].uv.min(0), feats[v].uv.max(0)
            if not ((lo <= px).all() and (px < hi).all()):
                continue
            d, _ = trees[v].query(px)
            out["projections"] += 1
            out["within_1px"] += int(d < 1)
            out["within_2px"] += int(d < 2)
    density = np.mean([len(feats[v].uv) / np.prod(np.ptp(feats[v].uv, 0)) for v in rec.t])
    out["chance_2px"] = round(float(density * 4 * np.pi), 3)
    return out
