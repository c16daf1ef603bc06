"""AdamW over the model's parameter groups, warm-up + cosine schedule, gradient-spike guard."""

from __future__ import annotations

import math
from collections import deque

import torch
from torch import nn

from rayzer.config import TrainConfig
from rayzer.nn.param_groups import decay_groups


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the model's parameter groups (``RayModel.param_groups``: ``"decay"`` with
    ``cfg.weight_decay`` and ``"no_decay"`` with 0, unless a model defines its own; extra keys
    such as ``"clip"`` stay in the optimizer's groups for the trainer)."""
    groups = (
        model.param_groups(cfg.weight_decay)
        if hasattr(model, "param_groups")
        else decay_groups(model, cfg.weight_decay)
    )
    on_cuda = next(model.parameters()).is_cuda
    return torch.optim.AdamW(
        groups,
        lr=cfg.lr,
        betas=tuple(cfg.betas),
        fused=True if on_cuda else None,
    )


class WarmupCosine:
    """LR multiplier: linear warm-up ``(s+1)/W`` for ``s < W``, then cosine from 1 to
    ``min_ratio`` at ``s = total``; constant ``min_ratio`` afterwards.

    ``s`` is the number of optimizer steps already taken (LambdaLR's counter), so the first
    update uses ``lr / W`` rather than 0. A class (not a lambda) so that LambdaLR's state dict
    captures it.
    """

    def __init__(self, warmup: int, total: int, min_ratio: float) -> None:
        self.warmup, self.total, self.min_ratio = int(warmup), int(total), float(min_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        span = max(self.total - self.warmup, 1)
        progress = min((step - self.warmup) / span, 1.0)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    """Warm-up + cosine LambdaLR (:class:`WarmupCosine`), stepped once per optimizer step."""
    schedule = WarmupCosine(cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


class GradSpikeGuard:
    """Decides whether an update's gradient norm is a spike to skip.

    A norm is a spike when it is non-finite (always) or, once ``min_history`` norms are known,
    larger than ``factor`` × the median of the last ``window`` finite norms. Every finite norm,
    skipped or not, enters the history: the median ignores isolated spikes, yet follows a
    genuine, lasting rise of the gradient scale within about ``window / 2`` steps instead of
    skipping every update from then on. The norm must be the same on every rank (measure it
    after the gradient all-reduce) so that all ranks take the same decision.

    Two fixed bounds of the explicit-3D releases can be added (E-RayZer's and NAS3R's): E-RayZer
    skips an update whose norm exceeds 2 × the clip after step 200 (``norm_bound``,
    ``norm_bound_after``); NAS3R skips one with any gradient element above 20 in absolute value
    (``element_bound``).

    Args:
        factor: spike threshold relative to the running median; 0 disables the median test.
        window: number of recent norms in the median.
        min_history: norms needed before the median test is active.
        norm_bound: absolute norm threshold (inf = off), active from step ``norm_bound_after``.
        norm_bound_after: first step (0-based, as passed to :meth:`check`) of ``norm_bound``.
        element_bound: skip when the largest absolute gradient element exceeds it (inf = off).
    """

    def __init__(
        self,
        factor: float,
        window: int = 100,
        min_history: int = 20,
        *,
        norm_bound: float = math.inf,
        norm_bound_after: int = 0,
        element_bound: float = math.inf,
    ) -> None:
        self.factor, self.window, self.min_history = float(factor), int(window), int(min_history)
        self.norm_bound, self.norm_bound_after = float(norm_bound), int(norm_bound_after)
        self.element_bound = float(element_bound)
        self.history: deque[float] = deque(maxlen=self.window)
        self.skipped = 0

    def threshold(self, step: int | None = None) -> float:
        """Current norm threshold at ``step`` (inf while inactive); without ``step`` only the
        median test counts."""
        bound = math.inf
        if step is not None and step >= self.norm_bound_after:
            bound = self.norm_bound
        if self.factor <= 0 or len(self.history) < self.min_history:
            return bound
        values = sorted(self.history)
        mid = len(values) // 2
        median = values[mid] if len(values) % 2 else 0.5 * (values[mid - 1] + values[mid])
        return min(self.factor * median, bound)

    def check(
        self, grad_norm: float, step: int | None = None, max_element: float | None = None
    ) -> bool:
        """Record ``grad_norm`` (taken before clipping) at ``step``; True if the update must be
        skipped. ``max_element``: the largest absolute gradient element, when the element bound
        is on."""
        if not math.isfinite(grad_norm) or (
            max_element is not None and not max_element <= self.element_bound
        ):
            self.skipped += 1
            if math.isfinite(grad_norm):
                self.history.append(float(grad_norm))
            return True
        spike = grad_norm > self.threshold(step)
        self.history.append(float(grad_norm))
        self.skipped += int(spike)
        return spike

    def state_dict(self) -> dict:
        return {"history": list(self.history), "skipped": self.skipped}

    def load_state_dict(self, state: dict) -> None:
        self.history = deque((float(x) for x in state["history"]), maxlen=self.window)
        self.skipped = int(state["skipped"])
