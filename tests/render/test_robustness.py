"""Edge cases: empty scenes, cameras inside / behind the Gaussians, degenerate and bad input."""

from __future__ import annotations

import pytest
import torch

from rayzer.render import rasterize


def test_no_gaussians_gives_the_background(make_scene):
    s = make_scene(0, N=0, V=3, width=9, height=5)
    bg = torch.tensor([0.25, 0.5, 1.0], dtype=torch.float64)
    for backend in ("torch", "reference"):
        out = rasterize(**s, background=bg, backend=backend)
        assert out.rgb.shape == (1, 3, 3, 5, 9)
        assert torch.equal(out.rgb, bg.view(1, 1, 3, 1, 1).expand_as(out.rgb))
        assert float(out.alpha.abs().max()) == 0 and float(out.depth.abs().max()) == 0


def test_per_view_background(make_scene):
    s = make_scene(0, N=0, B=2, V=3, width=4, height=4)
    bg = torch.rand(2, 3, 3, dtype=torch.float64)
    out = rasterize(**s, background=bg)
    assert torch.equal(out.rgb[..., 0, 0], bg)


def test_gaussians_behind_the_camera_or_before_near_are_invisible(make_scene):
    s = make_scene(1, N=40, V=1, width=12, height=10)
    c2w = s["c2w"]
    # Move every Gaussian behind the camera or between it and the near plane.
    R, t = c2w[0, 0, :3, :3], c2w[0, 0, :3, 3]
    z = torch.linspace(-2.0, 0.4, 40, dtype=torch.float64)  # camera z; near = 0.5 below
    cam = torch.stack(
        (torch.zeros(40, dtype=torch.float64), torch.zeros(40, dtype=torch.float64), z), -1
    )
    means = (cam @ R.T + t)[None].requires_grad_()
    out = rasterize(**{**s, "means": means}, near=0.5)
    assert float(out.alpha.detach().max()) == 0
    out.rgb.sum().backward()
    assert bool(torch.isfinite(means.grad).all())


def test_zero_scales_and_tiny_gaussians_render_finite(make_scene):
    s = make_scene(2, N=30, V=2)
    scales = torch.zeros_like(s["scales"]).requires_grad_()
    out = rasterize(**{**s, "scales": scales})
    ref = rasterize(**{**s, "scales": scales.detach()}, backend="reference")
    assert float(out.alpha.detach().max()) > 0  # the 0.3 px² dilation still draws them
    assert torch.allclose(out.rgb, ref.rgb, atol=1e-9)
    out.rgb.sum().backward()
    assert bool(torch.isfinite(scales.grad).all())


@pytest.mark.parametrize("name", ["means", "quats", "scales", "opacities", "colors", "c2w", "K"])
def test_nan_input_is_a_clear_error(make_scene, name):
    s = make_scene(3, N=5)
    bad = s[name].clone()
    bad.view(-1)[0] = float("nan")
    with pytest.raises(ValueError, match=f"{name}: contains NaN"):
        rasterize(**{**s, name: bad})


@pytest.mark.parametrize(
    "change,match",
    [
        ({"opacities": lambda s: s["opacities"] + 1.0}, "opacities must lie in"),
        ({"scales": lambda s: -s["scales"]}, "scales must be >= 0"),
        ({"quats": lambda s: torch.zeros_like(s["quats"])}, "zero quaternion"),
        ({"K": lambda s: s["K"] * torch.tensor([-1.0, 1, 1, 1], dtype=torch.float64)}, "focal"),
        ({"means": lambda s: s["means"][..., :2]}, r"means: expected shape \(\?, \?, 3\)"),
        ({"colors": lambda s: torch.zeros(1, 5, 5, 3, dtype=torch.float64)}, "coefficients"),
        ({"c2w": lambda s: s["c2w"][..., :3, :]}, "c2w: expected shape"),
        ({"width": lambda s: 0}, "width must be a positive integer"),
    ],
)
def test_bad_input_is_a_clear_error(make_scene, change, match):
    s = make_scene(3, N=5)
    ((name, fn),) = change.items()
    with pytest.raises(ValueError, match=match):
        rasterize(**{**s, name: fn(s)})


def test_unknown_and_unavailable_backends(make_scene):
    s = make_scene(3, N=5)
    with pytest.raises(ValueError, match="backend must be one of"):
        rasterize(**s, backend="opengl")
    with pytest.raises(ValueError, match="needs CUDA"):
        rasterize(**s, backend="gsplat")


def test_many_gaussians_memory_is_bounded_and_exact():
    """20k Gaussians piled onto a 16 x 12 image: tile lists thousands long; the compositor
    works in blocks and agrees with the brute force."""
    g = torch.Generator().manual_seed(0)
    N = 20_000
    means = torch.randn(1, N, 3, generator=g) * torch.tensor([1.5, 1.2, 0.5])
    s = {
        "means": means,
        "quats": torch.randn(1, N, 4, generator=g),
        "scales": torch.rand(1, N, 3, generator=g) * 0.05,
        "opacities": torch.rand(1, N, generator=g) * 0.2,
        "colors": torch.rand(1, N, 3, generator=g),
        "c2w": torch.eye(4)[None, None].clone(),
        "K": torch.tensor([[[12.0, 12.0, 8.0, 6.0]]]),
        "width": 16,
        "height": 12,
    }
    s["c2w"][..., 2, 3] = -4.0
    out = rasterize(**s, backend="torch")
    ref = rasterize(**s, backend="reference")
    assert float(out.alpha.mean()) > 0.95
    assert float((out.rgb - ref.rgb).abs().max()) < 1e-4  # float32
