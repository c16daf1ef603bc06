"""``rayzer infer``: photos or a video in; cameras, exports, renders and novel views out.

Stages (each timed in ``summary.json``): load the model → load and fit the views
(:mod:`rayzer.data.images`) → predict cameras → build the latent scene from all views → render
the views back (reconstruction PSNR, a sanity figure, not a novel-view score) → render the
novel views (smooth path through the cameras, then a spiral around the canonical view) → write
the exports, renders, video/GIF and plot into a staged folder that is moved into place only
when everything succeeded (:func:`rayzer.utils.atomic.staged_output`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import rayzer
from rayzer.bundled import checkpoint_location
from rayzer.data.images import (
    PreparedViews,
    find_image_files,
    load_image_folder,
    load_video_frames,
)
from rayzer.eval.image_metrics import psnr
from rayzer.infer.fit_memory import check_fit_memory_before
from rayzer.infer.fit_predicted import (
    check_fit_model,
    check_fit_patch,
    check_fit_size,
    check_fit_steps,
    fit_photos,
    fit_predicted_scene,
)
from rayzer.infer.matched_init import check_init_cameras, init_from_matches, photos_from_files
from rayzer.infer.model import LoadedModel, load_model, resolve_device
from rayzer.infer.outputs import (
    cameras_json,
    plot_cameras,
    to_uint8,
    write_depth,
    write_exports,
    write_gaussians,
    write_gif,
    write_mp4,
    write_pngs,
    write_points,
)
from rayzer.infer.predict import (
    Cameras,
    as_images,
    build_scene,
    predict_cameras,
    render_scene,
    render_scene_depth_alpha,
)
from rayzer.infer.render_size import (
    at_size,
    check_frames_memory,
    check_model_renders_any_size,
    check_render_size,
    render_dims,
    views_per_pass,
)
from rayzer.infer.trajectory import path_through, spiral_around
from rayzer.utils.atomic import staged_output
from rayzer.utils.paths import check_output_folder
from rayzer.utils.threads import blas_like_torch, blas_thread_counts

log = logging.getLogger("rayzer.infer")

DEFAULT_MAX_VIEWS = 24
SCALE_NOTE = (
    "Cameras are predicted from the images alone, relative to the canonical view (canonical_view: the "
    "middle one, or the first for NAS3R), whose camera is the identity; the global scale of the translations is arbitrary."
)


class InferenceError(RuntimeError):
    """A stage failed for a reason other than bad input (e.g. out of memory)."""


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process so far (MB), or None where unsupported."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / 2**20 if sys.platform == "darwin" else peak / 1024, 1)


class StageTimer:
    """Wall-clock time and peak memory after each named stage."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = {}
        self.peak_rss_mb: dict[str, float | None] = {}
        self.start = time.perf_counter()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        log.info("%s ...", name.replace("_", " "))
        self._sync()
        t0 = time.perf_counter()
        try:
            yield
        except (RuntimeError, MemoryError) as err:
            if isinstance(err, InferenceError):
                raise
            raise InferenceError(f"stage {name!r} failed: {type(err).__name__}: {err}") from err
        self._sync()
        self.seconds[name] = round(time.perf_counter() - t0, 4)
        self.peak_rss_mb[name] = peak_rss_mb()

    def total(self) -> float:
        return round(time.perf_counter() - self.start, 4)


@dataclass
class InferenceResult:
    """What :func:`run_inference` produced: the output folder, its summary and the cameras."""

    out: Path
    summary: dict[str, Any]
    cameras: Cameras
    views: PreparedViews


def _check_counts(
    path_frames: int, spiral_frames: int, fps: float, chunk: int, refine: int = 0
) -> None:
    if path_frames < 0 or spiral_frames < 0:
        raise ValueError("--path-frames and --spiral-frames must be >= 0")
    if path_frames + spiral_frames > 10_000:
        raise ValueError("at most 10000 novel-view frames")
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"--fps must be a positive number, got {fps}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
        raise ValueError(
            f"--refine must be a number of iterations >= 0 (0: no refinement), got {refine!r}"
        )


def default_output(images: str | Path | None, video: str | Path | None) -> Path:
    """``outputs/infer/<input folder or video name>``."""
    src = Path(images if images is not None else video)  # type: ignore[arg-type]
    return Path("outputs") / "infer" / (src.resolve().stem or "capture")


def _blas_like_torch(run: Callable[..., InferenceResult]) -> Callable[..., InferenceResult]:
    """``run`` with numpy's and scipy's BLAS thread pools at torch's intra-op thread count
    (:func:`rayzer.utils.threads.blas_like_torch`; ``--threads``), restored after; scipy's
    solver is loaded first when ``init_cameras="matches"`` will use it."""

    @functools.wraps(run)
    def limited(*args: Any, **kwargs: Any) -> InferenceResult:
        preload = ("scipy.optimize",) if kwargs.get("init_cameras") == "matches" else ()
        with blas_like_torch(preload):
            return run(*args, **kwargs)

    return limited


@_blas_like_torch
def run_inference(
    images: str | Path | None = None,
    video: str | Path | None = None,
    *,
    ckpt: str | Path | None = None,
    model: LoadedModel | None = None,
    out: str | Path | None = None,
    device: str = "auto",
    size: int | None = None,
    aspect: str = "square",
    max_views: int = DEFAULT_MAX_VIEWS,
    skip_bad: bool = False,
    path_frames: int = 60,
    spiral_frames: int = 60,
    fps: float = 24.0,
    chunk: int = 8,
    overwrite: bool = False,
    progress: bool = False,
    render_size: int | None = None,
    refine: int = 0,
    refine_progress: Callable[[int, int, str], None] | None = None,
    fit: int = 0,
    fit_cameras: bool = False,
    fit_progress: Callable[[int, int, str], None] | None = None,
    init_cameras: str = "model",
    fit_size: int | None = None,
) -> InferenceResult:
    """Run the whole inference pipeline on an image folder or a video (see module doc).

    numpy's and scipy's BLAS threads are held at torch's thread count while it runs
    (``summary.json["blas_threads"]``) and restored after.

    Args:
        images / video: exactly one source: a folder of images (or with an ``images/``
            subfolder) or a video file.
        ckpt: checkpoint, or a bundled model's name (``"explicit"``: depth and Gaussians;
            default: the bundled RayZer); or ``model``: an already loaded one.
        out: output folder (default ``outputs/infer/<source name>``); must not exist unless
            ``overwrite``.
        device: ``auto`` | ``cpu`` | ``cuda``.
        size: short side of the model input (default: the model's training size); ``aspect``:
            ``square`` or ``keep`` (see :mod:`rayzer.data.images`).
        max_views: keep at most this many views, evenly spaced (2..64).
        skip_bad: skip undecodable images with a warning instead of failing.
        path_frames, spiral_frames, fps: novel-view video (0 frames disables a segment).
        chunk: views rendered per forward pass (bounds memory).
        progress: show progress bars on the rendering stages.
        render_size: short side of the novel views in pixels (default: the input's); models
            with 3D Gaussians only (:mod:`rayzer.infer.render_size`).
        refine: if > 0, refine the predicted cameras with this many iterations of photometric
            bundle adjustment on the model's depth (:mod:`rayzer.refine`; models with depth
            only); the written cameras are the refined ones unless the refinement stopped or
            its leave-one-out PSNR fell (then the model's, with a warning);
            ``summary.json["refine"]`` has the before/after figures (reprojection and
            leave-one-out PSNR), seconds and which cameras were kept (``cameras``, ``stopped``,
            ``rejected``). When the refined cameras are kept, the model's Gaussians are
            re-lifted along the refined cameras' rays at the model's depth
            (:func:`rayzer.models.gaussians.relift_scene`) and the renders, depth, points and
            novel views come from them (``summary.json["refine"]["rebuilt"]``).
        refine_progress: ``(done, total, stage)`` as the refinement goes
            (:data:`rayzer.refine.report.ReportProgress`), e.g. for a progress bar.
        fit: if > 0, fit the model's Gaussians to the input views with this many Adam steps
            through the rasterizer (after ``refine``; models with Gaussians only;
            :func:`rayzer.infer.fit_predicted.fit_predicted_scene`), the cameras too when
            ``fit_cameras``; the fitted scene is kept unless the fit stopped or its
            leave-one-out PSNR fell, and then the renders, depth, points, gaussians.ply and
            novel views come from it; ``summary.json["fit"]`` has the input-view and
            leave-one-out PSNR before/after, seconds and which scene was kept.
        fit_progress: ``(done, total, stage)`` as the fit goes.
        fit_size: short side of the photos the Gaussians are fitted to (default: the model
            input's, ``size``): the same files with the same crop prepared again at this size
            (a multiple of the patch size, same aspect ratio), e.g. the model at its 64 px
            training size and the fit at 128 px; the renders, depth and novel views stay at
            the model's size / ``render_size``; ``summary.json["fit"]["fit_size"]`` is
            ``[H, W]``.
        init_cameras: ``model`` (the model's cameras) or ``matches``: cameras solved from SIFT
            matches of the photos at their own resolution and bundle-adjusted
            (:mod:`rayzer.infer.matched_init`; needs OpenCV; ``--images`` only), before
            ``refine`` / ``fit``; views the matches do not register keep the model's cameras
            (with a warning); the model's Gaussians are re-lifted along the new cameras;
            ``summary.json["init_cameras"]`` has the report. ``refine`` then holds the
            registered views' cameras (and the focal) exactly and moves only the others
            (``summary.json["refine"]["held"]`` lists the held views; with every view
            registered nothing is refined).
    Raises:
        FileNotFoundError / ValueError: bad input, options or checkpoint (the message names the
            file and the problem; also ``out`` that is, contains or lies inside an input);
            FileExistsError: ``out`` exists; InferenceError: a stage
            failed otherwise. Nothing is left at ``out`` after a failure.
    """
    out = _plan_output(
        images, video, ckpt, out, overwrite, path_frames, spiral_frames, fps, chunk, refine
    )
    check_render_size(render_size)
    check_fit_steps(fit)
    check_fit_size(fit_size, fit)
    check_init_cameras(init_cameras)
    if init_cameras == "matches" and images is None:
        raise ValueError(
            "--init-cameras matches needs --images (the photos at their own resolution); "
            "extract the video's frames to a folder first"
        )
    timer = StageTimer(resolve_device(device) if model is None else model.device)
    with timer.stage("load_model"):
        if model is None:
            model = load_model(ckpt, timer.device)
    in_size = int(size) if size is not None else model.image_size
    also_sizes: tuple[int, ...] = ()
    if fit_size is not None and fit_size != in_size:
        check_fit_patch(fit_size, model)  # before any photo is decoded
        also_sizes = (fit_size,)  # each photo decoded once, fitted at both sizes
    views, x = _load_views(
        timer, model, images, video, size, aspect, max_views, skip_bad, also_sizes
    )
    check_model_renders_any_size(model, render_size, views.height, views.width)
    check_fit_model(model, fit)
    if refine and not model.model.capabilities.outputs_depth:
        raise ValueError(
            f"--refine needs a model that outputs depth (E-RayZer, NAS3R); "
            f"{model.model.title()} does not"
        )
    fit_x = x
    if also_sizes:
        fit_x = fit_photos(model, views, fit_size, aspect)  # type: ignore[arg-type]
    if fit:  # a fit that cannot fit in memory is refused before the model runs
        fit_hw = (int(fit_x.shape[-2]), int(fit_x.shape[-1]))
        check_fit_memory_before(len(views), (views.height, views.width), fit_hw, model.device)
    novel_hw = render_dims(views.height, views.width, render_size)
    frames = path_frames + spiral_frames
    check_frames_memory(*novel_hw, frames, max(path_frames, spiral_frames), render_size)
    pred = _predict(timer, model, x, path_frames, spiral_frames, chunk, progress, render_size)
    init_report = None
    if init_cameras == "matches":
        with timer.stage("init_cameras"):
            pred.cams, init_report = _init_from_matches(views, pred)
        if init_report.get("warning"):
            log.warning("init cameras from matches: %s", init_report["warning"])
        if init_report["num_registered"]:
            with timer.stage("rebuild_init"):
                init_report["rebuilt"] = _rebuild_at_cameras(
                    model,
                    x,
                    pred,
                    path_frames,
                    spiral_frames,
                    chunk,
                    progress,
                    render_size,
                    cameras="matched",
                )
    refine_report = None
    if refine:
        with timer.stage("refine"):
            held = _matched_views(init_report)
            pred.cams, refine_report = _refine(x, pred, refine, refine_progress, held)
        if held:
            log.info("refine: the cameras of views %s, registered by the matches, are held", held)
        if refine_report.get("cameras") == "refined":
            with timer.stage("rebuild"):
                refine_report["rebuilt"] = _rebuild_at_cameras(
                    model, x, pred, path_frames, spiral_frames, chunk, progress, render_size
                )
    fit_report = None
    if fit:
        fit_memory = _check_fit_memory(pred.scene, fit_x, fit_cameras)
        with timer.stage("fit"):
            pred.scene, pred.cams, fit_report = fit_predicted_scene(
                model,
                fit_x,
                pred.scene,
                pred.cams,
                fit,
                fit_cameras=fit_cameras,
                progress=fit_progress,
            )
        if fit_memory is not None:
            fit_report["estimated_memory_mb"] = round(fit_memory["estimated_bytes"] / 2**20, 1)
        if fit_report["scene"] == "fitted":
            with timer.stage("render_fitted"):
                _render_again(
                    model, x, pred, path_frames, spiral_frames, chunk, progress, render_size
                )
    _render_novel(timer, model, pred, progress)
    with staged_output(out, overwrite) as tmp:
        written = _write_outputs(tmp, out.name, timer, model, views, pred, fps)
        summary = _summary(views, model, pred, fps, aspect, timer, written)
        if init_report is not None:
            summary["init_cameras"] = init_report
        if refine_report is not None:
            summary["refine"] = refine_report
        if fit_report is not None:
            summary["fit"] = fit_report
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return InferenceResult(out=out, summary=summary, cameras=pred.cams, views=views)


def _check_fit_memory(scene: Any, fit_x: torch.Tensor, fit_cameras: bool) -> dict | None:
    """Refuse, before the fit, a fit of the predicted Gaussians at the fit size whose
    footprints would not fit in memory (:func:`rayzer.infer.fit_memory.check_fit_memory`)."""
    from rayzer.infer.fit_memory import check_fit_memory
    from rayzer.models.gaussians import GaussianScene
    from rayzer.refine.splat import SplatFitConfig

    if not isinstance(scene, GaussianScene):
        return None
    cfg = SplatFitConfig(refine_cameras=fit_cameras)  # the settings fit_predicted_scene uses
    hw = (int(fit_x.shape[-2]), int(fit_x.shape[-1]))
    return check_fit_memory(
        scene, hw, max_scale_px=cfg.max_scale_px, views_per_step=cfg.views_per_step
    )


def _matched_views(init_report: dict[str, Any] | None) -> list[int] | None:
    """The views whose cameras ``--init-cameras matches`` registered, which ``--refine`` holds:
    the matches' bundle adjustment on real correspondences is better evidence than the
    photometry on the model's depth (on real photos, refining them too moved them 2-5° further
    from the truth while the leave-one-out check accepted it; docs/benchmarks/real-cameras).
    None without matched cameras."""
    if not init_report or not init_report["num_registered"]:
        return None
    return [i for i, r in enumerate(init_report["registered"]) if r]


def _init_from_matches(views: PreparedViews, pred: _Predictions) -> tuple[Cameras, dict[str, Any]]:
    """The cameras from the photos' matches (model's where not registered) and the report."""
    photos = photos_from_files([v.source for v in views.views])
    boxes = [v.box for v in views.views]
    return init_from_matches(photos, boxes, pred.cams, pred.depth, pred.alpha)


def _refine(
    x: torch.Tensor,
    pred: _Predictions,
    steps: int,
    progress: Callable[[int, int, str], None] | None = None,
    held: list[int] | None = None,
) -> tuple[Cameras, dict[str, Any]]:
    """The predicted cameras refined on the model's depth, ``held`` views' cameras kept as they
    are, and the report for the summary; the refinement runs where ``x`` is (the model's
    device)."""
    from rayzer.infer.refine_predicted import refine_predicted_cameras

    return refine_predicted_cameras(
        x, pred.cams, pred.depth, pred.alpha, steps, held=held, progress=progress
    )


def _plan_output(
    images: str | Path | None,
    video: str | Path | None,
    ckpt: str | Path | None,
    out: str | Path | None,
    overwrite: bool,
    path_frames: int,
    spiral_frames: int,
    fps: float,
    chunk: int,
    refine: int = 0,
) -> Path:
    """Check the request before any work and return the output folder.

    Cheap input checks come first, so a wrong path is reported before any model question.
    """
    if (images is None) == (video is None):
        raise ValueError("give exactly one input: --images DIR or --video FILE")
    _check_counts(path_frames, spiral_frames, fps, chunk, refine)
    out = Path(out) if out is not None else default_output(images, video)
    inputs = {"--images": images, "--video": video, "--ckpt": checkpoint_location(ckpt)}
    check_output_folder(out, inputs, overwrite)
    if images is not None:
        find_image_files(images)
    elif not Path(video).is_file():  # type: ignore[arg-type]
        raise FileNotFoundError(f"video file not found: {video}")
    return out


def _load_views(
    timer: StageTimer,
    model: LoadedModel,
    images: str | Path | None,
    video: str | Path | None,
    size: int | None,
    aspect: str,
    max_views: int,
    skip_bad: bool,
    also_sizes: tuple[int, ...] = (),
) -> tuple[PreparedViews, torch.Tensor]:
    """Load and fit the views at the model's input size (and at ``also_sizes``, from the same
    decode: :attr:`PreparedViews.at_sizes`); returns them and the model's images."""
    in_size = int(size) if size is not None else model.image_size
    with timer.stage("load_images"):
        if images is not None:
            views = load_image_folder(
                images, in_size, model.patch_size, aspect, max_views, skip_bad, also_sizes
            )
        else:
            views = load_video_frames(
                video, in_size, model.patch_size, aspect, max_views, also_sizes
            )
        x = as_images(views, model)
    for note in views.notes:
        log.info("note: %s", note)
    return views, x


@dataclass
class _Predictions:
    """Everything the model produced for one capture (all on the CPU or the model's device)."""

    cams: Cameras
    renders: torch.Tensor  # (V, 3, H, W) input views rendered back, in [0, 1]
    depth: torch.Tensor | None  # (V, H, W) camera z-depth, for models that output depth
    view_psnr: list[float]  # reconstruction PSNR per input view
    segments: list[tuple[str, Cameras]]  # novel-view segments: ("path" | "spiral", cameras)
    spiral_info: Any
    novel_frames: list[np.ndarray]  # uint8 frames per segment (filled by _render_novel)
    gaussians: (
        dict[str, torch.Tensor] | None
    )  # the scene's Gaussians (CPU), where the model has them
    alpha: torch.Tensor | None = None  # (V, 1, H, W) accumulated opacity of the renders
    scene: Any = None  # the model's scene (dropped once the novel views are rendered)
    per_pass: list[int] = field(default_factory=list)  # views per render pass, per segment


def _predict(
    timer: StageTimer,
    model: LoadedModel,
    x: torch.Tensor,
    path_frames: int,
    spiral_frames: int,
    chunk: int,
    progress: bool,
    render_size: int | None = None,
) -> _Predictions:
    """Cameras, the latent scene, the input views rendered back and the plan of the novel views
    (at ``render_size``, see :mod:`rayzer.infer.render_size`; rendered by :func:`_render_novel`)."""
    with timer.stage("predict_cameras"):
        cams = predict_cameras(model, x)
    with timer.stage("reconstruct"):
        scene = build_scene(model, x, cams)
        # The novel views' cameras and memory plan come before any rendering, so a render
        # size that cannot fit is refused before the work.
        segments, spiral_info = _novel_segments(cams, path_frames, spiral_frames, render_size)
        per_pass = [views_per_pass(model, scene, c, chunk, render_size) for _, c in segments]
    with timer.stage("render_inputs"):
        renders, depth, alpha = render_scene_depth_alpha(
            model, scene, cams, chunk, progress, desc="render inputs"
        )
        view_psnr = psnr(renders, x).tolist()
    return _Predictions(
        cams, renders, depth, view_psnr, segments, spiral_info, [], None, alpha, scene, per_pass
    )


def _rebuild_at_cameras(
    model: LoadedModel,
    x: torch.Tensor,
    pred: _Predictions,
    path_frames: int,
    spiral_frames: int,
    chunk: int,
    progress: bool,
    render_size: int | None,
    cameras: str = "refined",
) -> dict[str, Any]:
    """Move the scene to ``pred.cams`` (the ``cameras``: refined, or matched by
    ``--init-cameras matches``): its Gaussians re-lifted along their rays at the model's depth
    (:func:`rayzer.models.gaussians.relift_scene`), the input views, depth and opacity rendered
    again from them and the novel-view path planned through them. Returns what
    ``summary.json["refine"]["rebuilt"]`` (or ``["init_cameras"]["rebuilt"]``) says."""
    from rayzer.models.gaussians import GaussianScene, relift_scene

    if not isinstance(pred.scene, GaussianScene):
        return {
            "outputs": [],
            "note": f"{model.model.title()}'s scene cannot be moved to other cameras: only the "
            f"written cameras (and points.ply) are the {cameras} ones",
        }
    dev = pred.scene.means.device
    cams = pred.cams
    pred.scene = relift_scene(pred.scene, cams.c2w[None].to(dev), cams.K_norm[None].to(dev))
    _render_again(model, x, pred, path_frames, spiral_frames, chunk, progress, render_size)
    return {
        "outputs": ["gaussians.ply", "renders/", "depth/", "points.ply", "novel views"],
        "note": f"the model's Gaussians re-lifted along the {cameras} cameras' rays at the "
        "model's depth, rotations turned with each camera; everything rendered from them",
    }


def _render_again(
    model: LoadedModel,
    x: torch.Tensor,
    pred: _Predictions,
    path_frames: int,
    spiral_frames: int,
    chunk: int,
    progress: bool,
    render_size: int | None,
) -> None:
    """Render the input views, depth and opacity again from ``pred.scene`` at ``pred.cams``
    (after a refinement or fit changed them) and plan the novel views through those cameras."""
    cams = pred.cams
    pred.renders, pred.depth, pred.alpha = render_scene_depth_alpha(
        model, pred.scene, cams, chunk, progress, desc="render inputs (refined scene)"
    )
    pred.view_psnr = psnr(pred.renders, x).tolist()
    pred.segments, pred.spiral_info = _novel_segments(cams, path_frames, spiral_frames, render_size)
    pred.per_pass = [
        views_per_pass(model, pred.scene, c, chunk, render_size) for _, c in pred.segments
    ]


def _render_novel(
    timer: StageTimer, model: LoadedModel, pred: _Predictions, progress: bool
) -> None:
    """Render the planned novel views into ``pred.novel_frames``, take the Gaussians (models
    with Gaussians) and drop the scene."""
    with timer.stage("render_novel"):
        pred.novel_frames = [
            to_uint8(render_scene(model, pred.scene, c, n, progress, desc=f"render {kind}"))
            for (kind, c), n in zip(pred.segments, pred.per_pass, strict=True)
        ]
    if model.model.capabilities.outputs_gaussians:
        pred.gaussians = {k: v.cpu() for k, v in model.model.gaussians(pred.scene).items()}
    pred.scene = None


def _novel_segments(
    cams: Cameras, path_frames: int, spiral_frames: int, render_size: int | None
) -> tuple[list[tuple[str, Cameras]], Any]:
    """The novel-view segments ``("path" | "spiral", cameras at the render size)`` and the
    spiral's description (None without a spiral)."""
    segments: list[tuple[str, Cameras]] = []
    novel_hw = render_dims(cams.height, cams.width, render_size)
    if path_frames:
        segments.append(("path", at_size(path_through(cams, path_frames), *novel_hw)))
    spiral_info = None
    if spiral_frames:
        spiral, spiral_info = spiral_around(cams, spiral_frames)
        segments.append(("spiral", at_size(spiral, *novel_hw)))
    return segments, spiral_info


def _write_outputs(
    tmp: Path,
    scene_name: str,
    timer: StageTimer,
    model: LoadedModel,
    views: PreparedViews,
    pred: _Predictions,
    fps: float,
) -> list[str]:
    """Write the exports, renders, novel-view video and camera plot into ``tmp``.

    Returns the written names, in order, for the summary.
    """
    cams = pred.cams
    H, W = views.height, views.width
    source_K = [v.source_intrinsics(cams.K[i].tolist(), (W, H)) for i, v in enumerate(views.views)]
    frame_extras = [
        {
            "source_file": v.source,
            "source_width": v.source_size[0],
            "source_height": v.source_size[1],
            "source_intrinsics": dict(zip(("fx", "fy", "cx", "cy"), source_K[i])),
            "crop_box": list(v.box),
            "reconstruction_psnr": _finite(pred.view_psnr[i]),
        }
        for i, v in enumerate(views.views)
    ]
    meta = {
        "source_format": "rayzer-infer",
        "predicted_by": str(model.checkpoint) if model.checkpoint else "in-memory model",
        "canonical_view": cams.canonical,
        "note": SCALE_NOTE,
    }
    with timer.stage("write_exports"):
        written = write_exports(
            tmp, views.images, views.names, cams, meta, frame_extras, scene=scene_name
        )
        write_pngs(tmp / "renders", to_uint8(pred.renders), views.names)
        written.append("renders/")
        if pred.depth is not None:  # models with capabilities.outputs_depth
            write_depth(tmp / "depth", pred.depth, views.names)
            written.append("depth/")
            write_points(tmp / "points.ply", pred.depth, cams, views.images)
            written.append("points.ply")
        if pred.gaussians is not None:
            write_gaussians(tmp / "gaussians.ply", pred.gaussians)
            written.append("gaussians.ply")
    with timer.stage("write_video"):
        if pred.novel_frames:
            novel_h, novel_w = pred.novel_frames[0].shape[1:3]
            written += _write_novel_views(
                tmp, pred.novel_frames, pred.segments, fps, novel_h, novel_w
            )
    with timer.stage("plot"):
        plot_cameras(tmp / "cameras.png", cams, [c for _, c in pred.segments])
        written.append("cameras.png")
    return written


def _write_novel_views(
    tmp: Path,
    novel_frames: list[np.ndarray],
    segments: list[tuple[str, Cameras]],
    fps: float,
    H: int,
    W: int,
) -> list[str]:
    """The novel-view video (MP4 and GIF) and its cameras, one segment after the other."""
    frames = np.concatenate(novel_frames)
    write_mp4(tmp / "novel_views.mp4", frames, fps)
    write_gif(tmp / "novel_views.gif", frames, fps)
    kinds = [k for (k, c) in segments for _ in range(len(c))]
    all_novel = Cameras(
        torch.cat([c.c2w for _, c in segments]),
        torch.cat([c.K for _, c in segments]),
        H,
        W,
    )
    (tmp / "novel_cameras.json").write_text(
        json.dumps(cameras_json(all_novel, kinds), indent=1) + "\n"
    )
    return ["novel_views.mp4", "novel_views.gif", "novel_cameras.json"]


def _finite(x: float) -> float | None:
    return round(x, 4) if math.isfinite(x) else None


def _summary(
    views: PreparedViews,
    model: LoadedModel,
    pred: _Predictions,
    fps: float,
    aspect: str,
    timer: StageTimer,
    written: list[str],
) -> dict[str, Any]:
    """The contents of ``summary.json``."""
    cams, view_psnr, segments, spiral_info = (
        pred.cams,
        pred.view_psnr,
        pred.segments,
        pred.spiral_info,
    )
    H, W = views.height, views.width
    fx, fy = float(cams.K[0, 0]), float(cams.K[0, 1])
    seconds = dict(timer.seconds)
    seconds["total"] = timer.total()
    cuda_peak = None
    if model.device.type == "cuda":
        cuda_peak = round(torch.cuda.max_memory_allocated(model.device) / 2**20, 1)
    finite_psnr = [p for p in view_psnr if math.isfinite(p)]
    return {
        "rayzer_version": rayzer.__version__,
        "input": {
            "kind": views.kind,
            "source": views.source,
            "found": views.found,
            "used": len(views),
            "files": [v.source for v in views.views],
            "skipped": views.skipped,
            "notes": views.notes,
        },
        "preprocessing": {
            "height": H,
            "width": W,
            "aspect": aspect,
            "policy": "EXIF-upright 8-bit RGB (alpha over white); scaled to cover HxW "
            "(antialiased), centre-cropped; see rayzer.data.images",
        },
        "model": {
            "checkpoint": str(model.checkpoint) if model.checkpoint else None,
            "bundled": model.bundled,
            "bundled_name": model.bundled_name,
            "step": model.step,
            "parameters": model.num_parameters,
            "training_image_size": model.image_size,
            "patch_size": model.patch_size,
        },
        "device": str(model.device),
        "torch_threads": torch.get_num_threads(),
        "blas_threads": blas_thread_counts(),  # numpy's / scipy's, held at torch's count
        "cameras": {
            "views": len(cams),
            "canonical_view": cams.canonical,
            "fx_px": fx,
            "fy_px": fy,
            "fov_x_deg": math.degrees(2 * math.atan(W / (2 * fx))),
            "fov_y_deg": math.degrees(2 * math.atan(H / (2 * fy))),
            "max_distance_from_canonical": float(
                (cams.c2w[:, :3, 3] - cams.c2w[cams.canonical or 0, :3, 3]).norm(dim=-1).max()
            ),
            "note": SCALE_NOTE,
        },
        "reconstruction_psnr_db": {
            "mean": _finite(sum(finite_psnr) / len(finite_psnr)) if finite_psnr else None,
            "per_view": {v.name: _finite(p) for v, p in zip(views.views, view_psnr)},
            "note": "input views rendered back from the latent scene built from all of them "
            "(a sanity figure, not a novel-view score)",
        },
        "novel_views": {
            "segments": {kind: len(c) for kind, c in segments},
            "height": segments[0][1].height if segments else None,
            "width": segments[0][1].width if segments else None,
            "fps": fps,
            "spiral_radius": spiral_info.radius if spiral_info else None,
            "spiral_focus_depth": spiral_info.focus_depth if spiral_info else None,
            "spiral_focus_from_converging_axes": spiral_info.focus_from_axes
            if spiral_info
            else None,
        },
        "timings_s": seconds,
        "peak_memory_mb": {
            "cpu_rss": peak_rss_mb(),
            "cpu_rss_after_stage": timer.peak_rss_mb,
            "cuda_allocated": cuda_peak,
        },
        "outputs": [*written, "summary.json"],
    }
