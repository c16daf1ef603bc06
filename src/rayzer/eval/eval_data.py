"""Evaluation data for ``rayzer eval``: scenes, their view splits, and model-ready views.

* **Sources**: a scene folder, a folder of scene folders (:func:`rayzer.data.check.find_scenes`),
  or anything ``rayzer data convert`` reads — converted on the fly into a temporary folder with
  :func:`rayzer.data.convert.convert` (so every reader, its conventions and its checks are
  reused as they are).
* **Splits**: per scene, context and target frames (positions in the scene's frame list) from
  the ``even`` / ``random`` protocol or from an index file (:mod:`rayzer.data.protocols`).
  Scenes with too few frames, ``null`` index entries or missing from the index are skipped
  with a reason.
* **Views**: only the frames of the split are decoded (:func:`rayzer.data.scene_folder.read_scene_folder`,
  which validates the files and cameras and names the file on error), then fitted to the model
  input with the inference policy (:func:`rayzer.data.images.fit_image`: resize to cover,
  centre-crop, one Lanczos resampling) and the pixel intrinsics updated for the crop and scale.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rayzer.data.images import fit_image
from rayzer.data.protocols import PROTOCOLS, ViewSplit, make_split, read_index
from rayzer.data.scene_folder import CAMERAS_JSON, FRAMES_JSON, read_scene_folder
from rayzer.eval.novel_view import EvalSample
from rayzer.geometry import crop_intrinsics, resize_intrinsics


@dataclass
class SceneEntry:
    """A scene folder of the evaluation data (not decoded).

    Attributes:
        name: scene name (``"scene"`` of its JSON, else the folder name).
        path: the scene folder.
        num_frames: frames in its frame list.
        posed: it has ``cameras.json`` (ground-truth cameras).
    """

    name: str
    path: Path
    num_frames: int
    posed: bool


@dataclass
class EvalScene:
    """A scene with its evaluation split (frame numbers = positions in its frame list)."""

    entry: SceneEntry
    split: ViewSplit

    @property
    def name(self) -> str:
        return self.entry.name


@dataclass
class EvalData:
    """The scenes of a dataset that will be evaluated, and those skipped (with reasons)."""

    root: Path
    format: str
    scenes: list[EvalScene]
    skipped: list[dict[str, str]]


def list_scene_entries(root: str | os.PathLike) -> list[SceneEntry]:
    """Scene folders at ``root`` (itself or subfolders), frame counts read from their JSON.

    Raises:
        FileNotFoundError: no scene folders. ValueError: unreadable JSON or duplicate names.
    """
    from rayzer.data.check import find_scenes

    entries: list[SceneEntry] = []
    seen: dict[str, Path] = {}
    for d in find_scenes(root):
        posed = (d / CAMERAS_JSON).is_file()
        json_path = d / (CAMERAS_JSON if posed else FRAMES_JSON)
        try:
            doc = json.loads(json_path.read_text())
            count = len(doc["frames"])
            name = str(doc.get("scene") or d.name)
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{json_path}: not a valid scene file ({exc})") from None
        if name in seen:
            raise ValueError(f"scene name {name!r} appears twice: {seen[name]} and {d}")
        seen[name] = d
        entries.append(SceneEntry(name, d, count, posed))
    return entries


def is_scene_dataset(path: str | os.PathLike) -> bool:
    """True when ``path`` is a scene folder or holds scene folders (no conversion needed)."""
    from rayzer.data.check import find_scenes

    try:
        find_scenes(path)
    except FileNotFoundError:
        return False
    return True


def resolve_dataset(
    data: str | os.PathLike,
    workdir: str | os.PathLike,
    format: str | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[Path, str]:
    """``(folder of scene folders, source format)`` for ``data``; other formats are converted
    into ``workdir/converted`` (the caller owns and deletes ``workdir``).

    Raises:
        FileNotFoundError: ``data`` does not exist. ValueError: unknown format or bad files
        (from the converter, naming the file).
    """
    src = Path(data)
    if not src.exists():
        raise FileNotFoundError(f"--data not found: {src}")
    if format in (None, "scene") and is_scene_dataset(src):
        return src, "scene"
    from rayzer.data.convert import convert

    result = convert(src, Path(workdir) / "converted", format, log=log)
    return result.output, result.format


def parse_protocol(protocol: str) -> tuple[str, Path | None]:
    """``even`` / ``random`` or an index-file path → ``(kind, path or None)``."""
    if protocol in PROTOCOLS:
        return protocol, None
    path = Path(protocol)
    if path.suffix.lower() == ".json" or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"--protocol index file not found: {path}")
        return "index", path
    raise ValueError(f"--protocol must be even, random or an index JSON file, got {protocol!r}")


def plan_scenes(
    entries: Sequence[SceneEntry],
    protocol: str,
    num_context: int,
    num_target: int,
    *,
    seed: int = 0,
    span: int | None = None,
) -> tuple[list[EvalScene], list[dict[str, str]]]:
    """Splits of every scene under ``protocol`` (``even``, ``random`` or an index-file path).

    Returns:
        ``(scenes to evaluate, skipped [{"scene", "reason"}])``, scenes in the order given.
    Raises:
        ValueError: bad counts, malformed index file (naming the scene).
    """
    kind, index_path = parse_protocol(protocol)
    scenes: list[EvalScene] = []
    skipped: list[dict[str, str]] = []
    if index_path is not None:
        counts = {e.name: e.num_frames for e in entries}
        index = read_index(index_path, counts)
        for e in entries:
            if e.name not in index:
                skipped.append({"scene": e.name, "reason": f"not in the index {index_path.name}"})
            elif index[e.name] is None:
                skipped.append({"scene": e.name, "reason": "null in the index (too few frames)"})
            else:
                scenes.append(EvalScene(e, index[e.name]))  # type: ignore[arg-type]
        return scenes, skipped
    for e in entries:
        split = make_split(
            kind, e.num_frames, num_context, num_target, seed=seed, scene=e.name, span=span
        )
        if split is None:
            skipped.append(
                {
                    "scene": e.name,
                    "reason": f"{e.num_frames} frames < {num_context} context + {num_target} "
                    "target views",
                }
            )
        else:
            scenes.append(EvalScene(e, split))
    return scenes, skipped


def fit_views(
    images: torch.Tensor, K: torch.Tensor | None, out_hw: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Resize-to-cover + centre-crop views to ``out_hw`` (the inference policy), intrinsics
    updated: crop by the box corner, then scale by ``out / box`` (corner convention).

    Args:
        images: (V, 3, h, w) float in [0, 1] (8-bit values: the round trip to uint8 is exact).
        K: (V, 4) pixel intrinsics of the ``h × w`` images, or None.
        out_hw: (H, W).
    Returns:
        ``((V, 3, H, W) float32, (V, 4) float32 or None)``.
    """
    h, w = images.shape[-2:]
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    fitted, box = [], None
    for arr in pixels:
        out, box = fit_image(Image.fromarray(arr), (w, h), out_hw)
        fitted.append(torch.from_numpy(np.array(out)).permute(2, 0, 1))
    result = torch.stack(fitted).float() / 255.0
    if K is None or box is None:
        return result, None
    x0, y0, x1, y1 = box
    cropped = crop_intrinsics(K.double(), top=y0, left=x0)
    K_new = resize_intrinsics(cropped, (y1 - y0, x1 - x0), out_hw)
    return result, K_new.float()


def load_views(
    scene: SceneEntry, frames: Sequence[int], out_hw: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, list[str]]:
    """Decode and fit frames (positions in the frame list) of a scene.

    Returns:
        ``(images (V, 3, H, W), c2w (V, 4, 4) or None, K (V, 4) or None, files)``.
    Raises:
        FileNotFoundError / ValueError naming the file (missing or unreadable image, bad camera).
    """
    folder = read_scene_folder(scene.path, indices=list(frames), load_depth=False)
    images, K = fit_views(folder.images, folder.K, out_hw)
    return images, folder.c2w, K, folder.files


def load_sample(scene: EvalScene, out_hw: tuple[int, int]) -> tuple[EvalSample, list[str]]:
    """The :class:`EvalSample` of a scene's split (views = ``split.views``, in frame order) and
    the image files of those views (relative to the scene folder)."""
    views = scene.split.views
    images, c2w, K, files = load_views(scene.entry, views, out_hw)
    ctx, tgt = scene.split.positions()
    sample = EvalSample(
        images=images,
        input_index=torch.tensor(ctx),
        target_index=torch.tensor(tgt),
        frame_index=torch.tensor(views),
        c2w=c2w,
        K=K,
        name=scene.name,
    )
    return sample, files
