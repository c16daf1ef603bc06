"""Which way did the camera turn? Mirror hypotheses and a self-supervised sense head.

An orbit around a fixation point has a depth-reversal twin: under weak perspective the same
images are explained by the camera path turning the other way around the same point with the
scene's depths reversed about it (the Necker ambiguity). A pose estimator trained by rendering
alone lands on either twin, clip by clip, about as often on the wrong one as on the right one.
Gradient descent cannot move a path onto its twin (the rotations would have to pass through
zero), but the renderer *can* tell them apart: the true path renders better than its mirror
(measurements: ``docs/decisions.md``). So every training sample is rendered with the predicted
path and with its mirror image; the photometric loss takes the better one, and a small CNN, the
sense head, learns from that outcome which way each view turned. At inference the path is
mirrored where the head disagrees with it on most views. No pose label is used anywhere.

Conventions: camera paths are OpenCV camera-to-world matrices relative to the canonical view
(identity), ``(B, V, 4, 4)``; "yaw" is the rotation about the camera's y axis (down in OpenCV),
the axis of an orbit seen by a camera that looks at its centre.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rayzer.geometry import axis_angle_to_matrix, make_c2w, matrix_to_axis_angle

#: Views whose predicted yaw is smaller than this carry no sense label (their sign is noise).
MIN_LABEL_YAW_DEG = 1.0


def mirror_camera_path(c2w: Tensor) -> Tensor:
    """The mirror image of camera paths relative to the canonical view: every rotation turned
    the other way (axis-angle negated) and every centre moved to the other side (x and y
    negated, depth kept). For an orbit around a point on the canonical optical axis, seen at
    zero elevation, this is exactly the orbit in the opposite direction; an involution.

    Args:
        c2w: (..., 4, 4) camera-to-world matrices in the canonical view's frame.

    Returns:
        (..., 4, 4) mirrored matrices (differentiable).
    """
    R, t = c2w[..., :3, :3], c2w[..., :3, 3]
    rotation = axis_angle_to_matrix(-matrix_to_axis_angle(R))
    return make_c2w(rotation, t * t.new_tensor([-1.0, -1.0, 1.0]))


def non_canonical(num_views: int) -> list[int]:
    """Indices of the views other than the canonical one (``num_views // 2``)."""
    return [i for i in range(num_views) if i != num_views // 2]


def view_yaw(c2w: Tensor) -> Tensor:
    """(B, V, 4, 4) paths → (B, V - 1) yaw in radians of the non-canonical views."""
    keep = non_canonical(c2w.shape[1])
    return matrix_to_axis_angle(c2w[:, keep, :3, :3])[..., 1]


def labelled_views(yaw: Tensor) -> Tensor:
    """(B, V - 1) float: 1 where a view's yaw is large enough for its sign to mean something."""
    return (yaw.abs() > math.radians(MIN_LABEL_YAW_DEG)).float()


def sense_labels(c2w: Tensor, mirror_won: Tensor) -> tuple[Tensor, Tensor]:
    """Self-supervised targets of the sense head from one mirror test.

    Args:
        c2w: (B, V, 4, 4) predicted paths (detached).
        mirror_won: (B,) bool, True where the mirrored path rendered better.

    Returns:
        ``(labels, weights)``, both (B, V - 1) float: 1 where the winning path has a positive
        yaw, and 1 where the predicted yaw is large enough for its sign to mean something.
    """
    yaw = view_yaw(c2w)
    labels = ((yaw > 0) != mirror_won[:, None]).float()
    weights = labelled_views(yaw)
    return labels, weights


def paths_to_mirror(c2w: Tensor, logits: Tensor) -> Tensor:
    """(B,) bool: the paths whose yaw signs the sense head contradicts on most labelled views.

    Args:
        c2w: (B, V, 4, 4) predicted paths.
        logits: (B, V - 1) sense-head logits (> 0: positive yaw).
    """
    yaw = view_yaw(c2w)
    weights = labelled_views(yaw)
    disagree = ((yaw > 0) != (logits > 0)).float()
    return (disagree * weights).sum(1) > 0.5 * weights.sum(1)


class PairCNN(nn.Module):
    """Image pairs [first ‖ second] → ``out_dim`` numbers per pair: the sense head's trunk
    ([view ‖ canonical view]).

    A plain ReLU CNN (stride 1, then three stride-2 convolutions) pooled to a 4 × 4 grid and
    read by a flattened, position-aware MLP. Hand-written because the shape is the finding:
    in the calibration probes, a mean over image positions cancels the motion direction (near
    and far content move opposite ways around a fixation point) and GELU-style smooth
    activations did not learn the sign within the budget; this layout did. The grid pooling
    makes it resolution-agnostic (progressive resolution, any input size divisible by 8).
    """

    GRID = 4

    def __init__(self, out_dim: int, width: int = 64) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(6, width // 2, 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(width // 2, width, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, 2, 1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(self.GRID),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(width * self.GRID**2, 128), nn.ReLU(), nn.Linear(128, out_dim)
        )

    def forward(self, images: Tensor, views: list[int]) -> Tensor:
        """images (B, V, 3, H, W), canonical view V // 2 → (B, len(views), out_dim): the pairs
        [view ‖ canonical] of the chosen views."""
        c = images.shape[1] // 2
        chosen = images[:, views]
        return self.forward_pairs(chosen, images[:, c : c + 1].expand_as(chosen))

    def forward_pairs(self, first: Tensor, second: Tensor) -> Tensor:
        """first, second (B, P, 3, H, W) → (B, P, out_dim), one output per [first ‖ second]."""
        b, n = first.shape[:2]
        pairs = torch.cat((first, second), dim=2).flatten(0, 1)
        if pairs.device.type == "cpu":
            # Channels-last input: oneDNN's convolutions (forward and backward) run ~1.4x
            # faster in that layout on the CPU; the results are the same to float rounding.
            pairs = pairs.contiguous(memory_format=torch.channels_last)
        return self.head(self.features(pairs)).view(b, n, -1)


class SenseHead(PairCNN):
    """[view ‖ canonical view] → logit that the view's yaw to the canonical view is positive."""

    def __init__(self, width: int = 64) -> None:
        super().__init__(1, width)

    def forward(self, images: Tensor) -> Tensor:  # type: ignore[override]
        """images (B, V, 3, H, W), canonical view V // 2 → (B, V - 1) logits."""
        return super().forward(images, non_canonical(images.shape[1])).squeeze(-1)


def mirror_test(
    render: Tensor,
    mirror_render: Tensor,
    target: Tensor,
    c2w: Tensor,
    logits: Tensor,
    keep_better: bool,
) -> tuple[Tensor, Tensor | None, Tensor, Tensor]:
    """The sense head's objective: it learns which way the better-rendering path turned.

    Args:
        render: (B, Vt, 3, H, W) the targets rendered with the path ``c2w`` (B, V, 4, 4);
            mirror_render: the same with its mirror image; target: the target images.
        logits: (B, V − 1) the sense head's logits.
        keep_better: ``sense.mirror="both"`` (both renders carry gradient): keep the better
            render per sample; otherwise (``"resolved"``) keep ``render`` and give weight 0 in
            the photometric loss to the samples whose mirror won (their render has the wrong
            sense).
    Returns:
        ``(render, sample_weight or None, sense_loss, mirror_won share)``.
    """
    with torch.no_grad():
        errors = [
            (r.float() - target.float()).square().flatten(1).mean(1)
            for r in (render, mirror_render)
        ]
        won = errors[1] < errors[0]
    if keep_better:
        render, weight = torch.where(won[:, None, None, None, None], mirror_render, render), None
    else:
        weight = (~won).to(render.dtype)
    # The label is the sense of the winning path, whichever path ``render`` used.
    labels, weights = sense_labels(c2w.detach(), won)
    bce = F.binary_cross_entropy_with_logits(logits.float(), labels, reduction="none")
    # A mean over all views (unlabelled ones count 0), not over the labelled ones: then
    # gradient accumulation and DDP give the same update as one large batch.
    return render, weight, (bce * weights).mean(), won.float().mean()
