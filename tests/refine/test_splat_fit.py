"""``rayzer.refine.splat``: the per-scene Gaussian fit through the rasterizer, its leave-one-out
figure and its divergence guard, on a small synthetic scene with known cameras (a textured wall
seen by four cameras; one Gaussian per pixel, as the explicit models predict)."""

from __future__ import annotations

import math

import pytest
import torch

from rayzer.geometry import (
    axis_angle_to_matrix,
    camera_rays,
    make_c2w,
    matrix_to_quaternion,
    unproject_depth,
)
from rayzer.models.gaussians import GaussianScene, rgb_to_sh_dc
from rayzer.refine import SplatFitConfig, fit_scene, held_out_fit_psnr
from rayzer.refine.splat import SplatFitResult, fit_camera, render_views, subscene
from rayzer.render import rasterize

SIZE = 16
VIEWS = 4
WALL_Z = 3.0
K_NORM = torch.tensor([1.0, 1.0, 0.5, 0.5])


def _cameras(rot_deg: float = 0.0, seed: int = 0) -> torch.Tensor:
    """``(V, 4, 4)``: cameras side by side looking at the wall; view V // 2 is the identity;
    the others turned by ``rot_deg`` about random axes."""
    gen = torch.Generator().manual_seed(seed)
    xs = torch.linspace(-0.3, 0.3, VIEWS)
    xs = xs - xs[VIEWS // 2]
    axes = torch.nn.functional.normalize(torch.randn(VIEWS, 3, generator=gen), dim=-1)
    rot = axes * math.radians(rot_deg)
    rot[VIEWS // 2] = 0.0
    t = torch.stack((xs, 0.05 * xs, torch.zeros(VIEWS)), dim=-1)
    return make_c2w(axis_angle_to_matrix(rot), t)


def _colour(points: torch.Tensor) -> torch.Tensor:
    """A smooth texture of world points ``(..., 3)`` → RGB ``(..., 3)`` in [0.1, 0.9]."""
    x, y = points[..., 0], points[..., 1]
    return torch.stack(
        (
            0.5 + 0.4 * torch.sin(5 * x + 1) * torch.cos(4 * y),
            0.5 + 0.4 * torch.cos(6 * y - 0.5),
            0.5 + 0.4 * torch.sin(4 * (x + y)),
        ),
        dim=-1,
    )


def _wall_scene(c2w: torch.Tensor, colour_of_pixels: torch.Tensor | None = None) -> GaussianScene:
    """One opaque Gaussian per pixel of every view, on the wall as seen through ``c2w``;
    coloured by the texture, or per pixel by ``colour_of_pixels (V, H, W, 3)``."""
    Kn = K_NORM.expand(VIEWS, 4)
    origins, dirs = camera_rays(
        c2w[None], Kn[None], SIZE, SIZE, normalized_intrinsics=True, normalize_dirs=False
    )
    depth = ((WALL_Z - origins[..., 2]) / dirs[..., 2])[0]  # (V, H, W) camera z
    means = unproject_depth(depth, c2w, Kn, normalized_intrinsics=True)
    rgb = _colour(means) if colour_of_pixels is None else colour_of_pixels
    n = VIEWS * SIZE * SIZE
    sigma = (0.6 * depth / SIZE).reshape(n, 1).expand(n, 3)
    quats = matrix_to_quaternion(c2w[:, :3, :3]).repeat_interleave(SIZE * SIZE, 0)
    return GaussianScene(
        means=means.reshape(1, n, 3),
        quats=quats[None],
        scales=sigma[None].contiguous(),
        opacities=torch.full((1, n), 0.9),
        sh=rgb_to_sh_dc(rgb).reshape(1, n, 1, 3),
        sh_degree=0,
        input_depth=depth[None, :, None],
        c2w=c2w[None],
        K_norm=Kn[None],
    )


def _images(scene: GaussianScene) -> torch.Tensor:
    K = K_NORM.expand(VIEWS, 4) * SIZE
    return render_views(scene, scene.c2w[0], K, SIZE, SIZE)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10 * math.log10(float((a - b).square().mean()))


def _rotation_error_deg(c2w: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    R = c2w[:, :3, :3].transpose(-1, -2) @ truth[:, :3, :3]
    cos = ((R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.acos(cos))


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _noisy_colours(scene: GaussianScene, std: float = 2.0) -> GaussianScene:
    from dataclasses import replace

    gen = torch.Generator().manual_seed(1)
    return replace(scene, sh=scene.sh + std * torch.randn(scene.sh.shape, generator=gen))


def test_the_fit_raises_the_input_views_psnr_and_not_lowers_a_held_out_one():
    truth = _wall_scene(_cameras())
    images = _images(truth)
    start = _noisy_colours(truth)
    cfg = SplatFitConfig(steps=40, levels=(), max_scale_px=None)
    result = fit_scene(images, start, config=cfg)
    assert result.stopped is None
    assert result.psnr_before == pytest.approx(_psnr(_images(start), images), abs=1e-3)
    assert result.psnr_after > result.psnr_before + 5.0
    assert result.psnr_after == pytest.approx(_psnr(_images(result.scene), images), abs=1e-3)
    # leave-one-out: the left-out view from the other views' fitted Gaussians is not worse
    fig = held_out_fit_psnr(images, start, 1, config=cfg)
    assert fig.result.stopped is None
    assert fig.psnr_after >= fig.psnr_before + 3.0


def test_the_cameras_fit_shrinks_a_perturbed_rotation():
    truth_c2w = _cameras()
    images = _images(_wall_scene(truth_c2w))
    perturbed = _cameras(rot_deg=3.0)
    # the model's prediction: each pixel's own colour, lifted through the perturbed cameras
    start = _wall_scene(perturbed, images.permute(0, 2, 3, 1))
    cfg = SplatFitConfig(steps=60, levels=(), refine_cameras=True, refine_focal=False)
    result = fit_scene(images, start, config=cfg)
    assert result.stopped is None
    before = _rotation_error_deg(perturbed, truth_c2w)
    after = _rotation_error_deg(result.c2w, truth_c2w)
    assert before.max() == pytest.approx(3.0, abs=1e-3)
    assert after[VIEWS // 2] < 1e-4  # the anchor is held
    assert after.mean() < 0.6 * before.mean()
    # the fitted scene's Gaussians sit on the rays of the fitted cameras
    means = unproject_depth(
        result.scene.input_depth[0, :, 0], result.c2w, result.scene.K_norm[0], True
    )
    torch.testing.assert_close(means.reshape(1, -1, 3), result.scene.means)


def test_a_diverging_fit_is_stopped_and_returns_the_input():
    truth = _wall_scene(_cameras())
    images = _images(truth)
    start = _noisy_colours(truth)
    cfg = SplatFitConfig(steps=20, levels=(), lr_log_scale=1e3, max_scale_px=None)
    result = fit_scene(images, start, config=cfg)
    assert result.stopped is not None and "the input scene is kept" in result.stopped
    assert "grew" in result.stopped or "non-finite" in result.stopped
    assert result.scene is not None
    torch.testing.assert_close(result.scene.scales, start.scales)
    torch.testing.assert_close(result.scene.sh, start.sh)
    torch.testing.assert_close(result.c2w, start.c2w[0])
    assert result.psnr_after == result.psnr_before


def test_the_cameras_a_fit_reached_are_kept_also_when_a_guard_stops_it():
    """``reached_c2w`` / ``reached_K``: the fitted cameras when the fit ends, and where they
    were when a guard stopped it (the result's own cameras are then the input ones), so a
    caller can score what a stopped fit reached."""
    truth_c2w = _cameras()
    images = _images(_wall_scene(truth_c2w))
    start = _wall_scene(_cameras(rot_deg=3.0), images.permute(0, 2, 3, 1))
    cfg = SplatFitConfig(steps=8, levels=(), refine_cameras=True, lr_pose=2e-2)
    done = fit_scene(images, start, config=cfg)
    assert done.stopped is None
    assert torch.equal(done.reached_c2w, done.c2w) and torch.equal(done.reached_K, done.K)
    guarded = SplatFitConfig(**{**vars(cfg), "max_rotation_deg": 0.05})
    stopped = fit_scene(images, start, config=guarded)
    assert stopped.stopped is not None and "rotated" in stopped.stopped
    torch.testing.assert_close(stopped.c2w, start.c2w[0])  # the input cameras are returned
    moved = _rotation_error_deg(stopped.reached_c2w, start.c2w[0])
    assert torch.isfinite(stopped.reached_c2w).all() and float(moved.max()) > 0.05
    assert stopped.reached_K.shape == (VIEWS, 4)


@pytest.mark.parametrize(
    ("anchor", "held", "expected"), [(None, 1, 1), (0, 2, 0), (3, 1, 2), (2, 2, 1)]
)
def test_the_leave_one_out_fit_holds_the_anchor_it_is_given(
    monkeypatch, anchor: int | None, held: int, expected: int
):
    """``anchor`` is a view of the whole scene; the fit without ``held`` holds that view (its
    index among the others), or the others' middle one when ``held`` is the anchor."""
    import rayzer.refine.splat as splat

    seen: list[int] = []

    def recording_fit(images, scene, **kwargs):
        seen.append(kwargs["anchor"])
        return splat.SplatFitResult(scene=scene, c2w=scene.c2w[0], K=scene.K_norm[0] * SIZE)

    monkeypatch.setattr(splat, "fit_scene", recording_fit)
    scene = _wall_scene(_cameras())
    held_out_fit_psnr(_images(scene), scene, held, anchor=anchor)
    assert seen == [expected]


def _recorded_renders(monkeypatch, fit) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """With ``fit`` standing in for :func:`fit_scene`, the cameras ``(c2w (n, 4, 4), K (n, 4))``
    of every :func:`render_views` call from then on (filled as they happen)."""
    import rayzer.refine.splat as splat

    rendered: list[tuple[torch.Tensor, torch.Tensor]] = []
    real_render = splat.render_views

    def recording_render(scene, c2w, K, h, w, **kwargs):
        rendered.append((c2w.clone(), K.clone()))
        return real_render(scene, c2w, K, h, w, **kwargs)

    monkeypatch.setattr(splat, "fit_scene", fit)
    monkeypatch.setattr(splat, "render_views", recording_render)
    return rendered


def _held_out_cameras(monkeypatch, fit, scene: GaussianScene, view: int) -> list[torch.Tensor]:
    """The cameras ``(1, 4, 4)`` of every render of ``held_out_fit_psnr(view, anchor=0)`` with
    ``fit`` standing in for :func:`fit_scene` (first: the left-out view before, last: after)."""
    rendered = _recorded_renders(monkeypatch, fit)
    # the placement alone (camera_steps=0): where the left-out camera is put, not fitted
    fig = held_out_fit_psnr(_images(scene), scene, view, anchor=0, camera_steps=0)
    assert fig.summary()["headline"] == "placed" and fig.camera_after is None
    assert (fig.psnr_before, fig.psnr_after) == (fig.placed_before, fig.placed_after)
    return [c2w for c2w, _ in rendered]


def test_the_left_out_view_moves_with_its_fitted_neighbour(monkeypatch):
    """When the fit of the other views moves their cameras, the left-out view is rendered at
    its predicted pose relative to its neighbour (here every camera and Gaussian moved by one
    rigid change, so the left-out view must move by it too), not at its stale pose."""
    change = make_c2w(axis_angle_to_matrix(torch.tensor([[0.0, 0.2, 0.05]])), torch.zeros(1, 3))[0]
    change[:3, 3] = torch.tensor([0.3, -0.1, 0.2])

    def rigid_fit(images, scene, **kwargs):
        moved = _wall_scene(change @ _cameras())  # all four views' cameras and Gaussians moved
        part = subscene(moved, [i for i in range(VIEWS) if i != 1])
        return SplatFitResult(scene=part, c2w=part.c2w[0], K=part.K_norm[0] * SIZE)

    rendered = _held_out_cameras(monkeypatch, rigid_fit, _wall_scene(_cameras()), 1)
    assert torch.allclose(rendered[0][0], _cameras()[1])  # before: the predicted pose
    assert torch.allclose(rendered[-1][0], change @ _cameras()[1], atol=1e-5)  # after: moved


def test_the_left_out_view_follows_its_neighbour_in_input_order(monkeypatch):
    """Each fitted view moves by its own change; the left-out view 2 must follow a neighbour
    (view 1 or 3: of the two, 3, whose centre is nearer), not view 0, whose predicted centre is
    the nearest of all (as when a model's predicted centres all but coincide)."""
    c2w = _cameras()
    c2w[:, :3, 3] = torch.tensor([[0.001, 0, 0], [0.02, 0, 0], [0, 0, 0], [0.01, 0, 0]])
    others = [0, 1, 3]
    changes = {}
    for j in others:
        change = make_c2w(
            axis_angle_to_matrix(torch.tensor([[0.0, 0.05 * (j + 1), 0.0]])), torch.zeros(1, 3)
        )[0]
        change[:3, 3] = torch.tensor([0.1 * j, 0.0, 0.0])
        changes[j] = change

    def moving_fit(images, scene, **kwargs):
        moved = torch.stack([changes[j] @ c2w[j] for j in others])
        return SplatFitResult(scene=scene, c2w=moved, K=scene.K_norm[0] * SIZE)

    rendered = _held_out_cameras(monkeypatch, moving_fit, _wall_scene(c2w), 2)
    assert torch.allclose(rendered[-1][0], changes[3] @ c2w[2], atol=1e-5)


def test_subscene_keeps_the_views_gaussians_in_order():
    scene = _wall_scene(_cameras())
    part = subscene(scene, [0, 2])
    per = SIZE * SIZE
    torch.testing.assert_close(part.means[0, :per], scene.means[0, :per])
    torch.testing.assert_close(part.means[0, per:], scene.means[0, 2 * per : 3 * per])
    assert part.input_depth.shape[1] == 2 and part.c2w.shape[1] == 2


def test_bad_input_is_refused():
    scene = _wall_scene(_cameras())
    images = _images(scene)
    with pytest.raises(ValueError, match="GaussianScene"):
        fit_scene(images, object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input views"):
        fit_scene(images[:2], scene)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        fit_scene(images, scene, config=SplatFitConfig(steps=0))
    with pytest.raises(ValueError, match="at least 3 views"):
        held_out_fit_psnr(images[:2], subscene(scene, [0, 1]), 0)
    with pytest.raises(ValueError, match="NaN"):
        fit_scene(images.clone().index_fill_(0, torch.tensor([1]), math.nan), scene)
    with pytest.raises(ValueError, match="anchor must be a view index"):
        fit_scene(images, scene, anchor=VIEWS)
    with pytest.raises(ValueError, match="views_per_step"):
        fit_scene(images, scene, config=SplatFitConfig(views_per_step=0))
    with pytest.raises(ValueError, match="view must be in"):
        held_out_fit_psnr(images, scene, VIEWS)
    with pytest.raises(ValueError, match="anchor must be a view index"):
        held_out_fit_psnr(images, scene, 1, anchor=-1)


def test_rasterize_sees_the_same_scene_as_render_views():
    scene = _wall_scene(_cameras())
    K = K_NORM.expand(VIEWS, 4) * SIZE
    out = rasterize(**scene.to_render_args(), c2w=scene.c2w, K=K[None], width=SIZE, height=SIZE)
    torch.testing.assert_close(out.rgb[0].clamp(0, 1), _images(scene))


@pytest.mark.parametrize("poisoned", ["quats", "opacities"])
def test_a_non_finite_gradient_of_any_parameter_stops_the_fit(monkeypatch, poisoned: str):
    """A NaN reaching a parameter the rasterizer validates (rotations, opacities) stops the fit
    with the input scene kept, instead of failing the next render with a ValueError."""
    import rayzer.render

    real = rayzer.render.rasterize
    calls = {"n": 0}

    def poisoning(**kwargs):
        x = kwargs[poisoned]
        if x.requires_grad:
            calls["n"] += 1
            if calls["n"] == 3:
                x.register_hook(lambda g: torch.full_like(g, math.nan))
        return real(**kwargs)

    monkeypatch.setattr(rayzer.render, "rasterize", poisoning)
    truth = _wall_scene(_cameras())
    images = _images(truth)
    start = _noisy_colours(truth)
    result = fit_scene(images, start, config=SplatFitConfig(steps=6, levels=()))
    assert calls["n"] == 3  # the step after the poisoned one never rendered
    assert result.stopped is not None and "non-finite" in result.stopped
    torch.testing.assert_close(result.scene.sh, start.sh)


def test_every_tensor_the_fit_creates_names_its_device():
    """The fit's own tensors (parameters, masks, the background, the view indices) are created
    on the scene's device: a factory call without ``device=`` lands on the CPU and breaks the
    fit of a CUDA scene. No GPU here, so every factory call made from rayzer/refine/splat.py
    while fitting (cameras too) and computing the leave-one-out figure is recorded; with
    ``device`` left out it fails (as the fit did before)."""
    import sys

    from torch.overrides import TorchFunctionMode

    import rayzer.refine.splat as splat

    factories = {
        torch.zeros, torch.ones, torch.empty, torch.full, torch.tensor, torch.as_tensor,
        torch.arange, torch.linspace, torch.eye, torch.randperm, torch.randn, torch.rand,
    }  # fmt: skip

    class Factories(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.without_device: list[str] = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            caller = sys._getframe(1)
            from_the_fit = caller.f_code.co_filename == splat.__file__
            if func in factories and from_the_fit and "device" not in kwargs:
                self.without_device.append(f"{func.__name__} at line {caller.f_lineno}")
            return func(*args, **kwargs)

    truth = _wall_scene(_cameras())
    images = _images(truth).double()  # another dtype than the scene's: taken as float32
    start = _noisy_colours(truth)
    cfg = SplatFitConfig(steps=4, refine_cameras=True, max_scale_px=2.0)
    with Factories() as mode:
        result = fit_scene(images, start, config=cfg, background=(1.0, 1.0, 1.0))
        held = held_out_fit_psnr(images, start, 1, config=cfg, background=(1.0, 1.0, 1.0))
    assert mode.without_device == []
    assert result.stopped is None and held.result.stopped is None
    assert result.scene.means.dtype == torch.float32 and result.c2w.dtype == torch.float32


def test_level_share_splits_the_steps_over_the_render_sizes():
    scene = _wall_scene(_cameras())
    images = _images(scene)
    cfg = SplatFitConfig(steps=8, levels=(8,), level_share=(3, 1))
    result = fit_scene(images, scene, config=cfg)
    assert [size for _, size, _ in result.history] == [8] * 6 + [16] * 2
    even = fit_scene(images, scene, config=SplatFitConfig(steps=7, levels=(8,)))
    assert [size for _, size, _ in even.history] == [8] * 3 + [16] * 4
    with pytest.raises(ValueError, match="one share >= 0 per render size"):
        fit_scene(images, scene, config=SplatFitConfig(steps=4, levels=(8,), level_share=(1,)))
    with pytest.raises(ValueError, match="all zero"):
        fit_scene(images, scene, config=SplatFitConfig(steps=4, levels=(8,), level_share=(0, 0)))


def _tilted_wall() -> tuple[torch.Tensor, GaussianScene]:
    """The cameras turned by ~20° against the wall, and its scene: the wall's Gaussians then
    lie at distinct depths in every camera. (Facing the wall squarely they all tie in depth,
    so their blending order, and with it the render, jumps when the camera turns by 1e-6 rad:
    no camera fit could follow such a render.)"""
    tilt = make_c2w(axis_angle_to_matrix(torch.tensor([[0.3, 0.2, 0.0]])), torch.zeros(1, 3))
    c2w = tilt[0] @ _cameras()
    return c2w, _wall_scene(c2w)


def _perturbed(c2w: torch.Tensor) -> torch.Tensor:
    """``c2w (4, 4)`` moved by ~1.8° and 0.05 (in its own frame)."""
    change = make_c2w(
        axis_angle_to_matrix(torch.tensor([[0.01, 0.0, 0.03]])), torch.tensor([[0.0, 0.02, 0.05]])
    )
    return c2w @ change[0]


def test_fit_camera_moves_a_perturbed_camera_towards_the_truth_with_the_scene_frozen():
    truth, scene = _tilted_wall()
    view, others = 1, [0, 2, 3]
    part = subscene(scene, others)
    K = K_NORM * SIZE
    image = render_views(part, truth[view : view + 1], K[None], SIZE, SIZE)[0]
    start = _perturbed(truth[view])
    frozen = {k: v.clone() for k, v in part.to_render_args().items() if torch.is_tensor(v)}
    fit = fit_camera(part, image, start, K, steps=24)
    assert fit.stopped is None and fit.steps == 24 and fit.kept
    assert fit.summary()["camera"] == "fitted"
    # closer to the truth in rotation and in position, and the image much better reproduced
    rot_before = float(_rotation_error_deg(start[None], truth[view : view + 1]))
    rot_after = float(_rotation_error_deg(fit.c2w[None], truth[view : view + 1]))
    shift_before = float((start[:3, 3] - truth[view, :3, 3]).norm())
    shift_after = float((fit.c2w[:3, 3] - truth[view, :3, 3]).norm())
    assert rot_after < 0.5 * rot_before and shift_after < 0.7 * shift_before
    assert fit.psnr_after > fit.psnr_before + 10.0
    assert fit.psnr_after == pytest.approx(
        _psnr(render_views(part, fit.c2w[None], K[None], SIZE, SIZE)[0], image), abs=1e-3
    )
    assert fit.rotation_deg == pytest.approx(
        float(_rotation_error_deg(fit.c2w[None], start[None])), abs=1e-2
    )
    # with the scene frozen, no Gaussian parameter changed
    for k, v in part.to_render_args().items():
        if torch.is_tensor(v):
            assert torch.equal(v, frozen[k]) and not v.requires_grad, k
    # a fit that cannot raise the PSNR (it starts at the truth) keeps its start
    at_truth = fit_camera(part, image, truth[view], K, steps=6)
    assert torch.equal(at_truth.c2w, truth[view]) and at_truth.psnr_after == at_truth.psnr_before
    assert not at_truth.kept and at_truth.summary()["camera"] == "start"


def test_a_camera_fit_beyond_the_limits_keeps_the_start():
    truth, scene = _tilted_wall()
    part = subscene(scene, [0, 2, 3])
    K = K_NORM * SIZE
    image = render_views(part, truth[1:2], K[None], SIZE, SIZE)[0]
    start = _perturbed(truth[1])
    fit = fit_camera(part, image, start, K, steps=24, config=SplatFitConfig(max_rotation_deg=0.1))
    assert fit.stopped is not None and "rotated" in fit.stopped
    assert torch.equal(fit.c2w, start) and fit.psnr_after == fit.psnr_before
    # the translation limit too; the progress count ends at its steps also when it stopped
    seen: list[tuple[int, int]] = []
    moved = fit_camera(
        part, image, start, K, steps=24, config=SplatFitConfig(max_translation=1e-4),
        on_step=lambda done, n: seen.append((done, n)),
    )  # fmt: skip
    assert moved.stopped is not None and "moved by" in moved.stopped and moved.steps < 24
    assert torch.equal(moved.c2w, start) and not moved.kept
    assert seen[-1] == (24, 24)
    with pytest.raises(ValueError, match="steps must be an integer >= 0"):
        fit_camera(part, image, start, K, steps=-1)


def test_the_held_out_figure_fits_the_left_out_camera_to_its_image():
    """The left-out view's predicted camera is off: at the placed camera the figure judges the
    placement; with the camera fitted (the scene frozen) it comes nearer the truth and the
    headline PSNR after the fit of the other views rises above the placed one."""
    truth, scene = _tilted_wall()
    images = _images(scene)
    view = 1
    c2w = truth.clone()
    c2w[view] = _perturbed(truth[view])
    from dataclasses import replace

    predicted = _noisy_colours(replace(scene, c2w=c2w[None]))
    cfg = SplatFitConfig(steps=40, levels=(), max_scale_px=None)
    steps: list[tuple[int, int]] = []
    fig = held_out_fit_psnr(
        images, predicted, view, config=cfg, on_step=lambda d, n: steps.append((d, n))
    )
    assert fig.result.stopped is None and fig.followed in (0, 2)
    assert fig.camera_before is not None and fig.camera_after is not None
    assert fig.psnr_before >= fig.placed_before  # (noisy colours: little to gain before)
    assert fig.psnr_after > fig.placed_after + 0.5
    assert fig.psnr_after > fig.psnr_before  # the fitted Gaussians predict the view better
    truth_view = truth[view : view + 1]
    for cam in (fig.camera_before, fig.camera_after):
        assert float(_rotation_error_deg(cam.c2w[None], truth_view)) < float(
            _rotation_error_deg(c2w[view : view + 1], truth_view)
        )
    summary = fig.summary()
    assert summary["headline"] == "camera fitted"
    assert summary["psnr_after"] == pytest.approx(fig.psnr_after, abs=1e-3)
    assert summary["placed"]["psnr_after"] == pytest.approx(fig.placed_after, abs=1e-3)
    assert summary["camera_fitted"]["after"]["steps"] == summary["camera_fitted"]["steps"]
    assert "6 numbers" in summary["note"]
    assert "from all the photos, the left-out one included" in summary["note"]  # not strict
    total = cfg.steps + 2 * fig.camera_steps
    assert steps[-1] == (total, total) and all(n == total for _, n in steps)
    assert [d for d, _ in steps] == sorted(d for d, _ in steps)


def test_fit_camera_takes_a_scene_made_in_inference_mode():
    """A model's scene and cameras come from ``torch.inference_mode``: autograd cannot save
    such tensors, so the camera fit works on copies (it failed inside ``rayzer infer``)."""
    with torch.inference_mode():
        truth, scene = _tilted_wall()
        part = subscene(scene, [0, 2, 3])
        K = K_NORM * SIZE
        image = render_views(part, truth[1:2], K[None], SIZE, SIZE)[0]
        start = _perturbed(truth[1])
    fit = fit_camera(part, image, start, K, steps=3)
    assert fit.stopped is None and fit.steps == 3


def test_the_held_out_progress_ends_at_its_total_when_the_camera_fits_stop():
    """``rayzer infer``'s bar closes at ``done == total``: the count of the leave-one-out
    figure reaches it also when its camera fits stop early (here at their first step)."""
    _, scene = _tilted_wall()
    cfg = SplatFitConfig(steps=2, levels=(), max_rotation_deg=1e-9)
    seen: list[tuple[int, int]] = []
    fig = held_out_fit_psnr(
        _images(scene), scene, 1, config=cfg, camera_steps=4,
        on_step=lambda done, n: seen.append((done, n)),
    )  # fmt: skip
    assert fig.camera_before is not None and fig.camera_before.stopped is not None
    assert fig.camera_after is not None and fig.camera_after.stopped is not None
    total = cfg.steps + 2 * 4
    assert seen[-1] == (total, total) and all(n == total for _, n in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_the_left_out_view_takes_the_fitted_focal_scale(monkeypatch):
    """The fit of the other views scales the shared focal: the left-out camera is placed,
    fitted and scored at that focal after the fit (at the predicted one before)."""
    scale = 1.2

    def focal_fit(images, scene, **kwargs):
        K = scene.K_norm[0] * SIZE
        return SplatFitResult(
            scene=scene, c2w=scene.c2w[0], K=torch.cat((K[:, :2] * scale, K[:, 2:]), dim=-1)
        )

    rendered = _recorded_renders(monkeypatch, focal_fit)
    scene = _wall_scene(_cameras())
    held_out_fit_psnr(_images(scene), scene, 1, anchor=0, camera_steps=2)
    seen = [K for _, K in rendered]
    K = K_NORM * SIZE
    assert torch.allclose(seen[0][0], K)  # before the fit: the predicted focal
    assert torch.allclose(seen[-1][0, :2], K[:2] * scale)  # after: the fitted one
    assert torch.allclose(seen[-1][0, 2:], K[2:])
