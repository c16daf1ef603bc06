"""Two ways to estimate the target cameras of an evaluation sample — with and without the
target images in the camera estimator's context.

The RayZer paper (and :func:`rayzer.eval.novel_view.model_novel_views`) predicts the cameras of
all V views in ONE camera-estimator pass over all V images, so every target camera — and every
input camera that builds the scene — is estimated with all target images in view. Users asked
whether that is fair: the targets leak into the cameras. ``rayzer eval`` reports both:

**with targets** (:func:`cameras_with_targets`): one pass over all V views (the paper's protocol).

**without targets** (:func:`cameras_without_targets`), exactly:

1. *Context cameras*: one pass over the Vi context (input) images only, in frame order; its
   canonical view is the middle context view ``input_index[Vi // 2]``. These cameras (and the
   shared focal of this pass) build the scene, so the scene never depends on any target image.
2. *Each target t separately*: one pass over the Vi context images plus target t alone (Vi + 1
   images in frame order). No pass ever sees two targets, so a target's camera depends on the
   context images and its own image only.
3. *Registration*: that pass's context cameras are aligned onto the context cameras of step 1
   with one similarity transform (:func:`rayzer.geometry.align_cameras`: Umeyama on the camera
   centres, with its documented fallbacks when the centres are coincident or collinear), and the
   same transform maps the pass's camera of target t into the frame of step 1. The target's
   intrinsics are that pass's focal.

So the cameras of all V views end up in one frame (the context-only pass's), ready for the
scene reconstructor (context views) and the renderer (targets). Cost: Vt + 1 camera-estimator
passes instead of 1.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rayzer.eval.novel_view import MethodOutput, model_novel_views
from rayzer.geometry import align_cameras, make_c2w
from rayzer.models import CameraPrediction, RayModel
from rayzer.models.views import as_view_index, gather_views


def apply_similarity(c2w: Tensor, s: Tensor, R: Tensor, t: Tensor) -> Tensor:
    """Map cameras through the world similarity ``x -> s R x + t``.

    Args:
        c2w: (B, N, 4, 4) camera-to-world; s: (B,); R: (B, 3, 3); t: (B, 3).
    Returns:
        (B, N, 4, 4): rotations ``R R_i``, centres ``s R c_i + t`` (as :func:`align_cameras`).
    """
    rot = R[:, None] @ c2w[..., :3, :3]
    centre = s[:, None, None] * (R[:, None] @ c2w[..., :3, 3:4]).squeeze(-1) + t[:, None]
    return make_c2w(rot, centre)


def cameras_with_targets(model: RayModel, images: Tensor) -> CameraPrediction:
    """The paper's protocol: one camera-estimator pass over all V views (B, V, 3, H, W)."""
    return model.predict_cameras(images)


def context_cameras(model: RayModel, images: Tensor, input_index: Tensor) -> CameraPrediction:
    """Cameras of the context views from a pass over the context images only.

    Args:
        images: (B, V, 3, H, W) in frame order; input_index: (Vi,) or (B, Vi) increasing.
    Returns:
        :class:`CameraPrediction` of the Vi context views (canonical = Vi // 2 among them).
    """
    b, v = images.shape[:2]
    inp = as_view_index(input_index, b, v).to(images.device)
    _check_increasing(inp, "input_index")
    return model.predict_cameras(gather_views(images, inp))


def cameras_without_targets(
    model: RayModel, images: Tensor, input_index: Tensor, target_index: Tensor
) -> CameraPrediction:
    """Cameras of all V views, estimated without other targets in context (module docstring).

    Args:
        model: a model that predicts cameras.
        images: (B, V, 3, H, W) in frame order.
        input_index: (Vi,) or (B, Vi) increasing context positions; target_index: (Vt,) or
            (B, Vt) target positions (disjoint from the context).
    Returns:
        :class:`CameraPrediction` over all V views in the context-only pass's frame: ``c2w``
        (B, V, 4, 4), ``K_norm`` (B, V, 4), ``tokens`` (B, V, d) or None (context tokens from
        the context-only pass, each target's from its own pass) and ``canonical`` = the position
        of the middle context view (of the first sample). Views in neither index keep the
        identity camera.
    """
    b, v = images.shape[:2]
    inp = as_view_index(input_index, b, v).to(images.device)
    tgt = as_view_index(target_index, b, v).to(images.device)
    ctx = context_cameras(model, images, inp)
    vi = inp.shape[1]

    eye = torch.eye(4, dtype=ctx.c2w.dtype, device=ctx.c2w.device)
    c2w = eye.expand(b, v, 4, 4).clone()
    K_norm = ctx.K_norm[:, :1].expand(b, v, 4).clone()
    tokens = None if ctx.tokens is None else ctx.tokens.new_zeros(b, v, ctx.tokens.shape[-1])
    rows = torch.arange(b, device=images.device)
    c2w[rows[:, None], inp] = ctx.c2w
    K_norm[rows[:, None], inp] = ctx.K_norm
    if tokens is not None:
        tokens[rows[:, None], inp] = ctx.tokens

    for k in range(tgt.shape[1]):
        views, order = torch.sort(torch.cat((inp, tgt[:, k : k + 1]), dim=1), dim=1)
        one = model.predict_cameras(gather_views(images, views))
        # Where the context views (in input_index order) and the target sit in this pass.
        where = torch.argsort(order, dim=1)  # where[:, j] = sorted position of cat(...)[:, j]
        ctx_pos, tgt_pos = where[:, :vi], where[:, vi:]
        pass_ctx = gather_views(one.c2w, ctx_pos)
        _, s, R, t = align_cameras(pass_ctx, ctx.c2w)
        tgt_c2w = apply_similarity(gather_views(one.c2w, tgt_pos), s, R, t)
        c2w[rows, tgt[:, k]] = tgt_c2w[:, 0]
        K_norm[rows, tgt[:, k]] = gather_views(one.K_norm, tgt_pos)[:, 0]
        if tokens is not None and one.tokens is not None:
            tokens[rows, tgt[:, k]] = gather_views(one.tokens, tgt_pos)[:, 0]
    return CameraPrediction(c2w=c2w, K_norm=K_norm, tokens=tokens, canonical=int(inp[0, vi // 2]))


def _check_increasing(index: Tensor, name: str) -> None:
    if index.shape[1] > 1 and not bool((index[:, 1:] > index[:, :-1]).all()):
        raise ValueError(f"{name} must be increasing (frame order), got {index.tolist()}")


class WithoutTargetsMethod:
    """A camera-predicting model rendering with cameras from :func:`cameras_without_targets`
    (a :class:`rayzer.eval.novel_view.NovelViewMethod`; default name
    ``<model>_without_targets``)."""

    def __init__(self, model: RayModel, name: str | None = None) -> None:
        self.model, self.name = model, name or f"{model.name}_without_targets"

    def __call__(self, batch: dict[str, Tensor]) -> MethodOutput:
        cams = cameras_without_targets(
            self.model, batch["image"], batch["input_index"], batch["target_index"]
        )
        return model_novel_views(
            self.model, batch["image"], batch["input_index"], batch["target_index"], cameras=cams
        )
