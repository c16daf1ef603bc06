"""Pose interpolation (RayZer Table 5): render at cameras interpolated between the predicted
context cameras and compare with the true in-between frames.

Protocol, per scene:

* **Context**: the context (input) frames of the scene's split. Their cameras are predicted from
  the context images only (:func:`rayzer.eval.camera_paths.context_cameras`), so no in-between
  frame is ever seen by the model; the scene is built from the same context views.
* **In-between frames**: frames of the scene strictly between its first and last context frame
  that are not context frames (at most ``max_frames``, evenly spaced over the candidates).
* **Interpolated camera** of in-between frame f, with a < f < b consecutive context frames:
  rotation Slerp and centre / intrinsics linear between the cameras of a and b at parameter
  ``(f − a) / (b − a)`` (:func:`rayzer.geometry.interpolate_cameras`) — frame numbers are
  assumed to be proportional to time along a constant-speed path.
* **Scores**: PSNR / SSIM / LPIPS of the renders against the true frames, beside copy-nearest
  (the context frame nearest in frame number) — through
  :func:`rayzer.eval.novel_view.evaluate`, with in-between frames as its "targets".
* When the data has cameras, the same interpolation applied to the *true* context cameras is
  compared with the true in-between cameras: how well the constant-speed assumption holds.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rayzer.eval.camera_paths import context_cameras
from rayzer.eval.novel_view import EvalSample, MethodOutput
from rayzer.geometry import interpolate_cameras, rotation_error_deg
from rayzer.models import RayModel
from rayzer.models.views import as_view_index, gather_views


def interpolate_at_frames(
    key_c2w: Tensor, key_frames: Tensor, query_frames: Tensor, key_K: Tensor | None = None
) -> tuple[Tensor, Tensor | None]:
    """Cameras at ``query_frames`` interpolated between key cameras (module docstring).

    Args:
        key_c2w: (Vk, 4, 4) cameras at increasing frame numbers ``key_frames`` (Vk,).
        query_frames: (Q,) frame numbers within ``[key_frames[0], key_frames[-1]]``.
        key_K: optional (Vk, 4) intrinsics (interpolated linearly).
    Returns:
        ``((Q, 4, 4), (Q, 4) or None)``; a query at a key frame returns that key exactly.
    """
    keys = [int(f) for f in key_frames]
    if any(b <= a for a, b in pairwise(keys)):
        raise ValueError(f"key_frames must be strictly increasing, got {keys}")
    out_c2w, out_K = [], []
    for f in (int(q) for q in query_frames):
        if not keys[0] <= f <= keys[-1]:
            raise ValueError(f"frame {f} is outside the key frames [{keys[0]}, {keys[-1]}]")
        k = min(int(np.searchsorted(keys, f, side="right")) - 1, len(keys) - 2)
        a, b = keys[k], keys[k + 1]
        # num = b - a + 1 samples put sample j exactly at frame a + j (see interpolate_cameras).
        pair_K = key_K[k : k + 2] if key_K is not None else None
        c2w, K = interpolate_cameras(key_c2w[k : k + 2], pair_K, num=b - a + 1)
        out_c2w.append(c2w[f - a])
        if K is not None:
            out_K.append(K[f - a])
    return torch.stack(out_c2w), (torch.stack(out_K) if out_K else None)


def inbetween_frames(context: list[int], max_frames: int) -> list[int]:
    """Frames strictly between the first and last context frame, not context frames; at most
    ``max_frames``, evenly spaced over the candidates (rounded half up)."""
    if max_frames < 1:
        raise ValueError(f"max in-between frames must be >= 1, got {max_frames}")
    ctx = set(context)
    cand = [f for f in range(min(context) + 1, max(context)) if f not in ctx]
    if len(cand) <= max_frames:
        return cand
    pick = np.floor(np.linspace(0, len(cand) - 1, max_frames) + 0.5).astype(int)
    return [cand[i] for i in pick]


class InterpolationMethod:
    """Renders the "targets" of a sample at cameras interpolated between the context cameras
    (a :class:`rayzer.eval.novel_view.NovelViewMethod`; target images are never read).

    Args:
        model: a model that predicts cameras (default name ``<model>_interpolated``).
        view_positions: (Vi,) image-index positions of the context views for the scene
            reconstructor (default: their positions in the sample). ``rayzer eval`` passes their
            positions in the main evaluation split so the scene is built exactly as there.
    """

    def __init__(self, model: RayModel, view_positions: Tensor | None = None) -> None:
        self.model = model
        self.name = f"{model.name}_interpolated"
        self.view_positions = view_positions

    def __call__(self, batch: dict[str, Tensor]) -> MethodOutput:
        images = batch["image"]
        b, v, _, h, w = images.shape
        inp = as_view_index(batch["input_index"], b, v).to(images.device)
        tgt = as_view_index(batch["target_index"], b, v).to(images.device)
        cams = context_cameras(self.model, images, inp)
        frames = batch["index"]
        c2w_q, K_q = [], []
        for i in range(b):
            c, K = interpolate_at_frames(
                cams.c2w[i], frames[i, inp[i]], frames[i, tgt[i]], cams.K_norm[i]
            )
            c2w_q.append(c)
            K_q.append(K)
        positions = inp
        if self.view_positions is not None:  # positions in another view set: no range check here
            positions = torch.as_tensor(self.view_positions, dtype=torch.long).reshape(1, -1)
            positions = positions.expand(b, -1)
        scene = self.model.reconstruct(
            gather_views(images, inp),
            cams.c2w,
            cams.K_norm,
            view_positions=positions.to(images.device),
        )
        out = self.model.render(scene, torch.stack(c2w_q), torch.stack(K_q), h, w)
        return MethodOutput(out.rgb, depth=out.depth)


def interpolation_sample(
    name: str,
    context_images: Tensor,
    context_frames: list[int],
    between_images: Tensor,
    between_frames: list[int],
) -> EvalSample:
    """An :class:`EvalSample` whose inputs are the context views and whose targets are the
    in-between frames, all in frame order."""
    frames = sorted(context_frames + between_frames)
    pos = {f: i for i, f in enumerate(frames)}
    images = torch.empty(len(frames), *context_images.shape[1:], dtype=context_images.dtype)
    for img, f in zip(context_images, context_frames):
        images[pos[f]] = img
    for img, f in zip(between_images, between_frames):
        images[pos[f]] = img
    return EvalSample(
        images=images,
        input_index=torch.tensor([pos[f] for f in context_frames]),
        target_index=torch.tensor([pos[f] for f in between_frames]),
        frame_index=torch.tensor(frames),
        name=name,
    )


def gt_interpolation_errors(
    context_c2w: Tensor, context_frames: list[int], between_c2w: Tensor, between_frames: list[int]
) -> dict[str, Any]:
    """How well interpolating the TRUE context cameras reproduces the true in-between cameras.

    Returns:
        rotation error (°) and centre error in units of the scene scale (mean distance of the
        context centres to the middle context camera's centre; world units if they coincide):
        medians and maxima.
    """
    c2w, _ = interpolate_at_frames(
        context_c2w.double(), torch.tensor(context_frames), torch.tensor(between_frames)
    )
    true = between_c2w.double()
    rot = rotation_error_deg(c2w[:, :3, :3], true[:, :3, :3])
    centres = context_c2w[:, :3, 3].double()
    mid = centres[len(context_frames) // 2]
    others = torch.cat(
        (centres[: len(context_frames) // 2], centres[len(context_frames) // 2 + 1 :])
    )
    scale = (others - mid).norm(dim=-1).mean().item() if len(others) else 0.0
    trans = (c2w[:, :3, 3] - true[:, :3, 3]).norm(dim=-1) / (scale if scale > 1e-12 else 1.0)
    return {
        "rot_err_deg_median": rot.median().item(),
        "rot_err_deg_max": rot.max().item(),
        "centre_err_median": trans.median().item(),
        "centre_err_max": trans.max().item(),
    }
