"""Built-in synthetic multi-view data: procedurally generated static scenes rendered
on the CPU as continuous camera trajectories, with exact cameras and z-depth.

Families: ``orbit`` (object-centric, Objaverse-like) and ``walk`` (a camera moving through a
furnished room, RealEstate10K-like). Deterministic per seed; disjoint train / test seed ranges.

>>> clip = render_clip(0, SynthConfig(family="walk", frames=8))
>>> clip.images.shape, clip.c2w.shape, clip.K.shape, clip.depth.shape
(torch.Size([8, 3, 64, 64]), torch.Size([8, 4, 4]), torch.Size([8, 4]), torch.Size([8, 64, 64]))

Modules: ``clip`` (public API), ``scene`` (scene + trajectory sampling), ``raytrace`` (renderer),
``primitives`` (ray–primitive intersections), ``textures`` (photo + procedural texture bank).
"""

from .clip import (
    FAMILIES,
    TEST_SEEDS,
    TRAIN_SEEDS,
    SceneClip,
    SynthConfig,
    SyntheticClips,
    check_seed,
    render_clip,
    seed_split,
    split_seeds,
    synth_command,
)

__all__ = [
    "FAMILIES",
    "TEST_SEEDS",
    "TRAIN_SEEDS",
    "SceneClip",
    "SynthConfig",
    "SyntheticClips",
    "check_seed",
    "render_clip",
    "seed_split",
    "split_seeds",
    "synth_command",
]
