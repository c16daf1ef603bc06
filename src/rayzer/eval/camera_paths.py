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
   with one similarity transform (:func:`camera_similarity`: the rotation that best agrees with
   the context cameras' orientations, then scale and translation from their centres), and the
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
from rayzer.geometry import make_c2w, project_to_so3
from rayzer.models import CameraPrediction, RayModel
from rayzer.models.views import as_view_index, gather_views


def apply_similarity(c2w: Tensor, s: Tensor, R: Tensor, t: Tensor) -> Tensor:
    """Map cameras through the world similarity ``x -> s R x + t``.

    Args:
        c2w: (B, N, 4, 4) camera-to-world; s: (B,); R: (B, 3, 3); t: (B, 3).
    Returns:
        (B, N, 4, 4): rotations ``R R_i``, centres ``s R c_i + t`` (as
        :func:`rayzer.geometry.align_cameras`).
    """
    rot = R[:, None] @ c2w[..., :3, :3]
    centre = s[:, None, None] * (R[:, None] @ c2w[..., :3, 3:4]).squeeze(-1) + t[:, None]
    return make_c2w(rot, centre)


def camera_similarity(src_c2w: Tensor, dst_c2w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The similarity of worlds ``x -> s R x + t`` that carries the cameras ``src_c2w`` onto
    ``dst_c2w`` (the same N views seen in two frames), for carrying further cameras the same way.

    ``R`` maximises ``Σ tr(Rᵀ R_dst,i R_src,iᵀ)`` (the chordal mean of the relative rotations:
    the rotation that best agrees with the *orientations*); ``s`` and ``t`` then minimise
    ``Σ |s R c_src,i + t − c_dst,i|²`` given ``R``, with ``s ≥ 0`` (a negative scale would
    mirror the centres and not the orientations; ``s = 1`` when the source centres coincide).
    When ``dst`` is exactly a similarity of ``src`` this is that similarity.

    Why the orientations and not the centres (Umeyama) set ``R``: the carried cameras are
    rendered against a scene built with ``dst``'s cameras, and what a camera sees is set by its
    orientation first (an orientation off by δ moves the view by about δ, a centre off by d by
    about d / scene depth), so the carried cameras have to agree with ``dst``'s orientations,
    which is what this ``R`` maximises. Self-supervised centres are also the weak part: when a
    model keeps its cameras near the identity their centres barely move, and a centre fit takes
    its rotation from their noise and turns the carried cameras away from the scene. Where the
    centres are well spread and the orientations poor, a centre fit pins the rotation between
    the *centres* better, but the cameras it carries then disagree with the orientations the
    scene was built with; ``rayzer eval``'s renders with the bundled model were worse for it
    (taking the centres wherever their fit was the more precise one lost 1.4 dB at the true
    cameras on synthetic orbits; docs/research-log.md).

    Args:
        src_c2w, dst_c2w: (B, N, 4, 4) camera-to-world of the same N >= 1 views in the two frames.
    Returns:
        ``(s (B,), R (B, 3, 3), t (B, 3))`` float64.
    """
    src, dst = src_c2w.double(), dst_c2w.double()
    R = project_to_so3((dst[..., :3, :3] @ src[..., :3, :3].transpose(-1, -2)).sum(1))
    cs, cd = src[..., :3, 3], dst[..., :3, 3]
    cs_c, cd_c = cs - cs.mean(1, keepdim=True), cd - cd.mean(1, keepdim=True)
    rotated = (R[:, None] @ cs_c[..., None]).squeeze(-1)
    spread = cs_c.square().sum((1, 2))
    s = (rotated * cd_c).sum((1, 2)).clamp_min(0) / spread.clamp_min(1e-300)
    s = torch.where(spread > 1e-12, s, 1.0)
    t = cd.mean(1) - s[:, None] * (R @ cs.mean(1)[..., None]).squeeze(-1)
    return s, R, t


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
        s, R, t = camera_similarity(pass_ctx, ctx.c2w)
        tgt_c2w = apply_similarity(gather_views(one.c2w, tgt_pos).double(), s, R, t)
        tgt_c2w = tgt_c2w.to(ctx.c2w.dtype)
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
