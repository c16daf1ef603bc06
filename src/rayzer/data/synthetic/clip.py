"""Public entry points of the synthetic data: config, seeds, ``render_clip``, CLI hook, dataset."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .raytrace import render
from .scene import FamilyParams, sample_orbit, sample_walk
from .textures import texture_bank

FAMILIES = ("orbit", "walk")

#: Seeds of the training clips and of the held-out test clips (disjoint).
TRAIN_SEEDS = range(0, 1_000_000)
TEST_SEEDS = range(1_000_000, 1_001_000)

_DEFAULT_NUM_OBJECTS = {"orbit": (3, 6), "walk": (5, 9)}


def seed_split(seed: int) -> str:
    """``"train"`` or ``"test"`` for a seed; ValueError outside both ranges."""
    if seed in TRAIN_SEEDS:
        return "train"
    if seed in TEST_SEEDS:
        return "test"
    raise ValueError(
        f"seed {seed} is outside the train range [{TRAIN_SEEDS.start}, {TRAIN_SEEDS.stop}) and the "
        f"test range [{TEST_SEEDS.start}, {TEST_SEEDS.stop})"
    )


def split_seeds(split: str) -> range:
    """The seed range of ``"train"`` or ``"test"``."""
    if split == "train":
        return TRAIN_SEEDS
    if split == "test":
        return TEST_SEEDS
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def check_seed(seed: int, split: str) -> None:
    """Raise ValueError unless ``seed`` belongs to ``split`` (guards against test leakage)."""
    if seed not in split_seeds(split):
        raise ValueError(f"seed {seed} does not belong to the {split!r} split")


@dataclass
class SynthConfig:
    """Configuration of a synthetic clip (one seed + one config = one clip, bit for bit).

    Attributes:
        family: ``"orbit"`` (object-centric orbit) or ``"walk"`` (camera walking through a room).
        frames: number of frames V.
        height, width: image size in pixels.
        fov_deg: range of the HORIZONTAL field of view (degrees), drawn once per clip.
        texture_scale: multiplies every texture tile size: > 1 = larger, smoother patterns
            (fewer features to match, harder for pose estimation from texture), < 1 = finer
            patterns. Textures are mip-mapped (anti-aliased), so patterns much finer than a pixel
            average out to flat colour: at 64 px the default 1.0 is near the most detailed setting.
        num_objects: (min, max) objects (orbit) / pieces of furniture (walk); None = family default
            (orbit (3, 6), walk (5, 9)).
        shadows: trace shadow rays (hard shadows).
        orbit_step_deg: range of the azimuth step per frame (degrees; sign random).
        orbit_elevation_deg: range of the starting camera elevation above the ground (degrees).
        orbit_elevation_drift_deg: max smooth elevation change over the clip (degrees).
        walk_step: range of the camera displacement per frame (scene units ≈ metres); shrunk
            for long clips whose path would not fit the room (the value used is in ``meta``).
        walk_yaw_deg: max mean yaw rate (degrees per frame), plus a small wobble.
        walk_sideways_prob: probability of a sideways (crab) walk instead of a forward walk.
        background: orbit only: ``"dome"`` (textured environment sphere, finite depth
            everywhere) or ``"plain"`` (uniform colour, depth = +inf on background pixels).
        dome_tile: orbit only: range of the dome's texture tile size as a fraction of its
            radius (large tiles = a nearly plain sky; small tiles = a detailed backdrop).
        backdrop_textures: orbit only: ``"mixed"`` (ground: grey photos / procedural patterns,
            dome: any) or ``"colour_photo"`` (both from the colour photographs). Plain or
            radially regular backdrops make the orbit angle visible only through the objects.
    """

    family: str = "orbit"
    frames: int = 24
    height: int = 64
    width: int = 64
    fov_deg: tuple[float, float] = (45.0, 60.0)
    texture_scale: float = 1.0
    num_objects: tuple[int, int] | None = None
    shadows: bool = True
    orbit_step_deg: tuple[float, float] = (3.0, 8.0)
    orbit_elevation_deg: tuple[float, float] = (10.0, 40.0)
    orbit_elevation_drift_deg: float = 5.0
    walk_step: tuple[float, float] = (0.03, 0.08)
    walk_yaw_deg: float = 1.0
    walk_sideways_prob: float = 0.3
    background: str = "dome"
    dome_tile: tuple[float, float] = (0.3, 0.8)
    backdrop_textures: str = "mixed"

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")
        if int(self.frames) < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if int(self.height) < 8 or int(self.width) < 8:
            raise ValueError(f"height/width must be >= 8, got {self.height}x{self.width}")
        _check_range("fov_deg", self.fov_deg, 1.0, 150.0)
        if not self.texture_scale > 0:
            raise ValueError(f"texture_scale must be > 0, got {self.texture_scale}")
        if self.num_objects is not None:
            lo, hi = self.num_objects
            if not 1 <= lo <= hi <= 32:
                raise ValueError(
                    f"num_objects must satisfy 1 <= min <= max <= 32, got {self.num_objects}"
                )
        _check_range("orbit_step_deg", self.orbit_step_deg, 0.0, 90.0)
        _check_range("orbit_elevation_deg", self.orbit_elevation_deg, 2.0, 80.0)
        _check_range("walk_step", self.walk_step, 0.0, 1.0)
        if not 0 <= self.walk_sideways_prob <= 1:
            raise ValueError(f"walk_sideways_prob must be in [0, 1], got {self.walk_sideways_prob}")
        _check_range("dome_tile", self.dome_tile, 0.001, 10.0)
        if self.backdrop_textures not in ("mixed", "colour_photo"):
            raise ValueError(
                f"backdrop_textures must be 'mixed' or 'colour_photo', got {self.backdrop_textures!r}"
            )
        if self.background not in ("dome", "plain"):
            raise ValueError(f"background must be 'dome' or 'plain', got {self.background!r}")

    def family_params(self) -> FamilyParams:
        self.validate()
        return FamilyParams(
            frames=int(self.frames),
            height=int(self.height),
            width=int(self.width),
            fov_deg=tuple(self.fov_deg),
            texture_scale=float(self.texture_scale),
            num_objects=tuple(self.num_objects or _DEFAULT_NUM_OBJECTS[self.family]),
            orbit_step_deg=tuple(self.orbit_step_deg),
            orbit_elevation_deg=tuple(self.orbit_elevation_deg),
            orbit_elevation_drift_deg=float(self.orbit_elevation_drift_deg),
            walk_step=tuple(self.walk_step),
            walk_yaw_deg=float(self.walk_yaw_deg),
            walk_sideways_prob=float(self.walk_sideways_prob),
            background=self.background,
            dome_tile=tuple(self.dome_tile),
            backdrop_textures=self.backdrop_textures,
        )


def _check_range(name: str, value, lo: float, hi: float) -> None:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (min, max) pair, got {value!r}") from None
    if not lo <= a <= b <= hi:
        raise ValueError(f"{name} must satisfy {lo} <= min <= max <= {hi}, got {value!r}")


@dataclass
class SceneClip:
    """One rendered clip ("video") with exact cameras and depth.

    Attributes:
        images: ``(V, 3, H, W)`` float32 in [0, 1].
        c2w: ``(V, 4, 4)`` float32 camera-to-world, OpenCV axes (x right, y down, z forward).
            World frame: z up, ground / floor at z = 0, units ≈ metres.
        K: ``(V, 4)`` float32 pixel intrinsics (fx, fy, cx, cy); principal point at the image
            centre (cx = W / 2, cy = H / 2, measured from the top-left corner, pixel centres at +0.5).
        depth: ``(V, H, W)`` float32 z-depth (distance along the camera z axis, same units as
            ``c2w``). Finite on every pixel for ``walk`` (closed room) and for ``orbit`` with the
            default ``"dome"`` background; ``+inf`` on background pixels with ``background="plain"``.
        index: ``(V,)`` int64 frame numbers (0..V-1, trajectory order).
        family, seed, split: provenance.
        meta: scene facts (fov, number of objects, orbit step / walk step, ...).
    """

    images: torch.Tensor
    c2w: torch.Tensor
    K: torch.Tensor
    depth: torch.Tensor
    index: torch.Tensor
    family: str
    seed: int
    split: str
    meta: dict[str, Any] = field(default_factory=dict)

    def as_batch(self) -> dict[str, torch.Tensor]:
        """The batch dict of one sample (no batch dim): image, c2w, K, depth, index."""
        return {
            "image": self.images,
            "c2w": self.c2w,
            "K": self.K,
            "depth": self.depth,
            "index": self.index,
        }


def render_clip(
    seed: int, cfg: SynthConfig | None = None, frames: Sequence[int] | torch.Tensor | None = None
) -> SceneClip:
    """Render the clip of ``seed`` under ``cfg``.

    Deterministic: the same (seed, cfg) gives bit-identical tensors (on one platform and library
    version; every random choice comes from a ``numpy.random.Generator`` seeded by ``seed`` and
    the family, never from global RNG state).

    The scene and the camera path depend on (seed, family, frames, aspect ratio and the sampling
    ranges) but not on the resolution, so one seed can be rendered at several sizes.

    Args:
        frames: optional subset of frame numbers (in ``[0, cfg.frames)``) to render; the clip
            then holds only those frames (``index`` = their numbers), pixel-identical to the
            same frames of the full clip. Training samples use a few frames of each clip, so
            this saves most of the rendering time.
    """
    cfg = cfg or SynthConfig()
    params = cfg.family_params()
    split = seed_split(int(seed))
    family_id = FAMILIES.index(cfg.family)
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(family_id,)))
    bank = texture_bank()
    sampler = sample_orbit if cfg.family == "orbit" else sample_walk
    scene, c2w, K, meta = sampler(rng, params, bank)
    # Render with exactly the float32 cameras we hand out, so depth is consistent with them.
    c2w32, K32 = c2w.astype(np.float32), K.astype(np.float32)
    index = np.arange(params.frames)
    if frames is not None:
        index = np.asarray(frames, dtype=np.int64).reshape(-1)
        if index.size == 0 or index.min() < 0 or index.max() >= params.frames:
            raise ValueError(f"frames must lie in [0, {params.frames}), got {index.tolist()}")
        c2w32, K32 = c2w32[index], K32[index]
    images, depth = render(scene, c2w32, K32, params.height, params.width, bank, cfg.shadows)
    return SceneClip(
        images=torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))),
        c2w=torch.from_numpy(c2w32),
        K=torch.from_numpy(K32),
        depth=torch.from_numpy(np.ascontiguousarray(depth)),
        index=torch.from_numpy(index.astype(np.int64)),
        family=cfg.family,
        seed=int(seed),
        split=split,
        meta=meta,
    )


def synth_command(family: str, seed: int, frames: int, size: int, out: str, **kw: Any) -> Path:
    """Back-end of ``rayzer data synth``: render one clip and write it as a scene folder.

    Args:
        family: ``"orbit"`` or ``"walk"``; seed: clip seed; frames: V; size: image height = width.
        out: the scene folder to create (``images/``, ``depth/``, ``cameras.json``); must not exist
            unless ``overwrite=True`` is passed.
        **kw: further :class:`SynthConfig` fields (e.g. ``texture_scale=2.0``) and ``overwrite``.
    Returns:
        The path of the written scene folder.
    """
    from ..scene_folder import write_scene_folder

    overwrite = bool(kw.pop("overwrite", False))
    names = {f.name for f in dataclasses.fields(SynthConfig)}
    unknown = sorted(set(kw) - names)
    if unknown:
        raise ValueError(f"unknown SynthConfig option(s) {unknown}; valid: {sorted(names)}")
    cfg = SynthConfig(family=family, frames=frames, height=size, width=size, **kw)
    clip = render_clip(seed, cfg)
    return write_scene_folder(
        out,
        clip.images,
        clip.c2w,
        clip.K,
        depth=clip.depth,
        scene=f"synth_{family}_{seed}",
        meta={
            "source": "rayzer.data.synthetic",
            "family": family,
            "seed": int(seed),
            "split": clip.split,
            "world_frame": "z up, ground/floor at z = 0, units ~ metres",
            "config": dataclasses.asdict(cfg),
            "scene_meta": clip.meta,
        },
        overwrite=overwrite,
    )


class SyntheticClips(torch.utils.data.Dataset):
    """Map-style dataset of synthetic clips: item ``i`` is the batch dict of seed ``seeds[i]``.

    Args:
        cfg: clip configuration.
        split: ``"train"`` or ``"test"`` (seeds are taken from that range only).
        num_clips: dataset length; first: offset into the split's seed range.
    """

    def __init__(
        self, cfg: SynthConfig, split: str = "train", num_clips: int = 1000, first: int = 0
    ):
        seeds = split_seeds(split)
        if first < 0 or num_clips < 0 or first + num_clips > len(seeds):
            raise ValueError(f"clips [{first}, {first + num_clips}) exceed the {split} seed range")
        cfg.validate()
        self.cfg, self.split = cfg, split
        self.seeds = seeds[first : first + num_clips]

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return render_clip(self.seeds[i], self.cfg).as_batch()
