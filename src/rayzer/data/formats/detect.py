"""Which format is this? Auto-detection for ``rayzer data convert``.

Checks in priority order (the first match wins; ``--format`` overrides):

====================  ==========================================================================
``scene``             our scene folder: ``cameras.json`` or ``frames.json``
``nerfstudio``        ``transforms.json`` / ``transforms_<split>.json`` (nerfstudio, instant-ngp,
                      NeRF-synthetic, DL3DV)
``llff``              ``poses_bounds.npy``
``colmap``            a COLMAP model here or in ``sparse/0``, ``sparse``, ``colmap/sparse/0``
``re10k``             pixelSplat ``.torch`` chunks (here or in split subfolders) or one chunk file
``re10k-json``        per-scene JSON: ``metadata/*.json``, ``full_list.txt``, ``opencv_cameras.json``
``video``             a video file
``images``            a folder of images (or its ``images/`` subfolder)
====================  ==========================================================================
"""

from __future__ import annotations

from pathlib import Path

from rayzer.data.formats import colmap, image_folder, re10k
from rayzer.data.formats.video import VIDEO_EXTENSIONS

FORMAT_NAMES = ("scene", "nerfstudio", "llff", "colmap", "re10k", "re10k-json", "video", "images")
ALIASES = {
    "dl3dv": "nerfstudio",
    "instant-ngp": "nerfstudio",
    "nerf-synthetic": "nerfstudio",
    "blender": "nerfstudio",
    "pixelsplat": "re10k",
    "lvsm": "re10k-json",
    "rayzer-json": "re10k-json",
    "image-folder": "images",
    "native": "scene",
}


def canonical_format(name: str) -> str:
    """Resolve an alias (``dl3dv`` -> ``nerfstudio`` ...); ValueError for unknown names."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in FORMAT_NAMES:
        known = ", ".join(FORMAT_NAMES + tuple(ALIASES))
        raise ValueError(f"unknown format {name!r}; known formats: {known}")
    return key


def _file_formats(path: Path) -> list[str]:
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return ["video"]
    if suffix == re10k.CHUNK_SUFFIX:
        return ["re10k"]
    if suffix == ".json" and path.name.startswith("transforms"):
        return ["nerfstudio"]
    if suffix == ".json" or path.name == "full_list.txt":
        return ["re10k-json"]
    return []


def detect_formats(path: str | Path) -> list[str]:
    """Every format ``path`` looks like, in priority order (empty if none)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    if path.is_file():
        return _file_formats(path)
    found = []
    if (path / "cameras.json").is_file() or (path / "frames.json").is_file():
        found.append("scene")
    if (path / "transforms.json").is_file() or any(path.glob("transforms_*.json")):
        found.append("nerfstudio")
    if (path / "poses_bounds.npy").is_file():
        found.append("llff")
    if colmap.find_model_dir(path) is not None:
        found.append("colmap")
    try:
        re10k.chunk_dirs(path)
        found.append("re10k")
    except FileNotFoundError:
        pass
    try:
        re10k.scene_json_files(path)
        found.append("re10k-json")
    except (FileNotFoundError, ValueError):
        pass
    if image_folder.image_dir(path) is not None:
        found.append("images")
    return found


def detect_format(path: str | Path) -> str:
    """The most specific format of ``path`` (ValueError naming it when nothing matches)."""
    found = detect_formats(path)
    if not found:
        raise ValueError(
            f"{path}: cannot tell the dataset format (no cameras.json, transforms*.json, "
            "poses_bounds.npy, COLMAP model, .torch chunks, per-scene JSON, video or images); "
            f"pass --format, one of {', '.join(FORMAT_NAMES)}"
        )
    return found[0]
