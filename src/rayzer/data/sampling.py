"""View sampling for training: frame-span curriculum, view selection, input/target split, and
scene-scale normalisation of ground-truth cameras.

One training sample is V = Vi + Vt frames of one clip of F frames:

1. ``span`` ~ uniform integer in ``[span_min, span_max(step)]``; the curriculum
   (:class:`SpanCurriculum`) widens ``span_max`` linearly from ``span_start_max`` to
   ``span_end_max`` over ``curriculum_steps`` optimizer steps (RayZer's frame-range curriculum:
   start from near-adjacent frames, end with wide baselines).
2. A window of ``span`` consecutive frames at a uniform start; the V frames are its **two end
   frames plus V − 2 distinct interior frames**, sorted by frame number. Including both ends
   makes the drawn span the realised baseline of the sample, so the curriculum controls the
   camera spread exactly instead of only bounding it.
3. A uniformly random split of the V views into Vi inputs and Vt targets (each sorted). The
   canonical view is the middle one, position V // 2; the models handle it themselves, the
   sampler does not constrain it to either set.

Every random draw takes an explicit ``torch.Generator`` so that samples are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class SpanCurriculum:
    """Frame-span range as a function of the optimizer step.

    Attributes:
        span_min: smallest window (frames); must be >= the number of views V.
        span_start_max: largest window at step 0.
        span_end_max: largest window from ``curriculum_steps`` on.
        curriculum_steps: steps of the linear widening (0 = ``span_end_max`` from the start).
    """

    span_min: int
    span_start_max: int
    span_end_max: int
    curriculum_steps: int

    def __post_init__(self) -> None:
        if not 1 <= self.span_min <= self.span_start_max <= self.span_end_max:
            raise ValueError(
                "span curriculum needs 1 <= span_min <= span_start_max <= span_end_max, got "
                f"({self.span_min}, {self.span_start_max}, {self.span_end_max})"
            )
        if self.curriculum_steps < 0:
            raise ValueError(f"curriculum_steps must be >= 0, got {self.curriculum_steps}")

    def max_span(self, step: int) -> int:
        """Largest window at ``step``: linear from span_start_max to span_end_max, rounded."""
        if self.curriculum_steps == 0:
            return self.span_end_max
        t = min(max(step, 0) / self.curriculum_steps, 1.0)
        return round(self.span_start_max + t * (self.span_end_max - self.span_start_max))

    def sample_span(self, step: int, generator: torch.Generator) -> int:
        """A span uniform in ``[span_min, max_span(step)]``."""
        hi = self.max_span(step)
        return int(torch.randint(self.span_min, hi + 1, (), generator=generator))


@dataclass
class ViewSample:
    """The views chosen for one sample.

    Attributes:
        frames: (V,) frame numbers of the clip, strictly increasing.
        input_index: (Vi,) positions into ``frames`` of the input views, sorted.
        target_index: (Vt,) positions of the target views, sorted; disjoint from the inputs.
        window: (first, last) frame numbers of the window (both are in ``frames``).
    """

    frames: Tensor
    input_index: Tensor
    target_index: Tensor
    window: tuple[int, int]


def sample_window_frames(
    num_frames: int, num_views: int, span: int, generator: torch.Generator
) -> Tensor:
    """V distinct sorted frame numbers in a random window of ``span`` frames of a clip of F.

    The window's first and last frames are always included (module docstring). Returns a
    LongTensor (V,).
    """
    if num_views < 2:
        raise ValueError(f"need at least 2 views per sample, got {num_views}")
    if not num_views <= span <= num_frames:
        raise ValueError(
            f"need num_views <= span <= num_frames, got V={num_views}, span={span}, F={num_frames}"
        )
    start = int(torch.randint(0, num_frames - span + 1, (), generator=generator))
    interior = torch.randperm(span - 2, generator=generator)[: num_views - 2] + start + 1
    ends = torch.tensor([start, start + span - 1])
    return torch.cat((ends, interior)).sort().values


def split_views(
    num_views: int, num_input: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Random disjoint (input, target) view positions, each sorted: (Vi,), (V − Vi,)."""
    if not 1 <= num_input < num_views:
        raise ValueError(f"need 1 <= num_input < num_views, got {num_input} of {num_views}")
    perm = torch.randperm(num_views, generator=generator)
    return perm[:num_input].sort().values, perm[num_input:].sort().values


def sample_views(
    num_frames: int,
    num_input: int,
    num_target: int,
    span: int,
    generator: torch.Generator,
) -> ViewSample:
    """Choose the frames of one sample and their input/target split (module docstring)."""
    frames = sample_window_frames(num_frames, num_input + num_target, span, generator)
    inp, tgt = split_views(num_input + num_target, num_input, generator)
    return ViewSample(frames, inp, tgt, (int(frames[0]), int(frames[-1])))
