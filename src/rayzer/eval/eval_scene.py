"""``rayzer eval``, per scene: render every method on one scene, score it, write its grid.

The stage between planning (:mod:`rayzer.eval.run`) and the report
(:mod:`rayzer.eval.eval_summary`): :func:`evaluate_scene` measures one scene and accumulates its
record, pose errors, interpolation / COLMAP records and probe samples into a :class:`RunState`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from rayzer.eval.camera_metrics import PoseErrors, pose_errors, summarize_pose_errors
from rayzer.eval.eval_data import EvalScene, SceneEntry, load_sample, load_views
from rayzer.eval.novel_view import (
    CopyNearestMethod,
    EvalSample,
    MeanOfInputsMethod,
    MethodOutput,
    ModelMethod,
    NovelViewMethod,
    evaluate,
)
from rayzer.models import RayModel

LPIPS_NETS = ("vgg", "alex")
#: Suffixes of a camera-predicting model's two rows (``rayzer_with_targets``, …).
WITH, WITHOUT = "_with_targets", "_without_targets"


@dataclass
class RunState:
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


def methods_for(model: RayModel, posed: bool = False) -> list[NovelViewMethod]:
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


def probe_samples(run: RunState, entry: SceneEntry) -> list:
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


def evaluate_scene(run: RunState, scene: EvalScene, number: int, grid_path: Path) -> dict[str, Any]:
    """Measure everything on one scene, write its grid, accumulate into ``run``; its record."""
    from rayzer.eval.figures import scene_grid

    sample, files = load_sample(scene, run.out_hw)
    record = _scene_record(scene, grid_path)
    rows = _score_methods(run, sample, record)
    if run.model.capabilities.predicts_cameras:
        rows += _scene_extras(run, scene, sample, files, number, record)
    title = f"{scene.name}: context {record['context']}, targets {record['target']}"
    Image.fromarray(scene_grid(rows, title=title)).save(grid_path)
    run.records.append(record)
    return record


def _scene_record(scene: EvalScene, grid_path: Path) -> dict[str, Any]:
    """The scene's record before any method is scored (``methods`` still empty)."""
    return {
        "name": scene.name,
        "path": str(scene.entry.path),
        "posed": scene.entry.posed,
        "context": list(scene.split.context),
        "target": list(scene.split.target),
        "methods": {},
        "grid": f"grids/{grid_path.name}",
        **({"tags": scene.tags} if scene.tags else {}),
    }


def _score_methods(
    run: RunState, sample: EvalSample, record: dict[str, Any]
) -> list[tuple[str, torch.Tensor]]:
    """Score every method into ``record["methods"]`` and ``run.errors``; the grid rows."""
    from rayzer.eval.figures import error_map

    images = sample.images
    target = images[sample.target_index]
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
    return rows


def _scene_extras(
    run: RunState,
    scene: EvalScene,
    sample: EvalSample,
    files: list[str],
    number: int,
    record: dict[str, Any],
) -> list[tuple[str, torch.Tensor]]:
    """The optional measurements of a camera-predicting model (interpolation, COLMAP reference,
    probe samples), accumulated into ``record`` and ``run``; the interpolation grid rows."""
    model = run.model
    rows: list[tuple[str, torch.Tensor]] = []
    if run.interp_frames is not None:
        interp, rows = _interp_scene(
            model, scene, sample, run.out_hw, run.interp_frames, run.lpips, run.device
        )
        record["interp"] = interp
        run.interp_records.append({"scene": scene.name, **interp})

    if run.colmap:
        from rayzer.eval.colmap_reference import colmap_reference

        with torch.no_grad():  # our cameras: the paper's protocol (all views in one pass)
            ours = model.predict_cameras(sample.images[None].to(run.device)).c2w[0].cpu()
        paths = [scene.entry.path / f for f in files]
        rep = colmap_reference(ours, paths, run.work / f"colmap_{number:04d}", gt_c2w=sample.c2w)
        record["colmap"] = {k: v for k, v in rep.items() if k != "raw"}
        run.colmap_records.append({"scene": scene.name, **rep})

    if run.collect_probe and scene.entry.posed:
        items = probe_samples(run, scene.entry)
        if items:
            run.probe_sets[scene.name] = items
    return rows
