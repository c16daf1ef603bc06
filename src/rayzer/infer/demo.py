"""``rayzer demo``: held-out synthetic scenes in; predicted cameras, renders, metrics and a
novel-view video out — the quickest way to see what a RayZer checkpoint (by default the bundled
model) does.

Steps (each timed in ``summary.json``):

1. **load model**: the bundled RayZer or ``--ckpt`` (:func:`rayzer.infer.model.load_model`;
   ``--ckpt explicit`` = the bundled explicit-3D model).
2. **scenes**: the first ``N`` of the held-out synthetic test seeds from ``--seed`` on
   (``TEST_SEEDS[seed:seed + N]``, disjoint from every training seed), rendered with the
   checkpoint's data settings (image size, views, frames per clip, the widest training span,
   ``data.synth`` options) by :func:`rayzer.eval.synthetic_test_set.synthetic_test_sets`, ``even``
   protocol: V = Vi + Vt frames evenly spaced over the window, targets in between the inputs.
   ``--family`` renders the other family than the one the model was trained on.
3. **rayzer**: the paper's protocol (:mod:`rayzer.eval.novel_view`): the camera estimator sees all
   V views, the latent scene is built from the Vi input views only, the targets are rendered at
   their *predicted* cameras (target pixels never reach the scene); PSNR / SSIM and the pose
   report against the ground truth (gauge-free relative rotation errors, beside the identity-pose
   baseline; predicted vs true focal).
4. **baselines**: copy-nearest input and the mean of the inputs, same targets.
5. **novel views**: the same latent scene rendered along a smooth path through the predicted
   cameras of all V views in frame order (:func:`rayzer.infer.trajectory.path_through`).
6. **explicit-3D model** (when the model outputs neither depth nor Gaussians, as the bundled
   RayZer, and the package carries the bundled explicit-3D model; off with ``--no-explicit``):
   the bundled explicit model (E-RayZer or NAS3R, :mod:`rayzer.bundled`) on the *same* scenes
   and the same protocol — its own cameras, renders, depth maps and Gaussians — so the demo
   shows both kinds of output; written to ``explicit/`` with the same layout.
7. **write**: everything below, into a hidden temporary folder that is moved to ``--out`` only
   when complete (:func:`rayzer.utils.atomic.staged_output`); a failed run leaves nothing.

Output layout. With one scene (the default) the scene's files sit directly in ``--out``; with
``--scenes N > 1`` each scene gets the same files in ``scenes/<scene name>/`` and the top level
holds only ``summary.json`` (metrics pooled over the scenes, and per scene)::

    summary.json            psnr.{rayzer, copy, mean_inputs}, ssim.{…}, pose.{rot_err_deg_median,
                            identity_rot_err_deg_median, …}, focal (predicted vs true), collapse
                            diagnostics, per-scene numbers, timings_s (per stage + total),
                            peak_rss_mb, model provenance (checkpoint, step, meta.json), data
    images/NNN.png          the V views the camera estimator saw (NNN = frame number in the clip)
    cameras.json            predicted cameras of the V views, scene-folder format (readable by
                            rayzer.data.scene_folder.read_scene_folder): RayZer's gauge (canonical
                            middle view = identity, arbitrary scale); per frame its role (input /
                            target); the similarity that aligns them to the truth
    cameras_gt.json         ground-truth cameras of the same frames, same format (world z up)
    targets/NNN.png         the ground-truth target views
    renders/NNN.png         the model's renders of the same targets (same names)
    depth/NNN.{npy,png}     models with depth: camera z-depth of the input views (the model's
                            scale) and a colour picture of inverse depth
    depth_grid.png          models with depth: the input views above their depth pictures
    points.ply              models with depth: the input views' depth unprojected through the
                            predicted cameras, coloured, with normals (rayzer.infer.point_cloud)
    gaussians.ply           models with Gaussians: the scene's 3D Gaussians (3DGS layout)
    novel_views.mp4 / .gif  the scene along the interpolated camera path
    novel_cameras.json      the cameras of the video frames (the model's gauge)
    contact_sheet.png       inputs, (their depth), targets, the model, copy-nearest, its error
    cameras.png             predicted cameras (aligned to the truth by one similarity) vs truth
    explicit/               the bundled explicit-3D model's files for the same scene(s), same
                            names (step 6; with depth/, depth_grid.png, points.ply,
                            gaussians.ply, and novel_views.mp4 rendered from its Gaussians) and
                            its own summary.json; the top summary.json's ``explicit`` says which
                            model made them and its numbers
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

import rayzer
from rayzer.config import DataConfig
from rayzer.data.clip_sources import synth_config
from rayzer.data.scene_folder import CAMERAS_JSON, write_scene_folder
from rayzer.data.synthetic import FAMILIES, TEST_SEEDS, SynthConfig
from rayzer.eval.camera_paths import apply_similarity
from rayzer.eval.figures import error_map, scene_grid
from rayzer.eval.novel_view import (
    CopyNearestMethod,
    EvalResult,
    EvalSample,
    MeanOfInputsMethod,
    ModelMethod,
    evaluate,
)
from rayzer.eval.synthetic_test_set import gt_rotation_stats, synthetic_test_sets
from rayzer.geometry import align_cameras, denormalize_intrinsics
from rayzer.infer.demo_cli import DEFAULT_FPS, DEFAULT_FRAMES, DEFAULT_OUT
from rayzer.infer.model import LoadedModel, load_model, resolve_device
from rayzer.infer.outputs import (
    cameras_json,
    depth_display_range,
    depth_to_rgb,
    set_cube_limits,
    to_uint8,
    write_depth,
    write_gaussians,
    write_gif,
    write_mp4,
    write_pngs,
    write_points,
)
from rayzer.infer.pipeline import SCALE_NOTE, StageTimer, peak_rss_mb
from rayzer.infer.predict import Cameras, render_scene, render_scene_with_depth
from rayzer.infer.trajectory import path_through
from rayzer.utils.atomic import staged_output
from rayzer.utils.jsonsafe import json_safe

EVAL_BATCH = 8  # scenes per forward pass
MAX_SCENES = 32  # a demo, not a benchmark: `rayzer bench quality` evaluates many scenes
PROTOCOL = "even"
#: evaluate()'s method names → the keys of summary.json
METHOD_KEYS = {"rayzer": "rayzer", "copy_nearest": "copy", "mean_of_inputs": "mean_inputs"}
STAGES = ("load_model", "scenes", "rayzer", "baselines", "novel_views", "explicit", "write")
STAGE_LABELS = {
    "load_model": "model loaded",
    "scenes": "held-out scenes rendered",
    "rayzer": "cameras predicted, targets rendered",
    "baselines": "baselines (copy-nearest, mean of inputs)",
    "novel_views": "novel-view path rendered",
    "explicit": "bundled explicit-3D model: cameras, renders, depth, Gaussians",
    "write": "outputs written",
}
#: The companion model's folder in the output (module docstring, step 6).
EXPLICIT_DIR = "explicit"


@dataclass
class DemoResult:
    """What :func:`run_demo` produced: the output folder and the contents of its summary."""

    out: Path
    summary: dict[str, Any]


@dataclass
class SceneOutputs:
    """Everything written for one scene (tensors on the CPU).

    Attributes:
        sample: the evaluation sample (V views, inputs / targets, ground-truth cameras).
        cameras: predicted cameras of the V views (pixel intrinsics, canonical view marked).
        renders, copies: (Vt, 3, H, W) the model's and copy-nearest's renders of the targets.
        path: cameras of the novel-view frames; frames: (N, H, W, 3) uint8 video frames.
        depth: (Vi, 1, H, W) camera z-depth of the input views (models with depth, else None).
        gaussians: the scene's Gaussians (:meth:`rayzer.models.base.RayModel.gaussians`), or
            None.
    """

    sample: EvalSample
    cameras: Cameras
    renders: Tensor
    copies: Tensor
    path: Cameras
    frames: np.ndarray
    depth: Tensor | None = None
    gaussians: dict[str, Tensor] | None = None


# -- options and scenes ------------------------------------------------------------------------------


def check_options(family: str | None, scenes: int, seed: int, frames: int, fps: float) -> None:
    """Raise ValueError naming the first bad option."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"--family must be one of {FAMILIES}, got {family!r}")
    if not 1 <= scenes <= MAX_SCENES:
        raise ValueError(f"--scenes must be in 1..{MAX_SCENES}, got {scenes}")
    if seed < 0 or seed + scenes > len(TEST_SEEDS):
        raise ValueError(
            f"--seed must be in 0..{len(TEST_SEEDS) - scenes} for {scenes} scene(s) (an offset "
            f"into the {len(TEST_SEEDS)} held-out test seeds), got {seed}"
        )
    if not 2 <= frames <= 10_000:
        raise ValueError(f"--frames must be in 2..10000, got {frames}")
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"--fps must be a positive number, got {fps}")


def demo_synth_config(data: DataConfig, family: str | None) -> SynthConfig:
    """The checkpoint's clip configuration (:func:`rayzer.data.clip_sources.synth_config`), optionally
    with the other family."""
    synth = synth_config(data)
    return synth if family is None else dataclasses.replace(synth, family=family)


def demo_span(data: DataConfig) -> int:
    """The test window: the widest training span (as ``rayzer bench quality``), within a clip."""
    return min(data.span_range()[2], data.frames_per_clip)


def demo_samples(synth: SynthConfig, data: DataConfig, scenes: int, seed: int) -> list[EvalSample]:
    """The held-out samples of the demo (``even`` protocol, see the module docstring)."""
    return synthetic_test_sets(
        synth,
        scenes,
        data.num_input_views,
        data.num_target_views,
        span=demo_span(data),
        protocols=(PROTOCOL,),
        first=seed,
    )[PROTOCOL]


def frame_names(sample: EvalSample) -> list[str]:
    """File stems of the sample's views: their frame numbers in the clip, zero-padded."""
    frames = sample.frame_index.tolist()
    digits = max(3, len(str(max(frames))))
    return [f"{f:0{digits}d}" for f in frames]


# -- model passes ----------------------------------------------------------------------------------


def predicted_cameras(result: EvalResult, i: int, height: int, width: int) -> Cameras:
    """Sample ``i``'s predicted cameras from RayZer's evaluation result (pixel intrinsics)."""
    if result.c2w is None or result.K_norm is None:
        raise ValueError(f"{result.method}: the evaluation kept no predicted cameras")
    K = denormalize_intrinsics(result.K_norm[i].float(), height, width)
    canonical = result.canonical if result.canonical is not None else result.c2w.shape[1] // 2
    return Cameras(result.c2w[i].float(), K, height, width, canonical=canonical)


@torch.inference_mode()
def protocol_scene(model: LoadedModel, sample: EvalSample, cameras: Cameras) -> Any:
    """The latent scene (batch of 1) exactly as the protocol builds it for the targets
    (:func:`rayzer.eval.novel_view.rayzer_novel_views`): input views only, their predicted
    cameras and their positions among the V views."""
    dev = model.device
    inp = sample.input_index
    return model.model.reconstruct(
        sample.images[inp][None].to(dev),
        cameras.c2w[inp][None].to(dev),
        cameras.K_norm[inp][None].to(dev),
        view_positions=inp[None].to(dev),
    )


def method_results(
    model: LoadedModel, samples: Sequence[EvalSample], methods: Sequence[Any]
) -> dict[str, EvalResult]:
    """:func:`rayzer.eval.novel_view.evaluate` of each method, keeping every sample's renders."""
    return {
        METHOD_KEYS[m.name]: evaluate(
            m,
            samples,
            batch_size=min(len(samples), EVAL_BATCH),
            device=model.device,
            keep_renders=len(samples),
            progress=False,
        )
        for m in methods
    }


# -- figures ---------------------------------------------------------------------------------------


def _enlarge(images: Tensor, min_side: int = 128) -> Tensor:
    """Nearest-neighbour upscaling by an integer factor so small renders stay visible."""
    factor = max(1, min_side // min(images.shape[-2:]))
    return F.interpolate(images, scale_factor=factor, mode="nearest") if factor > 1 else images


def contact_sheet(scene: SceneOutputs, record: dict[str, Any], name: str) -> np.ndarray:
    """(H, W, 3) uint8: inputs, their depth (models with depth), targets, the model ``name``'s
    renders, copy-nearest and the model's error map."""
    s = scene.sample
    targets = s.images[s.target_index]
    p = record["psnr"]
    rows = [("inputs\n(build the scene)", s.images[s.input_index])]
    if scene.depth is not None:
        rows.append((depth_label(name, scene.depth), depth_picture(scene.depth)))
    rows += [
        ("targets\n(ground truth)", targets),
        (f"{name}\n{p['rayzer']:.2f} dB", scene.renders),
        (f"copy-nearest\n{p['copy']:.2f} dB", scene.copies),
        (f"{name} |error|", error_map(scene.renders, targets)),
    ]
    pose = record["pose"]
    title = (
        f"{s.name}: {name} {p['rayzer']:.2f} dB, copy {p['copy']:.2f} dB, mean of inputs "
        f"{p['mean_inputs']:.2f} dB; rotation error {pose['rot_err_deg_median']:.1f} deg "
        f"(identity {pose['identity_rot_err_deg_median']:.1f} deg)"
    )
    return scene_grid([(label, _enlarge(x)) for label, x in rows], title=title)


def depth_label(name: str, depth: Tensor) -> str:
    """The depth row's label, with the depths at the colour map's ends (a flat map shows as
    one colour over a range it does not fill, :func:`rayzer.infer.outputs.depth_display_range`)."""
    near, far = depth_display_range(depth)
    return f"{name} depth\n(inverse, near = red)\nred {near:.3g}, blue {far:.3g}"


def depth_picture(depth: Tensor) -> Tensor:
    """(N, 1, H, W) depth → (N, 3, H, W) float turbo picture of inverse depth (one range)."""
    return torch.from_numpy(depth_to_rgb(depth)).permute(0, 3, 1, 2).float() / 255


def depth_grid(scene: SceneOutputs, name: str) -> np.ndarray:
    """(H, W, 3) uint8: the input views above the model ``name``'s depth of each."""
    if scene.depth is None:
        raise ValueError(f"{name} gave no depth to draw")
    s = scene.sample
    rows = [
        ("inputs", s.images[s.input_index]),
        (depth_label(name, scene.depth), depth_picture(scene.depth)),
    ]
    title = f"{s.name}: {name}'s depth of the input views (camera z, its own scale)"
    return scene_grid([(label, _enlarge(x)) for label, x in rows], title=title)


def plot_pred_vs_truth(
    path: Path,
    truth: Cameras,
    predicted: Cameras,
    novel: Tensor | None = None,
    title: str = "",
) -> None:
    """Camera frusta in the ground-truth world (z up): truth in black, the predicted cameras
    (already aligned to the truth, each frustum drawn with its own focal) in colour, canonical
    view in red, the novel-view path (aligned, (N, 4, 4)) dashed. A bare matplotlib Figure: no
    pyplot global state.

    (:func:`rayzer.infer.outputs.plot_cameras` draws a single set of cameras in the canonical
    camera's frame, so the two-set comparison is drawn here.)"""
    import matplotlib
    from matplotlib.figure import Figure
    from mpl_toolkits.mplot3d import Axes3D  # noqa: F401  (registers the 3-D projection)

    gt = truth.c2w.double().numpy()
    pred = predicted.c2w.double().numpy()
    centres = gt[:, :3, 3]
    extent = max(float(np.linalg.norm(centres - centres.mean(0), axis=1).max()), 1e-3)
    depth = 0.25 * extent

    def corners(cams: Cameras) -> np.ndarray:  # image corners at z = depth, camera frame
        fx, fy, cx, cy = cams.K[0].double().tolist()
        W, H = cams.width, cams.height
        uv = ((0, 0), (W, 0), (W, H), (0, H))
        return np.array([[(u - cx) / fx, (v - cy) / fy, 1.0] for u, v in uv]) * depth

    fig = Figure(figsize=(6.4, 6.4), dpi=100)
    ax = fig.add_subplot(projection="3d")
    cmap = matplotlib.colormaps["viridis"]
    V = len(gt)

    def frustum(c2w: np.ndarray, k: np.ndarray, color: Any, width: float, style: str) -> None:
        apex, pts = c2w[:3, 3], k @ c2w[:3, :3].T + c2w[:3, 3]
        for p in pts:
            ax.plot(*zip(apex, p), style, color=color, linewidth=width)
        loop = np.vstack((pts, pts[:1]))
        ax.plot(loop[:, 0], loop[:, 1], loop[:, 2], style, color=color, linewidth=width)

    k_gt, k_pred = corners(truth), corners(predicted)
    for i in range(V):
        frustum(gt[i], k_gt, "black", 1.0, ":")
        colour = "red" if i == predicted.canonical else cmap(i / max(V - 1, 1))
        frustum(pred[i], k_pred, colour, 1.5, "-")
    points = [centres, pred[:, :3, 3]]
    if novel is not None:
        p = novel.double().numpy()[:, :3, 3]
        ax.plot(p[:, 0], p[:, 1], p[:, 2], "--", color="gray", linewidth=1.0)
        points.append(p)
    set_cube_limits(ax, np.vstack(points), depth)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_zlabel("z (up)")
    ax.set_title(title or "predicted (colour, aligned) vs ground truth (black)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)


# -- summary ---------------------------------------------------------------------------------------


def _pose_numbers(pose: dict[str, Any], width: int) -> dict[str, Any]:
    """The pose-report entries the demo shows, focals also in pixels."""
    keys = (
        "rot_err_deg_median",
        "rot_err_deg_mean",
        "trans_dir_err_deg_median",
        "identity_rot_err_deg_median",
        "gt_rel_rot_deg_median",
        "rot_acc",
        "auc",
    )
    out = {k: pose[k] for k in keys if k in pose}
    if "focal_pred_mean" in pose:
        out["focal"] = {
            "predicted_px": pose["focal_pred_mean"] * width,
            "true_px": pose["focal_true_mean"] * width,
            "predicted_over_width": pose["focal_pred_mean"],
            "true_over_width": pose["focal_true_mean"],
            "rel_err_median": pose["focal_rel_err_median"],
        }
    return out


def scene_record(
    i: int, scene: SceneOutputs, results: dict[str, EvalResult], folder: str
) -> dict[str, Any]:
    """Per-scene numbers of summary.json."""
    s = scene.sample
    names = frame_names(s)
    targets = [names[j] for j in s.target_index.tolist()]
    per = {key: results[key].per_sample[i] for key in METHOD_KEYS.values()}
    return {
        "name": s.name,
        "seed": int(s.name.rsplit("_", 1)[1]),
        "folder": folder,
        "frames": s.frame_index.tolist(),
        "input_frames": [int(s.frame_index[j]) for j in s.input_index.tolist()],
        "target_frames": [int(s.frame_index[j]) for j in s.target_index.tolist()],
        "psnr": {k: r["psnr"] for k, r in per.items()},
        "ssim": {k: r["ssim"] for k, r in per.items()},
        "psnr_per_target": {
            k: dict(zip(targets, per[k]["psnr_per_target"])) for k in ("rayzer", "copy")
        },
        "pose": _pose_numbers(per["rayzer"]["pose"], s.images.shape[-1]),
        "collapse": per["rayzer"]["collapse"],
    }


#: What the demo says about depth and Gaussians for a model that outputs neither (the bundled
#: RayZer: its scene is latent tokens), so a user learns where the explicit-3D outputs come from.
NO_EXPLICIT_3D_NOTE = (
    "{title} outputs no depth maps and no 3D Gaussians (its scene is latent tokens); "
    "`rayzer demo --ckpt explicit` (the bundled explicit-3D model) or `--ckpt RUN` with an "
    "E-RayZer or NAS3R run (e.g. `rayzer train --config erayzer-tiny-cpu`) also writes depth/, "
    "points.ply and gaussians.ply and shows the depth in contact_sheet.png"
)


def explicit_3d_note(model: LoadedModel) -> str:
    """One sentence for ``summary.json`` (``notes.depth_gaussians``): what the model writes
    beyond renders, or where to get depth maps and Gaussians when it writes neither."""
    caps, title = model.model.capabilities, model.model.title()
    if not (caps.outputs_depth or caps.outputs_gaussians):
        return NO_EXPLICIT_3D_NOTE.format(title=title)
    written = [
        *(["depth/ (input views' z-depth) and points.ply"] if caps.outputs_depth else []),
        *(["gaussians.ply (3DGS layout)"] if caps.outputs_gaussians else []),
    ]
    return f"{title} writes " + " and ".join(written) + "; contact_sheet.png shows the depth"


def model_info(model: LoadedModel) -> dict[str, Any]:
    """Provenance of the model: checkpoint, step, size and its ``meta.json`` when present."""
    meta = None
    if model.checkpoint is not None and (model.checkpoint / "meta.json").is_file():
        try:
            meta = json.loads((model.checkpoint / "meta.json").read_text())
        except (OSError, ValueError) as err:  # provenance is informative, not essential
            meta = {"error": f"unreadable meta.json: {err}"}
    cfg = model.config
    return {
        "name": model.model.name,
        "title": model.model.title(),
        "checkpoint": str(model.checkpoint) if model.checkpoint else None,
        "bundled": model.bundled,
        "bundled_name": model.bundled_name,
        "step": model.step,
        "parameters": model.num_parameters,
        "image_size": model.image_size,
        "patch_size": model.patch_size,
        "outputs_depth": model.model.capabilities.outputs_depth,
        "outputs_gaussians": model.model.capabilities.outputs_gaussians,
        "trained_on": {
            "source": cfg.data.source,
            "family": cfg.data.family,
            "num_input_views": cfg.data.num_input_views,
            "num_target_views": cfg.data.num_target_views,
        }
        if cfg is not None
        else None,
        "meta": meta,
    }


def build_summary(
    model: LoadedModel,
    synth: SynthConfig,
    data: DataConfig,
    samples: Sequence[EvalSample],
    results: dict[str, EvalResult],
    records: list[dict[str, Any]],
    timer: StageTimer,
    fps: float,
    frames: int,
    layout: str,
    outputs: list[str],
) -> dict[str, Any]:
    """The contents of summary.json (pooled over scenes; per scene under ``scenes``)."""
    width = samples[0].images.shape[-1]
    pooled = {k: r.summary for k, r in results.items()}
    seconds = dict(timer.seconds)
    seconds["total"] = timer.total()
    gt_rot = gt_rotation_stats(samples)
    return json_safe(
        {
            "rayzer_version": rayzer.__version__,
            "psnr": {k: s["psnr"] for k, s in pooled.items()},
            "ssim": {k: s["ssim"] for k, s in pooled.items()},
            "pose": _pose_numbers(pooled["rayzer"]["pose"], width),
            "collapse": pooled["rayzer"]["collapse"],
            "notes": {
                "protocol": "RayZer predicts the cameras of all V views (target images are used "
                "for pose estimation only), builds the scene from the input views and renders "
                "the targets at their predicted cameras",
                "pose": "gauge-free relative rotation / translation-direction errors over all "
                "view pairs; identity_rot_err_deg_median = predicting no motion at all",
                "psnr": "mean over scenes of the mean over targets; copy = nearest input view "
                "in frame number, mean_inputs = pixel-wise mean of the input views",
                "depth_gaussians": explicit_3d_note(model),
            },
            "data": {
                "family": synth.family,
                "model_family": data.family,
                "held_out": True,
                "test_seeds": [r["seed"] for r in records],
                "protocol": PROTOCOL,
                "image_size": width,
                "num_input_views": data.num_input_views,
                "num_target_views": data.num_target_views,
                "frames_per_clip": data.frames_per_clip,
                "span": demo_span(data),
                "gt_rel_rot_deg_median": gt_rot["median_deg"],
            },
            "scenes": records,
            "novel_views": {
                "frames": frames,
                "fps": fps,
                "path": "through the predicted "
                "cameras of all views in frame order (slerp + linear centres)",
            },
            "model": model_info(model),
            "device": str(model.device),
            "torch_threads": torch.get_num_threads(),
            "timings_s": seconds,
            "total_s": seconds["total"],
            "peak_rss_mb": peak_rss_mb(),
            "layout": layout,
            "outputs": [*outputs, "summary.json"],
        }
    )


# -- writing ---------------------------------------------------------------------------------------


def write_cameras(
    folder: Path, scene: SceneOutputs, model: LoadedModel, alignment: tuple[Tensor, ...]
) -> None:
    """``images/`` + ``cameras.json`` (predicted; a scene folder) and ``cameras_gt.json``
    (same frames, ground truth). ``alignment``: ``(s, R, t)`` mapping the predicted world onto
    the true one. ``folder`` must not exist yet."""
    s, cams = scene.sample, scene.cameras
    names = frame_names(s)
    scale, R, t = alignment
    meta = {
        "source_format": "rayzer-demo",
        "predicted_by": str(model.checkpoint) if model.checkpoint else "in-memory model",
        "canonical_view": cams.canonical,
        "note": SCALE_NOTE,
        "ground_truth": "cameras_gt.json",
        "alignment_to_ground_truth": {
            "scale": float(scale),
            "rotation": R.tolist(),
            "translation": t.tolist(),
            "note": "x_gt = scale * rotation @ x_pred + translation (Umeyama on the camera "
            "centres, rayzer.geometry.align_cameras)",
        },
    }
    write_scene_folder(
        folder, s.images, cams.c2w.double(), cams.K.double(), names=names, scene=s.name, meta=meta
    )
    roles = {int(j): "input" for j in s.input_index} | {int(j): "target" for j in s.target_index}
    doc = json.loads((folder / CAMERAS_JSON).read_text())
    for j, frame in enumerate(doc["frames"]):
        frame["frame"] = int(s.frame_index[j])
        frame["role"] = roles[j]
    gt = copy.deepcopy(doc)
    for key in ("predicted_by", "canonical_view", "note", "alignment_to_ground_truth"):
        gt.pop(key, None)
    gt.update(
        source_format="rayzer-demo ground truth",
        predicted=CAMERAS_JSON,
        note="ground-truth cameras of the synthetic scene (world frame: z up, units ~ m)",
    )
    for j, frame in enumerate(gt["frames"]):
        fx, fy, cx, cy = (float(v) for v in s.K[j].double())
        frame.update(fx=fx, fy=fy, cx=cx, cy=cy, c2w=s.c2w[j].double().tolist())
    for name, content in ((CAMERAS_JSON, doc), ("cameras_gt.json", gt)):
        (folder / name).write_text(json.dumps(content, indent=1, allow_nan=False) + "\n")


def write_scene(
    folder: Path, scene: SceneOutputs, record: dict[str, Any], model: LoadedModel, fps: float
) -> list[str]:
    """All files of one scene (module docstring) into ``folder`` (which must not exist)."""
    s = scene.sample
    names = frame_names(s)
    targets = [names[j] for j in s.target_index.tolist()]
    cams = scene.cameras
    aligned, scale, R, t = align_cameras(cams.c2w.double(), s.c2w.double())
    write_cameras(folder, scene, model, (scale, R, t))
    write_pngs(folder / "targets", to_uint8(s.images[s.target_index]), targets)
    write_pngs(folder / "renders", to_uint8(scene.renders), targets)
    extra = []
    if scene.depth is not None:
        write_depth(folder / "depth", scene.depth, [names[j] for j in s.input_index.tolist()])
        Image.fromarray(depth_grid(scene, model.model.title())).save(folder / "depth_grid.png")
        extra += ["depth/", "depth_grid.png"]
        inp = s.input_index
        inputs = Cameras(cams.c2w[inp], cams.K[inp], cams.height, cams.width)
        write_points(folder / "points.ply", scene.depth, inputs, to_uint8(s.images[inp]))
        extra.append("points.ply")
    if scene.gaussians is not None:
        write_gaussians(folder / "gaussians.ply", scene.gaussians)
        extra.append("gaussians.ply")
    write_mp4(folder / "novel_views.mp4", scene.frames, fps)
    write_gif(folder / "novel_views.gif", scene.frames, fps)
    novel = cameras_json(scene.path, ["path"] * len(scene.path))
    (folder / "novel_cameras.json").write_text(json.dumps(novel, indent=1) + "\n")
    sheet = contact_sheet(scene, record, model.model.title())
    Image.fromarray(sheet).save(folder / "contact_sheet.png")
    path = apply_similarity(scene.path.c2w.double()[None], scale[None], R[None], t[None])[0]
    truth = Cameras(s.c2w.float(), s.K.float(), cams.height, cams.width)
    predicted = Cameras(aligned.float(), cams.K, cams.height, cams.width, cams.canonical)
    rot = record["pose"]["rot_err_deg_median"]
    plot_pred_vs_truth(
        folder / "cameras.png",
        truth,
        predicted,
        path,
        title=f"{s.name}: predicted (colour, aligned) vs truth (black dotted)\n"
        f"median relative rotation error {rot:.1f} deg",
    )
    return [
        "images/",
        CAMERAS_JSON,
        "cameras_gt.json",
        "targets/",
        "renders/",
        "novel_views.mp4",
        "novel_views.gif",
        "novel_cameras.json",
        "contact_sheet.png",
        "cameras.png",
        *extra,
    ]


# -- the whole run ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _stage(timer: StageTimer, name: str, say: Callable[[str], None]) -> Iterator[dict[str, str]]:
    """Time stage ``name`` and say so; the block may replace ``["label"]`` (e.g. "skipped")."""
    line = {"label": STAGE_LABELS[name]}
    with timer.stage(name):
        yield line
    step = STAGES.index(name) + 1
    say(f"[{step}/{len(STAGES)}] {line['label']} ({timer.seconds[name]:.2f} s)")


def scene_outputs(
    model: LoadedModel,
    samples: Sequence[EvalSample],
    results: dict[str, EvalResult],
    frames: int,
) -> list[SceneOutputs]:
    """Per scene: the model's predicted cameras, its renders of the targets (and copy-nearest's),
    the novel-view video along a path through its cameras, and its depth maps (input views) and
    Gaussians when it outputs them. ``results``: :func:`method_results` of the model (key
    ``rayzer``) and of copy-nearest (``copy``) on ``samples``."""
    H, W = samples[0].images.shape[-2:]
    caps = model.model.capabilities
    outputs = []
    for i, sample in enumerate(samples):
        cams = predicted_cameras(results["rayzer"], i, H, W)
        path = path_through(cams, frames)
        scene = protocol_scene(model, sample, cams)
        video = to_uint8(render_scene(model, scene, path, chunk=16))
        r = results["rayzer"].renders[i]
        c = results["copy"].renders[i]
        depth = gaussians = None
        if caps.outputs_depth:
            inp = sample.input_index
            inputs = Cameras(cams.c2w[inp], cams.K[inp], H, W)
            depth = render_scene_with_depth(model, scene, inputs, chunk=16)[1]
        if caps.outputs_gaussians:
            gaussians = {k: v.cpu() for k, v in model.model.gaussians(scene).items()}
        outputs.append(SceneOutputs(sample, cams, r, c, path, video, depth, gaussians))
    return outputs


@dataclass
class Companion:
    """The bundled explicit-3D model's pass over the demo's scenes (module docstring, step 6).

    Attributes:
        model: the bundled explicit model. results: its evaluation (key ``rayzer``: the model
            slot of :data:`METHOD_KEYS`) and the shared baselines. outputs: per scene.
        timer: its own stages (``load_model``, ``rayzer``, ``novel_views``, then ``write``), so
            that ``explicit/summary.json`` times this model, not the main one.
    """

    model: LoadedModel
    results: dict[str, EvalResult]
    outputs: list[SceneOutputs]
    timer: StageTimer


def companion_skip_reason(main: LoadedModel) -> str | None:
    """Why the bundled explicit-3D model is not run beside ``main`` (None: it is run)."""
    from rayzer.bundled import EXPLICIT, bundled_model_dir, has_bundled_model

    caps = main.model.capabilities
    if caps.outputs_depth or caps.outputs_gaussians:
        return f"{main.model.title()} outputs depth / Gaussians itself"
    if not has_bundled_model(EXPLICIT):
        return f"this install carries no bundled explicit-3D model ({bundled_model_dir(EXPLICIT)})"
    return None


def run_companion(
    samples: Sequence[EvalSample],
    baselines: dict[str, EvalResult],
    frames: int,
    device: torch.device,
) -> Companion | str:
    """The bundled explicit-3D model on the same samples and protocol as the main model
    (``baselines``: the main model's results; their copy-nearest and mean of inputs are reused),
    or why it cannot run on them."""
    from rayzer.bundled import EXPLICIT

    timer = StageTimer(device)
    with timer.stage("load_model"):
        model = load_model(EXPLICIT, device)
    H, W = samples[0].images.shape[-2:]
    if H % model.patch_size or W % model.patch_size:
        return f"the scenes' {W}x{H} px are not a multiple of its patch ({model.patch_size})"
    shared = {k: r for k, r in baselines.items() if k != "rayzer"}  # copy, mean of inputs
    with timer.stage("rayzer"):
        results = shared | method_results(model, samples, [ModelMethod(model.model, "rayzer")])
    with timer.stage("novel_views"):
        outputs = scene_outputs(model, samples, results, frames)
    return Companion(model, results, outputs, timer)


def write_companion(
    root: Path,
    companion: Companion,
    synth: SynthConfig,
    data: DataConfig,
    samples: Sequence[EvalSample],
    flat: bool,
    fps: float,
    frames: int,
    layout: str,
) -> dict[str, Any]:
    """The companion's files and its own ``summary.json`` under ``root`` (after the main
    model's files: the scene folder writer creates the output folder); returns that summary.

    Its timings are its own stages, and its ``total_s`` their sum: its stages ran apart, before
    and after the main model's files. ``data``: the main model's data settings, with
    which the shared scenes were rendered; the summary's ``data.model_family`` is the family the
    companion itself was trained on."""
    model = companion.model
    with companion.timer.stage("write"):
        records, written = write_scenes(
            root, model, companion.outputs, companion.results, flat, fps
        )
    summary = build_summary(
        model, synth, data, samples, companion.results, records, companion.timer, fps, frames,
        layout, written,
    )  # fmt: skip
    own = summary["timings_s"]
    own["total"] = summary["total_s"] = round(sum(v for k, v in own.items() if k != "total"), 4)
    if model.config is not None:  # load_model always reads config.yaml
        summary["data"]["model_family"] = model.config.data.family
    write_json(root / "summary.json", summary)
    return summary


def write_scenes(
    root: Path,
    model: LoadedModel,
    outputs: list[SceneOutputs],
    results: dict[str, EvalResult],
    flat: bool,
    fps: float,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every scene's files under ``root`` (flat, or ``scenes/<name>/``): their records for
    summary.json and the files written (relative to ``root``)."""
    records, written = [], []
    for i, scene in enumerate(outputs):
        rel = "." if flat else f"scenes/{scene.sample.name}"
        record = scene_record(i, scene, results, rel)
        files = write_scene(root / rel, scene, record, model, fps)
        written += files if flat else [f"{rel}/{f}" for f in files]
        records.append(record)
    return records, written


def companion_entry(companion: Companion, summary: dict[str, Any]) -> dict[str, Any]:
    """The top summary.json's ``explicit``: which model made ``explicit/`` and its numbers
    (``summary``: the companion's own summary.json)."""
    info = summary["model"]
    return {
        "folder": EXPLICIT_DIR,
        "model": {k: info[k] for k in ("name", "title", "checkpoint", "bundled_name", "step")},
        "psnr": summary["psnr"]["rayzer"],
        "ssim": summary["ssim"]["rayzer"],
        "pose": summary["pose"],
        "depth_gaussians": summary["notes"]["depth_gaussians"],
        "outputs": [f"{EXPLICIT_DIR}/{f}" for f in summary["outputs"]],
        "note": "the bundled explicit-3D model on the same held-out scenes and protocol: its own "
        "predicted cameras, renders, depth maps and Gaussians",
    }


def run_demo(
    out: str | Path = DEFAULT_OUT,
    *,
    ckpt: str | Path | None = None,
    family: str | None = None,
    scenes: int = 1,
    seed: int = 0,
    frames: int = DEFAULT_FRAMES,
    fps: float = DEFAULT_FPS,
    device: str = "auto",
    overwrite: bool = False,
    explicit: bool = True,
    log: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the demo (module docstring) and write its outputs to ``out``.

    Args:
        out: output folder; must not exist unless ``overwrite``.
        ckpt: checkpoint directory, its ``model.safetensors`` or a run directory; None = the
            bundled RayZer; a bundled model's name (``"explicit"``, :mod:`rayzer.bundled`).
        family: ``orbit`` | ``walk`` (default: the family the model was trained on).
        scenes: number of held-out scenes; seed: offset of the first one in ``TEST_SEEDS``.
        frames, fps: novel-view video length and frame rate.
        device: ``auto`` | ``cpu`` | ``cuda``.
        explicit: also run the bundled explicit-3D model on the same scenes into ``explicit/``
            when the model outputs neither depth nor Gaussians and the package carries it
            (module docstring, step 6); ``summary["explicit"]`` says what ran or why not.
        log: called with one progress line per stage (None = silent).
    Raises:
        BundledModelMissing (a FileNotFoundError): no ``ckpt`` and no bundled model.
        FileNotFoundError / ValueError: bad options or checkpoint; FileExistsError: ``out``
            exists; InferenceError: a stage failed otherwise. Nothing is left at ``out`` then.
    """
    say = log or (lambda _msg: None)
    check_options(family, scenes, seed, frames, fps)
    out = Path(out)
    if out.exists() and not overwrite:  # fail before any work
        raise FileExistsError(
            f"output folder {out} already exists (pass --overwrite to replace it)"
        )
    dev = resolve_device(device)
    timer = StageTimer(dev)

    with _stage(timer, "load_model", say):
        model = load_model(ckpt, dev)
    if model.config is None:  # load_model always reads config.yaml; kept for type checkers
        raise ValueError("the model has no config (its data settings define the demo scenes)")
    data = model.config.data
    with _stage(timer, "scenes", say):
        synth = demo_synth_config(data, family)
        samples = demo_samples(synth, data, scenes, seed)
    with _stage(timer, "rayzer", say):
        results = method_results(model, samples, [ModelMethod(model.model, "rayzer")])
    with _stage(timer, "baselines", say):
        results |= method_results(model, samples, [CopyNearestMethod(), MeanOfInputsMethod()])
    with _stage(timer, "novel_views", say):
        outputs = scene_outputs(model, samples, results, frames)
    companion = None
    with _stage(timer, "explicit", say) as line:
        skipped = "--no-explicit" if not explicit else companion_skip_reason(model)
        if skipped is None:
            ran = run_companion(samples, results, frames, dev)
            companion, skipped = (ran, None) if isinstance(ran, Companion) else (None, ran)
        if skipped is not None:
            line["label"] = f"bundled explicit-3D model skipped: {skipped}"

    flat = scenes == 1
    layout = "flat" if flat else "scenes/<scene name>/"
    with staged_output(out, overwrite) as tmp:
        with _stage(timer, "write", say):
            records, written = write_scenes(tmp, model, outputs, results, flat, fps)
            if companion is not None:
                c_summary = write_companion(
                    tmp / EXPLICIT_DIR, companion, synth, data, samples, flat, fps, frames, layout
                )
        summary = build_summary(
            model, synth, data, samples, results, records, timer, fps, frames, layout, written
        )
        if companion is not None:
            summary["explicit"] = companion_entry(companion, c_summary)
            summary["outputs"] += summary["explicit"]["outputs"]
            summary["notes"]["depth_gaussians"] = (
                f"{model.model.title()} outputs no depth maps and no 3D Gaussians (its scene is "
                f"latent tokens); {EXPLICIT_DIR}/ holds those of the bundled explicit-3D model "
                f"({companion.model.model.title()}) on the same scene(s)"
            )
        else:
            summary["explicit"] = {"skipped": skipped}
        write_json(tmp / "summary.json", summary)
    return DemoResult(out=out, summary=summary)


def write_json(path: Path, content: dict[str, Any]) -> None:
    path.write_text(json.dumps(content, indent=2, allow_nan=False) + "\n")
