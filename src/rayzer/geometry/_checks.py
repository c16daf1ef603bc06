"""Small input-validation helpers shared by the geometry modules (private)."""

from __future__ import annotations

import torch


def check_trailing(x: torch.Tensor, name: str, trailing: tuple[int, ...]) -> None:
    """Raise ``ValueError`` unless ``x`` is a tensor whose last dims equal ``trailing``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    n = len(trailing)
    if x.ndim < n or tuple(x.shape[x.ndim - n :]) != trailing:
        want = "(..., " + ", ".join(str(s) for s in trailing) + ")"
        raise ValueError(f"{name}: expected shape {want}, got {tuple(x.shape)}")


def check_floating(x: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` unless ``x`` has a floating-point dtype."""
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")


def check_positive_int(value: int, name: str) -> int:
    """Return ``value`` as int, raising ``ValueError`` unless it is a positive integer."""
    if isinstance(value, bool) or int(value) != value or int(value) <= 0:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)
