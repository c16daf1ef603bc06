"""Clip sources over real data: scene folders (found in a folder or listed in a manifest) and
RealEstate10K pixelSplat ``.torch`` chunks, read directly (no conversion needed).

Every frame is brought to the training resolution ``(H, W)`` by :func:`resize_crop`: resize
(aspect kept) so the image just covers ``H × W``, then centre-crop to ``H × W``, with the pixel
intrinsics updated by :func:`rayzer.geometry.resize_intrinsics` and
:func:`rayzer.geometry.crop_intrinsics`. A square size ``S`` (``data.image_size`` an int) is the
case ``H = W = S``: short side resized to ``S``, centre-cropped to a square
(:func:`resize_crop_square`).

Worker safety: sources hold paths and small per-scene tables only. Files are opened when a clip
is loaded, in the process that loads it (a DataLoader worker); the per-process cache of
memory-mapped chunks is dropped when a source is pickled.

**Manifest** format (a text file, any name except ``*.torch``)::

    # comments and blank lines are ignored
    scenes/kitchen          # a scene folder, relative to the manifest's folder
    /data/dl3dv/1K          # or a folder of scene folders (absolute paths are fine)
"""

from __future__ import annotations

import io
import logging
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from rayzer.config import as_hw
from rayzer.data.check import find_scenes
from rayzer.data.clip_sources import Clip, ClipSource, DataSourceNotFoundError, SkippedScene
from rayzer.data.formats.re10k import CHUNK_SUFFIX, _chunk_scene, chunk_dirs
from rayzer.data.overlap import OVERLAP_FILE, OverlapCurve
from rayzer.data.scene_folder import (
    CAMERAS_JSON,
    FRAMES_JSON,
    check_c2w,
    load_scene_json,
    read_scene_folder,
)
from rayzer.geometry import crop_intrinsics, denormalize_intrinsics, resize_intrinsics

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------------
# resize + centre crop


def crop_geometry(
    height: int, width: int, out_hw: tuple[int, int]
) -> tuple[tuple[int, int], int, int]:
    """``((H', W'), top, left)``: the image resized with its aspect kept so that it covers
    ``out_hw = (H, W)`` (one side equal to its target, the other rounded and at least its
    target) and the offsets of the centred ``H × W`` crop."""
    H, W = out_hw
    if min(height, width, H, W) < 1:
        raise ValueError(f"sizes must be >= 1, got image {height}x{width}, target {H}x{W}")
    # H / height >= W / width: the height sets the scale (integer test, no rounding); for a
    # square target this is height <= width, and the sides below are those of the square case.
    if H * width >= W * height:
        new = (H, max(W, round(width * H / height)))
    else:
        new = (max(H, round(height * W / width)), W)
    return new, (new[0] - H) // 2, (new[1] - W) // 2


def square_crop_geometry(height: int, width: int, size: int) -> tuple[tuple[int, int], int, int]:
    """``((H', W'), top, left)``: the short side resized to ``size`` (the long side rounded to
    keep the aspect ratio) and the offsets of the centred ``size × size`` crop."""
    return crop_geometry(height, width, (size, size))


def resize_crop(
    images: Tensor, K: Tensor | None, out_hw: tuple[int, int]
) -> tuple[Tensor, Tensor | None]:
    """Resize (aspect kept, covering ``out_hw``) and centre-crop images to ``out_hw = (H, W)``;
    update intrinsics.

    Resampling is bilinear with antialiasing (``align_corners=False``: pixel centres at +0.5, the
    image scaled about its corner — the convention of ``resize_intrinsics``).

    Args:
        images: (V, 3, h, w) float in [0, 1].
        K: (V, 4) pixel intrinsics of ``images`` or None.
        out_hw: output ``(H, W)``.
    Returns:
        images (V, 3, H, W) and K (V, 4) for them (None if ``K`` is None).
    """
    h, w = images.shape[-2:]
    H, W = out_hw
    (nh, nw), top, left = crop_geometry(h, w, (H, W))
    if (nh, nw) != (h, w):
        images = F.interpolate(
            images, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False
        )
    images = images[..., top : top + H, left : left + W].contiguous()
    if K is not None:
        K = crop_intrinsics(resize_intrinsics(K, (h, w), (nh, nw)), top, left)
    return images, K


def resize_crop_square(images: Tensor, K: Tensor | None, size: int) -> tuple[Tensor, Tensor | None]:
    """:func:`resize_crop` to ``size × size``: short side → ``size``, centre-cropped square."""
    return resize_crop(images, K, (size, size))


# ------------------------------------------------------------------------------------------------
# scene folders


def scene_dirs(path: Path) -> list[Path]:
    """Scene folders at ``path`` (itself, or sub-folders one or two levels deep)."""
    if path.name in (CAMERAS_JSON, FRAMES_JSON) and path.is_file():
        return [path.parent]
    try:
        return find_scenes(path)
    except FileNotFoundError:
        raise DataSourceNotFoundError(
            f"{path}: no scene folders ({CAMERAS_JSON} or {FRAMES_JSON}, up to two levels deep) "
            f"and no RealEstate10K {CHUNK_SUFFIX} chunks found"
        ) from None


def read_manifest(path: Path) -> list[Path]:
    """Scene folders listed by a manifest (module docstring), in order."""
    if path.suffix.lower() == ".json":
        raise ValueError(
            f"{path}: a JSON file is not a manifest; pass a scene folder, or a text file with one "
            "scene folder per line"
        )
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text manifest (one scene folder per line)") from None
    scenes: list[Path] = []
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        target = Path(entry).expanduser()
        target = target if target.is_absolute() else path.parent / target
        if not target.is_dir():
            raise FileNotFoundError(f"{path} line {number}: scene folder not found: {target}")
        scenes.extend(scene_dirs(target))
    if not scenes:
        raise ValueError(f"{path}: the manifest lists no scene folder")
    return scenes


def _peek_scene(folder: Path) -> tuple[int, bool, str | None]:
    """(frame count, posed, reason to skip or None) from the scene file, without decoding."""
    posed = (folder / CAMERAS_JSON).is_file()
    doc = load_scene_json(folder / (CAMERAS_JSON if posed else FRAMES_JSON))
    sizes = {
        (fr.get("width"), fr.get("height"))
        for fr in doc["frames"]
        if isinstance(fr, dict) and "width" in fr and "height" in fr
    }
    reason = f"images of {len(sizes)} different sizes" if len(sizes) > 1 else None
    return len(doc["frames"]), posed, reason


class SceneFolderClips(ClipSource):
    """Clips = scene folders, read with :func:`rayzer.data.scene_folder.read_scene_folder`.

    Args:
        scenes: scene folders (clip ``i`` = ``scenes[i]`` after skipping).
        size: output size: a side S (short side resize + centre crop to S × S) or ``(H, W)``
            (resize to cover, centre crop).
        min_frames: scenes with fewer frames are skipped.
        require_poses: skip scenes without ``cameras.json``.
        name: the ``data.source`` entry (for messages).
    """

    def __init__(
        self,
        scenes: Sequence[Path],
        size: int | tuple[int, int],
        min_frames: int,
        require_poses: bool = False,
        name: str = "",
    ) -> None:
        self.name, self.size = name or str(scenes[0] if scenes else ""), as_hw(size)
        self.paths: list[Path] = []
        self.frames: list[int] = []
        self.posed: list[bool] = []
        self.skipped: list[SkippedScene] = []
        for folder in scenes:
            n, posed, reason = _peek_scene(folder)
            if reason is None and n < min_frames:
                reason = f"{n} frames < span_min = {min_frames}"
            if reason is None and require_poses and not posed:
                reason = "no cameras (frames.json only) and the model needs them"
            if reason is not None:
                self.skipped.append(SkippedScene(str(folder), reason))
                continue
            self.paths.append(folder)
            self.frames.append(n)
            self.posed.append(posed)

    def __len__(self) -> int:
        return len(self.paths)

    def num_frames(self, clip: int) -> int:
        return self.frames[clip]

    def clip_id(self, clip: int) -> int:
        return clip

    def describe(self, clip: int) -> str:
        return str(self.paths[clip])

    def load(self, clip: int, frames: Tensor, size: int | tuple[int, int] | None = None) -> Clip:
        scene = read_scene_folder(
            self.paths[clip], indices=frames.tolist(), load_depth=False, strict=False
        )
        images, K = resize_crop(scene.images, scene.K, as_hw(size or self.size))
        return Clip(images, scene.c2w, K)

    def overlap_curve(self, clip: int) -> OverlapCurve:
        """The scene's overlap curve from its ``overlap.json`` while fresh (written by ``rayzer
        data overlap``, :mod:`rayzer.data.overlap_cache`); else computed here (``auto`` method)
        with one warning per source and process. Memoized per clip.

        Raises:
            ValueError: an invalid ``overlap.json`` (the message names the file).
        """
        from rayzer.data.overlap_cache import cached_scene_overlap, compute_scene_overlap

        memo = self.__dict__.setdefault("_overlap_memo", {})
        if clip not in memo:
            path = self.paths[clip]
            curve = cached_scene_overlap(path)
            if curve is None:
                if not self.__dict__.get("_overlap_warned"):
                    self._overlap_warned = True
                    log.warning(
                        f"data.source {self.name!r}: no fresh {OVERLAP_FILE} in {path} (and maybe "
                        "other scenes): computing overlap statistics while training; cache them "
                        f"once with `rayzer data overlap {self.name}`"
                    )
                curve = compute_scene_overlap(path)
            memo[clip] = curve
        return memo[clip]


# ------------------------------------------------------------------------------------------------
# RealEstate10K chunks


def is_chunk_source(path: Path) -> bool:
    """A ``.torch`` file, or a folder with ``.torch`` chunks in it or in its sub-folders."""
    if path.is_file():
        return path.suffix == CHUNK_SUFFIX
    return any(path.glob(f"*{CHUNK_SUFFIX}")) or any(path.glob(f"*/*{CHUNK_SUFFIX}"))


def chunk_files(path: Path) -> list[Path]:
    """The chunks to train on: the file, the folder's chunks, or those of its ``train/`` split."""
    if path.is_file():
        return [path]
    folders = chunk_dirs(path, None if any(path.glob(f"*{CHUNK_SUFFIX}")) else "train")
    return sorted(c for folder in folders for c in folder.glob(f"*{CHUNK_SUFFIX}"))


def _open_chunk(path: Path) -> list[dict[str, Any]]:
    """A chunk's scene list with tensor storages memory-mapped (loading one scene's frames reads
    only their bytes, not the whole ~100 MB chunk)."""
    try:
        try:
            chunk = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            # legacy (non-zip) serialisation cannot be memory-mapped
            chunk = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: cannot read the chunk ({type(exc).__name__}: {exc})") from None
    if not isinstance(chunk, list) or not all(isinstance(ex, dict) for ex in chunk):
        raise ValueError(f"{path}: expected a list of scene dicts, got {type(chunk).__name__}")
    return chunk


def _decode(data: bytes, where: str) -> Tensor:
    """Encoded image bytes -> (3, H, W) float32 in [0, 1]."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            rgb = np.array(im.convert("RGB"), dtype=np.uint8)  # writable copy
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"{where}: cannot decode the image ({exc})") from None
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)


class Re10kChunkClips(ClipSource):
    """Clips = scenes of RealEstate10K pixelSplat chunks (format in
    :mod:`rayzer.data.formats.re10k`, whose parser converts the cameras to our conventions).

    Opening scans every chunk once for scene keys and frame counts (memory-mapped, no JPEG is
    decoded); loading a clip decodes only the requested frames.

    Args:
        path: a ``.torch`` chunk, a folder of chunks, or a dataset root with ``train/``.
        size, min_frames, require_poses, name: as for :class:`SceneFolderClips` (chunk scenes
            always have cameras).
        cache_chunks: memory-mapped chunks kept open per process.
    """

    def __init__(
        self,
        path: Path,
        size: int | tuple[int, int],
        min_frames: int,
        require_poses: bool = False,
        name: str = "",
        cache_chunks: int = 4,
    ) -> None:
        self.name, self.size, self.cache_chunks = name or str(path), as_hw(size), cache_chunks
        self.chunks = chunk_files(Path(path))
        self.skipped: list[SkippedScene] = []
        rows: list[tuple[int, int, int]] = []  # (chunk, position in chunk, frames)
        self.keys: list[str] = []
        for c, chunk_path in enumerate(self.chunks):
            for pos, example in enumerate(_open_chunk(chunk_path)):
                key = str(example.get("key", f"#{pos}"))
                if "images" not in example or "cameras" not in example:
                    raise ValueError(f"{chunk_path} scene {key}: missing 'images' or 'cameras'")
                n = len(example["images"])
                if n < min_frames:
                    reason = f"{n} frames < span_min = {min_frames}"
                    self.skipped.append(SkippedScene(f"{chunk_path.name}#{key}", reason))
                    continue
                rows.append((c, pos, n))
                self.keys.append(key)
        self._rows = torch.tensor(rows, dtype=torch.int64).reshape(-1, 3)
        self._cache: OrderedDict[int, list[dict[str, Any]]] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()  # never ship mapped chunks to another process
        return state

    def __len__(self) -> int:
        return len(self.keys)

    def num_frames(self, clip: int) -> int:
        return int(self._rows[clip, 2])

    def clip_id(self, clip: int) -> int:
        return clip

    def describe(self, clip: int) -> str:
        return f"{self.chunks[int(self._rows[clip, 0])]}#{self.keys[clip]}"

    def _chunk(self, c: int) -> list[dict[str, Any]]:
        if c in self._cache:
            self._cache.move_to_end(c)
        else:
            self._cache[c] = _open_chunk(self.chunks[c])
            while len(self._cache) > max(self.cache_chunks, 1):
                self._cache.popitem(last=False)
        return self._cache[c]

    def load(self, clip: int, frames: Tensor, size: int | tuple[int, int] | None = None) -> Clip:
        c, pos, _ = (int(v) for v in self._rows[clip])
        example = self._chunk(c)[pos]
        idx = frames.tolist()
        # Parse only the requested frames with the format reader (cameras -> OpenCV c2w, K).
        scene = _chunk_scene(
            {
                "key": example["key"],
                "cameras": example["cameras"][idx],
                "images": [example["images"][i] for i in idx],
            },
            self.chunks[c],
            None,
        )
        images, Ks, c2ws = [], [], []
        for i, frame in zip(idx, scene.frames):
            where = f"{self.describe(clip)} frame {i}"
            image = _decode(frame.open(), where)
            check_c2w(frame.c2w, where)
            K = denormalize_intrinsics(
                torch.tensor(frame.K, dtype=torch.float64), image.shape[1], image.shape[2]
            )
            image, K = resize_crop(image[None], K[None].float(), as_hw(size or self.size))
            images.append(image[0])
            Ks.append(K[0])
            c2ws.append(torch.from_numpy(frame.c2w).float())
        return Clip(torch.stack(images), torch.stack(c2ws), torch.stack(Ks))
