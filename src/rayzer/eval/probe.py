"""Pose probing (RayZer Table 6): how much pose information the frozen camera tokens hold.

Protocol:

* **Features**: the camera estimator is frozen (run under ``torch.no_grad``; nothing is
  updated). For every sample of V views its output camera tokens ``tokens`` (V, d)
  (:attr:`rayzer.models.CameraPrediction.tokens`) give, for each non-canonical view i, the
  feature ``[token_i ‖ token_c]`` (2d) — the input of RayZer's own pose head, canonical
  c = V // 2.
* **Targets**: the ground-truth pose of view i relative to the canonical view, at unit scene
  scale (:func:`rayzer.geometry.normalize_scene_scale`: canonical = identity, mean distance
  of the other camera centres to it = 1): 6-D rotation (first two columns of R) and translation.
* **Probe**: a 2-layer MLP (Linear → GELU → Linear) on standardised features (training-set mean
  and std), fitted full-batch with Adam on MSE(6-D) + MSE(translation) for a fixed number of
  steps from a fixed seed — deterministic, and a few seconds on small data.
* **Test**: rotation = Gram–Schmidt of the predicted 6-D vector; R error = geodesic angle to the
  true relative rotation; t error = |t_pred − t_true| in the normalised units. Reported:
  R@10/20/30° and t@0.1/0.2/0.3 (fraction of test views under the threshold), medians, and the
  same for a constant probe (the training-set mean pose) as the floor a probe must beat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rayzer.geometry import (
    accuracy_at,
    matrix_to_rot6d,
    normalize_scene_scale,
    rot6d_to_matrix,
    rotation_error_deg,
)

ROT_THRESHOLDS = (10, 20, 30)
TRANS_THRESHOLDS = (0.1, 0.2, 0.3)


@dataclass
class ProbeConfig:
    """Probe size and optimisation (defaults fit in seconds on CPU for a few thousand views)."""

    hidden: int = 256
    steps: int = 1000
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0


@dataclass
class ProbeSample:
    """One sample's probe input: camera tokens (V, d) and ground-truth c2w (V, 4, 4)."""

    tokens: Tensor
    c2w: Tensor
    name: str = ""

    def __post_init__(self) -> None:
        v = self.tokens.shape[0]
        if self.tokens.ndim != 2 or self.c2w.shape != (v, 4, 4) or v < 2:
            raise ValueError(
                f"probe sample {self.name!r}: tokens must be (V >= 2, d) and c2w (V, 4, 4), got "
                f"{tuple(self.tokens.shape)} and {tuple(self.c2w.shape)}"
            )


def probe_features(tokens: Tensor) -> Tensor:
    """``[token_i ‖ token_c]`` of the non-canonical views: (V, d) → (V − 1, 2d), c = V // 2."""
    v = tokens.shape[0]
    c = v // 2
    others = [i for i in range(v) if i != c]
    return torch.cat((tokens[others], tokens[c].expand(v - 1, -1)), dim=-1)


def probe_targets(c2w: Tensor) -> Tensor:
    """Normalised relative poses of the non-canonical views: (V, 4, 4) → (V − 1, 9) =
    [6-D rotation ‖ translation]."""
    v = c2w.shape[0]
    c = v // 2
    rel, _ = normalize_scene_scale(c2w.double(), c)
    others = [i for i in range(v) if i != c]
    rel = rel[others]
    return torch.cat((matrix_to_rot6d(rel[:, :3, :3]), rel[:, :3, 3]), dim=-1)


def _stack(samples: Sequence[ProbeSample]) -> tuple[Tensor, Tensor]:
    if not samples:
        raise ValueError("pose probe: no samples")
    x = torch.cat([probe_features(s.tokens.detach().double().cpu()) for s in samples])
    y = torch.cat([probe_targets(s.c2w.detach().cpu()) for s in samples])
    return x, y


class PoseProbe(nn.Module):
    """Standardisation + 2-layer MLP: features (N, 2d) → (N, 9) = [6-D rotation ‖ translation]."""

    def __init__(self, mean: Tensor, std: Tensor, hidden: int) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.mlp = nn.Sequential(nn.Linear(mean.numel(), hidden), nn.GELU(), nn.Linear(hidden, 9))

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp((x - self.mean) / self.std)


def fit_pose_probe(samples: Sequence[ProbeSample], cfg: ProbeConfig | None = None) -> PoseProbe:
    """Fit the probe on training samples (deterministic for a given ``cfg.seed``)."""
    cfg = cfg or ProbeConfig()
    x, y = _stack(samples)
    x, y = x.float(), y.float()
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)
    # Our own seeded init and loop keep the global RNG untouched and the fit reproducible.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        probe = PoseProbe(mean, std, cfg.hidden)
    opt = torch.optim.Adam(probe.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)
    with torch.enable_grad():
        for _ in range(cfg.steps):
            pred = probe(x)
            loss = (pred[:, :6] - y[:, :6]).square().mean() + (
                pred[:, 6:] - y[:, 6:]
            ).square().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return probe.eval()


def probe_errors(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Rotation (°) and translation errors of predictions (N, 9) against targets (N, 9)."""
    R_pred = rot6d_to_matrix(pred[:, :6].double())
    R_true = rot6d_to_matrix(target[:, :6].double())
    rot = rotation_error_deg(R_pred, R_true)
    trans = (pred[:, 6:].double() - target[:, 6:].double()).norm(dim=-1)
    return rot, trans


def _report(rot: Tensor, trans: Tensor) -> dict[str, Any]:
    return {
        "R_at": {f"@{k}": v for k, v in accuracy_at(rot, ROT_THRESHOLDS).items()},
        "t_at": {f"@{k}": v for k, v in accuracy_at(trans, TRANS_THRESHOLDS).items()},
        "rot_err_deg_median": rot.median().item(),
        "trans_err_median": trans.median().item(),
    }


def run_pose_probe(
    train: Sequence[ProbeSample], test: Sequence[ProbeSample], cfg: ProbeConfig | None = None
) -> dict[str, Any]:
    """Fit on ``train``, evaluate on ``test`` (module docstring).

    Returns:
        ``{"probe": {R_at, t_at, medians}, "constant_baseline": {...}, "num_train_views",
        "num_test_views", "num_train_samples", "num_test_samples", "config"}``.
    """
    cfg = cfg or ProbeConfig()
    probe = fit_pose_probe(train, cfg)
    x_test, y_test = _stack(test)
    _, y_train = _stack(train)
    with torch.no_grad():
        pred = probe(x_test.float())
    rot, trans = probe_errors(pred, y_test)
    const = y_train.mean(0, keepdim=True).expand_as(y_test)
    c_rot, c_trans = probe_errors(const, y_test)
    return {
        "probe": _report(rot, trans),
        "constant_baseline": _report(c_rot, c_trans),
        "num_train_samples": len(train),
        "num_test_samples": len(test),
        "num_train_views": int(y_train.shape[0]),
        "num_test_views": int(y_test.shape[0]),
        "config": {
            "hidden": cfg.hidden,
            "steps": cfg.steps,
            "lr": cfg.lr,
            "weight_decay": cfg.weight_decay,
            "seed": cfg.seed,
        },
    }
