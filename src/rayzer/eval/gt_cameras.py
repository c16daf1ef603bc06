"""Rendering a camera-predicting model at the ground-truth target cameras — only after a
similarity alignment.

A self-supervised model's scene lives in its own frame and scale (its canonical view at the
identity, a scale set by its depth range), so a ground-truth camera means nothing to it as it
is: rendering the scene at a raw ground-truth c2w renders the wrong place (a known complaint
about E-RayZer's and NAS3R's evaluations). :class:`AlignedTruthMethod` therefore:

1. predicts the cameras of the **context views only** (one pass over the context images,
   :func:`rayzer.eval.camera_paths.context_cameras`), and builds the scene from the context
   images with them — no target image is ever seen;
2. estimates the similarity ``x -> s R x + t`` that maps the ground-truth world onto the model's
   world from the context cameras alone, with
   :func:`rayzer.eval.camera_paths.camera_similarity` (the same registration as the
   without-targets cameras): ``R`` from the camera *orientations* (the rotation that best maps
   the true context orientations onto the predicted ones, a chordal mean), then ``s`` and ``t``
   by least squares on the camera centres given ``R``. When the predicted cameras are the truth
   in another frame and scale, this is exactly that similarity. The orientations, not the
   centres, set ``R`` because the true cameras must look where the model's cameras look (its
   scene was built with them), and because centres are the weak part of self-supervised
   cameras: when a model's context centres barely move, a centre-based fit (Umeyama) takes its
   rotation from their noise and turns the true cameras away from the scene;
3. maps the true target cameras through that similarity and renders them with the true
   intrinsics (normalised by the image size).

So the renders measure the scene (reconstruction quality) with the camera error of the targets
taken out; the context camera error still enters through the alignment. Rows made this way are
named ``<model>_at_gt_cameras`` in ``rayzer eval`` (posed scenes only).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rayzer.eval.camera_paths import apply_similarity, camera_similarity, context_cameras
from rayzer.eval.novel_view import MethodOutput, scene_input_depth
from rayzer.models import RayModel
from rayzer.models.views import as_view_index, gather_views

SUFFIX = "_at_gt_cameras"


def truth_in_model_frame(gt_c2w: Tensor, pred_context_c2w: Tensor, input_index: Tensor) -> Tensor:
    """Ground-truth cameras of all V views mapped into the model's frame.

    Args:
        gt_c2w: (B, V, 4, 4) true OpenCV camera-to-world (any world frame).
        pred_context_c2w: (B, Vi, 4, 4) the model's cameras of the context views.
        input_index: (B, Vi) positions of the context views among the V.
    Returns:
        (B, V, 4, 4) ``gt_c2w`` through
        :func:`rayzer.eval.camera_paths.camera_similarity` from the true onto the predicted
        context cameras (float64 fit, returned in ``pred_context_c2w``'s dtype).
    """
    gt_ctx = gather_views(gt_c2w, input_index)
    s, R, t = camera_similarity(gt_ctx, pred_context_c2w)
    return apply_similarity(gt_c2w.double(), s, R, t).to(pred_context_c2w.dtype)


class AlignedTruthMethod:
    """A camera-predicting model rendered at the aligned ground-truth target cameras (module
    docstring); needs ``c2w`` and pixel ``K`` in the batch."""

    def __init__(self, model: RayModel, name: str | None = None) -> None:
        if not model.capabilities.predicts_cameras:
            raise ValueError(f"{model.name}: rendering at aligned true cameras needs a model "
                             "that predicts cameras")  # fmt: skip
        self.model, self.name = model, name or model.name + SUFFIX

    def __call__(self, batch: dict[str, Tensor]) -> MethodOutput:
        if "c2w" not in batch or "K" not in batch:
            raise ValueError(f"{self.name}: needs ground-truth cameras (c2w and K)")
        images = batch["image"]
        b, v, _, h, w = images.shape
        inp = as_view_index(batch["input_index"], b, v).to(images.device)
        tgt = as_view_index(batch["target_index"], b, v).to(images.device)
        ctx = context_cameras(self.model, images, inp)
        scene = self.model.reconstruct(
            gather_views(images, inp), ctx.c2w, ctx.K_norm, view_positions=inp
        )
        c2w = truth_in_model_frame(batch["c2w"], ctx.c2w, inp)
        size = torch.tensor([w, h, w, h], dtype=batch["K"].dtype, device=images.device)
        K_norm = (batch["K"] / size).to(ctx.K_norm.dtype)
        out = self.model.render(scene, gather_views(c2w, tgt), gather_views(K_norm, tgt), h, w)
        input_depth = None
        if self.model.capabilities.outputs_depth:
            input_depth = scene_input_depth(self.model, scene, ctx.c2w, ctx.K_norm, h, w)
        return MethodOutput(out.rgb, depth=out.depth, input_depth=input_depth)
