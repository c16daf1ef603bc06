"""The explicit-3D papers' view curricula, as samplers any model can train with.

Each turns (clip, optimizer step, generator) into a :class:`rayzer.data.sampling.ViewSample`:

* :class:`FrameGapCurriculum` (NAS3R): the context views span a *frame gap* that starts narrow
  and widens over training; the context frames are the two ends of the gap (plus any extra
  context views inside it) and the targets lie strictly between them.
* :class:`OverlapCurriculum` (E-RayZer): a target *visual overlap* is drawn from ``[lo, 1]``
  with ``lo`` falling from ``lo_start`` to ``lo_end`` over training; the clip's
  :class:`rayzer.data.overlap.OverlapCurve` turns it into the widest frame window whose ends
  still overlap that much. A clip whose widest window still overlaps more than the target
  cannot make the sample and is skipped (``None``); the stream draws another clip.

RayZer's own frame-span curriculum is :class:`rayzer.data.sampling.SpanCurriculum`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rayzer.data.overlap import OverlapCurve
from rayzer.data.sampling import ViewSample, sample_views


def _linear(start: float, end: float, step: int, steps: int) -> float:
    if steps <= 0:
        return end
    t = min(max(step, 0) / steps, 1.0)
    return start + t * (end - start)


def sample_views_between(
    num_frames: int, num_input: int, num_target: int, span: int, generator: torch.Generator
) -> ViewSample:
    """Views of one sample whose targets lie between the context frames.

    A window of ``span`` frames at a uniform start; the inputs are its two end frames plus
    ``num_input − 2`` distinct interior frames, the targets ``num_target`` other interior
    frames (so ``span ≥ num_input + num_target``). Positions index the sorted frames.
    """
    v = num_input + num_target
    if num_input < 2:
        raise ValueError(f"targets between the context views need >= 2 inputs, got {num_input}")
    if num_target < 1:
        raise ValueError(f"need at least 1 target view, got {num_target}")
    if not v <= span <= num_frames:
        raise ValueError(f"need V <= span <= num_frames, got V={v}, span={span}, F={num_frames}")
    start = int(torch.randint(0, num_frames - span + 1, (), generator=generator))
    interior = torch.randperm(span - 2, generator=generator)[: v - 2] + start + 1
    ends = torch.tensor([start, start + span - 1])
    extra_inputs, targets = interior[: num_input - 2], interior[num_input - 2 :]
    inputs = torch.cat((ends, extra_inputs))
    frames, order = torch.cat((inputs, targets)).sort()
    rank = torch.empty_like(order)
    rank[order] = torch.arange(v)
    return ViewSample(
        frames=frames,
        input_index=rank[:num_input].sort().values,
        target_index=rank[num_input:].sort().values,
        window=(int(frames[0]), int(frames[-1])),
    )


@dataclass(frozen=True)
class FrameGapCurriculum:
    """NAS3R's context-gap schedule, in frames.

    The gap (last context frame − first) is uniform in ``[lo(step), hi(step)]``: both start at
    ``gap_start`` and widen linearly to ``[gap_end_min, gap_end_max]`` over
    ``curriculum_steps`` (NAS3R: 10 → [25, 90] over the first half of training). The gap is
    capped at the clip (F − 1) and raised to fit the sample's views.
    """

    gap_start: int = 10
    gap_end_min: int = 25
    gap_end_max: int = 90
    curriculum_steps: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.gap_start <= self.gap_end_max or self.gap_end_min > self.gap_end_max:
            raise ValueError(
                "frame-gap curriculum needs 1 <= gap_start <= gap_end_max and gap_end_min <= "
                f"gap_end_max, got ({self.gap_start}, {self.gap_end_min}, {self.gap_end_max})"
            )
        if self.curriculum_steps < 0:
            raise ValueError(f"curriculum_steps must be >= 0, got {self.curriculum_steps}")

    def gap_range(self, step: int) -> tuple[int, int]:
        lo = round(_linear(self.gap_start, self.gap_end_min, step, self.curriculum_steps))
        hi = round(_linear(self.gap_start, self.gap_end_max, step, self.curriculum_steps))
        return min(lo, hi), hi

    def sample(
        self,
        num_frames: int,
        num_input: int,
        num_target: int,
        step: int,
        generator: torch.Generator,
    ) -> ViewSample:
        lo, hi = self.gap_range(step)
        gap = int(torch.randint(lo, hi + 1, (), generator=generator))
        span = min(max(gap + 1, num_input + num_target), num_frames)
        return sample_views_between(num_frames, num_input, num_target, span, generator)


@dataclass(frozen=True)
class OverlapCurriculum:
    """E-RayZer's visual-overlap schedule.

    The target overlap is uniform in ``[lo(step), 1]``, ``lo`` linear from ``lo_start`` to
    ``lo_end`` over ``curriculum_steps`` (E-RayZer: 1.0 → 0.5 over ~57 % of training). The
    window is the widest frame gap whose mean overlap is ≥ the target (at least the V frames
    the sample needs); views and the input / target split inside it as in
    :func:`rayzer.data.sampling.sample_views`. ``tolerance``: how much more overlap than asked
    the widest window of a clip may have before the clip is skipped.
    """

    lo_start: float = 1.0
    lo_end: float = 0.5
    curriculum_steps: int = 0
    tolerance: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 <= self.lo_end <= 1.0 or not 0.0 <= self.lo_start <= 1.0:
            raise ValueError(
                f"overlap bounds must lie in [0, 1], got ({self.lo_start}, {self.lo_end})"
            )
        if self.curriculum_steps < 0:
            raise ValueError(f"curriculum_steps must be >= 0, got {self.curriculum_steps}")

    def low(self, step: int) -> float:
        return _linear(self.lo_start, self.lo_end, step, self.curriculum_steps)

    def span_for(self, curve: OverlapCurve, target: float, num_views: int) -> int | None:
        """Window (frames) for a target overlap on a clip, or None when the clip's widest
        window overlaps more than ``target + tolerance``."""
        if curve.overlap[-1] > target + self.tolerance:
            return None
        gap = curve.widest_gap(target)
        return min(max(gap + 1, num_views), curve.num_frames)

    def sample(
        self,
        curve: OverlapCurve,
        num_input: int,
        num_target: int,
        step: int,
        generator: torch.Generator,
    ) -> ViewSample | None:
        lo = self.low(step)
        target = lo + (1.0 - lo) * float(torch.rand((), generator=generator, dtype=torch.float64))
        span = self.span_for(curve, target, num_input + num_target)
        if span is None:
            return None
        return sample_views(curve.num_frames, num_input, num_target, span, generator)
