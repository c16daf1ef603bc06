"""Non-learned reference renderers that every quality number is compared against."""

from __future__ import annotations

import torch
from torch import Tensor

from rayzer.geometry import rotation_angle, se3_inverse
from rayzer.models.views import as_view_index, gather_views


def nearest_input_views(
    input_index: Tensor,
    target_index: Tensor,
    frame_index: Tensor | None = None,
    c2w: Tensor | None = None,
) -> Tensor:
    """For every target view, the position (in ``input_index``) of its nearest input view.

    Nearness is, when ``c2w`` is given, ``‖c_t − c_i‖ / s + angle(R_t, R_i)`` with camera centres
    c, rotation angle in radians and s the mean distance of the input centres to their mean
    (scale-free; s = 1 when the inputs share one centre). Otherwise it is ``|frame_t − frame_i|``
    with ``frame_index`` (B, V) frame numbers, or the view positions themselves.

    Args:
        input_index: (B, Vi); target_index: (B, Vt).
        frame_index: optional (B, V) frame numbers.
        c2w: optional (B, V, 4, 4) ground-truth cameras.
    Returns:
        (B, Vt) LongTensor of positions into the input set.
    """
    if c2w is not None:
        cin, ctg = gather_views(c2w, input_index), gather_views(c2w, target_index)
        centres_in, centres_tg = cin[..., :3, 3], ctg[..., :3, 3]
        spread = (centres_in - centres_in.mean(1, keepdim=True)).norm(dim=-1).mean(1)
        scale = torch.where(spread > 1e-8, spread, torch.ones_like(spread))
        dist = torch.cdist(centres_tg, centres_in) / scale[:, None, None]
        rel = se3_inverse(ctg).unsqueeze(2) @ cin.unsqueeze(1)  # (B, Vt, Vi, 4, 4)
        dist = dist + rotation_angle(rel[..., :3, :3])
    else:
        frames = (
            frame_index.to(input_index.device).float()
            if frame_index is not None
            else torch.arange(int(max(input_index.max(), target_index.max())) + 1)
            .expand(input_index.shape[0], -1)
            .float()
        )
        f_in = torch.gather(frames, 1, input_index)
        f_tg = torch.gather(frames, 1, target_index)
        dist = (f_tg.unsqueeze(2) - f_in.unsqueeze(1)).abs()
    return dist.argmin(dim=2)


class CopyNearest(torch.nn.Module):
    """Renders each target as a copy of its nearest input image (see :func:`nearest_input_views`)."""

    def forward(
        self,
        images: Tensor,
        input_index: Tensor,
        target_index: Tensor,
        frame_index: Tensor | None = None,
        c2w: Tensor | None = None,
    ) -> Tensor:
        """images (B, V, 3, H, W) → renders (B, Vt, 3, H, W)."""
        b, v = images.shape[:2]
        inp = as_view_index(input_index, b, v).to(images.device)
        tgt = as_view_index(target_index, b, v).to(images.device)
        nearest = nearest_input_views(inp, tgt, frame_index, c2w)
        return gather_views(gather_views(images, inp), nearest)


def mean_of_inputs(images: Tensor, input_index: Tensor, num_targets: int) -> Tensor:
    """Pixel-wise mean of the input views, repeated for every target: (B, Vt, 3, H, W)."""
    b, v = images.shape[:2]
    inp = as_view_index(input_index, b, v).to(images.device)
    mean = gather_views(images, inp).mean(dim=1, keepdim=True)
    return mean.expand(-1, num_targets, -1, -1, -1)
