"""``experiments/issue19_refinement/fit128.py``'s ``--variant`` parser (the experiment behind
docs/benchmarks/splat-fit's 128 px tables): ``level_share`` takes any numbers, as
:class:`rayzer.refine.SplatFitConfig` does."""

from __future__ import annotations

import pytest

from _scripts import load_script
from rayzer.refine import SplatFitConfig

SCRIPT = "experiments/issue19_refinement/fit128.py"


@pytest.fixture(scope="module")
def fit128():
    return load_script(SCRIPT)


def test_level_share_takes_fractions_and_levels_integers(fit128):
    name, kw = fit128._parse_variant("coarse:level_share=2.5/1/0.5,levels=32/64,steps=40")
    assert name == "coarse"
    assert kw == {"level_share": (2.5, 1, 0.5), "levels": (32, 64), "steps": 40}
    assert isinstance(kw["levels"][0], int)
    SplatFitConfig(**kw)  # a valid configuration


def test_other_values_keep_their_types(fit128):
    _, kw = fit128._parse_variant("v:level_share=3/2/1,refine_cameras=false,lr_pose=1e-3,x=none")
    assert kw == {"level_share": (3, 2, 1), "refine_cameras": False, "lr_pose": 1e-3, "x": None}


def test_scalars_and_tuple_items_are_read_alike(fit128):
    """One number reader for both (the scalar one took ``1E-3`` for an integer and failed)."""
    _, kw = fit128._parse_variant("v:lr_pose=1E-3,steps=7,level_share=1E-1/1")
    assert kw == {"lr_pose": 1e-3, "steps": 7, "level_share": (0.1, 1)}
