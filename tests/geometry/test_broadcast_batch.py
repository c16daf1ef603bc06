"""``broadcast_batch``: torch's broadcasting of batch shapes without its first-call import cost."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from rayzer.geometry._checks import broadcast_batch


@pytest.mark.parametrize(
    "shapes",
    [
        ((), ()),
        ((5,), ()),
        ((), (5,)),
        ((5,), (1,)),
        ((2, 1), (3,)),
        ((1, 3), (4, 1)),
        ((2, 3, 1), (3, 7)),
        ((0,), (1,)),
        ((2, 1, 4), (1, 5, 1), (5, 4)),
    ],
)
def test_matches_torch_broadcast_shapes(shapes):
    assert broadcast_batch(*shapes) == tuple(torch.broadcast_shapes(*shapes))


@pytest.mark.parametrize("shapes", [((2,), (3,)), ((0,), (2,)), ((4, 2), (3, 1))])
def test_incompatible_shapes_are_a_clear_error(shapes):
    with pytest.raises(RuntimeError):
        torch.broadcast_shapes(*shapes)  # torch refuses them too
    with pytest.raises(ValueError, match="do not broadcast"):
        broadcast_batch(*shapes)


def test_camera_geometry_does_not_import_sympy():
    """make_c2w / camera_rays used torch.broadcast_shapes, whose first call imports sympy
    (0.4 s of every `rayzer infer`); a fresh interpreter shows whether anything still does."""
    code = (
        "import sys, torch\n"
        "from rayzer.geometry import camera_rays, make_c2w\n"
        "c2w = make_c2w(torch.eye(3).expand(2, 3, 3), torch.zeros(3))\n"
        "camera_rays(c2w, torch.tensor([8.0, 8.0, 4.0, 4.0]), 8, 8)\n"
        "print('sympy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_camera_rays_compile_without_graph_breaks():
    """camera_rays runs inside compiled models (`rayzer train --compile`): broadcast_batch must be
    traceable by dynamo. `max(..., default=0)` was not: 11 graph breaks in the paper-decoder
    model."""
    from rayzer.geometry import camera_rays, make_c2w

    def rays_of(rotation: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
        # called from a traced frame, as in a model (a top-level call did not show the break)
        return camera_rays(make_c2w(rotation, torch.zeros(3)), K, 8, 8)[1]

    rotation = torch.eye(3).expand(2, 3, 3)
    explained = torch._dynamo.explain(rays_of)(rotation, torch.tensor([8.0, 8.0, 4.0, 4.0]))
    assert explained.graph_break_count == 0, explained.break_reasons
