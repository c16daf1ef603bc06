"""Make nested results strict-JSON serialisable (JSON has no NaN / inf)."""

from __future__ import annotations

import math
from typing import Any


def json_safe(x: Any) -> Any:
    """Non-finite floats → None, tuples → lists, dict keys → str; recursive, other values kept."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    return x
