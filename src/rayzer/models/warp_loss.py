"""A photometric depth-warping loss between the input views of an explicit-3D model.

Every input pixel is lifted with the model's own input depth through its predicted camera,
projected into the other input views nearest to it in capture order, and compared with the
colour sampled there (Charbonnier error, occlusion test, mean over the views that see it):
:func:`rayzer.geometry.reprojection.reprojection_error`, the objective of test-time refinement,
used here as a training term. It is differentiable in the depth and in the cameras (poses and
focal), and it pays for camera motion that aligns the input images directly, not through the
rendered targets (the self-supervised pose + depth objective of Monodepth-style training).

Conventions: those of :mod:`rayzer.models.gaussians`: ``c2w`` OpenCV camera-to-world, ``K_norm``
normalised ``(fx/W, fy/H, cx/W, cy/H)``, depth = camera z-depth. With every camera at the same
position (e.g. all at the identity) a pixel lands on itself whatever its depth, so the term then
gives the depth no gradient; it still gives the cameras one (the image gradient times the
motion of the sampled pixel).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rayzer.geometry.intrinsics import denormalize_intrinsics
from rayzer.geometry.reprojection import mean_error, neighbour_views, reprojection_error

#: Each input view is warped from this many other input views (its nearest in capture order).
WARP_NEIGHBOURS = 2


def input_warp_loss(
    images: Tensor,
    depth: Tensor,
    c2w: Tensor,
    K_norm: Tensor,
    num_neighbours: int = WARP_NEIGHBOURS,
) -> Tensor:
    """Mean photometric warping error of the input views against each other.

    Args:
        images: (B, V, 3, H, W) the input views in [0, 1], sorted in capture order.
        depth: (B, V, 1, H, W) camera z-depth of every input pixel (the model's ``input_depth``).
        c2w: (B, V, 4, 4) the input views' cameras; K_norm: (B, V, 4) their intrinsics.
        num_neighbours: source views per view (at most V − 1).

    Returns:
        A scalar in fp32 (computed in fp32 under autocast too): the mean over samples of the mean error over the pixels that at least
        one neighbour sees (0 for a sample where none is seen, or with fewer than 2 views).
    """
    b, v, _, h, w = images.shape
    if depth.shape != (b, v, 1, h, w):
        raise ValueError(f"depth: expected shape {(b, v, 1, h, w)}, got {tuple(depth.shape)}")
    if v < 2:
        return images.new_zeros((), dtype=torch.float32)
    neighbours = neighbour_views(v, num_neighbours).to(images.device)
    # fp32 even under the training loop's bf16 autocast (as the models' fp32_geometry): the
    # lifting and projection are matmuls, and bf16's ~3 digits move the sampled pixels
    with torch.autocast(images.device.type, enabled=False):
        K = denormalize_intrinsics(K_norm.float(), h, w)
        per_sample = []
        for i in range(b):
            err, valid = reprojection_error(
                images[i].float(), depth[i, :, 0].float(), c2w[i].float(), K[i], neighbours
            )
            per_sample.append(mean_error(err, valid))
        return torch.stack(per_sample).mean()
