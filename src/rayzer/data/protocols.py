"""Evaluation protocols: which frames of a scene are context (input) views and which are targets.

A split takes ``V = num_context + num_target`` distinct frames from a window of the scene's frame
list (positions in ``cameras.json`` order, i.e. video order) and always makes the window's first
and last chosen frames context views, so targets are *interpolated* between inputs — the setting of
pixelSplat, LVSM and RayZer. Hence ``num_context >= 2``.

* ``even``: the V frames are evenly spaced over the window and the targets sit at evenly spaced
  interior positions among them: ``round(linspace(0, V - 1, T + 2))[1:-1]`` (round half up). No
  randomness (the window, if ``span`` is given, is centred).
* ``random``: the two window ends plus V − 2 distinct frames drawn uniformly inside the window (the
  window start is random when ``span`` is given); the targets are T positions drawn uniformly among
  the V − 2 interior ones. The generator is seeded from ``(seed, crc32(scene name))``, so a scene's
  split depends only on the seed and its name — not on the other scenes or their order.

Two **paper protocols** fix their view counts (:data:`PAPER_PROTOCOLS`):

* ``erayzer`` (E-RayZer's DL3DV evaluation): 10 frames ``linspace(0, 96, 10)`` truncated to
  integers as the release does (``[0, 10, 21, 32, 42, 53, 64, 74, 85, 96]``), inputs
  ``[0, 21, 42, 64, 96]``, targets ``[10, 32, 53, 74, 85]`` (:func:`erayzer_split`). The window
  is the first 97 frames; ``span`` sets another length (the same ten positions scaled to
  ``linspace(0, span - 1, 10)``: a 24-frame synthetic clip takes ``span=24``).
* ``nas3r`` (NAS3R's RealEstate10K evaluation, the pixelSplat / NoPoSplat index style): 2 context
  views at the window ends and 3 targets evenly between them (:func:`nas3r_split`); each target
  is evaluated in its own pass with the two context views (:func:`one_target_per_pass`), and each
  sample is tagged by the visual overlap of its context pair (:func:`overlap_tag`, NoPoSplat's
  bins: small [0.05, 0.3), medium [0.3, 0.55), large [0.55, 0.8]).

``span`` = the window length in frames (default: the whole scene). Scenes with fewer frames than
needed get ``None`` (written as ``null``, as in pixelSplat's index files).

**Index files** are JSON ``{scene: {"context": [...], "target": [...]} | null}`` with frame
indices into the scene's frame list — the format of pixelSplat's and LVSM's evaluation indices and
of RayZer's DL3DV indices. RayZer's loader takes a sample's views as ``sorted(context + target)``
and the context / target positions inside that list (:meth:`ViewSplit.positions`). The two styles
differ only in their default view counts: ``pixelsplat`` 2 context + 3 targets (RealEstate10K),
``rayzer-dl3dv`` 16 context + 8 targets (DL3DV).
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rayzer.utils.atomic import write_text_atomic

PROTOCOLS = ("even", "random")
#: Protocols of the papers, with their (context, target) view counts (module doc).
PAPER_PROTOCOLS = {"erayzer": (5, 5), "nas3r": (2, 3)}
#: Every protocol name ``rayzer eval --protocol`` takes (besides an index file).
ALL_PROTOCOLS = (*PROTOCOLS, *PAPER_PROTOCOLS)
#: E-RayZer's evaluation window (frames 0 … 96) and its positions of inputs among the 10 views.
ERAYZER_WINDOW = 97
ERAYZER_INPUT_POSITIONS = (0, 2, 4, 6, 9)
#: NoPoSplat's overlap bins of a context pair (the tags of NAS3R's evaluation index).
OVERLAP_BINS = {"small": (0.05, 0.3), "medium": (0.3, 0.55), "large": (0.55, 0.8)}
STYLES = {"pixelsplat": (2, 3), "rayzer-dl3dv": (16, 8)}


@dataclass(frozen=True)
class ViewSplit:
    """Context and target frame indices of one evaluation sample (each sorted, disjoint)."""

    context: tuple[int, ...]
    target: tuple[int, ...]

    @property
    def views(self) -> tuple[int, ...]:
        """All frames of the sample, sorted (RayZer's ``image_indices``)."""
        return tuple(sorted(set(self.context) | set(self.target)))

    def positions(self) -> tuple[list[int], list[int]]:
        """Positions of the context / target frames inside :attr:`views`."""
        where = {f: i for i, f in enumerate(self.views)}
        return [where[f] for f in self.context], [where[f] for f in self.target]

    def as_dict(self) -> dict[str, list[int]]:
        return {"context": list(self.context), "target": list(self.target)}


def _check_counts(num_frames: int, num_context: int, num_target: int, span: int | None) -> None:
    if num_context < 2:
        raise ValueError(
            f"num_context must be >= 2 (both window ends are inputs), got {num_context}"
        )
    if num_target < 1:
        raise ValueError(f"num_target must be >= 1, got {num_target}")
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    if span is not None and span < num_context + num_target:
        raise ValueError(
            f"span {span} is shorter than the {num_context + num_target} views it must hold"
        )


def _round_half_up(x: np.ndarray) -> np.ndarray:
    # np.round rounds half to even, which can map two points a step of 1 apart to one integer.
    return np.floor(x + 0.5).astype(np.int64)


def _split_from_positions(views: np.ndarray, target_pos: np.ndarray) -> ViewSplit:
    is_target = np.zeros(len(views), dtype=bool)
    is_target[target_pos] = True
    return ViewSplit(
        context=tuple(int(v) for v in views[~is_target]),
        target=tuple(int(v) for v in views[is_target]),
    )


def even_split(
    num_frames: int, num_context: int, num_target: int, span: int | None = None
) -> ViewSplit | None:
    """The ``even`` protocol (module doc); None when the scene has fewer than V frames."""
    _check_counts(num_frames, num_context, num_target, span)
    V = num_context + num_target
    if num_frames < V:
        return None
    length = num_frames if span is None else min(span, num_frames)
    start = (num_frames - length) // 2
    views = start + _round_half_up(np.linspace(0, length - 1, V))
    target_pos = _round_half_up(np.linspace(0, V - 1, num_target + 2))[1:-1]
    return _split_from_positions(views, target_pos)


def scene_rng(seed: int, scene: str) -> np.random.Generator:
    """A generator that depends only on ``seed`` and the scene name (stable across runs/machines)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(scene.encode("utf-8"))])


def random_split(
    num_frames: int,
    num_context: int,
    num_target: int,
    *,
    seed: int,
    scene: str = "",
    span: int | None = None,
) -> ViewSplit | None:
    """The ``random`` protocol (module doc); None when the scene has fewer than V frames."""
    _check_counts(num_frames, num_context, num_target, span)
    V = num_context + num_target
    if num_frames < V:
        return None
    rng = scene_rng(seed, scene)
    length = num_frames if span is None else min(span, num_frames)
    start = int(rng.integers(0, num_frames - length + 1))
    end = start + length - 1
    interior = rng.choice(np.arange(start + 1, end), size=V - 2, replace=False)
    views = np.sort(np.concatenate([[start, end], interior]))
    target_pos = 1 + rng.choice(V - 2, size=num_target, replace=False)
    return _split_from_positions(views, target_pos)


def erayzer_split(num_frames: int, span: int | None = None) -> ViewSplit | None:
    """E-RayZer's split (module doc): 10 views ``linspace(0, L - 1, 10)`` truncated (L = 97,
    or ``span``) from the scene's first frame, inputs at positions 0, 2, 4, 6, 9; None when the
    scene has fewer than L frames."""
    length = ERAYZER_WINDOW if span is None else int(span)
    if length < 10:
        raise ValueError(f"the erayzer protocol needs a window of >= 10 frames, got {length}")
    if num_frames < length:
        return None
    views = np.linspace(0, length - 1, 10).astype(np.int64)  # truncation, as the release
    target_pos = np.array([i for i in range(10) if i not in ERAYZER_INPUT_POSITIONS])
    return _split_from_positions(views, target_pos)


def nas3r_split(num_frames: int, span: int | None = None) -> ViewSplit | None:
    """NAS3R's split (module doc): the ``even`` protocol with 2 context views at the window ends
    and 3 targets between them; None when the scene has fewer than 5 frames."""
    return even_split(num_frames, *PAPER_PROTOCOLS["nas3r"], span)


def one_target_per_pass(split: ViewSplit) -> list[ViewSplit]:
    """One split per target, each with all the context views (NAS3R encodes and renders every
    target in its own pass with the context)."""
    return [ViewSplit(split.context, (t,)) for t in split.target]


def overlap_tag(overlap: float) -> str:
    """NoPoSplat's bin of a context pair's visual overlap in [0, 1]: ``small`` / ``medium`` /
    ``large`` (:data:`OVERLAP_BINS`, the last bin closed), else ``outside`` (or ``unknown``
    for NaN)."""
    if not np.isfinite(overlap):
        return "unknown"
    for tag, (lo, hi) in OVERLAP_BINS.items():
        if lo <= overlap < hi or (tag == "large" and overlap == hi):
            return tag
    return "outside"


def make_split(
    protocol: str,
    num_frames: int,
    num_context: int,
    num_target: int,
    *,
    seed: int = 0,
    scene: str = "",
    span: int | None = None,
) -> ViewSplit | None:
    """Dispatch by name; the paper protocols (:data:`PAPER_PROTOCOLS`) fix their own view counts
    and ignore ``num_context`` / ``num_target``."""
    if protocol == "erayzer":
        return erayzer_split(num_frames, span)
    if protocol == "nas3r":
        return nas3r_split(num_frames, span)
    if protocol == "even":
        return even_split(num_frames, num_context, num_target, span)
    if protocol == "random":
        return random_split(num_frames, num_context, num_target, seed=seed, scene=scene, span=span)
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {ALL_PROTOCOLS}")


def build_index(
    frame_counts: Mapping[str, int],
    protocol: str,
    num_context: int,
    num_target: int,
    *,
    seed: int = 0,
    span: int | None = None,
) -> dict[str, ViewSplit | None]:
    """``{scene: split or None}`` for every scene of ``frame_counts`` (scene -> number of frames)."""
    return {
        scene: make_split(protocol, n, num_context, num_target, seed=seed, scene=scene, span=span)
        for scene, n in frame_counts.items()
    }


# ------------------------------------------------------------------------------------------------
# index files


def write_index(index: Mapping[str, ViewSplit | None], path: str | os.PathLike) -> Path:
    """Write an index file (module doc) atomically; returns the path."""
    path = Path(path)
    doc = {scene: (None if split is None else split.as_dict()) for scene, split in index.items()}
    write_text_atomic(path, json.dumps(doc, indent=1) + "\n")
    return path


def _int_list(value, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: expected a non-empty list of frame indices, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or v != int(v) or v < 0:
            raise ValueError(f"{where}: frame indices must be non-negative integers, got {v!r}")
        out.append(int(v))
    if len(set(out)) != len(out):
        raise ValueError(f"{where}: repeated frame indices {out}")
    return tuple(out)


def read_index(
    path: str | os.PathLike, frame_counts: Mapping[str, int] | None = None
) -> dict[str, ViewSplit | None]:
    """Read an index file (pixelSplat / LVSM / RayZer JSON). With ``frame_counts`` every index is
    checked against its scene's frame count (scenes missing from ``frame_counts`` are an error).

    Raises:
        FileNotFoundError: no such file. ValueError: malformed content (naming the scene).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"index file not found: {path}")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected an object {{scene: {{context, target}} | null}}")
    index: dict[str, ViewSplit | None] = {}
    for scene, entry in doc.items():
        where = f"{path} scene {scene}"
        if entry is None:
            index[scene] = None
            continue
        if not isinstance(entry, dict) or "context" not in entry or "target" not in entry:
            raise ValueError(f"{where}: expected {{'context': [...], 'target': [...]}} or null")
        split = ViewSplit(
            _int_list(entry["context"], f"{where} context"),
            _int_list(entry["target"], f"{where} target"),
        )
        if frame_counts is not None:
            if scene not in frame_counts:
                raise ValueError(f"{where}: no such scene in the dataset")
            bad = [f for f in split.views if f >= frame_counts[scene]]
            if bad:
                raise ValueError(
                    f"{where}: frame indices {bad} out of range for {frame_counts[scene]} frames"
                )
        index[scene] = split
    return index


# ------------------------------------------------------------------------------------------------
# datasets


def dataset_frame_counts(path: str | os.PathLike) -> dict[str, int]:
    """``{scene name: number of frames}`` for a scene folder, a folder of scene folders, or any
    source :func:`rayzer.data.formats.read_source` can open (frames are counted, not decoded)."""
    from rayzer.data.check import find_scenes
    from rayzer.data.scene_folder import read_scene_header

    root = Path(path)
    try:
        scene_dirs = find_scenes(root)
    except FileNotFoundError:
        scene_dirs = []
    counts: dict[str, int] = {}
    if scene_dirs:
        for d in scene_dirs:
            header = read_scene_header(d)
            if header.name in counts:
                raise ValueError(f"{root}: scene name {header.name!r} appears twice")
            counts[header.name] = header.num_frames
        return counts
    from rayzer.data.formats import read_source

    _, scenes = read_source(root)
    for scene in scenes:
        if scene.name in counts:
            raise ValueError(f"{root}: scene name {scene.name!r} appears twice")
        counts[scene.name] = len(scene.frames)
    return counts


def make_index(
    data: str | os.PathLike,
    out: str | os.PathLike,
    protocol: str = "even",
    num_context: int | None = None,
    num_target: int | None = None,
    *,
    style: str = "pixelsplat",
    seed: int = 0,
    span: int | None = None,
) -> dict[str, ViewSplit | None]:
    """``rayzer data make-index``: build and write the index of every scene of ``data``."""
    if style not in STYLES:
        raise ValueError(f"unknown index style {style!r}; choose one of {tuple(STYLES)}")
    if protocol not in ALL_PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {ALL_PROTOCOLS}")
    default_context, default_target = STYLES[style]
    num_context = default_context if num_context is None else num_context
    num_target = default_target if num_target is None else num_target
    counts = dataset_frame_counts(data)
    index = build_index(counts, protocol, num_context, num_target, seed=seed, span=span)
    if all(split is None for split in index.values()):
        need = num_context + num_target
        raise ValueError(
            f"{data}: no scene has the {need} frames that {num_context} context + {num_target} "
            f"target views need (largest: {max(counts.values())})"
        )
    write_index(index, out)
    return index


def summarize_index(index: Mapping[str, ViewSplit | None]) -> str:
    """One line: scenes, skipped scenes, views per sample, mean frame span."""
    used = [s for s in index.values() if s is not None]
    if not used:
        return f"{len(index)} scene(s), all skipped"
    spans = [s.views[-1] - s.views[0] for s in used]
    return (
        f"{len(index)} scene(s) ({len(index) - len(used)} skipped: too few frames); "
        f"{len(used[0].context)} context + {len(used[0].target)} target views; "
        f"mean frame span {sum(spans) / len(spans):.1f}"
    )
