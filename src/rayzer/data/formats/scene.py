"""Our own scene folders as a conversion source (to re-encode, downscale or validate a copy)."""

from __future__ import annotations

from pathlib import Path

from rayzer.data.formats.base import (
    SourceFrame,
    SourceScene,
    as_c2w,
    check_intrinsics,
    read_file_bytes,
)
from rayzer.data.scene_folder import CAMERAS_JSON, load_scene_json, scene_file
from rayzer.utils.paths import path_inside

RESERVED = {"file", "width", "height", "fx", "fy", "cx", "cy", "c2w"}


def read_native(path: str | Path) -> list[SourceScene]:
    """Read a scene folder (``cameras.json`` or ``frames.json``) as a :class:`SourceScene`."""
    root = Path(path)
    json_path = scene_file(root)
    posed = json_path.name == CAMERAS_JSON
    doc = load_scene_json(json_path)
    frames = []
    for i, fr in enumerate(doc["frames"]):
        if not isinstance(fr, dict) or not isinstance(fr.get("file"), str):
            raise ValueError(f"{json_path}: frame {i} has no 'file' string")
        where = f"{json_path} frame {fr['file']}"
        try:
            image_path = path_inside(root, fr["file"])
        except ValueError as exc:
            raise ValueError(f"{json_path}: frame {i}: {exc}") from None
        K = c2w = size = None
        if posed:
            K = check_intrinsics([fr.get(k) for k in ("fx", "fy", "cx", "cy")], where)
            c2w = as_c2w(fr.get("c2w"), where)
            if "width" in fr and "height" in fr:
                size = (int(fr["width"]), int(fr["height"]))
        extra = {k: v for k, v in fr.items() if k not in RESERVED}
        extra.setdefault("source_file", fr["file"])
        frames.append(
            SourceFrame(
                name=Path(fr["file"]).name,
                source_file=extra.pop("source_file"),
                open=read_file_bytes(image_path),
                K=K,
                intrinsics_size=size,
                c2w=c2w,
                extra=extra,
            )
        )
    meta = {k: v for k, v in doc.items() if k not in ("frames", "scene", "convention", "poses")}
    meta.setdefault("source_format", "scene")
    return [
        SourceScene(name=str(doc.get("scene") or root.resolve().name), frames=frames, meta=meta)
    ]
