"""RealEstate10K-style datasets: pixelSplat ``.torch`` chunks and the per-scene JSON layouts of the
LVSM / RayZer releases. All are multi-scene sources (one output scene folder per scene).

**pixelSplat chunks** (``<root>/[train|test]/*.torch`` + ``index.json`` = ``{scene key: chunk file}``):
each chunk is a ``torch.save``-d list of scenes ``{"key": str, "url": str, "timestamps": (V,) int64,
"cameras": (V, 18) float, "images": V uint8 tensors of encoded JPEG bytes}``. A camera row is
``fx, fy, cx, cy`` normalised by the image width / height (principal point from the corner), two
unused values, then the 3×4 world-to-camera matrix row-major, OpenCV axes. Output frames are named
``00000.jpg, 00001.jpg, ...`` in chunk order (the frame indices of the pixelSplat / LVSM evaluation
index files) with the timestamp recorded per frame.

**LVSM layout** (``<root>/metadata/<scene>.json`` + ``<root>/images/<scene>/*.png``, optionally
``full_list.txt`` listing the JSON files): ``{"scene_name", "frames": [{"image_path", "fxfycxcy":
[fx, fy, cx, cy] in pixels of the stored image, "w2c": 4×4}]}``.

**RayZer DL3DV layout** (``<scene>/opencv_cameras.json`` + images): ``{"scene_name", "frames":
[{"file_path" (relative to the scene folder), "fx", "fy", "cx", "cy" in pixels, "w2c": 4×4}]}``.

In all three the w2c is OpenCV world-to-camera; ours is its inverse.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rayzer.data.formats.base import (
    SourceFrame,
    SourceScene,
    check_intrinsics,
    natural_key,
    read_file_bytes,
    w2c_to_c2w,
)
from rayzer.data.scene_folder import load_scene_json

CHUNK_SUFFIX = ".torch"
RAYZER_JSON = "opencv_cameras.json"
CHUNK_CONVENTION = (
    "pixelSplat RealEstate10K chunk: cameras = fx, fy, cx, cy normalised by image width/height, two "
    "unused values, 3x4 world-to-camera row-major (OpenCV axes); images = encoded JPEG bytes."
)
JSON_CONVENTION = (
    "per-scene JSON (LVSM / RayZer): w2c = 4x4 world-to-camera (OpenCV axes); fx, fy, cx, cy in "
    "pixels of the stored image."
)


# ------------------------------------------------------------------------------------------------
# pixelSplat chunks


def chunk_dirs(root: Path, split: str | None = None) -> list[Path]:
    """Folders holding ``.torch`` chunks: ``root`` itself or its split subfolders."""
    if root.is_file():
        return [root.parent]
    if any(root.glob(f"*{CHUNK_SUFFIX}")):
        return [root]
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and any(d.glob(f"*{CHUNK_SUFFIX}")))
    if split is not None:
        subdirs = [d for d in subdirs if d.name == split]
        if not subdirs:
            raise FileNotFoundError(f"{root}: no {split}/ folder with {CHUNK_SUFFIX} chunks")
    if not subdirs:
        raise FileNotFoundError(f"{root}: no {CHUNK_SUFFIX} chunks found")
    return subdirs


def _load_chunk(path: Path) -> list[dict[str, Any]]:
    import torch

    try:
        # weights_only: chunks are plain lists/dicts of tensors and strings; never unpickle code.
        chunk = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: cannot read the chunk ({type(exc).__name__}: {exc})") from None
    if not isinstance(chunk, list):
        raise ValueError(f"{path}: expected a list of scenes, got {type(chunk).__name__}")
    return chunk


def _image_suffix(data: bytes) -> str:
    return ".png" if data[:8] == b"\x89PNG\r\n\x1a\n" else ".jpg"


def _chunk_scene(example: dict[str, Any], chunk: Path, split: str | None) -> SourceScene:
    where = f"{chunk} scene {example.get('key', '?')}"
    missing = [k for k in ("key", "cameras", "images") if k not in example]
    if missing:
        raise ValueError(f"{where}: missing {missing}")
    key = str(example["key"])
    cams = np.asarray(example["cameras"], dtype=np.float64)
    images = example["images"]
    if cams.ndim != 2 or cams.shape[1] != 18:
        raise ValueError(f"{where}: cameras must be (V, 18), got {cams.shape}")
    if len(images) != len(cams):
        raise ValueError(f"{where}: {len(cams)} cameras but {len(images)} images")
    if len(cams) == 0:
        raise ValueError(f"{where}: scene has no frames")
    stamps = example.get("timestamps")
    stamps = [int(t) for t in stamps] if stamps is not None else [None] * len(cams)
    frames = []
    for i, (cam, img) in enumerate(zip(cams, images)):
        fwhere = f"{where} frame {i}"
        data = bytes(np.asarray(img, dtype=np.uint8).tobytes())
        if not data:
            raise ValueError(f"{fwhere}: empty image bytes")
        extra = {} if stamps[i] is None else {"timestamp": stamps[i]}
        frames.append(
            SourceFrame(
                name=f"{i:05d}{_image_suffix(data)}",
                source_file=f"{chunk.name}#{key}/{i}",
                open=(lambda d=data: d),
                K=check_intrinsics(cam[:4], fwhere),
                K_normalized=True,
                c2w=w2c_to_c2w(cam[6:].reshape(3, 4), fwhere),
                extra=extra,
            )
        )
    meta: dict[str, Any] = {
        "source_format": "re10k",
        "source_convention": CHUNK_CONVENTION,
        "conversion": "c2w = inverse(w2c); fx, cx *= width; fy, cy *= height",
        "source_chunk": chunk.name,
    }
    if split is not None:
        meta["split"] = split
    if "url" in example:
        meta["url"] = str(example["url"])
    return SourceScene(name=key, frames=frames, meta=meta)


def read_re10k_chunks(
    path: str | Path, split: str | None = None, scenes: Sequence[str] | None = None
) -> Iterator[SourceScene]:
    """Scenes of pixelSplat chunks, one chunk in memory at a time (see module doc).

    Args:
        path: a ``.torch`` file, a folder of chunks, or a dataset root with split subfolders.
        split: only this split subfolder (``train`` / ``test``).
        scenes: only these scene keys (uses ``index.json`` to open only the chunks needed).
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"not found: {root}")
    wanted = set(scenes) if scenes is not None else None
    for folder in chunk_dirs(root, split):
        split_name = folder.name if folder != root and folder != root.parent else None
        if root.is_file():
            chunks = [root]
        else:
            chunks = sorted(folder.glob(f"*{CHUNK_SUFFIX}"))
            index = folder / "index.json"
            if wanted is not None and index.is_file():
                try:
                    mapping = json.loads(index.read_text())
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{index}: invalid JSON ({exc})") from None
                needed = {mapping[k] for k in wanted if k in mapping}
                chunks = [c for c in chunks if c.name in needed]
        for chunk in chunks:
            for example in _load_chunk(chunk):
                if not isinstance(example, dict):
                    raise ValueError(f"{chunk}: scene entries must be dicts")
                if wanted is not None and str(example.get("key")) not in wanted:
                    continue
                yield _chunk_scene(example, chunk, split_name)


# ------------------------------------------------------------------------------------------------
# per-scene JSON (LVSM metadata/*.json, RayZer <scene>/opencv_cameras.json)


def scene_json_files(root: Path) -> list[Path]:
    """The per-scene JSON files of an LVSM / RayZer-layout dataset (or a single scene)."""
    if root.is_file():
        if root.suffix == ".txt":  # a full_list.txt
            return _list_file(root)
        return [root]
    if (root / RAYZER_JSON).is_file():
        return [root / RAYZER_JSON]
    if (root / "full_list.txt").is_file():
        return _list_file(root / "full_list.txt")
    if (root / "metadata").is_dir():
        files = sorted((root / "metadata").glob("*.json"), key=lambda p: natural_key(p.name))
        if files:
            return files
    files = sorted(root.glob(f"*/{RAYZER_JSON}"), key=lambda p: natural_key(str(p)))
    if files:
        return files
    raise FileNotFoundError(
        f"{root}: no per-scene JSON (metadata/*.json, full_list.txt or */{RAYZER_JSON})"
    )


def _list_file(path: Path) -> list[Path]:
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    if not lines:
        raise ValueError(f"{path}: empty scene list")
    out = []
    for line in lines:
        p = Path(line)
        if not p.is_absolute():
            p = path.parent / p
        if not p.is_file():
            # lists written on another machine: fall back to metadata/<name> next to the list
            alt = path.parent / "metadata" / p.name
            if not alt.is_file():
                raise FileNotFoundError(f"{path}: listed scene file is missing: {line}")
            p = alt
        out.append(p)
    return out


def _resolve(image_path: str, json_path: Path, scene: str, where: str) -> Path:
    p = Path(image_path)
    root = json_path.parent.parent if json_path.parent.name == "metadata" else json_path.parent
    candidates = [p] if p.is_absolute() else [json_path.parent / p, root / p]
    # LVSM lists absolute paths of the machine that preprocessed the data: fall back to the
    # images/<scene>/<file> layout next to metadata/.
    candidates.append(root / "images" / scene / p.name)
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"{where}: image file is missing: {image_path}")


def _json_scene(json_path: Path) -> SourceScene:
    doc = load_scene_json(json_path)
    default = json_path.parent.name if json_path.name == RAYZER_JSON else json_path.stem
    scene = str(doc.get("scene_name") or default)
    frames = []
    for i, fr in enumerate(doc["frames"]):
        where = f"{json_path} frame {i}"
        if not isinstance(fr, dict):
            raise ValueError(f"{where}: frame must be an object")
        file = fr.get("image_path", fr.get("file_path"))
        if not isinstance(file, str) or "w2c" not in fr:
            raise ValueError(f"{where}: needs 'image_path' (or 'file_path') and 'w2c'")
        if "fxfycxcy" in fr:
            K = check_intrinsics(fr["fxfycxcy"], where)
        else:
            K = check_intrinsics([fr.get(k) for k in ("fx", "fy", "cx", "cy")], where)
        size = (int(fr["w"]), int(fr["h"])) if "w" in fr and "h" in fr else None
        image = _resolve(file, json_path, scene, where)
        frames.append(
            SourceFrame(
                name=image.name,
                source_file=file,
                open=read_file_bytes(image),
                K=K,
                intrinsics_size=size,
                c2w=w2c_to_c2w(fr["w2c"], where),
            )
        )
    meta = {
        "source_format": "re10k-json",
        "source_convention": JSON_CONVENTION,
        "conversion": "c2w = inverse(w2c); intrinsics as stored",
        "source_json": json_path.name,
    }
    return SourceScene(name=scene, frames=frames, meta=meta)


def read_scene_jsons(
    path: str | Path, scenes: Sequence[str] | None = None
) -> Iterator[SourceScene]:
    """Scenes of an LVSM / RayZer per-scene JSON dataset (see module doc)."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"not found: {root}")
    wanted = set(scenes) if scenes is not None else None
    for json_path in scene_json_files(root):
        scene = _json_scene(json_path)
        if wanted is None or scene.name in wanted:
            yield scene
