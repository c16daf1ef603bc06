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
"""

from __future__ import annotations

import json
import logging
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from rayzer.eval.camera_metrics import (
    POSE_DEFINITIONS,
    PoseErrors,
    cat_pose_errors,
    pose_errors,
    summarize_pose_errors,
)
from rayzer.eval.depth_metrics import DEPTH_DEFINITIONS
from rayzer.eval.eval_data import (
    EvalScene,
    SceneEntry,
    list_scene_entries,
    load_sample,
    load_views,
    parse_protocol,
    plan_scenes,
    resolve_dataset,
)
from rayzer.eval.novel_view import (
    PSNR_CAP_DB,
    CopyNearestMethod,
    EvalSample,
    MeanOfInputsMethod,
    MethodOutput,
    ModelMethod,
    NovelViewMethod,
    evaluate,
)
from rayzer.models import RayModel

log = logging.getLogger("rayzer.eval")

LPIPS_NETS = ("vgg", "alex")
#: Suffixes of a camera-predicting model's two rows (``rayzer_with_targets``, …).
WITH, WITHOUT = "_with_targets", "_without_targets"

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
    "(rayzer.eval.gt_cameras); never at raw true cameras",
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


# -- per scene ------------------------------------------------------------------------------------


class _ClampedRenders:
    """A method whose renders are clamped to [0, 1] before scoring (model renders are sigmoid
    outputs already; this makes the PSNR definition hold for any method)."""

    def __init__(self, method: NovelViewMethod) -> None:
        self.method, self.name = method, method.name
        self.model = getattr(method, "model", None)  # evaluate() switches it to eval mode

    def __call__(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        out = self.method(batch)
        out.render = out.render.clamp(0, 1)
        return out


def _score(
    method: NovelViewMethod,
    sample: EvalSample,
    lpips: dict[str, nn.Module],
    device: torch.device,
) -> tuple[dict[str, Any], torch.Tensor, PoseErrors | None]:
    """Render and score one sample: ``(record, renders (Vt, 3, H, W) CPU, pose errors)``."""
    res = evaluate(_ClampedRenders(method), [sample], device=device, keep_renders=1, progress=False)
    raw = res.per_sample[0]
    render = res.renders[0]
    target = sample.images[sample.target_index]
    record: dict[str, Any] = {
        "psnr": raw["psnr"],
        "ssim": raw["ssim"],
        "psnr_per_target": raw["psnr_per_target"],
        "ssim_per_target": raw["ssim_per_target"],
    }
    for net in LPIPS_NETS:
        if net in lpips:
            with torch.no_grad():
                per = lpips[net](render.to(device), target.to(device)).float().cpu()
            record[f"lpips_{net}"] = per.mean().item()
            record[f"lpips_{net}_per_target"] = per.tolist()
        else:
            record[f"lpips_{net}"] = None
    record["depth"] = raw.get("depth")  # input-view depth vs exact depth (None: not measured)
    errors = None
    if res.c2w is not None and sample.c2w is not None:
        w = sample.images.shape[-1]
        pred_focal = res.K_norm[0, 0, 0].item() if res.K_norm is not None else None
        gt_focal = (sample.K[:, 0] / w).mean().item() if sample.K is not None else None
        errors = pose_errors(res.c2w[0], sample.c2w, pred_focal, gt_focal)
        record["pose"] = summarize_pose_errors(errors)
        record["collapse"] = raw.get("collapse")
    if res.c2w is not None:
        record["pred_focal"] = res.K_norm[0, 0, 0].item() if res.K_norm is not None else None
    return record, render, errors


def _methods(model: RayModel, posed: bool = False) -> list[NovelViewMethod]:
    """The model's rows (by its capabilities; on posed data also the render at the aligned true
    cameras), then the baselines."""
    from rayzer.eval.camera_paths import WithoutTargetsMethod
    from rayzer.eval.gt_cameras import AlignedTruthMethod

    if model.capabilities.predicts_cameras:
        learned: list[NovelViewMethod] = [
            ModelMethod(model, model.name + WITH),
            WithoutTargetsMethod(model, model.name + WITHOUT),
        ]
        if posed:
            learned.append(AlignedTruthMethod(model))
    else:
        learned = [ModelMethod(model)]
    return [*learned, CopyNearestMethod(), MeanOfInputsMethod()]


def _interp_scene(
    model: RayModel,
    scene: EvalScene,
    sample: EvalSample,
    out_hw: tuple[int, int],
    max_frames: int,
    lpips: dict[str, nn.Module],
    device: torch.device,
) -> tuple[dict[str, Any], list[tuple[str, torch.Tensor]]]:
    """Interpolation record of one scene and its grid rows."""
    from rayzer.eval.interpolation import (
        InterpolationMethod,
        gt_interpolation_errors,
        inbetween_frames,
        interpolation_sample,
    )

    context = list(scene.split.context)
    between = inbetween_frames(context, max_frames)
    if not between:
        return {"status": "skipped", "reason": "no frames between the context views"}, []
    images, c2w, _, _ = load_views(scene.entry, between, out_hw)
    inp = sample.input_index
    interp = interpolation_sample(scene.name, sample.images[inp], context, images, between)
    record: dict[str, Any] = {"status": "ok", "frames": between, "context": context}
    rows: list[tuple[str, torch.Tensor]] = [("in-between\n(true frames)", images)]
    method = InterpolationMethod(model, view_positions=inp)
    for m in (method, CopyNearestMethod()):
        rec, render, _ = _score(m, interp, lpips, device)
        record[m.name] = {k: v for k, v in rec.items() if not k.endswith("_per_target")}
        rows.append((f"{m.name}\nPSNR {rec['psnr']:.2f}", render))
    if c2w is not None and sample.c2w is not None:
        record["gt_interpolation"] = gt_interpolation_errors(sample.c2w[inp], context, c2w, between)
    return record, rows


def _probe_samples(run: _Run, entry: SceneEntry) -> list:
    """``run.probe_samples`` random-protocol samples of ``run.probe_views`` views of a posed
    scene (seeds ``seed``, ``seed + 1``, ...), with the frozen estimator's camera tokens."""
    from rayzer.data.protocols import random_split
    from rayzer.eval.probe import ProbeSample

    out = []
    for k in range(run.probe_samples):
        split = random_split(
            entry.num_frames,
            2,
            run.probe_views - 2,
            seed=run.seed + k,
            scene=entry.name,
            span=run.span,
        )
        if split is None:
            break
        images, c2w, _, _ = load_views(entry, split.views, run.out_hw)
        with torch.no_grad():
            cams = run.model.predict_cameras(images[None].to(run.device))  # type: ignore[operator]
        out.append(ProbeSample(cams.tokens[0].float().cpu(), c2w, f"{entry.name}#{k}"))
    return out


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
        ckpt: checkpoint / run directory (None: the bundled model).
        out: output folder (default ``outputs/eval/<data name>``); must not exist unless
            ``overwrite``.
        protocol: ``even``, ``random`` or an index JSON (pixelSplat / LVSM / RayZer style).
        num_context, num_target: views per sample (default: the checkpoint's training counts;
            ignored for index files, which list the frames).
        span: window of frames the views are drawn from (default: the whole scene).
        seed: seed of the random protocol (and of the probe).
        size: square model input side (default: the checkpoint's training size).
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
    from rayzer.bundled import bundled_checkpoint
    from rayzer.checkpoints import load_trained_model
    from rayzer.data.images import output_size
    from rayzer.utils.atomic import staged_output
    from rayzer.utils.device import resolve_device
    from rayzer.utils.paths import check_output_apart, check_replaceable

    t0 = time.perf_counter()
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
    if probe_samples < 1 or probe_steps < 1 or interp_frames < 1:
        raise ValueError("--probe-samples, --probe-steps and --interp-frames must be >= 1")
    out = Path(out) if out is not None else default_output(data)
    check_output_apart(out, {"--data": data, "--ckpt": ckpt, "--probe-train": probe_train})
    if overwrite:
        check_replaceable(out)
    if out.exists() and not overwrite:
        raise FileExistsError(
            f"output folder {out} already exists (pass --overwrite to replace it)"
        )
    if not Path(data).exists():
        raise FileNotFoundError(f"--data not found: {data}")

    dev = resolve_device(device)
    trained = load_trained_model(bundled_checkpoint() if ckpt is None else ckpt, dev)
    model, cfg = trained.model, trained.config
    predicts = model.capabilities.predicts_cameras
    if not predicts and (probe or interp or colmap):
        raise ValueError(
            "--probe, --interp and --colmap need a model that predicts cameras; "
            f"{trained.path} holds a {model.name!r} model"
        )
    side = int(size or cfg.data.image_size)
    out_hw = output_size(side, model.image_multiple, "square")
    from rayzer.data.protocols import PAPER_PROTOCOLS

    if protocol in PAPER_PROTOCOLS:  # the paper's own view counts
        num_context, num_target = PAPER_PROTOCOLS[protocol]
    num_context = int(num_context or cfg.data.num_input_views)
    num_target = int(num_target or cfg.data.num_target_views)
    lpips_modules = load_lpips_modules(nets, dev, side)
    show = sys.stderr.isatty() if progress is None else progress
    with tempfile.TemporaryDirectory(prefix="rayzer-eval-") as work_dir:
        work = Path(work_dir)
        root, fmt = resolve_dataset(data, work / "data", format, log=log.info)
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

        run = _Run(
            model=model,
            methods=_methods(model, posed=all(s.entry.posed for s in scenes)),
            out_hw=out_hw,
            lpips=lpips_modules,
            device=dev,
            work=work,
            interp_frames=interp_frames if interp else None,
            colmap=colmap,
            collect_probe=probe,
            probe_views=num_context + num_target,
            probe_samples=probe_samples,
            seed=seed,
            span=span,
        )
        with staged_output(out, overwrite) as tmp:
            (tmp / "grids").mkdir(parents=True)
            bar = tqdm(scenes, desc="rayzer eval", unit="scene", disable=not show, file=sys.stderr)
            for number, scene in enumerate(bar):
                grid = tmp / "grids" / f"{number:04d}_{_safe_name(scene.name)}.png"
                record = _evaluate_scene(run, scene, number, grid)
                bar.set_postfix(psnr=f"{record['methods'][run.methods[0].name]['psnr']:.2f}")

            probe_report = None
            if probe:
                probe_report = _probe_report(run, probe_train, probe_steps)
            from rayzer.eval.eval_report import metrics_markdown
            from rayzer.utils.report import machine_info

            metrics = {
                "command": "rayzer eval",
                "checkpoint": str(trained.path),
                "bundled_model": ckpt is None,
                "step": trained.step,
                "model": model.name,
                "data": str(data),
                "data_format": fmt,
                "protocol": protocol,
                "num_context": num_context,
                "num_target": num_target,
                "span": span,
                "seed": seed,
                "image_size": list(out_hw),
                "lpips_nets": list(nets),
                "device": str(dev),
                "summary": _summary(run),
                "probe": probe_report,
                "interp": _interp_summary(run.interp_records) if interp else None,
                "colmap": _colmap_summary(run.colmap_records) if colmap else None,
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
            metrics = _finite(metrics)
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1, allow_nan=False) + "\n")
            (tmp / "metrics.md").write_text(metrics_markdown(metrics) + "\n")
    return EvalRun(out, metrics)


@dataclass
class _Run:
    """What every scene of one ``rayzer eval`` run shares, and what it accumulates."""

    model: nn.Module
    methods: list[NovelViewMethod]
    out_hw: tuple[int, int]
    lpips: dict[str, nn.Module]
    device: torch.device
    work: Path  # temporary working folder (conversion, COLMAP)
    interp_frames: int | None  # None: no interpolation
    colmap: bool
    collect_probe: bool  # collect probe samples (tokens + truth) of the evaluated scenes
    probe_views: int
    probe_samples: int
    seed: int
    span: int | None
    records: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, list[PoseErrors]] = field(default_factory=dict)
    probe_sets: dict[str, list] = field(default_factory=dict)
    interp_records: list[dict[str, Any]] = field(default_factory=list)
    colmap_records: list[dict[str, Any]] = field(default_factory=list)


def _evaluate_scene(run: _Run, scene: EvalScene, number: int, grid_path: Path) -> dict[str, Any]:
    """Measure everything on one scene, write its grid, accumulate into ``run``; its record."""
    from rayzer.eval.figures import error_map, scene_grid

    sample, files = load_sample(scene, run.out_hw)
    images = sample.images
    target = images[sample.target_index]
    record: dict[str, Any] = {
        "name": scene.name,
        "path": str(scene.entry.path),
        "posed": scene.entry.posed,
        "context": list(scene.split.context),
        "target": list(scene.split.target),
        "methods": {},
        "grid": f"grids/{grid_path.name}",
        **({"tags": scene.tags} if scene.tags else {}),
    }
    rows: list[tuple[str, torch.Tensor]] = [
        ("inputs", images[sample.input_index]),
        ("targets", target),
    ]
    learned = {m.name for m in run.methods[:-2]}  # the model's rows (the baselines are last)
    for method in run.methods:
        rec, render, err = _score(method, sample, run.lpips, run.device)
        record["methods"][method.name] = rec
        if err is not None:
            run.errors.setdefault(method.name, []).append(err)
        if method.name in learned:
            rows.append((f"{method.name}\nPSNR {rec['psnr']:.2f}", render))
            rows.append(("|error| 0-0.25", error_map(render, target)))
        elif method.name == "copy_nearest":
            rows.append((f"copy-nearest\nPSNR {rec['psnr']:.2f}", render))

    model = run.model
    predicts = model.capabilities.predicts_cameras
    if run.interp_frames is not None and predicts:
        interp, interp_rows = _interp_scene(
            model, scene, sample, run.out_hw, run.interp_frames, run.lpips, run.device
        )
        record["interp"] = interp
        run.interp_records.append({"scene": scene.name, **interp})
        rows += interp_rows

    if run.colmap and predicts:
        from rayzer.eval.colmap_reference import colmap_reference

        with torch.no_grad():  # our cameras: the paper's protocol (all views in one pass)
            ours = model.predict_cameras(images[None].to(run.device)).c2w[0].cpu()
        paths = [scene.entry.path / f for f in files]
        rep = colmap_reference(ours, paths, run.work / f"colmap_{number:04d}", gt_c2w=sample.c2w)
        record["colmap"] = {k: v for k, v in rep.items() if k != "raw"}
        run.colmap_records.append({"scene": scene.name, **rep})

    if run.collect_probe and scene.entry.posed and predicts:
        items = _probe_samples(run, scene.entry)
        if items:
            run.probe_sets[scene.name] = items

    title = f"{scene.name}: context {record['context']}, targets {record['target']}"
    Image.fromarray(scene_grid(rows, title=title)).save(grid_path)
    run.records.append(record)
    return record


# -- summaries --------------------------------------------------------------------------------------


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals and len(vals) == len(values) else None


def _summary(run: _Run) -> dict[str, Any]:
    """Per method: means over scenes of the image metrics, pooled pose metrics."""
    out: dict[str, Any] = {}
    for m in run.methods:
        recs = [s["methods"][m.name] for s in run.records]
        entry: dict[str, Any] = {
            "num_scenes": len(recs),
            "num_images": sum(len(r["psnr_per_target"]) for r in recs),
        }
        for key in ("psnr", "ssim", "lpips_vgg", "lpips_alex"):
            entry[key] = _mean([r[key] for r in recs])
        errors = run.errors.get(m.name)
        entry["pose"] = summarize_pose_errors(cat_pose_errors(errors)) if errors else None
        entry["depth"] = _depth_summary([r.get("depth") for r in recs])
        by_tag = _by_overlap_tag(run.records, m.name)
        if by_tag:
            entry["by_overlap"] = by_tag
        out[m.name] = entry
    return out


def _depth_summary(records: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Depth metrics over all scored input views (None: the method has no depth, or the
    scenes no exact depth)."""
    recs = [r for r in records if r and r.get("num_images")]
    if not recs:
        return None
    n = sum(r["num_images"] for r in recs)
    return {
        "abs_rel": sum(r["abs_rel"] * r["num_images"] for r in recs) / n,
        "delta_1_25": sum(r["delta_1_25"] * r["num_images"] for r in recs) / n,
        "num_images": n,
    }


def _by_overlap_tag(records: list[dict[str, Any]], method: str) -> dict[str, Any]:
    """Image metrics per overlap tag of the context pair (the ``nas3r`` protocol), else {}."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for s in records:
        tag = s.get("tags", {}).get("overlap_tag")
        if tag is not None:
            groups.setdefault(tag, []).append(s["methods"][method])
    return {
        tag: {"num_samples": len(recs), "psnr": _mean([r["psnr"] for r in recs]),
              "ssim": _mean([r["ssim"] for r in recs]),
              "lpips_vgg": _mean([r["lpips_vgg"] for r in recs])}
        for tag, recs in sorted(groups.items())
    }  # fmt: skip


def _interp_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in records if r.get("status") == "ok"]
    out: dict[str, Any] = {
        "num_scenes": len(ok),
        "skipped": [{"scene": r["scene"], "reason": r["reason"]} for r in records if r not in ok],
    }
    for name in ("rayzer_interpolated", "copy_nearest"):
        out[name] = {
            key: _mean([r[name][key] for r in ok]) if ok else None
            for key in ("psnr", "ssim", "lpips_vgg", "lpips_alex")
        }
    gt = [r["gt_interpolation"] for r in ok if "gt_interpolation" in r]
    out["gt_interpolation_rot_err_deg_median"] = (
        _mean([g["rot_err_deg_median"] for g in gt]) if gt else None
    )
    out["gt_interpolation_centre_err_median"] = (
        _mean([g["centre_err_median"] for g in gt]) if gt else None
    )
    return out


def _colmap_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in records if r.get("status") == "ok"]
    out: dict[str, Any] = {
        "num_scenes": len(ok),
        "skipped": [
            {"scene": r["scene"], "reason": r.get("reason", "")} for r in records if r not in ok
        ],
        "registered_fraction": (
            sum(r["registered"] for r in ok) / sum(r["num_images"] for r in ok) if ok else None
        ),
    }
    from rayzer.eval.camera_metrics import pairwise_summary

    for key in ("ours_vs_colmap", "colmap_vs_gt", "ours_vs_gt_on_registered"):
        raws = [r["raw"][key] for r in ok if r["raw"].get(key) is not None]
        out[key] = (
            pairwise_summary(torch.cat([a for a, _ in raws]), torch.cat([b for _, b in raws]))
            if raws
            else None
        )
    return out


def _probe_report(run: _Run, probe_train: str | Path | None, probe_steps: int) -> dict[str, Any]:
    """Split scenes into probe train / test and run :func:`rayzer.eval.probe.run_pose_probe`."""
    from rayzer.eval.probe import ProbeConfig, run_pose_probe

    sets = run.probe_sets  # samples of the evaluated posed scenes
    if probe_train is not None:
        root, _ = resolve_dataset(probe_train, run.work / "probe_data", log=log.info)
        train_names, train = [], []
        for e in list_scene_entries(root):
            items = _probe_samples(run, e) if e.posed else []
            if items:
                train_names.append(e.name)
                train += items
        split_rule = f"trained on the posed scenes of {probe_train}, tested on the evaluated ones"
        test_names = sorted(sets)
    else:
        names = sorted(sets)
        train_names, test_names = names[0::2], names[1::2]
        train = [s for n in train_names for s in sets[n]]
        split_rule = "posed scenes in name order: even positions train the probe, odd test it"
    test = [s for n in test_names for s in sets[n]]
    if not train or not test:
        reason = (
            f"pose probing needs posed scenes with >= {run.probe_views} frames for both training "
            f"and testing; got {len(train_names)} train and {len(test_names)} test scene(s)"
        )
        log.warning("probe skipped: %s", reason)
        return {"status": "skipped", "reason": reason}
    report = run_pose_probe(train, test, ProbeConfig(steps=probe_steps, seed=run.seed))
    return {
        "status": "ok",
        "split": split_rule,
        "train_scenes": train_names,
        "test_scenes": test_names,
        "samples_per_scene": run.probe_samples,
        "views_per_sample": run.probe_views,
        **report,
    }
