"""Novel-view evaluation core: renders and metrics of a model or baseline on evaluation samples.

Pure function of tensors + models (no files, no configs), shared by ``rayzer bench quality`` and
``rayzer eval``. One :class:`EvalSample` is one multi-view sample of a scene: V views in frame
order, split into inputs (build the scene) and targets (rendered and scored). Methods follow the
RayZer paper's protocol; a model is evaluated through the interface of
:class:`rayzer.models.base.RayModel` only, by its capability flags (:class:`ModelMethod`):

* a model that **predicts cameras** (:func:`model_novel_views`, e.g. RayZer): cameras are
  predicted from ALL V views (target images are used for pose estimation only), the scene is
  built from the *input* views with their predicted cameras, and the targets are rendered with
  their *predicted* cameras. Target pixels never reach the scene. Composed from the model's
  stages so that the cameras can be supplied (tests, and the "cameras without targets" variant
  of ``rayzer eval``).
* a model that **needs ground-truth cameras** (e.g. the LVSM oracle): its own forward pass on
  the batch's ``c2w`` / ``K``.
* **copy-nearest**: each target = the input view nearest in frame number.
* **mean of inputs**: each target = the pixel-wise mean of the input views.

Metrics per sample (averaged over its targets, per-image values kept): PSNR (capped at
:data:`PSNR_CAP_DB` so identical images stay finite), SSIM, LPIPS-VGG (``None`` with a reason
when the weights are unavailable — never 0); for methods that predict cameras, the pose report
(:func:`rayzer.eval.poses.pose_report`: relative rotation / translation-direction errors, accuracy
at 5/10/15°, AUC, RPA, predicted vs true focal) and collapse diagnostics; for methods with depth
on samples with exact depth (synthetic scenes), AbsRel and δ<1.25 of the input views' z-depth
after per-image median scaling (:mod:`rayzer.eval.depth_metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from rayzer.eval.depth_metrics import median_scaled_depth_errors, summarize_depth
from rayzer.eval.image_metrics import psnr, ssim
from rayzer.eval.poses import collapse_diagnostics, pose_report
from rayzer.geometry import relative_to_canonical
from rayzer.models import CameraPrediction, CopyNearest, RayModel, mean_of_inputs
from rayzer.models.views import as_view_index, gather_views

#: Per-image PSNR cap (dB): a perfect render gives +inf, which no mean or JSON file can hold.
PSNR_CAP_DB = 100.0


# -- samples ------------------------------------------------------------------------------------


@dataclass
class EvalSample:
    """One evaluation sample (no batch dim).

    Attributes:
        images: (V, 3, H, W) float in [0, 1], views in frame order (canonical = V // 2).
        input_index: (Vi,) positions of the input (context) views.
        target_index: (Vt,) positions of the target views (disjoint from the inputs).
        frame_index: (V,) frame numbers (copy-nearest uses them); default 0 … V−1.
        c2w: (V, 4, 4) ground-truth OpenCV camera-to-world (any world frame), or None.
        K: (V, 4) ground-truth pixel intrinsics (fx, fy, cx, cy), or None.
        name: scene / sample name for reports.
        depth: (V, H, W) exact camera z-depth of every view (+inf where empty), or None.
    """

    images: Tensor
    input_index: Tensor
    target_index: Tensor
    frame_index: Tensor | None = None
    c2w: Tensor | None = None
    K: Tensor | None = None
    name: str = ""
    depth: Tensor | None = None

    def __post_init__(self) -> None:
        where = f"eval sample {self.name!r}"
        if self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(
                f"{where}: images must be (V, 3, H, W), got {tuple(self.images.shape)}"
            )
        v = self.images.shape[0]
        self.input_index = torch.as_tensor(self.input_index, dtype=torch.long).reshape(-1)
        self.target_index = torch.as_tensor(self.target_index, dtype=torch.long).reshape(-1)
        if self.frame_index is None:
            self.frame_index = torch.arange(v)
        self.frame_index = torch.as_tensor(self.frame_index, dtype=torch.long).reshape(-1)
        if len(self.input_index) < 1 or len(self.target_index) < 1:
            raise ValueError(f"{where}: needs at least one input and one target view")
        both = torch.cat((self.input_index, self.target_index))
        if both.min() < 0 or both.max() >= v:
            raise ValueError(f"{where}: view index out of range for {v} views: {both.tolist()}")
        if len(set(both.tolist())) != len(both):
            raise ValueError(f"{where}: input and target views overlap or repeat: {both.tolist()}")
        if self.frame_index.shape != (v,):
            raise ValueError(
                f"{where}: frame_index must be ({v},), got {tuple(self.frame_index.shape)}"
            )
        if self.c2w is not None and self.c2w.shape != (v, 4, 4):
            raise ValueError(f"{where}: c2w must be ({v}, 4, 4), got {tuple(self.c2w.shape)}")
        if self.K is not None and self.K.shape != (v, 4):
            raise ValueError(f"{where}: K must be ({v}, 4), got {tuple(self.K.shape)}")
        hw = tuple(self.images.shape[-2:])
        if self.depth is not None and self.depth.shape != (v, *hw):
            raise ValueError(
                f"{where}: depth must be ({v}, {hw[0]}, {hw[1]}), got {tuple(self.depth.shape)}"
            )

    @property
    def layout(self) -> tuple:
        """Samples with equal layouts can be batched together."""
        return (
            tuple(self.images.shape),
            len(self.input_index),
            len(self.target_index),
            self.c2w is not None,
            self.K is not None,
            self.depth is not None,
        )


def collate(samples: Sequence[EvalSample], device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """Stack samples of one layout into a batch dict: ``image`` (B, V, 3, H, W),
    ``input_index`` (B, Vi), ``target_index`` (B, Vt), ``index`` (B, V) and, when every sample
    has them, ``c2w`` (B, V, 4, 4), ``K`` (B, V, 4) and ``depth`` (B, V, H, W)."""
    if not samples:
        raise ValueError("collate: no samples")
    if len({s.layout for s in samples}) != 1:
        raise ValueError("collate: samples of different shapes / view counts cannot be batched")
    batch = {
        "image": torch.stack([s.images for s in samples]),
        "input_index": torch.stack([s.input_index for s in samples]),
        "target_index": torch.stack([s.target_index for s in samples]),
        "index": torch.stack([s.frame_index for s in samples]),
    }
    if samples[0].c2w is not None:
        batch["c2w"] = torch.stack([s.c2w for s in samples])
    if samples[0].K is not None:
        batch["K"] = torch.stack([s.K for s in samples])
    if samples[0].depth is not None:
        batch["depth"] = torch.stack([s.depth for s in samples])
    return {k: v.to(device) for k, v in batch.items()}


def _batches(samples: Sequence[EvalSample], batch_size: int) -> list[list[int]]:
    """Consecutive runs of at most ``batch_size`` sample numbers sharing one layout."""
    groups: list[list[int]] = []
    for i, s in enumerate(samples):
        if groups and len(groups[-1]) < batch_size and samples[groups[-1][0]].layout == s.layout:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


# -- methods -----------------------------------------------------------------------------------


@dataclass
class MethodOutput:
    """What a method produced for a batch.

    Attributes:
        render: (B, Vt, 3, H, W) target renders.
        c2w: (B, V, 4, 4) predicted cameras of all views (camera-predicting methods), else None.
        K_norm: (B, V, 4) predicted normalised intrinsics, else None.
        canonical: index of the view whose predicted pose is the identity.
        depth: (B, Vt, 1, H, W) rendered depth (models with ``outputs_depth``), else None.
        input_depth: (B, Vi, 1, H, W) the model's camera z-depth of its input views (models with
            ``outputs_depth``), else None.
    """

    render: Tensor
    c2w: Tensor | None = None
    K_norm: Tensor | None = None
    canonical: int | None = None
    depth: Tensor | None = None
    input_depth: Tensor | None = None


class NovelViewMethod(Protocol):
    """A renderer of target views: ``method(batch) -> MethodOutput`` (batch from :func:`collate`)."""

    name: str

    def __call__(self, batch: dict[str, Tensor]) -> MethodOutput: ...


def model_novel_views(
    model: RayModel,
    images: Tensor,
    input_index: Tensor,
    target_index: Tensor,
    cameras: CameraPrediction | None = None,
) -> MethodOutput:
    """The evaluation protocol of a camera-predicting model (module docstring).

    Args:
        model: a model with ``capabilities.predicts_cameras``.
        images: (B, V, 3, H, W) in frame order.
        input_index, target_index: (Vi,)/(B, Vi) and (Vt,)/(B, Vt).
        cameras: cameras of all V views; default ``model.predict_cameras(images)`` (all views).
    Returns:
        renders (B, Vt, 3, H, W), depth where the model renders it (targets, and the input
        views' depth: :func:`scene_input_depth`), and the cameras used. Only
        ``images[input_index]`` and the cameras reach the scene; target images influence the
        renders only through the cameras.
    """
    b, v, _, h, w = images.shape
    inp = as_view_index(input_index, b, v).to(images.device)
    tgt = as_view_index(target_index, b, v).to(images.device)
    cams = model.predict_cameras(images) if cameras is None else cameras
    scene = model.reconstruct(
        gather_views(images, inp),
        gather_views(cams.c2w, inp),
        gather_views(cams.K_norm, inp),
        view_positions=inp,
    )
    out = model.render(scene, gather_views(cams.c2w, tgt), gather_views(cams.K_norm, tgt), h, w)
    canonical = cams.canonical if cams.canonical is not None else v // 2
    input_depth = None
    if model.capabilities.outputs_depth:
        input_depth = scene_input_depth(
            model, scene, gather_views(cams.c2w, inp), gather_views(cams.K_norm, inp), h, w
        )
    return MethodOutput(out.rgb, cams.c2w, cams.K_norm, canonical, out.depth, input_depth)


def scene_input_depth(
    model: RayModel, scene: Any, c2w: Tensor, K_norm: Tensor, height: int, width: int
) -> Tensor | None:
    """The camera z-depth (B, Vi, 1, H, W) a depth-capable model assigns to its input views.

    The interface (:class:`rayzer.models.base.Capabilities`: ``outputs_depth``) promises that
    such a scene has per-input-view depth ``input_depth``, the depth the model predicts for the
    images it reconstructs from; a scene without that attribute is rendered at the input
    cameras (c2w (B, Vi, 4, 4), K_norm (B, Vi, 4)) and its rendered depth is used. None when
    neither exists."""
    depth = getattr(scene, "input_depth", None)
    if isinstance(depth, Tensor) and depth.shape[-2:] == (height, width):
        return depth
    return model.render(scene, c2w, K_norm, height, width).depth


class ModelMethod:
    """A registered model, evaluated by its capabilities: its own predicted cameras
    (:func:`model_novel_views`), or its forward pass for a model that ``needs_gt_cameras`` (the
    batch's ground-truth cameras) or has no geometric cameras (neither flag: its own latent
    view codes; no cameras, so no pose metrics)."""

    def __init__(self, model: RayModel, name: str | None = None) -> None:
        self.model, self.name = model, name or model.name or type(model).__name__.lower()

    def __call__(self, batch: dict[str, Tensor]) -> MethodOutput:
        caps = self.model.capabilities
        if caps.needs_gt_cameras and ("c2w" not in batch or "K" not in batch):
            raise ValueError(f"{self.name}: this model needs ground-truth cameras (c2w and K)")
        if caps.needs_gt_cameras or not caps.predicts_cameras:
            out = self.model(batch, batch["input_index"], batch["target_index"])
            return MethodOutput(
                out.rendered.rgb, depth=out.rendered.depth, input_depth=out.input_depth
            )
        return model_novel_views(
            self.model, batch["image"], batch["input_index"], batch["target_index"]
        )


class CopyNearestMethod:
    """Each target = the input view nearest in frame number."""

    name = "copy_nearest"

    def __call__(self, batch: dict[str, Tensor]) -> MethodOutput:
        render = CopyNearest()(
            batch["image"], batch["input_index"], batch["target_index"], frame_index=batch["index"]
        )
        return MethodOutput(render)


class MeanOfInputsMethod:
    """Each target = the pixel-wise mean of the input views."""

    name = "mean_of_inputs"

    def __call__(self, batch: dict[str, Tensor]) -> MethodOutput:
        render = mean_of_inputs(
            batch["image"], batch["input_index"], batch["target_index"].shape[1]
        )
        return MethodOutput(render)


def method_for(model: nn.Module | NovelViewMethod, name: str | None = None) -> NovelViewMethod:
    """Wrap a registered model in :class:`ModelMethod`; other methods pass through."""
    if isinstance(model, RayModel):
        return ModelMethod(model, name)
    if callable(model) and hasattr(model, "name"):
        return model  # type: ignore[return-value]
    raise ValueError(f"cannot evaluate {type(model).__name__}: not a RayModel or a method")


def baseline_methods() -> list[NovelViewMethod]:
    """The non-learned references every number is compared with."""
    return [CopyNearestMethod(), MeanOfInputsMethod()]


# -- LPIPS -----------------------------------------------------------------------------------------


def load_lpips(net: str = "vgg", enabled: bool = True) -> tuple[nn.Module | None, str | None]:
    """``(LPIPS module, None)`` or ``(None, reason)`` when disabled or the weights are missing."""
    if not enabled:
        return None, "LPIPS disabled"
    from rayzer.eval.lpips import LPIPS

    try:
        return LPIPS(net), None
    except (FileNotFoundError, ValueError) as err:
        return None, f"LPIPS-{net} unavailable: {err}"


# -- evaluation ----------------------------------------------------------------------------------


@dataclass
class EvalResult:
    """Everything :func:`evaluate` measured for one method.

    Attributes:
        method: the method's name.
        per_sample: one dict per sample (``name``, ``psnr``, ``ssim``, ``lpips`` means over its
            targets, ``psnr_per_target`` …, and ``pose`` / ``collapse`` for camera-predicting
            methods on samples with ground truth).
        summary: means over samples (``psnr``, ``ssim``, ``lpips``, ``lpips_note``,
            ``num_samples``, ``num_images``) and, for camera-predicting methods, ``pose`` (pose
            report over all pairs of all samples, with focals) and ``collapse``.
        renders: CPU renders (Vt, 3, H, W) of the first ``keep_renders`` samples.
        c2w, K_norm: (S, V, 4, 4) / (S, V, 4) predicted cameras (camera-predicting methods).
        canonical: the view whose predicted pose is the identity (when all samples agree).
    """

    method: str
    per_sample: list[dict[str, Any]]
    summary: dict[str, Any]
    renders: list[Tensor] = field(default_factory=list)
    c2w: Tensor | None = None
    K_norm: Tensor | None = None
    canonical: int | None = None


def capped_psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image PSNR (dB) capped at :data:`PSNR_CAP_DB`: (..., 3, H, W) → (...)."""
    return psnr(pred, target).clamp(max=PSNR_CAP_DB)


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals and len(vals) == len(values) else None


def camera_report(
    pred_c2w: Tensor,
    gt_c2w: Tensor,
    canonical: int,
    pred_focal: Tensor | None = None,
    gt_focal: Tensor | None = None,
) -> dict[str, Any]:
    """Pose report and collapse diagnostics of predicted cameras, with the truth beside them.

    Args:
        pred_c2w, gt_c2w: (S, V, 4, 4); canonical: the predicted identity view.
        pred_focal, gt_focal: optional (S,) normalised focals fx / W.
    Returns:
        ``{"pose": pose_report, "collapse": {noncanonical_spread_deg_median,
        pred_rel_rot_deg_median, focal_spread (std of the predicted focal over samples), and the
        same for the truth: gt_noncanonical_spread_deg_median,
        gt_rel_rot_to_canonical_deg_median, gt_focal_spread}}``. Where the true cameras turn
        one way (:mod:`rayzer.eval.turns`: orbits), ``pose["by_turn"]`` splits the pairs by
        that direction (per-direction medians and their mean, ``balanced_…``), read-outs a
        model that predicts the commoner turn without reading the images cannot game; the key
        is absent when no sample turns one way.
    """
    pose = pose_report(pred_c2w.double(), gt_c2w.double(), pred_focal, gt_focal)
    collapse = collapse_diagnostics(pred_c2w.double(), canonical)
    truth = collapse_diagnostics(relative_to_canonical(gt_c2w.double(), canonical), canonical)
    collapse["gt_noncanonical_spread_deg_median"] = truth["noncanonical_spread_deg_median"]
    collapse["gt_rel_rot_to_canonical_deg_median"] = truth["pred_rel_rot_deg_median"]
    if pred_focal is not None:
        collapse["focal_spread"] = pred_focal.std().item() if pred_focal.numel() > 1 else 0.0
    if gt_focal is not None:
        collapse["gt_focal_spread"] = gt_focal.std().item() if gt_focal.numel() > 1 else 0.0
    return {"pose": pose, "collapse": collapse}


def evaluate(
    method: NovelViewMethod | nn.Module,
    samples: Sequence[EvalSample],
    *,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    lpips: nn.Module | None = None,
    lpips_note: str | None = None,
    keep_renders: int = 0,
    progress: bool | None = None,
) -> EvalResult:
    """Render the targets of every sample with ``method`` and score them (module docstring).

    Args:
        method: a :class:`NovelViewMethod`, or a registered model (wrapped by
            :func:`method_for`). Models are put in eval mode (restored afterwards) and run
            under ``torch.no_grad()``.
        samples: evaluation samples; consecutive samples of one layout are batched.
        batch_size: samples per forward pass.
        device: where the method runs (its model must already be there).
        lpips: an LPIPS module (on ``device``) or None; ``lpips_note`` says why it is missing.
        keep_renders: keep the renders of the first K samples (for figures).
        progress: tqdm bar (None = only on a terminal).
    Returns:
        :class:`EvalResult`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not samples:
        raise ValueError("evaluate: no samples")
    method = method_for(method)
    model = getattr(method, "model", None)
    was_training = model.training if isinstance(model, nn.Module) else None
    if isinstance(model, nn.Module):
        model.eval()

    per_sample: list[dict[str, Any]] = []
    depth_errors: list[dict[str, Tensor]] = []
    renders: list[Tensor] = []
    cams: list[_BatchCameras] = []
    try:
        groups = _batches(samples, batch_size)
        disable = None if progress is None else not progress  # None: tqdm's "only on a TTY"
        bar = tqdm(groups, desc=f"eval {method.name}", unit="batch", disable=disable, leave=False)
        with torch.no_grad():
            for group in bar:
                batch = collate([samples[i] for i in group], device)
                out = method(batch)
                render = _checked_render(method.name, out, batch)
                records = _image_records(render, batch, [samples[i].name for i in group], lpips)
                per_sample += records
                renders += [r.detach().cpu() for r in render[: max(0, keep_renders - len(renders))]]
                depth = _input_depth_errors(out, batch)
                if depth is not None:
                    depth_errors.append(depth)
                    for j, record in enumerate(records):
                        record["depth"] = summarize_depth(
                            depth["abs_rel"][j], depth["delta_1_25"][j]
                        )
                if out.c2w is not None:
                    cams.append(_batch_cameras(out, batch))
                    _add_camera_reports(records, cams[-1])
    finally:
        if isinstance(model, nn.Module) and was_training:
            model.train()

    note = None if lpips is not None else (lpips_note or "LPIPS not requested")
    summary = _summary(per_sample, depth_errors, note, method.name, samples)
    result = EvalResult(method.name, per_sample, summary, renders)
    if cams:
        _pool_cameras(result, cams)
    return result


def _checked_render(name: str, out: MethodOutput, batch: dict[str, Tensor]) -> Tensor:
    """The method's target renders as float (B, Vt, 3, H, W), checked against the targets."""
    target = gather_views(batch["image"], batch["target_index"])
    if out.render.shape != target.shape:
        raise ValueError(
            f"{name}: render shape {tuple(out.render.shape)} != target shape {tuple(target.shape)}"
        )
    return out.render.float()


def _image_records(
    render: Tensor, batch: dict[str, Tensor], names: list[str], lpips: nn.Module | None
) -> list[dict[str, Any]]:
    """One record per sample of the batch: PSNR / SSIM / LPIPS, means and per target."""
    target = gather_views(batch["image"], batch["target_index"])
    p = capped_psnr(render, target).cpu()
    s = ssim(render, target).cpu()
    lp = lpips(render.clamp(0, 1), target).cpu() if lpips is not None else None
    return [
        {
            "name": name,
            "psnr": p[j].mean().item(),
            "ssim": s[j].mean().item(),
            "lpips": lp[j].mean().item() if lp is not None else None,
            "psnr_per_target": p[j].tolist(),
            "ssim_per_target": s[j].tolist(),
        }
        for j, name in enumerate(names)
    ]


@dataclass
class _BatchCameras:
    """A batch's predicted cameras (CPU) beside the ground truth, kept to pool the pose report."""

    c2w: Tensor  # (B, V, 4, 4)
    K_norm: Tensor | None  # (B, V, 4)
    gt_c2w: Tensor | None  # (B, V, 4, 4)
    gt_focal: Tensor | None  # (B, V) fx / W of the ground truth
    canonical: int


def _batch_cameras(out: MethodOutput, batch: dict[str, Tensor]) -> _BatchCameras:
    gt = batch.get("c2w")
    gt_focal = None
    if "K" in batch:
        gt_focal = (batch["K"][:, 0, 0] / batch["image"].shape[-1]).cpu()
    return _BatchCameras(
        out.c2w.cpu(),  # type: ignore[union-attr]
        out.K_norm.cpu() if out.K_norm is not None else None,
        gt.cpu() if gt is not None else None,
        gt_focal,
        int(out.canonical if out.canonical is not None else 0),
    )


def _add_camera_reports(records: list[dict[str, Any]], cams: _BatchCameras) -> None:
    """Each sample's own pose report and collapse diagnostics (when the truth is known)."""
    if cams.gt_c2w is None:
        return
    focal = cams.K_norm[:, 0, 0] if cams.K_norm is not None else None
    for j, record in enumerate(records):
        record.update(
            camera_report(
                cams.c2w[j : j + 1],
                cams.gt_c2w[j : j + 1],
                cams.canonical,
                focal[j : j + 1] if focal is not None else None,
                cams.gt_focal[j : j + 1] if cams.gt_focal is not None else None,
            )
        )


def _summary(
    per_sample: list[dict[str, Any]],
    depth_errors: list[dict[str, Tensor]],
    lpips_note: str | None,
    name: str,
    samples: Sequence[EvalSample],
) -> dict[str, Any]:
    """Means over the samples (images), and depth pooled over every input view."""
    summary: dict[str, Any] = {
        "num_samples": len(per_sample),
        "num_images": sum(len(r["psnr_per_target"]) for r in per_sample),
        "psnr": _mean([r["psnr"] for r in per_sample]),
        "ssim": _mean([r["ssim"] for r in per_sample]),
        "lpips": _mean([r["lpips"] for r in per_sample]),
        "lpips_note": lpips_note,
        "psnr_cap_db": PSNR_CAP_DB,
    }
    if depth_errors:
        summary["depth"] = summarize_depth(
            torch.cat([d["abs_rel"].flatten() for d in depth_errors]),
            torch.cat([d["delta_1_25"].flatten() for d in depth_errors]),
        )
    else:
        summary["depth"] = None
        summary["depth_note"] = (
            f"{name} outputs no depth"
            if any(s.depth is not None for s in samples)
            else "no exact depth in the samples"
        )
    return summary


def _pool_cameras(result: EvalResult, cams: list[_BatchCameras]) -> None:
    """All batches' cameras on ``result`` and the pose report pooled over every sample into its
    summary (None, with a note, without ground truth or when samples differ in layout)."""
    summary = result.summary
    result.c2w = _cat_or_none([c.c2w for c in cams])
    result.K_norm = _cat_or_none([c.K_norm for c in cams])
    gt_all = _cat_or_none([c.gt_c2w for c in cams])
    canonicals = {c.canonical for c in cams}
    result.canonical = next(iter(canonicals)) if len(canonicals) == 1 else None
    if gt_all is None or result.c2w is None or len(canonicals) != 1:
        summary["pose"] = None
        summary["pose_note"] = (
            "no ground-truth cameras"
            if gt_all is None
            else "samples differ in view count / canonical view: no pooled pose report"
        )
    else:
        pred_focal = result.K_norm[:, 0, 0] if result.K_norm is not None else None
        gt_focal = _cat_or_none([c.gt_focal for c in cams])
        summary.update(camera_report(result.c2w, gt_all, canonicals.pop(), pred_focal, gt_focal))


def _input_depth_errors(out: MethodOutput, batch: dict[str, Tensor]) -> dict[str, Tensor] | None:
    """Per input view (B, Vi) depth errors of a method's input-view depth against the batch's
    exact depth (None when either is missing)."""
    if out.input_depth is None or "depth" not in batch:
        return None
    gt = gather_views(batch["depth"], batch["input_index"])  # (B, Vi, H, W)
    return median_scaled_depth_errors(out.input_depth[:, :, 0].float(), gt)


def _cat_or_none(parts: list[Tensor | None]) -> Tensor | None:
    if not parts or any(p is None for p in parts):
        return None
    if len({tuple(p.shape[1:]) for p in parts}) != 1:  # type: ignore[union-attr]
        return None
    return torch.cat(parts)  # type: ignore[arg-type]


def evaluate_methods(
    methods: Sequence[NovelViewMethod | nn.Module],
    samples: Sequence[EvalSample],
    **kwargs: Any,
) -> dict[str, EvalResult]:
    """:func:`evaluate` for several methods on the same samples: ``{method name: result}``."""
    results: dict[str, EvalResult] = {}
    for m in methods:
        method = method_for(m)
        if method.name in results:
            raise ValueError(f"two methods are named {method.name!r}")
        results[method.name] = evaluate(method, samples, **kwargs)
    return results
