"""Data for rayzer: the built-in synthetic scenes and the scene-folder format.

* :mod:`rayzer.data.synthetic` — procedurally generated, CPU ray-traced clips with exact cameras
  and depth (``orbit`` and ``walk`` families), deterministic per seed, disjoint train/test seeds.
* :mod:`rayzer.data.scene_folder` — read/write ``images/ + cameras.json (+ depth/)`` folders, the
  project's native format for multi-view scenes.
"""

from rayzer.data.scene_folder import SceneFolder, read_scene_folder, write_scene_folder
from rayzer.data.synthetic import (
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
    "TEST_SEEDS",
    "TRAIN_SEEDS",
    "SceneClip",
    "SceneFolder",
    "SynthConfig",
    "SyntheticClips",
    "check_seed",
    "read_scene_folder",
    "render_clip",
    "seed_split",
    "split_seeds",
    "synth_command",
    "write_scene_folder",
]
