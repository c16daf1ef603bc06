"""``rayzer data convert``: any supported source -> scene folders (images/ + cameras.json).

* The source's world frame and scale are kept (normalisation belongs to the training loader);
  each frame keeps its image file name (made unique if needed) and records ``source_file``.
* Images are copied byte for byte unless pixels must change (undistortion, EXIF rotation,
  ``max_side`` downscaling, a decoded source such as a video, or a format other than PNG / JPEG);
  then they are re-encoded in the same format (JPEG quality 95, or PNG). Every image is fully
  decoded once, so unreadable files are caught.
* Intrinsics are rescaled to the size of the image written (``resize_intrinsics``).
* Single-scene sources write one scene folder at ``output``; multi-scene sources (RealEstate10K
  chunks, per-scene JSON datasets) write ``output/<scene>/`` for each scene.
* Atomic: everything is written into a hidden temporary sibling of ``output`` that is renamed
  into place only after the last frame succeeded, so a failed or interrupted conversion never
  leaves a complete-looking folder. Every error names the file and the problem.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from rayzer.data.formats import MULTI_SCENE_FORMATS, SourceFrame, SourceScene, read_source
from rayzer.data.formats.undistort import undistort_image
from rayzer.data.scene_folder import CAMERAS_JSON, CONVENTION, FRAMES_JSON, check_c2w
from rayzer.geometry import resize_intrinsics
from rayzer.utils.atomic import mark_output, staged_dir
from rayzer.utils.paths import check_output_apart, check_rayzer_output, check_replaceable

JPEG_QUALITY = 95
COPYABLE = {"JPEG": (".jpg", ".jpeg"), "PNG": (".png",)}


@dataclass
class ConvertedScene:
    name: str
    path: Path
    frames: int
    posed: bool
    size: tuple[int, int]  # (W, H) of the first frame


@dataclass
class ConvertResult:
    output: Path
    format: str
    scenes: list[ConvertedScene] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------
# helpers


def _unique_names(frames: Sequence[SourceFrame]) -> list[str]:
    """Output file names: the source name when unique (case-insensitively), else the source path
    flattened with ``_``, else prefixed with the frame number."""
    names = [Path(f.name).name for f in frames]
    counts: dict[str, int] = {}
    for n in names:
        counts[n.lower()] = counts.get(n.lower(), 0) + 1
    out, seen = [], set()
    for i, (f, n) in enumerate(zip(frames, names)):
        if counts[n.lower()] > 1:
            flat = f.source_file.replace("\\", "/").strip("./").replace("/", "_")
            n = flat if Path(flat).suffix else flat + Path(n).suffix
        if n.lower() in seen or n.startswith(".") or not n:
            n = f"{i:05d}_{n.lstrip('.')}"
        seen.add(n.lower())
        out.append(n)
    return out


def _decode(payload: bytes | Image.Image, where: str) -> tuple[Image.Image, str | None]:
    """(fully decoded image, its file format or None for an already decoded payload)."""
    if isinstance(payload, Image.Image):
        return payload, None
    try:
        im = Image.open(io.BytesIO(payload))
        im.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot read image {where}: {exc}") from None
    return im, im.format


def _target_size(wh: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    W, H = wh
    if max_side is None or max(W, H) <= max_side:
        return W, H
    s = max_side / max(W, H)
    return max(1, round(W * s)), max(1, round(H * s))


def _pixel_K(frame: SourceFrame, wh: tuple[int, int], where: str) -> np.ndarray:
    """The frame's intrinsics in pixels of the decoded source image of size ``wh``."""
    K = np.asarray(frame.K, dtype=np.float64)
    W, H = wh
    if frame.K_normalized:
        return K * np.array([W, H, W, H])
    if frame.intrinsics_size is None or tuple(frame.intrinsics_size) == (W, H):
        return K
    Wd, Hd = frame.intrinsics_size
    sx, sy = W / Wd, H / Hd
    # a downscaled copy (e.g. images_4) rounds each side to whole pixels
    if abs(sx - sy) > 1.0 / min(W, H) + 1e-9:
        raise ValueError(
            f"{where}: the image is {W}x{H} but its camera is for {Wd}x{Hd} (a different aspect "
            "ratio; is it the right image, or rotated by EXIF?)"
        )
    return resize_intrinsics(torch.from_numpy(K), (Hd, Wd), (H, W)).numpy()


def _encode(img: Image.Image, suffix: str) -> bytes:
    buf = io.BytesIO()
    if suffix in (".jpg", ".jpeg"):
        if img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
        img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    else:
        img.save(buf, format="PNG")
    return buf.getvalue()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


# ------------------------------------------------------------------------------------------------
# one scene


def write_scene(
    scene: SourceScene,
    out_dir: Path,
    max_side: int | None = None,
    source: str | None = None,
    on_frame: Callable[[int, int], None] | None = None,
) -> ConvertedScene:
    """Write one :class:`SourceScene` as a scene folder at ``out_dir`` (which must not exist).

    Not atomic by itself: :func:`convert` calls it inside a temporary folder.
    """
    frames = list(scene.frames)
    if not frames:
        raise ValueError(f"scene {scene.name}: no frames")
    posed = frames[0].c2w is not None
    for f in frames:
        where = f"scene {scene.name}, {f.source_file}"
        if (f.c2w is not None) != posed or (f.K is not None) != posed:
            raise ValueError(f"{where}: some frames have cameras and others do not")
        if posed:  # validate every pose before any pixel is written
            check_c2w(f.c2w, where)
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")

    (out_dir / "images").mkdir(parents=True)
    entries = []
    first_size = None
    for i, (frame, name) in enumerate(zip(frames, _unique_names(frames))):
        entry = _write_frame(frame, name, out_dir, posed, max_side, scene.name)
        entries.append(entry)
        first_size = first_size or (entry["width"], entry["height"])
        if on_frame is not None:
            on_frame(i + 1, len(frames))

    doc: dict[str, Any] = {"scene": scene.name}
    if posed:
        doc["convention"] = CONVENTION
    else:
        doc["poses"] = None
    if source is not None:
        doc["source"] = source
    for key, value in scene.meta.items():
        doc.setdefault(key, value)
    if max_side is not None:
        doc["max_side"] = max_side
    doc["frames"] = entries
    with open(out_dir / (CAMERAS_JSON if posed else FRAMES_JSON), "w") as fh:
        json.dump(_jsonable(doc), fh, indent=1, allow_nan=False)
    return ConvertedScene(scene.name, out_dir, len(entries), posed, first_size)


def _write_frame(
    frame: SourceFrame,
    name: str,
    out_dir: Path,
    posed: bool,
    max_side: int | None,
    scene_name: str,
) -> dict[str, Any]:
    """Write one frame's image into ``out_dir/images`` (the source bytes when nothing changes,
    else undistorted / downscaled and re-encoded); returns its scene-file entry."""
    where = f"{frame.source_file} (scene {scene_name})"
    payload = frame.open()
    img, fmt = _decode(payload, where)
    wh = (img.width, img.height)
    changed = fmt is None
    K = _pixel_K(frame, wh, where) if posed else None
    if frame.distortion is not None and not frame.distortion.is_identity:
        img = undistort_image(img, tuple(K), frame.distortion)
        changed = True
    new_wh = _target_size(wh, max_side)
    if new_wh != wh:
        img = img.resize(new_wh, Image.Resampling.LANCZOS)
        if posed:
            K = resize_intrinsics(torch.from_numpy(K), wh[::-1], new_wh[::-1]).numpy()
        changed = True
    suffix = Path(name).suffix.lower()
    if not changed and fmt in COPYABLE:
        if suffix not in COPYABLE[fmt]:  # keep the bytes, fix a misleading extension
            name = Path(name).stem + COPYABLE[fmt][0]
        data = payload
    else:
        if suffix not in (".jpg", ".jpeg", ".png"):
            name = Path(name).stem + ".png"
            suffix = ".png"
        data = _encode(img, suffix)
    (out_dir / "images" / name).write_bytes(data)
    entry: dict[str, Any] = {"file": f"images/{name}", "width": new_wh[0], "height": new_wh[1]}
    if posed:
        fx, fy, cx, cy = (float(v) for v in K)
        entry.update(fx=fx, fy=fy, cx=cx, cy=cy, c2w=np.asarray(frame.c2w).tolist())
    entry["source_file"] = frame.source_file
    if frame.distortion is not None:
        entry["source_distortion_removed"] = frame.distortion.as_dict()
    for key, value in frame.extra.items():
        entry.setdefault(key, value)
    return entry


# ------------------------------------------------------------------------------------------------
# the command


def _safe_dirname(name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_.=+" else "_" for c in name).strip(".")
    if not safe:
        raise ValueError(f"scene name {name!r} cannot be used as a folder name")
    return safe


def convert(
    input: str | os.PathLike,
    output: str | os.PathLike,
    format: str | None = None,
    *,
    images: str | os.PathLike | None = None,
    split: str | None = None,
    scenes: Sequence[str] | None = None,
    limit: int | None = None,
    stride: int | None = None,
    num_frames: int | None = None,
    max_frames: int | None = None,
    max_side: int | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> ConvertResult:
    """Convert ``input`` (any supported format; auto-detected unless ``format``) to scene folders.

    Args:
        input: source file or folder.
        output: the scene folder to write (single-scene sources) or the dataset folder holding
            one scene folder per scene (multi-scene sources).
        format: source format name (see :data:`rayzer.data.formats.FORMAT_NAMES`) or None.
        images, split, scenes, stride, num_frames, max_frames: format options
            (:func:`rayzer.data.formats.read_source`).
        limit: convert at most this many scenes (multi-scene sources).
        max_side: downscale so the longer side is at most this (intrinsics updated).
        overwrite: replace an existing ``output``.
        log: called with one line per converted scene.
    Returns:
        :class:`ConvertResult`.
    """
    src, out = Path(input), Path(output)
    if not src.exists():
        raise FileNotFoundError(f"input not found: {src}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (pass --overwrite to replace it)")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    check_output_apart(out, {"--input": src})
    if overwrite:
        check_replaceable(out)
        check_rayzer_output(out)
    fmt, source_scenes = read_source(
        src,
        format,
        images=images,
        split=split,
        scenes=scenes,
        stride=stride,
        num_frames=num_frames,
        max_frames=max_frames,
    )
    multi = fmt in MULTI_SCENE_FORMATS
    if limit is not None and not multi:
        raise ValueError(f"limit applies to multi-scene formats only, not {fmt}")
    result = ConvertResult(out, fmt)
    with staged_dir(
        out, overwrite, exists_error="{out} already exists (pass --overwrite to replace it)"
    ) as tmp:
        tmp.mkdir()
        used: set[str] = set()
        for scene in source_scenes:
            if multi:
                dirname = _safe_dirname(scene.name)
                if dirname in used:
                    raise ValueError(f"{src}: two scenes map to the folder name {dirname!r}")
                used.add(dirname)
                target = tmp / dirname
            else:
                target = tmp
                shutil.rmtree(tmp)  # write_scene creates the folder
            done = write_scene(scene, target, max_side=max_side, source=str(src))
            final = out / target.relative_to(tmp) if multi else out
            result.scenes.append(
                ConvertedScene(done.name, final, done.frames, done.posed, done.size)
            )
            if log is not None:
                W, H = done.size
                kind = "posed" if done.posed else "unposed"
                log(f"{done.name}: {done.frames} frames ({kind}, {W}x{H}) -> {final}")
            if limit is not None and len(result.scenes) >= limit:
                break
        if not result.scenes:
            raise ValueError(
                f"{src}: no scenes to convert" + (f" (scenes={list(scenes)})" if scenes else "")
            )
        mark_output(tmp)  # so that a later --overwrite may replace this folder
    return result
