"""Counting the floating-point operations of a training step.

We use PyTorch's own :class:`torch.utils.flop_counter.FlopCounterMode`, which knows matmuls,
convolutions and the CUDA attention kernels. The fused CPU attention kernel
(``_scaled_dot_product_flash_attention_for_cpu`` and its backward) has no formula there, so
attention would silently count as zero on CPU: we register formulas for it that reuse
PyTorch's SDPA formulas (4·B·H·N·M·D forward, 2.5× that backward).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.flop_counter import (
    FlopCounterMode,
    register_flop_formula,
    sdpa_backward_flop_count,
    sdpa_flop_count,
)

_aten = torch.ops.aten
_registered = False


def _register_cpu_attention() -> None:
    global _registered
    if _registered:
        return

    @register_flop_formula(_aten._scaled_dot_product_flash_attention_for_cpu)
    def _cpu_sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    @register_flop_formula(_aten._scaled_dot_product_flash_attention_for_cpu_backward)
    def _cpu_sdpa_backward(
        grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs
    ) -> int:
        return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)

    _registered = True


def count_flops(fn: Callable[[], object]) -> int:
    """Total FLOPs (multiply-add = 2) executed by ``fn()``, attention included, on any device."""
    _register_cpu_attention()
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())
