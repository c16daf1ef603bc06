"""Camera accuracy on posed real scenes, side by side (``rayzer bench real-cameras``).

For every posed scene folder (``cameras.json``) under ``--data``, windows of ``--views`` frames
(default 8) are evaluated:

* ``consecutive``: ``--consecutive-windows`` windows of consecutive frames in capture order
  (what a user's short clip is), their starts spread evenly from the first to the last frame;
* ``spread``: one window of frames spread evenly over the whole capture (first to last).

A scene with fewer frames than ``--views`` gives one window of all its frames (said in the row's
``note``). On each window, four camera estimates are scored against the scene's cameras:

* ``identity``: every camera at the origin (the no-motion baseline);
* ``model``: the model's predicted cameras (:func:`rayzer.infer.predict.predict_cameras` on the
  views fitted to its input, as ``rayzer eval`` fits them);
* ``model_refined``: the model's cameras after test-time refinement on its own depth, exactly as
  ``rayzer infer --refine STEPS`` refines them (:func:`rayzer.infer.refine_predicted.
  refine_predicted_cameras`, with its leave-one-out check, holding the model's canonical
  camera), at ``--refine-size`` px; when the refinement is rejected or stopped the model's
  cameras are kept and scored, and what the refinement reached is scored beside them
  (``not_kept``); not applicable to models without depth (RayZer);
* ``model_fit`` (only with ``--fit STEPS``, on the consecutive windows only): the model's
  Gaussian scene and cameras fitted to the window's views at the model's input size, as
  ``rayzer infer --fit STEPS --fit-cameras`` fits them (:func:`rayzer.infer.fit_predicted.
  fit_predicted_scene`, with its leave-one-out check; the model's cameras are kept when it
  rejects or a guard stops the fit, and the cameras the fit reached are scored beside them,
  ``not_kept``); not applicable to models without Gaussians (RayZer);
* ``matches`` / ``matches_refined`` (only with ``--matches``): the cameras from feature matches
  of the stored photos, as ``rayzer infer --init-cameras matches`` solves them
  (:func:`rayzer.infer.matched_init.init_from_matches`), scored on the views they register, and
  those cameras refined as ``rayzer infer --init-cameras matches --refine STEPS`` refines them,
  scored on the same views (``--no-model-refine`` skips ``model_refined`` then); where the
  matches and pycolmap register different views, the matches are also scored on pycolmap's
  (``on_pycolmap_views``, :func:`on_pycolmap_views`), or the table says they did not register
  them;
* ``pycolmap``: incremental SfM on the stored images of the same frames
  (:func:`rayzer.eval.colmap_reference.colmap_reference`), scored on the views it registered.

Metrics are the gauge-free pairwise ones of ``rayzer eval``
(:func:`rayzer.eval.camera_metrics.pairwise_summary`): median relative rotation and translation-
direction errors over the window's view pairs, AUC@10/30 of their maximum; ``auc_all_pairs``
also counts the pairs of unregistered views as failures (it differs from ``auc`` only for
pycolmap). Seconds are wall time per method: the model's camera pass; for ``model_refined``
that pass plus the scene, its depth and the refinement; pycolmap's whole run.
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rayzer.bundled import CKPT_HELP
from rayzer.eval.camera_metrics import AUC_THRESHOLDS, pairwise_summary
from rayzer.geometry import pose_auc, relative_pose_errors

log = logging.getLogger("rayzer.bench.real_cameras")

WINDOW_KINDS = ("consecutive", "spread")
METHODS = ("identity", "model", "model_refined", "pycolmap")
#: The methods with ``--fit STEPS`` (the fit's column before pycolmap's).
METHODS_WITH_FIT = ("identity", "model", "model_refined", "model_fit", "pycolmap")
#: The methods ``--matches`` adds (before pycolmap's column).
MATCH_METHODS = ("matches", "matches_refined")

DEFINITIONS = {
    "consecutive": "windows of --views consecutive frames in capture order; with "
    "--consecutive-windows N, N windows whose starts are spread evenly from frame 0 to the last "
    "possible start",
    "spread": "one window of --views frames spread evenly over the whole capture (first to last)",
    "rot_err_deg_median / trans_dir_err_deg_median": "medians over the window's view pairs of "
    "the relative rotation / translation-direction errors against the scene's cameras (gauge "
    "free; rayzer.eval.camera_metrics)",
    "auc": "AUC@T of max(rotation, translation-direction error) over the scored pairs",
    "auc_all_pairs": "the same with the pairs of unregistered views counted as failures",
    "registered": "views with a camera (pycolmap: those it registered; the model: all)",
    "seconds": "wall time: model = camera pass; model_refined = camera pass + scene + depth + "
    "refinement (with its leave-one-out check); pycolmap = extraction + matching + mapping",
    "model_refined.cameras": "'refined', or 'input' when the refinement stopped or its "
    "leave-one-out PSNR fell (then the model's cameras are kept, as rayzer infer does)",
    "model_fit": "with --fit STEPS, consecutive windows only: the model's Gaussians and cameras "
    "fitted to the window's views at the model's input size (rayzer infer --fit STEPS "
    "--fit-cameras, with its leave-one-out check); seconds = camera pass + scene + both fits",
    "matches": "with --matches: cameras from SIFT matches of the stored photos (pairwise "
    "essential matrices, rotation averaging, bundle adjustment; rayzer infer --init-cameras "
    "matches), scored on the views they register; seconds = camera pass + model scene and depth "
    "(the scale) + matching + bundle adjustment",
    "matches_refined": "those cameras refined as rayzer infer --init-cameras matches --refine "
    "STEPS refines them (model's Gaussians re-lifted along them, refinement with its "
    "leave-one-out check, the registered views' cameras held), scored on the same registered "
    "views",
    "model_refined.not_kept": "when cameras is 'input': why ('rejected' by the leave-one-out "
    "check or 'stopped' by a guard) and the pairwise errors of the cameras the refinement "
    "itself reached (where it was when a guard stopped it); the row's own errors are those of "
    "the kept (model's) cameras",
    "model_fit.not_kept": "the same for a fit whose cameras were not kept",
}


# -- windows -----------------------------------------------------------------------------------


def parse_windows(value: str | Sequence[str]) -> tuple[str, ...]:
    """``"consecutive,spread"`` → the window kinds, in order, without repeats."""
    items = [v.strip() for v in (value.split(",") if isinstance(value, str) else value)]
    items = [v for v in items if v]
    bad = [v for v in items if v not in WINDOW_KINDS]
    if bad or not items:
        raise ValueError(
            f"--windows must be a comma list of {', '.join(WINDOW_KINDS)}, got {value!r}"
        )
    return tuple(dict.fromkeys(items))


def window_frames(num_frames: int, kind: str, views: int = 8, count: int = 2) -> list[list[int]]:
    """Frame indices (positions in capture order) of the windows of one scene.

    Args:
        num_frames: frames of the scene.
        kind: ``consecutive`` (``count`` windows of ``views`` consecutive frames, starts evenly
            from 0 to ``num_frames - views``) or ``spread`` (one window of ``views`` frames
            evenly from the first to the last).
        views: frames per window; a scene with fewer frames gives one window of all of them.
    Returns:
        Windows (each a sorted list of distinct indices), without duplicate windows.
    Raises:
        ValueError: unknown ``kind``, ``views < 2``, ``count < 1`` or ``num_frames < 2``.
    """
    if kind not in WINDOW_KINDS:
        raise ValueError(f"unknown window kind {kind!r} (expected one of {WINDOW_KINDS})")
    if views < 2 or count < 1:
        raise ValueError(f"windows need views >= 2 and count >= 1, got {views} and {count}")
    if num_frames < 2:
        raise ValueError(f"a window needs at least 2 frames, the scene has {num_frames}")
    v = min(views, num_frames)
    if kind == "spread":
        # steps of (n - 1) / (v - 1) >= 1 frame: the rounded indices stay distinct
        return [np.linspace(0, num_frames - 1, v).round().astype(int).tolist()]
    starts = np.linspace(0, num_frames - v, count).round().astype(int).tolist()
    return [list(range(s, s + v)) for s in dict.fromkeys(starts)]


# -- scoring -----------------------------------------------------------------------------------


@dataclass
class _Scored:
    """One method on one window: the JSON record and the raw pair errors (for pooling)."""

    record: dict[str, Any]
    num_views: int  # views of the window it was tried on (0: not tried, n/a)
    rot: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.float64))
    trans: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.float64))
    #: ``(V, 4, 4)`` the window's cameras and ``(V,)`` bool the views scored (the matches only:
    #: they are scored again on pycolmap's views, :func:`on_pycolmap_views`)
    c2w: Tensor | None = None
    views: Tensor | None = None

    @property
    def total_pairs(self) -> int:
        """View pairs of the window, registered or not."""
        return self.num_views * (self.num_views - 1) // 2


def _auc_all_pairs(rot: Tensor, trans: Tensor, total_pairs: int) -> dict[str, float]:
    """AUC of ``max(rot, trans)`` with the ``total_pairs - len(rot)`` missing pairs failed."""
    missing = torch.full((total_pairs - rot.numel(),), math.inf, dtype=torch.float64)
    worst = torch.cat([torch.maximum(rot, trans), missing])
    if worst.numel() == 0:
        return {f"@{t}": 0.0 for t in AUC_THRESHOLDS}
    return {f"@{t}": v for t, v in pose_auc(worst, AUC_THRESHOLDS).items()}


def _score(pred_c2w: Tensor, gt_c2w: Tensor, num_views: int, seconds: float, **extra) -> _Scored:
    """Score cameras of the registered views (``pred_c2w``, ``gt_c2w``: (R, 4, 4)) of a window
    of ``num_views`` views."""
    err = relative_pose_errors(pred_c2w.detach().double().cpu(), gt_c2w.detach().double().cpu())
    rot, trans = err["rot_deg"], err["trans_deg"]
    record = {
        "status": "ok",
        "registered": int(pred_c2w.shape[0]),
        **pairwise_summary(rot, trans),
        "auc_all_pairs": _auc_all_pairs(rot, trans, num_views * (num_views - 1) // 2),
        "seconds": round(seconds, 2),
        **extra,
    }
    return _Scored(record, num_views, rot, trans)


def _not_scored(status: str, reason: str, num_views: int, **extra) -> _Scored:
    """A method that gave no cameras on a window (``status``: ``n/a`` or ``failed``)."""
    return _Scored(
        {"status": status, "reason": reason, "registered": 0, **extra},
        num_views if status == "failed" else 0,
    )


# -- one window ---------------------------------------------------------------------------------


@dataclass
class BenchSettings:
    """The options of a run that shape each window (see :func:`add_arguments`).

    Attributes:
        refine_steps: refinement iterations (0: no refinement).
        refine_size: square side of the views the refinement runs on (None: the model's input).
        colmap: run pycolmap on each window.
        threads: CPU threads of pycolmap.
        fit_steps: steps of the Gaussian + camera fit on the consecutive windows (0: none).
        matches: also the cameras from feature matches (:data:`MATCH_METHODS`).
        refine_model: refine the model's own cameras (``model_refined``; False: n/a, e.g.
            when only the matched cameras' refinement is wanted).
    """

    refine_steps: int = 150
    refine_size: int | None = None
    colmap: bool = False
    threads: int = 1
    fit_steps: int = 0
    matches: bool = False
    refine_model: bool = True

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods scored on each window (:data:`METHODS`, with the fit, the matches)."""
        base = METHODS_WITH_FIT if self.fit_steps else METHODS
        return base[:-1] + MATCH_METHODS + base[-1:] if self.matches else base


def evaluate_window(
    model: Any,
    scene: Any,
    frames: Sequence[int],
    settings: BenchSettings,
    workdir: Path,
    *,
    fit: bool = False,
) -> tuple[dict[str, Any], dict[str, _Scored]]:
    """Score the methods (module docstring, ``settings.methods``) on ``frames`` of a posed
    ``scene``.

    Args:
        model: a :class:`rayzer.infer.model.LoadedModel`.
        scene: a posed :class:`rayzer.eval.eval_data.SceneEntry`.
        frames: positions in the scene's frame list, in capture order.
        workdir: scratch folder of pycolmap (created; the caller deletes it).
        fit: run the fit on this window (``settings.fit_steps`` > 0 and a consecutive window);
            otherwise ``model_fit`` is n/a.
    Returns:
        ``(row, scored)``: the JSON row (``methods`` keyed by ``settings.methods``) and each
        method's raw pair errors.
    """
    from rayzer.data.images import output_size
    from rayzer.eval.eval_data import load_views
    from rayzer.infer.predict import predict_cameras

    hw = output_size(model.image_size, model.patch_size, "square")
    images, gt, _, files = load_views(scene, frames, hw)
    if gt is None:
        raise ValueError(f"{scene.path}: no cameras in its cameras.json, it cannot be scored")
    v = len(frames)
    scored = {"identity": _score(torch.eye(4, dtype=torch.float64).expand(v, 4, 4), gt, v, 0.0)}

    t0 = time.perf_counter()
    cams = predict_cameras(model, images)
    model_s = time.perf_counter() - t0
    scored["model"] = _score(cams.c2w, gt, v, model_s)

    net = model.model
    if not net.capabilities.outputs_depth:
        reason = f"not applicable: the {net.name} model outputs no depth to refine on"
        scored["model_refined"] = _not_scored("n/a", reason, v)
    elif settings.refine_steps < 1:
        scored["model_refined"] = _not_scored("n/a", "not requested (--refine 0)", v)
    elif not settings.refine_model:
        scored["model_refined"] = _not_scored("n/a", "not requested (--no-model-refine)", v)
    else:
        scored["model_refined"] = _refined(model, scene, frames, images, cams, gt, settings)
        scored["model_refined"].record["seconds"] = round(
            model_s + scored["model_refined"].record["seconds"], 2
        )

    if settings.fit_steps:
        scored["model_fit"] = _fit_or_not(model, images, cams, gt, settings, fit, model_s)

    if settings.matches:
        scored.update(_matched(model, scene, frames, images, cams, gt, settings, model_s))

    if settings.colmap:
        paths = [scene.path / f for f in files]
        scored["pycolmap"] = _colmap(paths, cams.c2w, gt, settings.threads, workdir)
        if "matches" in scored:
            on = on_pycolmap_views(scored["matches"], scored["pycolmap"].record, files, gt)
            if on is not None:
                scored["matches"].record["on_pycolmap_views"] = on
    else:
        scored["pycolmap"] = _not_scored("n/a", "not requested (no --colmap)", v)

    row = {
        "scene": scene.name,
        "frames": list(frames),
        "num_views": v,
        "methods": {name: scored[name].record for name in settings.methods},
    }
    return row, scored


def _matched(
    model: Any,
    scene: Any,
    frames: Sequence[int],
    images: Tensor,
    cams: Any,
    gt: Tensor,
    settings: BenchSettings,
    model_s: float,
) -> dict[str, _Scored]:
    """``matches``: the cameras from feature matches of the stored photos (as ``rayzer infer
    --init-cameras matches``: the model's focal as prior, its canonical camera and depth scale
    as gauge), scored on the views they register; ``matches_refined``: those cameras refined
    as ``rayzer infer --init-cameras matches --refine STEPS`` refines them (the model's
    Gaussians re-lifted along them, the refinement on that depth), scored on the same views.
    Seconds include the model's camera pass (and its scene and depth: the scale)."""
    from rayzer.data.images import cover_box
    from rayzer.data.scene_folder import read_scene_folder
    from rayzer.infer.matched_init import init_from_matches
    from rayzer.infer.predict import build_scene, render_scene_depth_alpha

    v = len(frames)
    t0 = time.perf_counter()
    folder = read_scene_folder(scene.path, indices=list(frames), load_depth=False)
    photos = [
        (im.permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        for im in folder.images
    ]
    box = cover_box((photos[0].shape[1], photos[0].shape[0]), (cams.height, cams.width))
    latent = depth = alpha = None
    if model.model.capabilities.outputs_depth:
        latent = build_scene(model, images, cams)
        _, depth, alpha = render_scene_depth_alpha(model, latent, cams)
    matched, report = init_from_matches(photos, [box] * v, cams, depth, alpha)
    seconds = model_s + time.perf_counter() - t0
    reg = torch.tensor(report["registered"], dtype=torch.bool)
    brief = {
        k: report[k] for k in ("num_registered", "pairs", "pairs_kept", "seconds") if k in report
    }
    out: dict[str, _Scored] = {}
    if not reg.any():
        reason = report.get("warning", "no view registered")
        out["matches"] = _not_scored("failed", reason, v, seconds=round(seconds, 2), matches=report)
        if settings.refine_steps < 1 or not model.model.capabilities.outputs_depth:
            out["matches_refined"] = _not_scored("n/a", "no refinement (--refine 0 or no depth)", v)
        else:
            out["matches_refined"] = _not_scored("failed", reason, v, matches=brief)
        return out
    out["matches"] = _score(matched.c2w[reg], gt[reg], v, seconds, matches=report)
    out["matches"].c2w, out["matches"].views = matched.c2w, reg
    if not model.model.capabilities.outputs_depth:
        reason = f"not applicable: the {model.model.name} model outputs no depth to refine on"
        out["matches_refined"] = _not_scored("n/a", reason, v)
    elif settings.refine_steps < 1:
        out["matches_refined"] = _not_scored("n/a", "not requested (--refine 0)", v)
    else:
        out["matches_refined"] = _refined(
            model,
            scene,
            frames,
            images,
            matched,
            gt,
            settings,
            latent=latent,
            model_cams=cams,
            views_mask=reg,
        )
        out["matches_refined"].record["seconds"] = round(
            seconds + out["matches_refined"].record["seconds"], 2
        )
    return out


def _refined(
    model: Any,
    scene: Any,
    frames: Sequence[int],
    images: Tensor,
    cams: Any,
    gt: Tensor,
    settings: BenchSettings,
    *,
    latent: Any = None,
    model_cams: Any = None,
    views_mask: Tensor | None = None,
) -> _Scored:
    """The model's cameras refined as ``rayzer infer --refine`` refines them, scored; seconds
    of the scene, its depth and the refinement (the camera pass is added by the caller).

    With ``latent`` (the model's scene at ``model_cams``) and other ``cams`` (from matches),
    the scene's Gaussians are first re-lifted along ``cams`` (as ``rayzer infer`` does);
    ``views_mask``: score only these views, whose cameras the refinement holds (the views the
    matches registered, as ``rayzer infer --init-cameras matches --refine`` holds them)."""
    from rayzer.eval.eval_data import load_views
    from rayzer.infer.predict import build_scene, render_scene_depth_alpha
    from rayzer.infer.refine_predicted import refine_predicted_cameras
    from rayzer.models.gaussians import GaussianScene, relift_scene

    t0 = time.perf_counter()
    if latent is None or model_cams is None:
        latent = build_scene(model, images, cams)
    elif isinstance(latent, GaussianScene):
        dev = latent.means.device
        latent = relift_scene(latent, cams.c2w[None].to(dev), cams.K_norm[None].to(dev))
    else:  # a scene that cannot move: built again at the new cameras
        latent = build_scene(model, images, cams)
    _, depth, alpha = render_scene_depth_alpha(model, latent, cams)
    size = settings.refine_size
    views = images
    if size is not None and (size, size) != tuple(images.shape[-2:]):
        # the same photos fitted to the refinement size (the same square centre crop)
        views = load_views(scene, frames, (size, size))[0]
    reached: list[Any] = []
    # as rayzer infer: the views the matches registered keep their cameras
    held = None if views_mask is None else torch.nonzero(views_mask)[:, 0].tolist()
    refined, report = refine_predicted_cameras(
        views, cams, depth, alpha, settings.refine_steps, held=held, on_reached=reached.append
    )
    seconds = time.perf_counter() - t0
    extra = {"cameras": report["cameras"], "refine_size": list(views.shape[-2:]), "refine": report}
    keep = views_mask if views_mask is not None else torch.ones(len(frames), dtype=torch.bool)
    if report["cameras"] == "input" and not (held and len(held) == len(frames)):
        # (every view held: nothing was refined, and nothing was turned down)
        reached_c2w = reached[0].c2w[keep] if reached else None
        extra["not_kept"] = _not_kept(report, reached_c2w, gt[keep])
    return _score(refined.c2w[keep], gt[keep], len(frames), seconds, **extra)


def _fit_or_not(
    model: Any,
    images: Tensor,
    cams: Any,
    gt: Tensor,
    settings: BenchSettings,
    fit: bool,
    model_s: float,
) -> _Scored:
    """``model_fit`` of one window: the fit scored, or n/a (a spread window, no Gaussians)."""
    v = images.shape[0]
    if not model.model.capabilities.outputs_gaussians:
        reason = f"not applicable: the {model.model.name} model has no 3D Gaussians to fit"
        return _not_scored("n/a", reason, v)
    if not fit:
        return _not_scored("n/a", "consecutive windows only", v)
    scored = _fitted(model, images, cams, gt, settings.fit_steps)
    scored.record["seconds"] = round(model_s + scored.record["seconds"], 2)
    return scored


def _fitted(model: Any, images: Tensor, cams: Any, gt: Tensor, steps: int) -> _Scored:
    """The model's scene and cameras fitted as ``rayzer infer --fit STEPS --fit-cameras`` fits
    them, scored; seconds of the scene and both fits (the camera pass is added by the caller)."""
    from rayzer.infer.fit_predicted import fit_predicted_scene
    from rayzer.infer.predict import build_scene

    t0 = time.perf_counter()
    scene = build_scene(model, images, cams)
    reached: list[Any] = []
    _, fitted, report = fit_predicted_scene(
        model, images, scene, cams, steps, fit_cameras=True, on_reached=reached.append
    )
    seconds = time.perf_counter() - t0
    kept = report["scene"] == "fitted"
    extra = {"cameras": "fitted" if kept else "input", "fit": report}
    if not kept:
        extra["not_kept"] = _not_kept(report, reached[0].c2w if reached else None, gt)
    return _score(fitted.c2w, gt, images.shape[0], seconds, **extra)


def _not_kept(report: dict[str, Any], reached_c2w: Tensor | None, gt: Tensor) -> dict[str, Any]:
    """What a refinement or Gaussian fit that was not kept reached, scored like the kept
    cameras: ``why`` (``rejected`` by the leave-one-out check or ``stopped`` by a guard) and the
    pairwise summary of the cameras it reached (``status`` ``ok``), or ``status`` ``no cameras``
    (no refinement ran) / ``non-finite cameras`` (the loss diverged)."""
    why = "stopped" if report.get("stopped") else "rejected"
    if reached_c2w is None:
        return {"why": why, "status": "no cameras"}
    if not torch.isfinite(reached_c2w).all():
        return {"why": why, "status": "non-finite cameras"}
    err = relative_pose_errors(reached_c2w.detach().double(), gt.detach().double().cpu())
    return {"why": why, "status": "ok", **pairwise_summary(err["rot_deg"], err["trans_deg"])}


def not_kept_label(rec: dict[str, Any]) -> str:
    """``rejected: 12.30 / 95.10`` (median rotation / translation-direction error of what the
    refinement or fit reached), or e.g. ``stopped: non-finite cameras``, for a refinement or
    fit whose cameras were not kept (``rec``: a ``model_refined`` or ``model_fit`` record);
    ``""`` when they were kept."""
    nk = rec.get("not_kept")
    if nk is None:
        return ""
    if nk["status"] != "ok":
        return f"{nk['why']}: {nk['status']}"
    return f"{nk['why']}: {nk['rot_err_deg_median']:.2f} / {nk['trans_dir_err_deg_median']:.2f}"


def _colmap(
    paths: Sequence[Path], model_c2w: Tensor, gt: Tensor, threads: int, workdir: Path
) -> _Scored:
    """pycolmap on the stored images of the window, scored on the views it registered."""
    from rayzer.eval.colmap_reference import colmap_reference

    v = len(paths)
    t0 = time.perf_counter()
    rep = colmap_reference(model_c2w, paths, workdir, gt_c2w=gt, num_threads=threads)
    seconds = round(time.perf_counter() - t0, 2)
    if rep["status"] != "ok":
        return _not_scored("failed", rep["reason"], v, seconds=seconds)
    rot, trans = rep["raw"]["colmap_vs_gt"]
    on_registered = rep["ours_vs_gt_on_registered"]
    record = {
        "status": "ok",
        "registered": rep["registered"],
        **pairwise_summary(rot, trans),
        "auc_all_pairs": _auc_all_pairs(rot, trans, v * (v - 1) // 2),
        "seconds": seconds,
        "registered_images": rep["registered_images"],
        "num_points3D": rep["num_points3D"],
        "model_on_registered": {
            k: on_registered[k] for k in ("rot_err_deg_median", "trans_dir_err_deg_median")
        },
    }
    return _Scored(record, v, rot, trans)


def on_pycolmap_views(
    matches: _Scored, colmap: dict[str, Any], files: Sequence[str], gt: Tensor
) -> dict[str, Any] | None:
    """The matches on the views pycolmap registered, so the two figures are on the same frames.

    Each method is scored on the views it registered; when those differ (temple ring 0-7: the
    matches' views 5-7, pycolmap's 2-4, two groups of views that no pair joins), its own figures
    compare different frames. Returns None when either registered nothing, else
    ``{"pycolmap_views", "matches_views", "common_views", "same_views"}`` (positions in the
    window) and, when the matches registered two or more of pycolmap's views, their median
    rotation / translation-direction errors on those (``rot_err_deg_median``,
    ``trans_dir_err_deg_median``) and ``all_pycolmap_views`` (all of them, or only some).

    Args:
        matches: the matches' scored record (with its cameras ``c2w`` and ``views``).
        colmap: pycolmap's record (``registered_images``: file names).
        files: the window's image files (their names are pycolmap's).
        gt: ``(V, 4, 4)`` the true cameras.
    """
    if matches.c2w is None or matches.views is None or colmap.get("status") != "ok":
        return None
    names = [Path(f).name for f in files]
    theirs = [k for k, n in enumerate(names) if n in set(colmap["registered_images"])]
    ours = [int(k) for k in torch.nonzero(matches.views).ravel()]
    common = [k for k in theirs if k in ours]
    out: dict[str, Any] = {
        "pycolmap_views": theirs,
        "matches_views": ours,
        "common_views": common,
        "same_views": ours == theirs,
    }
    if len(common) >= 2:
        err = relative_pose_errors(
            matches.c2w[common].detach().double(), gt[common].detach().double()
        )
        out["rot_err_deg_median"] = float(err["rot_deg"].median())
        out["trans_dir_err_deg_median"] = float(err["trans_deg"].median())
        out["all_pycolmap_views"] = common == theirs
    return out


def on_pycolmap_label(on: dict[str, Any] | None) -> str:
    """The table's words for :func:`on_pycolmap_views` ('' when both are on the same views)."""
    if not on or on["same_views"]:
        return ""
    theirs = ",".join(map(str, on["pycolmap_views"]))
    if "rot_err_deg_median" not in on:
        got = len(on["common_views"])
        return f" · not on pycolmap's views {theirs} (registered {got} of them)"
    part = "" if on["all_pycolmap_views"] else f" (only {','.join(map(str, on['common_views']))})"
    return (
        f" · on pycolmap's views {theirs}{part}: {on['rot_err_deg_median']:.2f} / "
        f"{on['trans_dir_err_deg_median']:.2f}"
    )


# -- the run ------------------------------------------------------------------------------------


def posed_scenes(
    data: str | Path, names: Sequence[str] | None = None
) -> tuple[list[Any], list[dict[str, str]]]:
    """The posed scene folders under ``data`` (only ``names`` when given) and the skipped ones.

    Raises:
        FileNotFoundError: ``data`` missing or holding no scene folder. ValueError: a name in
        ``names`` that is not a scene there, or no posed scene left.
    """
    from rayzer.eval.eval_data import list_scene_entries

    if not Path(data).exists():
        raise FileNotFoundError(f"--data not found: {data}")
    entries = list_scene_entries(data)
    if names:
        known = {e.name for e in entries}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(
                f"--scenes: no scene {', '.join(map(repr, unknown))} in {data} (it holds: "
                f"{', '.join(sorted(known))})"
            )
        entries = [e for e in entries if e.name in names]
    skipped = [
        {"scene": e.name, "reason": "unposed: no cameras.json with poses"}
        for e in entries
        if not e.posed
    ]
    posed = [e for e in entries if e.posed]
    if not posed:
        raise ValueError(f"{data}: no posed scene (a scene folder with cameras.json) to evaluate")
    return posed, skipped


def run_bench(
    data: str | Path,
    *,
    ckpt: str | Path | None = None,
    scenes: Sequence[str] | None = None,
    windows: str | Sequence[str] = WINDOW_KINDS,
    views: int = 8,
    consecutive_windows: int = 2,
    settings: BenchSettings | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Evaluate every window of every posed scene under ``data`` (module docstring).

    Args:
        data: a scene folder or a folder of scene folders.
        ckpt: checkpoint or run directory, or a bundled model's name (None: the bundled RayZer).
        scenes: only these scene names.
        windows: window kinds (:data:`WINDOW_KINDS`).
        views: frames per window. consecutive_windows: consecutive windows per scene.
        settings: refinement and pycolmap options.
    Returns:
        The JSON-ready result: ``rows`` (one per window), ``summary[kind][method]`` (pair errors
        pooled over the kind's windows), ``skipped`` scenes, settings, definitions, machine.
    Raises:
        FileNotFoundError / ValueError naming the option or file, before any window is run.
    """
    from rayzer.infer.model import load_model
    from rayzer.utils.report import machine_info

    settings = settings or BenchSettings()
    kinds = parse_windows(windows)
    _check_counts(views, consecutive_windows, settings)
    posed, skipped = posed_scenes(data, scenes)
    plan = [
        (e, k, f)
        for e in posed
        for k in kinds
        for f in _windows(e, k, views, consecutive_windows, skipped)
    ]
    model = load_model(ckpt, device)
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    methods = settings.methods
    pooled: dict[str, dict[str, list[_Scored]]] = {k: {m: [] for m in methods} for k in kinds}
    with tempfile.TemporaryDirectory(prefix="rayzer-real-cameras-") as work:
        for i, (entry, kind, frames) in enumerate(plan):
            row, scored = evaluate_window(
                model,
                entry,
                frames,
                settings,
                Path(work) / f"window_{i:03d}",
                fit=kind == "consecutive",
            )
            row = {"window": kind, **row}
            if len(frames) < views:
                row["note"] = f"the scene has {entry.num_frames} frames < {views}: all of them"
            rows.append(row)
            for name in methods:
                pooled[kind][name].append(scored[name])
            log.info("[%d/%d] %s", i + 1, len(plan), _progress_line(row))
    return {
        "command": "rayzer bench real-cameras",
        "checkpoint": str(model.checkpoint),
        "bundled_model": model.bundled,
        "model": model.model.name,
        "step": model.step,
        "image_size": model.image_size,
        "data": str(data),
        "windows": list(kinds),
        "views": views,
        "consecutive_windows": consecutive_windows,
        "refine_steps": settings.refine_steps,
        "refine_size": settings.refine_size or model.image_size,
        "colmap": settings.colmap,
        "fit_steps": settings.fit_steps,
        "matches": settings.matches,
        "methods": list(methods),
        "rows": rows,
        "summary": {k: {m: _pool(pooled[k][m]) for m in methods} for k in kinds},
        "skipped": skipped,
        "definitions": DEFINITIONS,
        "wall_time_s": round(time.perf_counter() - t0, 1),
        "machine": machine_info(),
    }


def _check_counts(views: int, consecutive_windows: int, settings: BenchSettings) -> None:
    if views < 2:
        raise ValueError(f"--views must be >= 2 (pairs of views are scored), got {views}")
    if consecutive_windows < 1:
        raise ValueError(f"--consecutive-windows must be >= 1, got {consecutive_windows}")
    if settings.refine_steps < 0:
        raise ValueError(f"--refine must be >= 0 (0: no refinement), got {settings.refine_steps}")
    if settings.fit_steps < 0:
        raise ValueError(f"--fit must be >= 0 (0: no fit), got {settings.fit_steps}")
    if settings.refine_size is not None and settings.refine_size < 8:
        raise ValueError(f"--refine-size must be >= 8 px, got {settings.refine_size}")
    if settings.matches:
        from rayzer.infer.matched_init import check_init_cameras

        try:
            check_init_cameras("matches")
        except ValueError as err:
            raise ValueError(str(err).replace("--init-cameras matches", "--matches")) from None
    if settings.colmap:
        from rayzer.eval.colmap_reference import colmap_unavailable_reason

        reason = colmap_unavailable_reason()
        if reason is not None:
            raise ValueError(f"--colmap: {reason}")


def _windows(
    entry: Any, kind: str, views: int, count: int, skipped: list[dict[str, str]]
) -> list[list[int]]:
    """The scene's windows of ``kind``; a scene too short for any is added to ``skipped``."""
    try:
        return window_frames(entry.num_frames, kind, views, count)
    except ValueError as err:
        skipped.append({"scene": entry.name, "reason": f"{kind}: {err}"})
        return []


def _pool(items: list[_Scored]) -> dict[str, Any]:
    """One method's errors pooled over windows: pairwise summary of all scored pairs, AUC with
    unregistered pairs failed, registered views, windows scored / failed, seconds."""
    tried = [s for s in items if s.record["status"] != "n/a"]
    if not tried:
        reason = items[0].record.get("reason") if items else "no windows"
        return {"status": "n/a", "reason": reason}
    rot = torch.cat([s.rot for s in tried])
    trans = torch.cat([s.trans for s in tried])
    ok = [s for s in tried if s.record["status"] == "ok"]
    out: dict[str, Any] = {
        "status": "ok" if ok else "failed",
        "windows": len(tried),
        "failed_windows": len(tried) - len(ok),
        "registered": sum(s.record["registered"] for s in tried),
        "views": sum(s.num_views for s in tried),
    }
    if rot.numel():
        out.update(pairwise_summary(rot, trans))
    out["auc_all_pairs"] = _auc_all_pairs(rot, trans, sum(s.total_pairs for s in tried))
    secs = [s.record["seconds"] for s in tried if s.record.get("seconds") is not None]
    out["seconds_median"] = float(np.median(secs)) if secs else None
    out["seconds_total"] = round(float(sum(secs)), 2)
    return out


# -- report -------------------------------------------------------------------------------------

_TITLES = {
    "identity": "identity",
    "model": "model",
    "model_refined": "model + refinement",
    "model_fit": "model + Gaussian fit",
    "matches": "matches + BA",
    "matches_refined": "matches + BA + refinement",
    "pycolmap": "pycolmap",
}


_MEDIANS = ("rot_err_deg_median", "trans_dir_err_deg_median")


def _frames_label(frames: Sequence[int]) -> str:
    """``0-7`` for consecutive frames, else the list."""
    consecutive = list(frames) == list(range(frames[0], frames[0] + len(frames)))
    return f"{frames[0]}-{frames[-1]}" if consecutive else ",".join(map(str, frames))


def _cell(rec: dict[str, Any], num_views: int, *, show_time: bool = True) -> str:
    """``rot° / trans° · AUC@10 / @30 · registered · seconds`` of one method on one window."""
    if rec["status"] == "n/a":
        return "n/a"
    if rec["status"] == "failed":
        secs = f" ({rec['seconds']:.1f} s)" if rec.get("seconds") is not None else ""
        return f"failed: {rec['reason'][:80]}{secs}"
    text = (
        f"{rec['rot_err_deg_median']:.2f} / {rec['trans_dir_err_deg_median']:.2f} · "
        f"{rec['auc']['@10']:.2f} / {rec['auc']['@30']:.2f}"
    )
    if rec["registered"] != num_views:
        text += f" · {rec['registered']}/{num_views} reg."
    if rec.get("cameras") == "input":
        label = not_kept_label(rec)  # none when nothing was refined: every view held
        text += f" · input kept ({label})" if label else " · every view held"
    text += on_pycolmap_label(rec.get("on_pycolmap_views"))
    if show_time:
        text += f" · {rec['seconds']:.1f} s"
    return text


def _progress_line(row: dict[str, Any]) -> str:
    m = row["methods"]
    parts = [f"{row['scene']} {row['window']} {_frames_label(row['frames'])}:"]
    for name in ("model", "model_refined", "model_fit", *MATCH_METHODS, "pycolmap"):
        if name in m and m[name]["status"] != "n/a":
            parts.append(f"{_TITLES[name]} {_cell(m[name], row['num_views'])};")
    return " ".join(parts).rstrip(";")


def to_markdown(result: dict[str, Any]) -> str:
    """Per-window tables (one per window kind) and the pooled summary."""
    methods = result.get("methods", METHODS)  # results of runs before --fit have no "methods"
    fit = ""
    if result.get("fit_steps"):
        fit = (
            f" Gaussian + camera fit: {result['fit_steps']} steps; in its column, "
            '"input kept (rejected: a / b)": the fit was rejected by the leave-one-out check (or '
            "stopped by a guard), so the cell's errors are the model's; a / b are those of the "
            "cameras the fit reached."
        )
    refine = " No refinement."
    if result["refine_steps"]:
        refine = (
            f" Refinement: {result['refine_steps']} iterations at {result['refine_size']} px; "
            '"input kept (rejected: a / b)": the refinement was rejected by the leave-one-out '
            "check (or stopped by a guard), so the cell's errors are the model's; a / b are the "
            "rotation / translation-direction errors of the cameras the refinement reached."
        )
        if "matches_refined" in methods:
            refine += (
                " The refinement after the matches holds the views they registered (as rayzer "
                "infer does) and moves only the others; the scored views are the registered "
                'ones, so its errors are the matches\' ("every view held": nothing refined).'
            )
    lines = [
        f"# Camera accuracy on posed real scenes: {result['model']} "
        f"({result['checkpoint']}, step {result['step']})",
        "",
        f"Each cell: median relative rotation / translation-direction error (degrees) · "
        f"AUC@10 / AUC@30 · registered views when not all · seconds. Windows of "
        f"{result['views']} views; model input {result['image_size']} px.{refine}{fit}",
    ]
    for kind in result["windows"]:
        rows = [r for r in result["rows"] if r["window"] == kind]
        lines += ["", f"## {kind} windows", ""]
        lines += [
            "| scene | frames | " + " | ".join(_TITLES[m] for m in methods) + " |",
            "|---|---|" + "---|" * len(methods),
        ]
        for r in rows:
            cells = [
                _cell(r["methods"][m], r["num_views"], show_time=m != "identity") for m in methods
            ]
            label = _frames_label(r["frames"]) + (" (all)" if r.get("note") else "")
            lines.append(f"| {r['scene']} | {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Pooled over windows",
        "",
        "| windows | method | registered / views | rot° median | trans° median | AUC@10 | "
        "AUC@30 | AUC@30 all pairs | s per window (median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in result["windows"]:
        for m in methods:
            s = result["summary"][kind][m]
            if s["status"] == "n/a":
                lines.append(f"| {kind} | {_TITLES[m]} | n/a: {s['reason']} | | | | | | |")
                continue
            scored = "rot_err_deg_median" in s
            num = [f"{s[k]:.2f}" if scored else "–" for k in _MEDIANS]
            auc = [f"{s['auc'][t]:.3f}" if scored else "–" for t in ("@10", "@30")]
            secs = "–" if s["seconds_median"] is None else f"{s['seconds_median']:.1f}"
            failed = f" ({s['failed_windows']} failed)" if s["failed_windows"] else ""
            lines.append(
                f"| {kind} | {_TITLES[m]} | {s['registered']}/{s['views']}{failed} | "
                f"{num[0]} | {num[1]} | {auc[0]} | {auc[1]} | "
                f"{s['auc_all_pairs']['@30']:.3f} | {secs} |"
            )
    if result["skipped"]:
        lines += [
            "",
            "Skipped: " + "; ".join(f"{s['scene']} ({s['reason']})" for s in result["skipped"]),
        ]
    return "\n".join(lines)


# -- command line -------------------------------------------------------------------------------

DESCRIPTION = (
    "Camera accuracy on posed real scenes, side by side: the model alone, the model + test-time "
    "refinement (as rayzer infer --refine) and pycolmap on the same frames, on windows of "
    "consecutive frames and on frames spread over each capture. Prints and writes "
    "real_cameras.json and real_cameras.md."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", help=CKPT_HELP)
    p.add_argument(
        "--data", type=Path, required=True, help="scene folder or folder of scene folders"
    )
    p.add_argument("--scenes", help="comma list of scene names (default: every posed scene)")
    p.add_argument(
        "--windows", default="consecutive,spread", help="consecutive,spread (default), or one"
    )
    p.add_argument("--views", type=int, default=8, help="frames per window (default 8)")
    p.add_argument(
        "--consecutive-windows",
        type=int,
        default=2,
        help="consecutive windows per scene, starts spread from first to last (default 2)",
    )
    p.add_argument(
        "--refine",
        type=int,
        default=150,
        help="refinement iterations (default 150; 0: none; models with depth only)",
    )
    p.add_argument(
        "--refine-size", type=int, help="square side of the refined views (default: model input)"
    )
    p.add_argument("--colmap", action="store_true", help="pycolmap on the same frames")
    p.add_argument(
        "--fit",
        type=int,
        default=0,
        metavar="STEPS",
        help="also the Gaussian + camera fit of rayzer infer --fit STEPS --fit-cameras, on the "
        "consecutive windows only (default 0: none; models with Gaussians only)",
    )
    p.add_argument(
        "--matches",
        action="store_true",
        help="also the cameras from feature matches (rayzer infer --init-cameras matches), "
        "alone and with the refinement (OpenCV)",
    )
    p.add_argument(
        "--no-model-refine",
        action="store_true",
        help="do not refine the model's own cameras (with --matches: refine only the matched ones)",
    )
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch and pycolmap")
    p.add_argument("--out", type=Path, help="folder for real_cameras.json / real_cameras.md")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def main(args: argparse.Namespace) -> None:
    from rayzer.utils.logs import command_logging, set_threads
    from rayzer.utils.report import write_report

    restore = command_logging(logging.getLogger("rayzer"), args.quiet)
    try:
        set_threads(args.threads)
        settings = BenchSettings(
            refine_steps=args.refine,
            refine_size=args.refine_size,
            colmap=args.colmap,
            threads=args.threads or torch.get_num_threads(),
            fit_steps=args.fit,
            matches=args.matches,
            refine_model=not args.no_model_refine,
        )
        scenes = [s.strip() for s in args.scenes.split(",") if s.strip()] if args.scenes else None
        result = run_bench(
            args.data,
            ckpt=args.ckpt,
            scenes=scenes,
            windows=args.windows,
            views=args.views,
            consecutive_windows=args.consecutive_windows,
            settings=settings,
            device=args.device,
        )
    finally:
        restore()
    write_report(args.out, "real_cameras", result, to_markdown(result))
