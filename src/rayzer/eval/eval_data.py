"""Evaluation data for ``rayzer eval``: scenes, their view splits, and model-ready views.

* **Sources**: a scene folder, a folder of scene folders (:func:`rayzer.data.check.find_scenes`),
  or anything ``rayzer data convert`` reads — converted on the fly into a temporary folder with
  :func:`rayzer.data.convert.convert` (so every reader, its conventions and its checks are
  reused as they are).
* **Splits**: per scene, context and target frames (positions in the scene's frame list) from
  the ``even`` / ``random`` protocol, a paper protocol (``erayzer``, ``nas3r``) or an index file
  (:mod:`rayzer.data.protocols`). Under ``nas3r`` every target is its own sample (named
  ``<scene>#<frame>``) with the two context views, tagged with the context pair's visual overlap
  (:func:`context_overlap`).
  Scenes with too few frames, ``null`` index entries or missing from the index are skipped
  with a reason.
* **Views**: only the frames of the split are decoded (:func:`rayzer.data.scene_folder.read_scene_folder`,
  which validates the files and cameras and names the file on error), then fitted to the model
  input with the inference policy (:func:`rayzer.data.images.fit_image`: resize to cover,
  centre-crop, one Lanczos resampling) and the pixel intrinsics updated for the crop and scale.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from rayzer.data.images import cover_box, fit_image
from rayzer.data.protocols import (
    ALL_PROTOCOLS,
    ERAYZER_WINDOW,
    PAPER_PROTOCOLS,
    ViewSplit,
    make_split,
    one_target_per_pass,
    overlap_tag,
    read_index,
)
from rayzer.data.scene_folder import check_scene_frames, read_scene_folder, read_scene_header
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
    """A scene with its evaluation split (frame numbers = positions in its frame list).

    Attributes:
        suffix: appended to the scene name when a scene gives several samples (``#<frame>``).
        tags: protocol tags of the sample (``nas3r``: ``overlap``, ``overlap_method``,
            ``overlap_tag``).
    """

    entry: SceneEntry
    split: ViewSplit
    suffix: str = ""
    tags: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.entry.name + self.suffix


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
        header = read_scene_header(d)
        if header.name in seen:
            raise ValueError(
                f"scene name {header.name!r} appears twice: {seen[header.name]} and {d}"
            )
        seen[header.name] = d
        check_scene_frames(d)  # every frame, also those the protocol will not use
        entries.append(SceneEntry(header.name, d, header.num_frames, header.posed))
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
    if protocol in ALL_PROTOCOLS:
        return protocol, None
    path = Path(protocol)
    if path.suffix.lower() == ".json" or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"--protocol index file not found: {path}")
        return "index", path
    raise ValueError(
        f"--protocol must be one of {', '.join(ALL_PROTOCOLS)} or an index JSON file, got "
        f"{protocol!r}"
    )


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
            reason = _too_short(kind, e.num_frames, span, num_context, num_target)
            skipped.append({"scene": e.name, "reason": reason})
        elif kind == "nas3r":
            tags = context_overlap(e, split.context)
            for one in one_target_per_pass(split):
                scenes.append(EvalScene(e, one, f"#{one.target[0]}", dict(tags)))
        else:
            scenes.append(EvalScene(e, split))
    return scenes, skipped


def _too_short(kind: str, num_frames: int, span: int | None, *counts: int) -> str:
    """Why a scene of ``num_frames`` frames has no split under protocol ``kind``."""
    if kind == "erayzer" and num_frames >= sum(PAPER_PROTOCOLS[kind]):  # the window is short
        window = ERAYZER_WINDOW if span is None else span
        return (
            f"{num_frames} frames < the erayzer protocol's {window}-frame window (frames "
            f"linspace(0, {window - 1}, 10)); --span N <= {num_frames} evaluates shorter scenes"
        )
    # Fewer frames than views: no --span helps (the erayzer window must hold its 10 views).
    num_context, num_target = PAPER_PROTOCOLS.get(kind, counts)
    protocol = f"the {kind} protocol's " if kind in PAPER_PROTOCOLS else ""
    return f"{num_frames} frames < {protocol}{num_context} context + {num_target} target views"


def context_overlap(scene: SceneEntry, context: Sequence[int]) -> dict[str, Any]:
    """Visual overlap of a scene's first two context frames and its tag
    (:func:`rayzer.data.protocols.overlap_tag`): geometric (:func:`rayzer.data.overlap.
    geometric_overlap`) where the scene has cameras and depth, else label-free
    (:func:`rayzer.data.overlap.image_overlap`).

    Returns:
        ``{"overlap": float in [0, 1], "overlap_method": "geometric" | "image",
        "overlap_tag": "small" | "medium" | "large" | "outside" | "unknown"}``.
    """
    from rayzer.data.overlap import geometric_overlap, image_overlap

    folder = read_scene_folder(scene.path, indices=list(context[:2]), load_depth=True)
    if folder.depth is not None and folder.c2w is not None and folder.K is not None:
        curve = geometric_overlap(folder.depth, folder.c2w, folder.K)
    else:
        curve = image_overlap(folder.images)
    value = float(curve.overlap[1])
    return {"overlap": value, "overlap_method": curve.method, "overlap_tag": overlap_tag(value)}


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


def fit_depth(depth: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """Depth maps (V, h, w) fitted like :func:`fit_views` (the same centre-crop box, scaled to
    ``out_hw``), resampled nearest-neighbour at the output pixel centres: z-depth is unchanged
    by a crop or a resize, and empty pixels (+inf) must not blend into surfaces."""
    _, h, w = depth.shape
    x0, y0, x1, y1 = cover_box((w, h), out_hw)
    H, W = out_hw
    cols = (x0 + (torch.arange(W) + 0.5) * (x1 - x0) / W).floor().long().clamp(0, w - 1)
    rows = (y0 + (torch.arange(H) + 0.5) * (y1 - y0) / H).floor().long().clamp(0, h - 1)
    return depth[:, rows][:, :, cols]


def load_views(
    scene: SceneEntry, frames: Sequence[int], out_hw: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, list[str]]:
    """Decode and fit frames (positions in the frame list) of a scene.

    Returns:
        ``(images (V, 3, H, W), c2w (V, 4, 4) or None, K (V, 4) or None, files)``.
    Raises:
        FileNotFoundError / ValueError naming the file (missing or unreadable image, bad camera).
    """
    images, c2w, K, files, _ = _load(scene, frames, out_hw, depth=False)
    return images, c2w, K, files


def _load(
    scene: SceneEntry, frames: Sequence[int], out_hw: tuple[int, int], depth: bool
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, list[str], torch.Tensor | None]:
    """:func:`load_views` and, with ``depth``, the fitted z-depth (V, H, W) where the scene has
    ``depth/`` (else None)."""
    folder = read_scene_folder(scene.path, indices=list(frames), load_depth=depth)
    images, K = fit_views(folder.images, folder.K, out_hw)
    fitted = fit_depth(folder.depth, out_hw) if depth and folder.depth is not None else None
    return images, folder.c2w, K, folder.files, fitted


def load_sample(scene: EvalScene, out_hw: tuple[int, int]) -> tuple[EvalSample, list[str]]:
    """The :class:`EvalSample` of a scene's split (views = ``split.views``, in frame order, with
    their z-depth where the scene has ``depth/``) and the image files of those views (relative
    to the scene folder)."""
    views = scene.split.views
    images, c2w, K, files, depth = _load(scene.entry, views, out_hw, depth=True)
    ctx, tgt = scene.split.positions()
    sample = EvalSample(
        images=images,
        input_index=torch.tensor(ctx),
        target_index=torch.tensor(tgt),
        frame_index=torch.tensor(views),
        c2w=c2w,
        K=K,
        name=scene.name,
        depth=depth,
    )
    return sample, files
