"""Small input-validation helpers shared by the geometry modules (private)."""

from __future__ import annotations

from collections.abc import Sequence

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


def broadcast_batch(*shapes: Sequence[int]) -> tuple[int, ...]:
    """The broadcast of the batch ``shapes`` (NumPy rules, as ``torch.broadcast_shapes``).

    Plain Python on purpose: ``torch.broadcast_shapes`` imports ``torch._refs``' symbolic-shape
    machinery and sympy on its first call, 0.4 s of every ``rayzer infer`` start.

    Raises:
        ValueError: shapes that do not broadcast (both sizes differ and neither is 1).
    """
    ndim = 0
    for shape in shapes:  # not max(..., default=0): torch.compile cannot trace that (graph break)
        ndim = max(ndim, len(shape))
    out = [1] * ndim
    for shape in shapes:
        for i, size in enumerate(shape, start=ndim - len(shape)):
            if size == 1 or size == out[i]:
                continue
            if out[i] != 1:
                raise ValueError(
                    f"batch shapes {[tuple(s) for s in shapes]} do not broadcast (dim {i}: "
                    f"{out[i]} vs {size})"
                )
            out[i] = size
    return tuple(out)
