"""Writing benchmark results: JSON (machine-readable) and a Markdown table (for people)."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

# Re-exported: rayzer.bench.quality imports write_text_atomic from here.
from rayzer.utils.atomic import write_text_atomic
from rayzer.utils.provenance import code_info, command_line


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on, and with which code and command (see
    :func:`code_info`)."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
        "rayzer": code_info(),
        "command": command_line(),
    }


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A Markdown table of ``rows`` (dicts) restricted to ``columns``; floats get 3 significant digits."""

    def fmt(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_report(out_dir: Path | None, name: str, result: dict[str, Any], markdown: str) -> None:
    """Print the JSON result and the Markdown table; also save ``name.json`` / ``name.md``."""
    text = json.dumps(result, indent=2)
    print(markdown)
    print(text)
    if out_dir is not None:
        write_text_atomic(out_dir / f"{name}.json", text + "\n")
        write_text_atomic(out_dir / f"{name}.md", markdown + "\n")
