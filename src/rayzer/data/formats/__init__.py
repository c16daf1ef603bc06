"""Dataset formats: one small reader per source format, each converting its conventions to ours
once, at the edge (see :mod:`rayzer.data.formats.base`). :func:`read_source` dispatches by name
or auto-detection (:mod:`rayzer.data.formats.detect`); :mod:`rayzer.data.convert` writes the result
as scene folders.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from rayzer.data.formats.base import SourceFrame, SourceScene, natural_key
from rayzer.data.formats.detect import (
    FORMAT_NAMES,
    canonical_format,
    detect_format,
    detect_formats,
)
from rayzer.data.formats.undistort import Distortion

MULTI_SCENE_FORMATS = ("re10k", "re10k-json")


def read_source(
    path: str | Path,
    format: str | None = None,
    *,
    images: str | Path | None = None,
    split: str | None = None,
    scenes: Sequence[str] | None = None,
    stride: int | None = None,
    num_frames: int | None = None,
    max_frames: int | None = None,
) -> tuple[str, Iterable[SourceScene]]:
    """Open a source dataset: ``(format name, lazily produced scenes)``.

    Options a format does not use raise ValueError (so a typo never silently changes nothing):
    ``images`` (colmap, nerfstudio, llff: a different image folder, e.g. ``images_4``), ``split``
    (nerfstudio ``transforms_<split>.json``, re10k split folder), ``scenes`` (multi-scene formats),
    ``stride`` / ``num_frames`` / ``max_frames`` (video).
    """
    fmt = canonical_format(format) if format else detect_format(path)
    given = {
        "images": images is not None,
        "split": split is not None,
        "scenes": scenes is not None,
        "stride": stride is not None,
        "num_frames": num_frames is not None,
        "max_frames": max_frames is not None,
    }
    allowed = {
        "colmap": {"images"},
        "nerfstudio": {"images", "split"},
        "llff": {"images"},
        "re10k": {"split", "scenes"},
        "re10k-json": {"scenes"},
        "video": {"stride", "num_frames", "max_frames"},
        "images": set(),
        "scene": set(),
    }[fmt]
    unused = sorted(k for k, v in given.items() if v and k not in allowed)
    if unused:
        raise ValueError(f"option(s) {', '.join(unused)} do not apply to the {fmt} format")

    from rayzer.data.formats import colmap, image_folder, llff, nerfstudio, re10k, scene, video

    if fmt == "colmap":
        out: Iterable[SourceScene] = colmap.read_colmap(path, images=images)
    elif fmt == "nerfstudio":
        out = nerfstudio.read_transforms(path, images=images, split=split)
    elif fmt == "llff":
        out = llff.read_llff(path, images=images)
    elif fmt == "re10k":
        out = re10k.read_re10k_chunks(path, split=split, scenes=scenes)
    elif fmt == "re10k-json":
        out = re10k.read_scene_jsons(path, scenes=scenes)
    elif fmt == "video":
        out = video.read_video(path, stride=stride, num_frames=num_frames, max_frames=max_frames)
    elif fmt == "images":
        out = image_folder.read_image_folder(path)
    else:
        out = scene.read_native(path)
    return fmt, out


__all__ = [
    "FORMAT_NAMES",
    "MULTI_SCENE_FORMATS",
    "Distortion",
    "SourceFrame",
    "SourceScene",
    "canonical_format",
    "detect_format",
    "detect_formats",
    "natural_key",
    "read_source",
]
