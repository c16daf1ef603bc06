"""Test-time refinement: per-scene photometric bundle adjustment of cameras.

Start from any cameras (a model's prediction) and a depth map per view (or a Gaussian scene);
:func:`refine_cameras` / :func:`refine_scene` adjust the poses and a shared focal so that every
view is reproduced by warping its neighbours with its depth. Conventions are those of
:mod:`rayzer.geometry`: OpenCV camera-to-world ``(V, 4, 4)``, pixel intrinsics ``(V, 4)``.

Example::

    from rayzer.refine import refine_cameras
    result = refine_cameras(images, c2w, K, depth)  # images (V, 3, H, W), depth (V, h, w)
    if result.stopped:
        print(result.stopped)  # diverged: result.c2w / result.K are the input cameras
    print(result.summary())   # reprojection PSNR before/after, time

A Gaussian scene (E-RayZer's, NAS3R's) can be fitted to its input views through the
rasterizer, cameras included: :func:`fit_scene`, judged by :func:`held_out_fit_psnr`::

    from rayzer.refine import SplatFitConfig, fit_scene
    fit = fit_scene(images, scene, background=(1, 1, 1), config=SplatFitConfig(steps=100))
    fit.scene, fit.c2w, fit.K  # the fitted scene and cameras (the input ones if fit.stopped)

Cameras far from the truth (a model's near-identity guess on real photos) are first solved
from SIFT matches of the photos at their own resolution (:func:`cameras_from_matches`: pairwise
essential matrices, rotation averaging, bundle adjustment; needs OpenCV)::

    from rayzer.refine import cameras_from_matches
    m = cameras_from_matches(photos, boxes, c2w, K, (H, W), anchor=0)
    m.c2w, m.K, m.registered, m.report  # the input cameras where a view is not registered
"""

from rayzer.geometry.reprojection import neighbour_views, reprojection_error
from rayzer.refine.bundle import (
    RefineConfig,
    RefineResult,
    StepCallback,
    refine_cameras,
    refine_scene,
    render_depth,
)
from rayzer.refine.held_out import HeldOutFigure, held_out_psnr, render_from_pixels
from rayzer.refine.matched_cameras import MatchConfig, MatchedCameras, cameras_from_matches
from rayzer.refine.report import refine_with_report
from rayzer.refine.splat import (
    CameraFit,
    SplatFitConfig,
    SplatFitResult,
    SplatHeldOut,
    fit_camera,
    fit_scene,
    held_out_fit_psnr,
)

__all__ = [
    "CameraFit",
    "HeldOutFigure",
    "MatchConfig",
    "MatchedCameras",
    "RefineConfig",
    "RefineResult",
    "SplatFitConfig",
    "SplatFitResult",
    "SplatHeldOut",
    "StepCallback",
    "cameras_from_matches",
    "fit_camera",
    "fit_scene",
    "held_out_fit_psnr",
    "held_out_psnr",
    "neighbour_views",
    "refine_cameras",
    "refine_scene",
    "refine_with_report",
    "render_depth",
    "render_from_pixels",
    "reprojection_error",
]
