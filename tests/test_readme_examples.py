"""The README's Python example runs as written, for every CPU preset of a registered model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_api_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1]
    return section.split("```python", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("preset", ["tiny-cpu", "erayzer-tiny-cpu", "nas3r-tiny-cpu"])
def test_python_api_example_runs(preset):
    code = _python_api_example()
    assert 'load_config("tiny-cpu")' in code
    namespace: dict = {}
    torch.manual_seed(0)
    exec(code.replace('load_config("tiny-cpu")', f'load_config("{preset}")'), namespace)
    out = namespace["out"]
    assert out.render.shape == (1, 4, 3, 64, 64) and torch.isfinite(out.render).all()
    assert out.cameras.c2w.shape == (1, 8, 4, 4)
    has_depth = preset != "tiny-cpu"
    assert (out.input_depth is not None) == has_depth
    if has_depth:
        assert out.input_depth.shape == (1, 4, 1, 64, 64)
