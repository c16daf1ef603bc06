"""Helpers to select subsets of views from batched multi-view tensors."""

from __future__ import annotations

import torch
from torch import Tensor


def as_view_index(
    index: Tensor | list[int] | tuple[int, ...], batch: int, num_views: int
) -> Tensor:
    """Normalise a view selection to a LongTensor of shape (B, Vs).

    ``index`` may be shared by the batch, shape (Vs,), or per sample, shape (B, Vs).

    Raises:
        ValueError: a wrong shape, or an index outside ``[0, num_views)`` (RuntimeError with
            the same words inside ``torch.compile``, where the values are not known when
            tracing).
    """
    idx = torch.as_tensor(index, dtype=torch.long)
    if idx.ndim == 1:
        idx = idx.unsqueeze(0).expand(batch, -1)
    if idx.ndim != 2 or idx.shape[0] != batch:
        raise ValueError(
            f"view index must have shape (Vs,) or (B={batch}, Vs), got {tuple(idx.shape)}"
        )
    if torch.compiler.is_compiling():
        # a Python `if` on the values would split the compiled graph (a graph break per call);
        # the check runs inside the graph instead and fails the call with the same words
        in_range = ((idx >= 0) & (idx < num_views)).all()
        torch._assert_async(in_range, f"view index out of range for {num_views} views")
    elif idx.numel() and (idx.min() < 0 or idx.max() >= num_views):
        raise ValueError(f"view index out of range for {num_views} views: {idx.tolist()}")
    return idx


def gather_views(x: Tensor, index: Tensor) -> Tensor:
    """Select views: x (B, V, ...) and index (B, Vs) → (B, Vs, ...)."""
    index = index.to(x.device)
    view_shape = index.shape + (1,) * (x.ndim - 2)
    return torch.gather(x, 1, index.view(view_shape).expand(*index.shape, *x.shape[2:]))


def with_change_from(images: Tensor, reference: Tensor | int) -> Tensor:
    """The pair input of E-RayZer's ``pose_pair_input`` and NAS3R's ``pair_input``: each view
    stacked with its difference to its sample's reference view.

    Args:
        images: (B, V, C, H, W).
        reference: the reference view, one for the batch (int) or per sample ((B,) long).

    Returns:
        (B, V, 2C, H, W): ``[view ‖ view − reference]``; the reference's own difference is 0.
    """
    if isinstance(reference, int):
        ref = images[:, reference : reference + 1]
    else:
        ref = images[torch.arange(images.shape[0], device=images.device), reference][:, None]
    return torch.cat((images, images - ref), dim=2)
