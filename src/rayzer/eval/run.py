"""``rayzer eval``: evaluate a checkpoint (or the bundled model) on a dataset and write a report.

Per scene (views from the protocol or index file, fitted to the model input by
:mod:`rayzer.eval.eval_data`), every method renders the target views and is scored with
:func:`rayzer.eval.novel_view.evaluate`:

* for a model that predicts cameras (``<model>`` is its registered name, e.g. ``rayzer``):
  ``<model>_with_targets`` — the paper's protocol: cameras of all views from one pass that sees
  the target images too (:func:`rayzer.eval.novel_view.model_novel_views`), and
  ``<model>_without_targets`` — the context-only cameras, each target registered from its own
  pass with the context (:mod:`rayzer.eval.camera_paths`);
* for a model that needs ground-truth cameras (e.g. ``lvsm``): one row under its name, on posed
  scenes only;
* ``copy_nearest`` and ``mean_of_inputs`` baselines.

Images: PSNR (renders clamped to [0, 1], per image, capped at 100 dB), SSIM, LPIPS-VGG and LPIPS-Alex — means over each
scene's targets, then means over scenes. Poses (posed scenes): :mod:`rayzer.eval.camera_metrics`,
pooled over the pairs / cameras of all scenes. Depth (models with ``outputs_depth`` on scenes
with ``depth/``, e.g. ``rayzer data synth`` output): AbsRel and δ<1.25 of the input views'
z-depth after per-image median scaling (:mod:`rayzer.eval.depth_metrics`; depth maps fitted to
the model input like the images, nearest-neighbour). Protocols ``erayzer`` and ``nas3r`` are the
papers' splits (:mod:`rayzer.data.protocols`; ``nas3r``: one sample per target, with overlap
tags and per-tag image metrics). Renders at ground-truth cameras exist only after a similarity
alignment: on posed data the ``<model>_at_gt_cameras`` row renders the true target cameras
mapped into the model's frame by the similarity that aligns the true context cameras onto the
predicted ones (:mod:`rayzer.eval.gt_cameras`); every other camera-predicting row renders at the
model's own cameras (the ``_without_targets`` row registers each target's pass by a similarity
alignment of its context cameras). Options add pose probing
(:mod:`rayzer.eval.probe`), interpolation (:mod:`rayzer.eval.interpolation`) and a COLMAP
reference (:mod:`rayzer.eval.colmap_reference`).

Output (written to a hidden temporary sibling and renamed into place only when complete):
``metrics.json``, ``metrics.md`` and ``grids/<NNNN>_<scene>.png`` (inputs, targets, renders and
error maps per scene).

The stages live in three modules: this one plans the run (options, model, scenes) and writes the
report; :mod:`rayzer.eval.eval_scene` evaluates one scene; :mod:`rayzer.eval.eval_summary`
aggregates the scenes.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from rayzer.eval.camera_metrics import POSE_DEFINITIONS
from rayzer.eval.depth_metrics import DEPTH_DEFINITIONS
from rayzer.eval.eval_data import (
    EvalScene,
    list_scene_entries,
    parse_protocol,
    plan_scenes,
    resolve_dataset,
)
from rayzer.eval.eval_scene import LPIPS_NETS, WITH, WITHOUT, RunState, evaluate_scene, methods_for
from rayzer.eval.eval_summary import colmap_summary, interp_summary, probe_report, summary
from rayzer.eval.novel_view import PSNR_CAP_DB

__all__ = [
    "IMAGE_DEFINITIONS",
    "LPIPS_NETS",
    "WITH",
    "WITHOUT",
    "EvalRun",
    "default_output",
    "load_lpips_modules",
    "parse_lpips",
    "run_eval",
]

log = logging.getLogger("rayzer.eval")

IMAGE_DEFINITIONS = {
    "psnr": f"per target image, 10 log10(1 / MSE) with renders clamped to [0, 1], capped at "
    f"{PSNR_CAP_DB:g} dB; mean over the scene's targets, then mean over scenes",
    "ssim": "11x11 Gaussian window (sigma 1.5), data range 1, per image (agrees with "
    "scikit-image structural_similarity); same averaging",
    "lpips_vgg / lpips_alex": "LPIPS v0.1 with the VGG-16 / AlexNet backbone (weights of lpips "
    "0.1.4); same clamping and averaging; null only when disabled with --lpips none",
    "rayzer_with_targets": "cameras of all views from one camera-estimator pass over context AND "
    "target images (the RayZer paper's protocol); the scene is built from the context views",
    "rayzer_without_targets": "context cameras from a pass over the context images only (they "
    "build the scene); each target's camera from a pass over the context + that one target, "
    "mapped into the context-only frame by the similarity aligning that pass's context cameras "
    "to the context-only ones (no pass ever sees two targets)",
    "<model>_at_gt_cameras": "posed data only: the scene from the context images with their "
    "context-only cameras, rendered at the TRUE target cameras and intrinsics mapped into the "
    "model's frame by the similarity aligning the true context cameras onto the predicted ones "
    "(rotation from the camera orientations, scale and translation from the centres; "
    "rayzer.eval.gt_cameras); never at raw true cameras",
    "copy_nearest": "each target = the context view nearest in frame number",
    "mean_of_inputs": "each target = the pixel-wise mean of the context views",
}


@dataclass
class EvalRun:
    """Result of :func:`run_eval`: the output folder and the metrics written to it."""

    out: Path
    metrics: dict[str, Any]


# -- options ----------------------------------------------------------------------------------


def parse_lpips(value: str | Sequence[str]) -> tuple[str, ...]:
    """``"vgg,alex"`` / ``"vgg"`` / ``"none"`` → nets to compute (empty for none)."""
    items = [v.strip().lower() for v in (value.split(",") if isinstance(value, str) else value)]
    items = [v for v in items if v]
    if items == ["none"]:
        return ()
    bad = [v for v in items if v not in LPIPS_NETS]
    if bad or not items:
        raise ValueError(f"--lpips must be a comma list of vgg, alex, or none; got {value!r}")
    return tuple(dict.fromkeys(items))


def load_lpips_modules(
    nets: Sequence[str], device: torch.device, size: int
) -> dict[str, nn.Module]:
    """LPIPS modules, or a clear error (never a silent 0): missing weights, images too small."""
    from rayzer.eval.lpips import LPIPS, AlexFeatures, VGGFeatures

    modules: dict[str, nn.Module] = {}
    for net in nets:
        min_size = {"vgg": VGGFeatures.MIN_SIZE, "alex": AlexFeatures.MIN_SIZE}[net]
        if size < min_size:
            raise ValueError(
                f"LPIPS-{net} needs images of at least {min_size} px, --size is {size}; use a "
                "larger --size, other --lpips nets, or --lpips none"
            )
        try:
            modules[net] = LPIPS(net).to(device)
        except (FileNotFoundError, ValueError) as err:
            raise ValueError(
                f"LPIPS-{net} is unavailable: {err}. Install the weights or pass --lpips none "
                "to evaluate without LPIPS"
            ) from err
    return modules


def default_output(data: str | Path) -> Path:
    """``outputs/eval/<data folder or file stem>``."""
    return Path("outputs") / "eval" / (Path(data).resolve().stem or "data")


def _finite(obj: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (JSON has no NaN / inf)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _safe_name(name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_.=+" else "_" for c in name).strip(".")
    return safe[:80] or "scene"


# -- the command ----------------------------------------------------------------------------------


def run_eval(
    data: str | Path,
    *,
    ckpt: str | Path | None = None,
    out: str | Path | None = None,
    protocol: str = "even",
    num_context: int | None = None,
    num_target: int | None = None,
    span: int | None = None,
    seed: int = 0,
    size: int | None = None,
    lpips: str | Sequence[str] = "vgg,alex",
    probe: bool = False,
    probe_train: str | Path | None = None,
    probe_samples: int = 4,
    probe_steps: int = 1000,
    interp: bool = False,
    interp_frames: int = 8,
    colmap: bool = False,
    device: str = "auto",
    max_scenes: int | None = None,
    format: str | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> EvalRun:
    """Evaluate a model on ``data`` and write the report folder (module docstring).

    Args:
        data: scene folder, folder of scene folders, or any ``rayzer data convert`` source.
        ckpt: checkpoint / run directory; None or ``"default"``: the bundled model, ``"explicit"``:
            the bundled explicit-3D model (:func:`rayzer.bundled.resolve_model`).
        out: output folder (default ``outputs/eval/<data name>``); must not exist unless
            ``overwrite``.
        protocol: ``even``, ``random`` or an index JSON (pixelSplat / LVSM / RayZer style).
        num_context, num_target: views per sample (default: the checkpoint's training counts;
            ignored for index files, which list the frames).
        span: window of frames the views are drawn from (default: the whole scene).
        seed: seed of the random protocol (and of the probe).
        size: square model input side S (S × S); default: the checkpoint's training size
            (``data.image_size``: H × W for a non-square checkpoint).
        lpips: ``"vgg,alex"``, one of them, or ``"none"``.
        probe / probe_train / probe_samples / probe_steps: pose probing (camera-predicting models),
            trained on ``probe_train`` scenes (default: every other evaluated posed scene) with
            ``probe_samples`` random samples per scene.
        interp / interp_frames: interpolation with at most ``interp_frames`` frames per scene.
        colmap: COLMAP reference per scene (skipped with a reason without pycolmap).
        device: ``auto`` | ``cpu`` | ``cuda``.
        max_scenes: evaluate only the first N scenes (folder order).
        format: source format of ``data`` (default: auto-detect).
        progress: progress bar on stderr (None: only on a terminal).
    Raises:
        FileNotFoundError / ValueError with a message naming the file or option; nothing is
        left at ``out`` on failure.
    """
    t0 = time.perf_counter()
    counts = (probe_samples, probe_steps, interp_frames)
    nets = _check_options(protocol, lpips, num_context, num_target, span, max_scenes, counts)
    out = _check_paths(data, out, ckpt, probe_train, overwrite)
    loaded = _load_model(ckpt, device, size, needs_cameras=probe or interp or colmap)
    num_context, num_target = _view_counts(loaded, protocol, num_context, num_target)
    lpips_modules = load_lpips_modules(nets, loaded.device, loaded.side)
    show = sys.stderr.isatty() if progress is None else progress
    with tempfile.TemporaryDirectory(prefix="rayzer-eval-") as work_dir:
        work = Path(work_dir)
        root, fmt = resolve_dataset(data, work / "data", format, log=log.info)
        scenes, skipped = _plan(
            data, root, loaded.model, protocol, num_context, num_target, seed, span, max_scenes
        )
        run = RunState(
            model=loaded.model,
            methods=methods_for(loaded.model, posed=all(s.entry.posed for s in scenes)),
            out_hw=loaded.out_hw,
            lpips=lpips_modules,
            device=loaded.device,
            work=work,
            interp_frames=interp_frames if interp else None,
            colmap=colmap,
            collect_probe=probe,
            probe_views=num_context + num_target,
            probe_samples=probe_samples,
            seed=seed,
            span=span,
        )
        from rayzer.utils.atomic import staged_output

        with staged_output(out, overwrite) as tmp:
            _evaluate_scenes(run, scenes, tmp, show)
            probed = probe_report(run, probe_train, probe_steps) if probe else None
            metrics = _metrics(
                run,
                loaded,
                settings={
                    "data": str(data),
                    "data_format": fmt,
                    "protocol": protocol,
                    "num_context": num_context,
                    "num_target": num_target,
                },
                nets=nets,
                probed=probed,
                skipped=skipped,
                t0=t0,
            )
            _write_report(tmp, metrics)
    return EvalRun(out, metrics)


# -- plan: options, output folder, model, scenes ----------------------------------------------------


def _check_options(
    protocol: str,
    lpips: str | Sequence[str],
    num_context: int | None,
    num_target: int | None,
    span: int | None,
    max_scenes: int | None,
    probe_and_interp: tuple[int, int, int],
) -> tuple[str, ...]:
    """Validate the options that need no file; the LPIPS nets to compute."""
    nets = parse_lpips(lpips)
    parse_protocol(protocol)
    for name, value in (
        ("--context", num_context),
        ("--target", num_target),
        ("--span", span),
        ("--max-scenes", max_scenes),
    ):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if min(probe_and_interp) < 1:
        raise ValueError("--probe-samples, --probe-steps and --interp-frames must be >= 1")
    return nets


def _check_paths(
    data: str | Path,
    out: str | Path | None,
    ckpt: str | Path | None,
    probe_train: str | Path | None,
    overwrite: bool,
) -> Path:
    """The output folder (default :func:`default_output`), checked apart from the inputs and
    free (or replaceable with ``overwrite``); ``data`` must exist."""
    from rayzer.bundled import checkpoint_location
    from rayzer.utils.paths import check_output_folder

    out = Path(out) if out is not None else default_output(data)
    ckpt_path = checkpoint_location(ckpt)  # a bundled model: its folder in the package
    inputs = {"--data": data, "--ckpt": ckpt_path, "--probe-train": probe_train}
    check_output_folder(out, inputs, overwrite)
    if not Path(data).exists():
        raise FileNotFoundError(f"--data not found: {data}")
    return out


@dataclass
class _Loaded:
    """The evaluated model and what its checkpoint fixes for the run."""

    trained: Any  # rayzer.checkpoints.TrainedModel
    bundled: bool  # a bundled model (no --ckpt, or its name)
    device: torch.device
    side: int  # the model input's short side
    out_hw: tuple[int, int]

    @property
    def model(self) -> nn.Module:
        """The model itself."""
        return self.trained.model


def _load_model(
    ckpt: str | Path | None, device: str, size: int | None, *, needs_cameras: bool
) -> _Loaded:
    """Load the checkpoint (None or a bundled name: a bundled model) on ``device``; refuse the
    camera-only options (``needs_cameras``) for a model that does not predict cameras."""
    from rayzer.bundled import resolve_model
    from rayzer.checkpoints import load_trained_model
    from rayzer.data.images import output_size
    from rayzer.utils.device import resolve_device

    dev = resolve_device(device)
    location, name = resolve_model(ckpt)
    trained = load_trained_model(location, dev)
    model = trained.model
    if not model.capabilities.predicts_cameras and needs_cameras:
        raise ValueError(
            "--probe, --interp and --colmap need a model that predicts cameras; "
            f"{trained.path} holds a {model.name!r} model"
        )
    side = int(size or trained.config.data.short_side)
    out_hw = output_size(side, model.image_multiple, "square")
    if size is None:  # the training size: a non-square checkpoint is evaluated at its H × W
        out_hw = trained.config.data.image_hw  # sides checked against the patch by the config
    return _Loaded(trained, name is not None, dev, side, out_hw)


def _view_counts(
    loaded: _Loaded, protocol: str, num_context: int | None, num_target: int | None
) -> tuple[int, int]:
    """Context and target views per sample: the paper protocol's own, else the options, else
    the checkpoint's training counts."""
    from rayzer.data.protocols import PAPER_PROTOCOLS

    if protocol in PAPER_PROTOCOLS:  # the paper's own view counts
        num_context, num_target = PAPER_PROTOCOLS[protocol]
    cfg = loaded.trained.config
    return int(num_context or cfg.data.num_input_views), int(
        num_target or cfg.data.num_target_views
    )


def _plan(
    data: str | Path,
    root: Path,
    model: nn.Module,
    protocol: str,
    num_context: int,
    num_target: int,
    seed: int,
    span: int | None,
    max_scenes: int | None,
) -> tuple[list[EvalScene], list[dict[str, Any]]]:
    """The scenes to evaluate (first ``max_scenes``; posed only for a model that needs
    ground-truth cameras) and the skipped ones with a reason; an error when none is left."""
    scenes, skipped = plan_scenes(
        list_scene_entries(root), protocol, num_context, num_target, seed=seed, span=span
    )
    if max_scenes is not None:
        scenes = scenes[:max_scenes]
    if model.capabilities.needs_gt_cameras:
        reason = f"unposed: the {model.name} model needs ground-truth cameras"
        skipped += [{"scene": s.name, "reason": reason} for s in scenes if not s.entry.posed]
        scenes = [s for s in scenes if s.entry.posed]
    if not scenes:
        reasons = "; ".join(f"{s['scene']}: {s['reason']}" for s in skipped[:5])
        raise ValueError(f"{data}: no scene can be evaluated ({reasons or 'no scenes'})")
    return scenes, skipped


# -- per scene --------------------------------------------------------------------------------------


def _evaluate_scenes(run: RunState, scenes: list[EvalScene], tmp: Path, show: bool) -> None:
    """Evaluate every scene in order (grids under ``tmp/grids``), with a progress bar."""
    (tmp / "grids").mkdir(parents=True)
    bar = tqdm(scenes, desc="rayzer eval", unit="scene", disable=not show, file=sys.stderr)
    for number, scene in enumerate(bar):
        grid = tmp / "grids" / f"{number:04d}_{_safe_name(scene.name)}.png"
        record = evaluate_scene(run, scene, number, grid)
        bar.set_postfix(psnr=f"{record['methods'][run.methods[0].name]['psnr']:.2f}")


# -- report -----------------------------------------------------------------------------------------


def _metrics(
    run: RunState,
    loaded: _Loaded,
    *,
    settings: dict[str, Any],
    nets: tuple[str, ...],
    probed: dict[str, Any] | None,
    skipped: list[dict[str, Any]],
    t0: float,
) -> dict[str, Any]:
    """The ``metrics.json`` content (JSON-safe: non-finite floats are null). ``settings``: the
    data / protocol keys, in report order (``data`` … ``num_target``); ``t0``: the
    run's start (``time.perf_counter``)."""
    from rayzer.utils.report import machine_info

    trained = loaded.trained
    metrics = {
        "command": "rayzer eval",
        "checkpoint": str(trained.path),
        "bundled_model": loaded.bundled,
        "step": trained.step,
        "model": loaded.model.name,
        **settings,
        "span": run.span,
        "seed": run.seed,
        "image_size": list(loaded.out_hw),
        "lpips_nets": list(nets),
        "device": str(loaded.device),
        "summary": summary(run),
        "probe": probed,
        "interp": interp_summary(run.interp_records) if run.interp_frames is not None else None,
        "colmap": colmap_summary(run.colmap_records) if run.colmap else None,
        "scenes": run.records,
        "skipped": skipped,
        "definitions": {
            "images": IMAGE_DEFINITIONS,
            "poses": POSE_DEFINITIONS,
            "depth": DEPTH_DEFINITIONS,
        },
        "wall_time_s": time.perf_counter() - t0,
        "machine": machine_info(),
    }
    return _finite(metrics)


def _write_report(tmp: Path, metrics: dict[str, Any]) -> None:
    """Write ``metrics.json`` and ``metrics.md`` into the staged output folder."""
    from rayzer.eval.eval_report import metrics_markdown

    (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1, allow_nan=False) + "\n")
    (tmp / "metrics.md").write_text(metrics_markdown(metrics) + "\n")
