"""Training: the loop (DDP via torchrun, AMP, accumulation), optimizer and schedule, losses,
atomic checkpoints with exact resume, and run logging. Entry point: ``rayzer train``."""

from rayzer.train.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    load_model_weights,
    resolve_checkpoint,
    save_checkpoint,
)
from rayzer.train.loop import StepStats, Trainer, TrainSummary, run_training
from rayzer.train.losses import build_perceptual_loss
from rayzer.train.optim import (
    GradSpikeGuard,
    WarmupCosine,
    build_optimizer,
    build_scheduler,
)

__all__ = [
    "GradSpikeGuard",
    "StepStats",
    "TrainSummary",
    "Trainer",
    "WarmupCosine",
    "build_optimizer",
    "build_perceptual_loss",
    "build_scheduler",
    "latest_checkpoint",
    "load_checkpoint",
    "load_model_weights",
    "resolve_checkpoint",
    "run_training",
    "save_checkpoint",
]
