"""``torch.autograd.gradcheck`` (finite differences, float64) through the whole rasterizer."""

from __future__ import annotations

import pytest
import torch

from rayzer.render import rasterize


def _tiny(make_scene, sh_degree=None):
    # A handful of soft, well-separated-in-depth Gaussians on a small image: no alpha sits at
    # the 1/255 or 0.999 kinks, so finite differences see a smooth function.
    s = make_scene(
        7, N=5, V=2, width=7, height=6, sh_degree=sh_degree, spread=0.3, scale=(0.25, 0.4)
    )
    s["opacities"] = s["opacities"].clamp(0.2, 0.9)
    return s


def _check(scene, name, select=None, backend="torch"):
    base = {k: v for k, v in scene.items()}
    x0 = scene[name].clone()

    def f(x):
        full = x0.clone()
        if select is None:
            full = x
        else:
            full[select] = x
        args = {**base, name: full}
        out = rasterize(
            **args, background=torch.tensor([0.2, 0.4, 0.6], dtype=torch.float64), backend=backend
        )
        return out.rgb, out.alpha, out.depth

    x = (x0 if select is None else x0[select]).clone().requires_grad_()
    # fast_mode: checks random vector-Jacobian products instead of every output (seconds, not
    # minutes); a wrong gradient still fails it.
    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


@pytest.mark.parametrize("name", ["means", "quats", "scales", "opacities", "colors", "c2w"])
def test_gradcheck_inputs(make_scene, name):
    _check(_tiny(make_scene), name)


@pytest.mark.parametrize("index,label", [(0, "fx"), (1, "fy"), (2, "cx"), (3, "cy")])
def test_gradcheck_each_intrinsic(make_scene, index, label):
    _check(_tiny(make_scene), "K", select=(..., index))


def test_gradcheck_sh(make_scene):
    _check(_tiny(make_scene, sh_degree=2), "colors")


def test_intrinsics_gradients_are_nonzero(make_scene):
    s = _tiny(make_scene)
    K = s["K"].clone().requires_grad_()
    out = rasterize(**{**s, "K": K}, backend="torch")
    (out.rgb.square().sum() + out.depth.sum()).backward()
    assert bool((K.grad.abs() > 1e-8).all())
