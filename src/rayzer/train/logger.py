"""Run logging: TensorBoard scalars and image grids, ``metrics.jsonl``, a progress line with ETA.

Only rank 0 logs; other ranks get a disabled logger. TensorBoard is imported lazily and the
logger degrades to JSON lines + progress lines (with one warning) when it is not installed.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

log = logging.getLogger("rayzer.train")

METRICS_FILE = "metrics.jsonl"
TB_DIR = "tb"


def image_grid(targets: Tensor, renders: Tensor) -> Tensor:
    """(Vt, 3, H, W) targets and renders → one (3, 2H, Vt·W) image: targets on top, renders below."""
    top = torch.cat(list(targets.float().clamp(0, 1)), dim=-1)
    bottom = torch.cat(list(renders.float().clamp(0, 1)), dim=-1)
    return torch.cat((top, bottom), dim=-2)


def _json_safe(values: dict[str, Any]) -> dict[str, Any]:
    """Non-finite floats as strings ("nan", "inf"), which strict JSON cannot hold."""
    return {
        k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in values.items()
    }


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = round(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class RunLogger:
    """Writes metrics of one run (rank 0 only; ``enabled=False`` makes every call a no-op).

    Args:
        out_dir: run directory (``metrics.jsonl`` and ``tb/`` go there).
        enabled: whether this process logs.
        tensorboard: try to open a TensorBoard writer.
    """

    def __init__(
        self,
        out_dir: str | Path,
        enabled: bool = True,
        tensorboard: bool = True,
        purge_step: int | None = None,
    ) -> None:
        self.enabled = enabled
        self.out_dir = Path(out_dir)
        self.writer = None
        self._jsonl = None
        if not enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(self.out_dir / METRICS_FILE, "a", buffering=1)  # noqa: SIM115
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                warnings.warn(
                    f"TensorBoard logging disabled ({err}); install `tensorboard`",
                    stacklevel=2,
                )
            else:
                self.writer = SummaryWriter(
                    log_dir=str(self.out_dir / TB_DIR), purge_step=purge_step
                )

    def scalars(self, step: int, values: dict[str, float], prefix: str = "train") -> None:
        """One JSON line ``{"step": …, **values}`` and TensorBoard scalars ``prefix/key``."""
        if not self.enabled:
            return
        record = {"step": step, "time": round(time.time(), 3), **_json_safe(values)}
        assert self._jsonl is not None
        self._jsonl.write(json.dumps(record, allow_nan=False) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def event(self, step: int, kind: str, **info: Any) -> None:
        """A non-periodic event (skipped update, stop signal, checkpoint) as a JSON line."""
        if not self.enabled:
            return
        assert self._jsonl is not None
        record = {"step": step, "event": kind, **_json_safe(info)}
        self._jsonl.write(json.dumps(record, allow_nan=False) + "\n")

    def images(self, step: int, tag: str, grid: Tensor) -> None:
        """A (3, H, W) image in [0, 1] to TensorBoard."""
        if self.enabled and self.writer is not None:
            self.writer.add_image(tag, grid.cpu(), step)

    def progress(
        self,
        step: int,
        total: int,
        values: dict[str, float],
        sec_per_step: float,
        remaining_s: float | None = None,
    ) -> None:
        """One progress line: step, key metrics, speed and ETA (``remaining_s``, default:
        the remaining steps at ``sec_per_step``)."""
        if not self.enabled:
            return
        if remaining_s is None:
            remaining_s = (total - step) * sec_per_step
        eta = format_duration(remaining_s)
        parts = " ".join(f"{k} {v:.4g}" for k, v in values.items())
        log.info(f"step {step}/{total} {parts} | {sec_per_step:.3f} s/step | ETA {eta}")

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
