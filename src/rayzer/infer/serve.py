"""``rayzer serve``: a local Gradio app around :func:`rayzer.infer.pipeline.run_inference`.

Upload photos or a video (or pick a built-in synthetic example), run inference, and see the
camera plot, the novel-view video and the views rendered back; download a zip of all outputs.
With an explicit-3D model (E-RayZer, NAS3R) the page also shows the scene's 3D Gaussians in an
interactive viewer (Gradio's ``Model3D``, which renders a 3DGS ``.ply`` as a splat) and the
depth maps of the input views; for latent models (RayZer) those two panels are hidden.
Models with depth also offer test-time camera refinement (``rayzer infer --refine``: off by
default, at most :data:`MAX_REFINE_STEPS` iterations, with a progress bar); its before/after
figures are shown under the results.
It listens on 127.0.0.1 only, with Gradio's analytics off. Gradio is an optional extra
(``pip install 'rayzer[demo]'``); the model is loaded once at start-up.

Each request works in its own folder under ``work_dir`` (a temporary folder by default).

What a visitor can reach is kept small (:func:`serve`): the server keeps its uploads, results
and Gradio's file cache in one private temporary folder (mode 0700) that is deleted when it
stops; it serves files from that folder only (no ``allowed_paths``); the handler accepts input
files only from its upload folder (a request naming any other file is refused); and uploads are
limited to ``max_upload_mb`` each (:data:`MAX_UPLOAD_MB` by default, also checked per request).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rayzer.data.images import MAX_VIEWS, MIN_VIEWS
from rayzer.infer.model import LoadedModel, load_model
from rayzer.infer.pipeline import InferenceError, run_inference

INSTALL_HINT = "rayzer serve needs Gradio: pip install 'rayzer[demo]'"
#: Built-in examples: label -> (synthetic family, held-out test seed, frames).
EXAMPLES = {
    "synthetic orbit (object-centric)": ("orbit", 1_000_000, 8),
    "synthetic walk (room-scale)": ("walk", 1_000_001, 8),
}
NONE = "none: use my upload"
#: Default upload limit per request (and per file, by Gradio) in megabytes: dozens of photos or a
#: minute of phone video fit; the model sees at most 64 small views anyway.
MAX_UPLOAD_MB = 50.0
_MB = 1024 * 1024
#: Most refinement iterations a request may ask for: each runs four times (the cameras, then
#: the three fits of the leave-one-out check), 100 take tens of seconds on a CPU for 8 small
#: views, and the server runs one request at a time.
MAX_REFINE_STEPS = 100


def _import_gradio():
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError as err:
        raise ValueError(INSTALL_HINT) from err
    return gr


def _file_path(item: Any) -> Path:
    """Gradio hands uploads over as paths (or objects with ``.name`` in older versions)."""
    return Path(item if isinstance(item, str | os.PathLike) else item.name)


def check_received(
    paths: Sequence[Path], upload_dir: Path | None, max_upload_mb: float
) -> list[Path]:
    """The request's input files, refused unless each lies inside ``upload_dir`` and together
    they stay under ``max_upload_mb``.

    Why: a client can name any path in a request, not only what it uploaded; Gradio checks its
    own upload folder, this repeats the rule for the server's private one so the handler never
    reads other files (also under other Gradio versions or when called through the API). The
    size is checked here as well because Gradio limits each file, not their sum.

    Raises:
        ValueError: naming the file (or the total) and the rule.
    """
    total = 0
    for path in paths:
        if upload_dir is not None and not path.resolve().is_relative_to(upload_dir.resolve()):
            raise ValueError(f"{path.name}: not a file uploaded to this server")
        if not path.is_file():
            raise ValueError(f"{path.name}: no such uploaded file")
        total += path.stat().st_size
    if total > max_upload_mb * _MB:
        raise ValueError(
            f"upload of {total / _MB:.1f} MB is over this server's limit of {max_upload_mb:g} MB "
            "(rayzer serve --max-upload-mb)"
        )
    return list(paths)


#: Distance of Gradio's splat viewer camera from its orbit centre, the world origin (gsplat.js's
#: default orbit radius in the Model3D of Gradio 6); the displayed scene is scaled to fit it.
VIEWER_ORBIT_RADIUS = 5.0


def viewer_ply(src: Path, dst: Path) -> Path:
    """A copy of the 3DGS ply ``src`` for the 3D view: moved so the median Gaussian centre is at
    the origin (the viewer orbits the origin, while our frame has the canonical camera there and
    the scene in front of it) and scaled uniformly so 98 % of the centres lie within 40 % of the
    viewer's orbit radius. Same axes (OpenCV, y down, as the viewer expects of 3DGS files); the
    ``gaussians.ply`` in the outputs keeps the cameras' frame."""
    import torch

    from rayzer.render import load_ply

    g = load_ply(src)
    finite = g.means[torch.isfinite(g.means).all(dim=-1)]  # a stray NaN must not move the view
    if len(finite):
        centre = finite.median(dim=0).values
        radius = torch.quantile((finite - centre).norm(dim=-1).double(), 0.98).item()
        k = 0.4 * VIEWER_ORBIT_RADIUS / radius if math.isfinite(radius) and radius > 0 else 1.0
        g.means = ((g.means - centre) * k).float()
        g.log_scales = (g.log_scales + math.log(k)).float()
    return g.save(dst)


def check_refine_request(model: LoadedModel, steps: float | None, limit: int) -> int:
    """The refinement iterations a request asked for (0: none), refused with a clear message
    when the model has no depth to refine on or the number is not in ``[0, limit]``."""
    if steps is None or steps == 0:
        return 0
    try:  # a request through the API may send anything
        whole = not isinstance(steps, bool) and float(steps).is_integer()
    except (TypeError, ValueError):
        whole = False
    if not whole:
        raise ValueError(f"refinement iterations must be a whole number, got {steps!r}")
    steps = int(float(steps))
    if not model.model.capabilities.outputs_depth:
        raise ValueError(
            "camera refinement needs a model that outputs depth (E-RayZer, NAS3R); this "
            f"server's model, {model.model.title()}, does not: run it with refinement off"
        )
    if not 0 <= steps <= limit:
        raise ValueError(f"refinement iterations must be between 0 and {limit} on this server")
    return steps


def refine_note(summary: dict[str, Any]) -> str:
    """The page's Markdown line on a run's refinement (``summary["refine"]``), or "" without
    one: the before/after figures, the time and which cameras were kept, and why."""
    report = summary.get("refine")
    if not report:
        return ""

    def db(x: Any) -> str:
        return "n/a" if x is None else f"{x:.2f} dB"

    lines = [
        f"**Camera refinement**, {report.get('steps')} iterations "
        f"({report.get('total_seconds', report.get('seconds', 0))} s):",
        f"- reprojection PSNR (the objective): {db(report.get('reprojection_psnr_before'))} → "
        f"{db(report.get('reprojection_psnr_after'))}",
    ]
    held = report.get("held_out")
    if held:
        lines.append(
            f"- leave-one-out PSNR of view {held.get('view')} (predicted from the other views, "
            f"over the pixels both renders cover): {db(held.get('psnr_before'))} → "
            f"{db(held.get('psnr_after'))}"
        )
    if report.get("cameras") == "refined":
        kept = "the refined cameras"
        if report.get("rebuilt", {}).get("outputs"):
            kept += "; the Gaussians, depth, renders and video were rebuilt at them"
    else:
        why = report.get("stopped") or report.get("rejected") or "the refinement was not kept"
        kept = f"the model's cameras: {why}"
    lines.append(f"- kept: {kept}")
    return "\n".join(lines)


class Runner:
    """The app's request handler: one inference run per call, serialised by a lock (the model
    and the CPU are shared).

    Args:
        upload_dir: input files must lie inside it (the server's upload folder); None accepts
            any file (direct use from Python, where the caller names its own files).
        max_upload_mb: limit of the input files of one request together.
        max_refine_steps: most refinement iterations one request may ask for.
    """

    def __init__(
        self,
        model: LoadedModel,
        work_dir: Path,
        frames: int = 48,
        upload_dir: Path | None = None,
        max_upload_mb: float = MAX_UPLOAD_MB,
        max_refine_steps: int = MAX_REFINE_STEPS,
    ) -> None:
        self.model = model
        self.work_dir = work_dir
        self.frames = frames
        self.upload_dir = upload_dir
        self.max_upload_mb = max_upload_mb
        self.max_refine_steps = max_refine_steps
        self.lock = threading.Lock()

    def _inputs(self, job: Path, files: Sequence[Any] | None, video: Any, example: str | None):
        if example and example != NONE:
            from rayzer.data.synthetic import synth_command

            family, seed, frames = EXAMPLES[example]
            synth_command(family, seed, frames, self.model.image_size, str(job / "example"))
            return {"images": job / "example"}
        if video:
            (path,) = check_received([_file_path(video)], self.upload_dir, self.max_upload_mb)
            return {"video": path}
        if files:
            received = [_file_path(item) for item in files]
            folder = job / "uploads"
            folder.mkdir(parents=True)
            for src in check_received(received, self.upload_dir, self.max_upload_mb):
                shutil.copy(src, folder / src.name)
            return {"images": folder}
        raise ValueError("upload images or a video, or pick an example")

    def __call__(
        self,
        files: Sequence[Any] | None,
        video: Any,
        example: str | None,
        max_views: float,
        show_progress: bool = False,
        refine: float = 0,
        refine_progress: Callable[[int, int, str], None] | None = None,
    ) -> tuple[str, str, list[str], list[str], str | None, str, dict[str, Any]]:
        """One run: the camera plot, the novel-view video, the renders, the depth pictures
        (models with depth, else empty), the 3D view's copy of ``gaussians.ply`` (models with
        Gaussians, else None), the zip of all outputs and the summary (paths as strings).
        ``show_progress``: the rendering stages report progress bars (the page shows them).
        ``refine``: camera refinement iterations (0: off; models with depth; at most
        ``max_refine_steps``), reported to ``refine_progress(done, total, stage)``."""
        gr = _import_gradio()
        try:  # before any work, and before a folder is made
            steps = check_refine_request(self.model, refine, self.max_refine_steps)
        except ValueError as err:
            raise gr.Error(str(err)) from None
        job = self.work_dir / uuid.uuid4().hex[:12]
        job.mkdir(parents=True)
        try:
            source = self._inputs(job, files, video, example)
            with self.lock:
                result = run_inference(
                    **source,
                    model=self.model,
                    out=job / "rayzer_outputs",
                    max_views=int(max_views),
                    skip_bad=True,
                    path_frames=self.frames,
                    spiral_frames=self.frames,
                    progress=show_progress,
                    refine=steps,
                    refine_progress=refine_progress if steps else None,
                )
        except (FileNotFoundError, ValueError, InferenceError) as err:
            raise gr.Error(str(err)) from None
        out = result.out
        archive = shutil.make_archive(str(job / "rayzer_outputs"), "zip", out)
        renders = [str(p) for p in sorted((out / "renders").glob("*.png"))]
        depth = [str(p) for p in sorted((out / "depth").glob("*.png"))]
        gaussians = out / "gaussians.ply"
        view = None
        if gaussians.is_file():
            # The 3D view is a convenience: if its copy cannot be made, the page still shows
            # everything else and the zip still holds gaussians.ply.
            try:
                view = viewer_ply(gaussians, job / "gaussians_view.ply")
            except (OSError, ValueError, RuntimeError) as err:
                logging.getLogger(__name__).warning("3D view unavailable: %s", err)
        return (
            str(out / "cameras.png"),
            str(out / "novel_views.mp4"),
            renders,
            depth,
            str(view) if view is not None else None,
            archive,
            result.summary,
        )


def _refine_info(model: LoadedModel, max_steps: int) -> str:
    """The refinement slider's caption: what it does, or why it is unavailable."""
    if not model.model.capabilities.outputs_depth:
        return (
            "unavailable: camera refinement needs a model that outputs depth (E-RayZer, NAS3R); "
            f"{model.model.title()} does not"
        )
    if max_steps <= 0:
        return "unavailable: turned off on this server (rayzer serve --max-refine-steps 0)"
    return (
        "photometric bundle adjustment on the model's depth, checked on a left-out view "
        f"(rayzer infer --refine); slower; at most {max_steps} on this server"
    )


def build_app(
    model: LoadedModel,
    work_dir: str | Path | None = None,
    frames: int = 48,
    upload_dir: str | Path | None = None,
    max_upload_mb: float = MAX_UPLOAD_MB,
    max_refine_steps: int = MAX_REFINE_STEPS,
):
    """The Gradio Blocks app (not launched). ``frames``: novel views per path segment;
    ``upload_dir``: the only folder input files may come from (default: Gradio's upload folder
    as configured now, ``GRADIO_TEMP_DIR``); ``max_upload_mb``, ``max_refine_steps``: see
    :class:`Runner` (0 refinement steps: the slider is shown disabled)."""
    gr = _import_gradio()
    from gradio.utils import get_upload_folder

    work = (
        Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="rayzer-serve-"))
    )
    uploads = Path(upload_dir) if upload_dir is not None else Path(get_upload_folder())
    runner = Runner(model, work, frames, uploads, max_upload_mb, max_refine_steps)
    caps = model.model.capabilities
    with gr.Blocks(title="RayZer") as app:
        gr.Markdown(
            "# RayZer\nUpload 2–64 photos of a static scene (or a video, or pick an example): "
            "RayZer predicts the cameras and renders novel views. Photos are ordered by file "
            "name, centre-cropped to the model's input size."
        )
        with gr.Row():
            with gr.Column():
                files = gr.File(
                    label="photos", file_count="multiple", file_types=["image"], elem_id="images"
                )
                video = gr.File(label="or a video", file_types=["video"], elem_id="video")
                example = gr.Dropdown(
                    [NONE, *EXAMPLES], value=NONE, label="or an example", elem_id="example"
                )
                max_views = gr.Slider(
                    MIN_VIEWS, MAX_VIEWS, value=24, step=1, label="max views", elem_id="max_views"
                )
                refine_steps = gr.Slider(
                    0,
                    max(1, runner.max_refine_steps),  # a slider needs a range, even when off
                    value=0,
                    step=1,
                    label="refine the cameras: iterations (0 = off)",
                    info=_refine_info(model, runner.max_refine_steps),
                    interactive=caps.outputs_depth and runner.max_refine_steps > 0,
                    elem_id="refine",
                )
                run = gr.Button("Run", variant="primary", elem_id="run")
            with gr.Column():
                novel = gr.Video(label="novel views", elem_id="novel_video")
                plot = gr.Image(label="predicted cameras", elem_id="camera_plot")
        with gr.Row():
            gaussians = gr.Model3D(
                label="3D Gaussians (drag to orbit, scroll to zoom; centred for viewing, "
                "gaussians.ply in the zip keeps the cameras' frame)",
                elem_id="gaussians",
                height=480,
                visible=caps.outputs_gaussians,
            )
            depth = gr.Gallery(
                label="depth of the input views (inverse depth, near = red)",
                columns=4,
                elem_id="depth",
                visible=caps.outputs_depth,
            )
        renders = gr.Gallery(label="views rendered back", columns=8, elem_id="renders")
        refinement = gr.Markdown(elem_id="refine_summary")
        with gr.Row():
            archive = gr.File(label="all outputs (zip)", elem_id="archive")
            summary = gr.JSON(label="summary", elem_id="summary")

        tracker = gr.Progress(track_tqdm=True)

        def run_request(files, video, example, max_views, refine_steps, progress=tracker):
            # A gr.Progress default makes Gradio mirror the pipeline's tqdm bars on the page;
            # the refinement reports its iterations to the same bar.
            def refining(done: int, total: int, stage: str) -> None:
                progress((done, total), desc=f"refine: {stage}", unit="iterations")

            outputs = runner(
                files,
                video,
                example,
                max_views,
                show_progress=True,
                refine=refine_steps,
                refine_progress=refining,
            )
            return (*outputs, refine_note(outputs[-1]))

        run.click(
            run_request,
            inputs=[files, video, example, max_views, refine_steps],
            outputs=[plot, novel, renders, depth, gaussians, archive, summary, refinement],
        )
    return app


class Server:
    """A launched app and its private folder; :meth:`close` stops it and deletes the folder.

    Attributes:
        app: the Gradio Blocks; url: where it listens; folder: the private temporary folder
            (uploads in ``gradio/``, request folders in ``jobs/``).
    """

    def __init__(self, app: Any, url: str, folder: Path, old_temp_dir: str | None) -> None:
        self.app, self.url, self.folder = app, url, folder
        self._old_temp_dir = old_temp_dir

    def close(self) -> None:
        """Stop serving, delete the private folder, restore ``GRADIO_TEMP_DIR``."""
        self.app.close(verbose=False)
        shutil.rmtree(self.folder, ignore_errors=True)
        _set_env("GRADIO_TEMP_DIR", self._old_temp_dir)


def _set_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def serve(
    ckpt: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    device: str = "auto",
    frames: int = 48,
    block: bool = True,
    max_upload_mb: float = MAX_UPLOAD_MB,
    max_refine_steps: int = MAX_REFINE_STEPS,
) -> Server:
    """Load the model and launch the app (local only unless ``host`` says otherwise).

    Gradio keeps uploads and the files it serves in ``GRADIO_TEMP_DIR``; it is pointed at a
    fresh private folder for the server's life, so the server serves nothing else (see the
    module doc). With ``block`` it serves until interrupted, then cleans up; otherwise the
    caller calls :meth:`Server.close`.

    Raises:
        ValueError: ``max_upload_mb`` not positive, ``max_refine_steps`` negative, Gradio missing,
            or a bad checkpoint.
    """
    if not max_upload_mb > 0:
        raise ValueError(f"--max-upload-mb must be > 0, got {max_upload_mb}")
    if isinstance(max_refine_steps, bool) or not isinstance(max_refine_steps, int):
        raise ValueError(f"--max-refine-steps must be a whole number, got {max_refine_steps!r}")
    if max_refine_steps < 0:
        raise ValueError(f"--max-refine-steps must be >= 0 (0: off), got {max_refine_steps}")
    gr = _import_gradio()
    model = load_model(ckpt, device)
    folder = Path(tempfile.mkdtemp(prefix="rayzer-serve-"))  # mode 0700: this user only
    old_temp_dir = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(folder / "gradio")
    try:
        app = build_app(
            model, folder / "jobs", frames, folder / "gradio", max_upload_mb, max_refine_steps
        )
        _, url, _ = app.queue(default_concurrency_limit=1).launch(
            server_name=host,
            server_port=port,
            prevent_thread_lock=True,
            quiet=True,
            allowed_paths=[],
            max_file_size=int(max_upload_mb * _MB),
            footer_links=[],
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        _set_env("GRADIO_TEMP_DIR", old_temp_dir)
        raise
    server = Server(app, url, folder, old_temp_dir)
    print(f"rayzer serve: {url} (Ctrl+C to stop)")
    if block:
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.close()
    del gr
    return server
