"""``rayzer serve``: a local Gradio app around :func:`rayzer.infer.pipeline.run_inference`.

Upload photos or a video (or pick a built-in synthetic example), run inference, and see the
camera plot, the novel-view video and the views rendered back; download a zip of all outputs.
It listens on 127.0.0.1 only, with Gradio's analytics off. Gradio is an optional extra
(``pip install 'rayzer[demo]'``); the model is loaded once at start-up.

Each request works in its own folder under ``work_dir`` (a temporary folder by default).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Sequence
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


class Runner:
    """The app's request handler: one inference run per call, serialised by a lock (the model
    and the CPU are shared)."""

    def __init__(self, model: LoadedModel, work_dir: Path, frames: int = 48) -> None:
        self.model = model
        self.work_dir = work_dir
        self.frames = frames
        self.lock = threading.Lock()

    def _inputs(self, job: Path, files: Sequence[Any] | None, video: Any, example: str | None):
        if example and example != NONE:
            from rayzer.data.synthetic import synth_command

            family, seed, frames = EXAMPLES[example]
            synth_command(family, seed, frames, self.model.image_size, str(job / "example"))
            return {"images": job / "example"}
        if video:
            return {"video": _file_path(video)}
        if files:
            folder = job / "uploads"
            folder.mkdir(parents=True)
            for item in files:
                src = _file_path(item)
                shutil.copy(src, folder / src.name)
            return {"images": folder}
        raise ValueError("upload images or a video, or pick an example")

    def __call__(
        self, files: Sequence[Any] | None, video: Any, example: str | None, max_views: float
    ) -> tuple[str, str, list[str], str, dict[str, Any]]:
        gr = _import_gradio()
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
                )
        except (FileNotFoundError, ValueError, InferenceError) as err:
            raise gr.Error(str(err)) from None
        out = result.out
        archive = shutil.make_archive(str(job / "rayzer_outputs"), "zip", out)
        renders = [str(p) for p in sorted((out / "renders").glob("*.png"))]
        return (
            str(out / "cameras.png"),
            str(out / "novel_views.mp4"),
            renders,
            archive,
            result.summary,
        )


def build_app(model: LoadedModel, work_dir: str | Path | None = None, frames: int = 48):
    """The Gradio Blocks app (not launched). ``frames``: novel views per path segment."""
    gr = _import_gradio()
    work = (
        Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="rayzer-serve-"))
    )
    runner = Runner(model, work, frames)
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
                run = gr.Button("Run", variant="primary", elem_id="run")
            with gr.Column():
                novel = gr.Video(label="novel views", elem_id="novel_video")
                plot = gr.Image(label="predicted cameras", elem_id="camera_plot")
        renders = gr.Gallery(label="views rendered back", columns=8, elem_id="renders")
        with gr.Row():
            archive = gr.File(label="all outputs (zip)", elem_id="archive")
            summary = gr.JSON(label="summary", elem_id="summary")
        run.click(
            runner,
            inputs=[files, video, example, max_views],
            outputs=[plot, novel, renders, archive, summary],
        )
    return app


def serve(
    ckpt: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    device: str = "auto",
    frames: int = 48,
    block: bool = True,
):
    """Load the model and launch the app (local only unless ``host`` says otherwise).

    Returns ``(app, url)``; with ``block`` it serves until interrupted.
    """
    gr = _import_gradio()
    model = load_model(ckpt, device)
    app = build_app(model, frames=frames)
    allowed = [tempfile.gettempdir()]
    _, url, _ = app.queue(default_concurrency_limit=1).launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        allowed_paths=allowed,
        footer_links=[],
    )
    print(f"rayzer serve: {url} (Ctrl+C to stop)")
    if block:
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            app.close()
    del gr
    return app, url
