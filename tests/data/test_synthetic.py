"""Tests of the built-in synthetic clips: determinism, seeds, shapes, exact cameras and depth."""

from __future__ import annotations

import dataclasses
import math
import statistics

import numpy as np
import pytest
import torch

from rayzer.data import (
    TEST_SEEDS,
    TRAIN_SEEDS,
    SynthConfig,
    SyntheticClips,
    check_seed,
    read_scene_folder,
    render_clip,
    seed_split,
    split_seeds,
    synth_command,
)
from rayzer.geometry import (
    fov_from_focal,
    look_at,
    rotation_angle,
    se3_inverse,
    unproject_depth,
)

FAMILIES = ("orbit", "walk")


def small(family: str, **kw) -> SynthConfig:
    return SynthConfig(**{"family": family, "frames": 8, "height": 48, "width": 48, **kw})


# ------------------------------------------------------------------------------------------------
# seeds and determinism


def test_seed_ranges_are_disjoint_and_labelled() -> None:
    assert TRAIN_SEEDS.stop <= TEST_SEEDS.start or TEST_SEEDS.stop <= TRAIN_SEEDS.start
    assert len(TEST_SEEDS) >= 1000 and len(TRAIN_SEEDS) >= 100_000
    assert seed_split(0) == "train" and seed_split(TRAIN_SEEDS[-1]) == "train"
    assert seed_split(TEST_SEEDS[0]) == "test" and seed_split(TEST_SEEDS[-1]) == "test"
    assert split_seeds("test") == TEST_SEEDS
    check_seed(TEST_SEEDS[5], "test")
    with pytest.raises(ValueError, match="does not belong"):
        check_seed(TEST_SEEDS[5], "train")
    with pytest.raises(ValueError, match="outside"):
        seed_split(-1)
    with pytest.raises(ValueError, match="outside"):
        render_clip(TEST_SEEDS.stop + 7, small("orbit"))
    assert render_clip(TEST_SEEDS[0], small("walk", frames=2)).split == "test"


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_bytes_different_seed_differs(family: str) -> None:
    a, b = render_clip(11, small(family)), render_clip(11, small(family))
    for key in ("images", "c2w", "K", "depth", "index"):
        x, y = getattr(a, key), getattr(b, key)
        assert x.numpy().tobytes() == y.numpy().tobytes(), key
    c = render_clip(12, small(family))
    assert not torch.equal(a.images, c.images)
    assert not torch.equal(a.c2w, c.c2w)


def test_families_are_independent_streams() -> None:
    orbit, walk = render_clip(5, small("orbit")), render_clip(5, small("walk"))
    assert orbit.family == "orbit" and walk.family == "walk"
    assert not torch.equal(orbit.K, walk.K)


def test_resolution_does_not_change_scene_or_path() -> None:
    lo = render_clip(3, small("walk", height=32, width=32))
    hi = render_clip(3, small("walk", height=64, width=64))
    torch.testing.assert_close(lo.c2w, hi.c2w)
    torch.testing.assert_close(hi.K, 2 * lo.K)
    # Same scene: a 2x2 block average of the high-res render is close to the low-res render.
    pooled = torch.nn.functional.avg_pool2d(hi.images, 2)
    assert (pooled - lo.images).abs().mean() < 0.04


# ------------------------------------------------------------------------------------------------
# shapes, conventions, cameras


@pytest.mark.parametrize("family", FAMILIES)
def test_shapes_dtypes_ranges_and_intrinsics(family: str) -> None:
    cfg = small(family, height=40, width=56, fov_deg=(50.0, 55.0))
    clip = render_clip(1, cfg)
    V, H, W = cfg.frames, cfg.height, cfg.width
    assert clip.images.shape == (V, 3, H, W) and clip.images.dtype == torch.float32
    assert clip.c2w.shape == (V, 4, 4) and clip.c2w.dtype == torch.float32
    assert clip.K.shape == (V, 4) and clip.K.dtype == torch.float32
    assert clip.depth.shape == (V, H, W) and clip.depth.dtype == torch.float32
    assert clip.index.dtype == torch.int64 and torch.equal(clip.index, torch.arange(V))
    assert clip.images.min() >= 0.0 and clip.images.max() <= 1.0
    assert clip.images.std() > 0.05  # not blank
    # Closed room / environment dome: every pixel hits a surface in front of the camera.
    assert torch.isfinite(clip.depth).all() and (clip.depth > 0).all()
    # Principal point at the image centre, square pixels, horizontal FOV in the requested range.
    fx, fy, cx, cy = clip.K.unbind(-1)
    torch.testing.assert_close(cx, torch.full((V,), W / 2))
    torch.testing.assert_close(cy, torch.full((V,), H / 2))
    torch.testing.assert_close(fx, fy)
    fov = torch.rad2deg(torch.as_tensor(fov_from_focal(fx, W)))
    assert ((fov >= 50.0 - 1e-3) & (fov <= 55.0 + 1e-3)).all()
    # Rigid camera-to-world matrices.
    R = clip.c2w[:, :3, :3].double()
    torch.testing.assert_close(R.transpose(-1, -2) @ R, torch.eye(3, dtype=R.dtype).expand(V, 3, 3))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(V, dtype=R.dtype))
    torch.testing.assert_close(clip.c2w[:, 3], torch.tensor([0.0, 0, 0, 1]).expand(V, 4))
    batch = clip.as_batch()
    assert set(batch) == {"image", "c2w", "K", "depth", "index"}


def test_orbit_cameras_are_look_at_cameras_of_rayzer_geometry() -> None:
    clip = render_clip(4, small("orbit"))
    eye = clip.c2w[:, :3, 3].double()
    target = torch.tensor(clip.meta["target"], dtype=torch.float64)
    expected = look_at(
        eye, target.expand_as(eye), torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    )
    torch.testing.assert_close(clip.c2w.double(), expected, atol=1e-5, rtol=0)
    # Azimuth advances by the same step every frame, the camera stays at ~constant distance.
    rel = eye - target
    az = torch.atan2(rel[:, 1], rel[:, 0])
    steps = torch.rad2deg(torch.remainder(az.diff() + math.pi, 2 * math.pi) - math.pi)
    torch.testing.assert_close(
        steps, torch.full_like(steps, clip.meta["orbit_step_deg"]), atol=1e-4, rtol=0
    )
    dist = rel.norm(dim=-1)
    assert dist.max() / dist.min() < 1.11


def test_walk_trajectory_is_smooth_and_looks_roughly_forward() -> None:
    for seed in range(3):
        clip = render_clip(seed, small("walk", frames=16))
        centres = clip.c2w[:, :3, 3].double()
        step = centres.diff(dim=0).norm(dim=-1)
        # Constant walking speed (small height bob only) and small per-frame rotations.
        assert step.max() / step.min() < 1.3
        torch.testing.assert_close(step.mean().item(), clip.meta["walk_step"], rtol=0.1, atol=0)
        rel = se3_inverse(clip.c2w[:-1].double()) @ clip.c2w[1:].double()
        assert torch.rad2deg(rotation_angle(rel[:, :3, :3])).max() < 3.0
        # Forward axis close to horizontal (pitch within [-15, 6] degrees).
        pitch = torch.rad2deg(torch.asin(clip.c2w[:, 2, 2].double()))
        assert pitch.min() > -15 and pitch.max() < 6


@pytest.mark.parametrize("family", FAMILIES)
def test_depth_unprojects_onto_the_scene_bounds(family: str) -> None:
    """z-depth + cameras put every surface point inside the room / on or above the ground.

    If depth were ray length instead of z-depth (or the intrinsics convention were off), points
    would land outside the room walls: this pins the depth convention down.
    """
    clip = render_clip(2, small(family))
    pts = unproject_depth(clip.depth.double(), clip.c2w.double(), clip.K.double()).reshape(-1, 3)
    eps = 1e-3
    if family == "walk":
        half = torch.tensor(clip.meta["room_size"], dtype=torch.float64) * torch.tensor(
            [0.5, 0.5, 1]
        )
        assert (pts[:, :2].abs() <= half[:2] + eps).all()
        assert (pts[:, 2] >= -eps).all() and (pts[:, 2] <= half[2] + eps).all()
        on_shell = (
            ((pts[:, :2].abs() - half[:2]).abs() < eps).any(-1)
            | (pts[:, 2].abs() < eps)
            | ((pts[:, 2] - half[2]).abs() < eps)
        )
        assert on_shell.float().mean() > 0.3  # walls / floor / ceiling seen exactly
    else:
        assert (pts[:, 2] >= -eps).all()  # nothing below the ground plane
        assert ((pts[:, 2].abs() < eps).float().mean()) > 0.1  # ground is visible


def test_plain_background_has_infinite_depth_and_constant_colour() -> None:
    clip = render_clip(0, small("orbit", background="plain", orbit_elevation_deg=(5.0, 10.0)))
    sky = ~torch.isfinite(clip.depth)
    assert sky.any() and (~sky).any()
    colours = clip.images.permute(0, 2, 3, 1)[sky]
    assert (colours - colours[0]).abs().max() < 1e-6


def test_shadows_only_darken() -> None:
    lit = render_clip(7, small("orbit", shadows=False))
    shadowed = render_clip(7, small("orbit", shadows=True))
    assert torch.equal(lit.depth, shadowed.depth)
    assert (shadowed.images <= lit.images + 1e-6).all()
    assert (shadowed.images < lit.images - 0.05).float().mean() > 0.005  # visible shadows


def test_texture_scale_controls_pattern_frequency() -> None:
    def roughness(scale: float, size: int) -> float:
        vals = []
        for seed in range(4):
            cfg = small("walk", frames=2, height=size, width=size, texture_scale=scale)
            img = render_clip(seed, cfg).images
            vals.append((img.diff(dim=-1).abs().mean() + img.diff(dim=-2).abs().mean()).item())
        return statistics.mean(vals)

    # Larger tiles -> smoother images once the patterns are resolved ...
    assert roughness(8.0, 96) < 0.7 * roughness(1.0, 96)
    # ... and patterns much finer than a pixel are averaged out by the mip-mapping (no aliasing).
    assert roughness(0.2, 48) < 0.7 * roughness(1.0, 48)


def test_config_validation_errors() -> None:
    with pytest.raises(ValueError, match="family"):
        render_clip(0, SynthConfig(family="spiral"))
    with pytest.raises(ValueError, match="frames"):
        render_clip(0, SynthConfig(frames=0))
    with pytest.raises(ValueError, match="fov_deg"):
        render_clip(0, SynthConfig(fov_deg=(60.0, 45.0)))
    with pytest.raises(ValueError, match="background"):
        render_clip(0, SynthConfig(background="sky"))
    with pytest.raises(ValueError, match="unknown SynthConfig option"):
        synth_command("orbit", 0, 2, 16, "/nonexistent/never", colour="red")


# ------------------------------------------------------------------------------------------------
# warp consistency: depth + cameras explain the pixels


@pytest.mark.parametrize("family", FAMILIES)
def test_warp_consistency_with_exact_cameras(family: str, warp, perturb) -> None:
    good, bad, covis = [], [], []
    for seed in range(3):
        clip = render_clip(seed, SynthConfig(family=family, frames=8, height=64, width=64))
        args = (clip.images, clip.depth, clip.c2w, clip.K)
        for i, j in ((0, 2), (3, 7), (6, 1)):
            res = warp(*args, i, j)
            good.append(res.median_error)
            covis.append(res.covisible)
            bad.append(warp(*args, i, j, c2w_j=perturb(clip.c2w[j], 2.0)).median_error)
    good_med, bad_med = statistics.median(good), statistics.median(bad)
    assert max(good) < 0.03, good
    assert good_med < 0.01, good
    assert min(covis) > 0.3, covis
    # Negative control: a 2-degree camera error makes the warp clearly worse (the test can fail).
    assert bad_med > 3 * good_med and bad_med > good_med + 0.01, (good, bad)


# ------------------------------------------------------------------------------------------------
# CLI hook and dataset


def test_synth_command_writes_a_readable_scene_folder(tmp_path, warp) -> None:
    out = synth_command("walk", 9, frames=5, size=32, out=str(tmp_path / "clip"), texture_scale=1.5)
    assert out == tmp_path / "clip"
    scene = read_scene_folder(out)
    clip = render_clip(
        9, SynthConfig(family="walk", frames=5, height=32, width=32, texture_scale=1.5)
    )
    expected = torch.round(clip.images * 255) / 255
    torch.testing.assert_close(scene.images, expected, atol=1e-6, rtol=0)
    assert torch.equal(scene.c2w, clip.c2w) and torch.equal(scene.K, clip.K)
    assert torch.equal(scene.depth, clip.depth)
    assert scene.meta["seed"] == 9 and scene.meta["family"] == "walk"
    assert scene.meta["config"]["texture_scale"] == 1.5
    assert warp(scene.images, scene.depth, scene.c2w, scene.K, 0, 2).median_error < 0.03
    with pytest.raises(FileExistsError):
        synth_command("walk", 9, frames=5, size=32, out=str(out))
    assert [p.name for p in tmp_path.iterdir()] == ["clip"]  # no temp dirs left behind


def test_synthetic_clips_dataset() -> None:
    ds = SyntheticClips(small("orbit", frames=3), split="test", num_clips=2)
    assert len(ds) == 2 and list(ds.seeds) == [TEST_SEEDS[0], TEST_SEEDS[1]]
    item = ds[1]
    assert item["image"].shape == (3, 3, 48, 48)
    np.testing.assert_array_equal(
        item["c2w"].numpy(), render_clip(TEST_SEEDS[1], ds.cfg).c2w.numpy()
    )
    with pytest.raises(ValueError):
        SyntheticClips(small("orbit"), split="test", num_clips=len(TEST_SEEDS) + 1)


def test_frame_subset_matches_the_full_clip():
    cfg = SynthConfig(family="orbit", frames=12, height=24, width=24)
    full = render_clip(5, cfg)
    sub = render_clip(5, cfg, frames=[1, 4, 11])
    assert sub.index.tolist() == [1, 4, 11]
    torch.testing.assert_close(sub.images, full.images[[1, 4, 11]])
    torch.testing.assert_close(sub.c2w, full.c2w[[1, 4, 11]])
    torch.testing.assert_close(sub.depth, full.depth[[1, 4, 11]])
    with pytest.raises(ValueError, match="frames must lie"):
        render_clip(5, cfg, frames=[12])


def test_backdrop_knobs_change_the_orbit_backdrop_only():
    base = SynthConfig(family="orbit", frames=4, height=24, width=24)
    detailed = dataclasses.replace(base, dome_tile=(0.04, 0.1), backdrop_textures="colour_photo")
    a, b = render_clip(7, base), render_clip(7, detailed)
    torch.testing.assert_close(a.c2w, b.c2w)  # same cameras and scene layout …
    assert not torch.allclose(a.images, b.images)  # … other backdrop
    with pytest.raises(ValueError, match="backdrop_textures"):
        render_clip(7, dataclasses.replace(base, backdrop_textures="neon"))
