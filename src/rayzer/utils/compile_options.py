"""Inductor options of ``torch.compile`` as the command-line tools take them
(``rayzer train --compile-option`` / ``train.compile_options``, ``rayzer bench speed
--compile-option``): flattened to inductor's dotted names and checked before any work."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any


def inductor_options(options: Mapping[str, Any], what: str = "--compile-option") -> dict[str, Any]:
    """``options`` as ``torch.compile(options=...)`` takes them.

    Nested mappings become inductor's dotted names: the override
    ``train.compile_options.triton.cudagraphs=false`` gives ``{"triton": {"cudagraphs": False}}``,
    which is ``{"triton.cudagraphs": False}`` here (a mapping under a name inductor knows, e.g.
    ``pre_grad_fusion_options``, is that option's value). Every name is checked against
    ``torch._inductor.config`` (imported only when there are options).

    Raises:
        ValueError: a name inductor does not know, with ``what`` (where it came from) and the
            closest known names; ``torch.compile`` itself raises a RuntimeError listing all of
            its ~600 options, and only when the model is compiled.
    """
    if not options:
        return {}
    import torch._inductor.config as inductor_config

    known = inductor_config.get_config_copy()
    flat: dict[str, Any] = {}
    unknown: list[str] = []

    def walk(prefix: str, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            name = f"{prefix}{key}"
            if name in known:
                flat[name] = value
            elif isinstance(value, Mapping) and value:
                walk(f"{name}.", value)
            else:
                unknown.append(name)

    walk("", options)
    if unknown:
        close = sorted({m for n in unknown for m in difflib.get_close_matches(n, known, n=3)})
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"{what}: torch inductor has no option {', '.join(map(repr, unknown))} (names as in "
            f"torch._inductor.config, e.g. cpp_wrapper, max_autotune, triton.cudagraphs){hint}"
        )
    return flat
