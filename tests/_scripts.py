"""Load a repository script (experiments/, docs/benchmarks/) as a module, for tests of its
functions: the scripts are not a package."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).parents[1]


def load_script(relative: str) -> ModuleType:
    """The module of the script at ``relative`` (a path from the repository root), executed."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
