"""Clip sources: where the training stream's multi-view samples come from.

A *clip* is an ordered sequence of F frames of one static scene (a video, an orbit, a photo
sequence). A :class:`ClipSource` is an indexable collection of clips that can load any subset of
a clip's frames as a :class:`Clip` at the training resolution (or a requested smaller one). The
training stream (:mod:`rayzer.data.stream`) only ever asks a source for its number of clips, a
clip's frame count and a subset of its frames, so the view sampler, the frame-span curriculum
and the reproducibility contract are shared by every source:

- :class:`SyntheticClips` — the built-in procedural scenes (rendered on demand);
- :class:`rayzer.data.real_clips.SceneFolderClips` — scene folders (``images/`` +
  ``cameras.json`` / ``frames.json``), found in a folder or listed in a manifest;
- :class:`rayzer.data.real_clips.Re10kChunkClips` — RealEstate10K pixelSplat ``.torch`` chunks.

:func:`open_clip_sources` turns ``data.source`` (comma-separated entries, see
:class:`rayzer.config.DataConfig`) into sources and skips scenes that cannot make a sample (too
few frames, or no cameras when the model needs them), with one logged warning listing them.

Sources are picklable and hold no open file handles: DataLoader workers open files lazily.
"""

from __future__ import annotations

import dataclasses
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from rayzer.config import DataConfig, as_hw
from rayzer.data.overlap import OverlapCurve, geometric_overlap, image_overlap
from rayzer.data.synthetic import TRAIN_SEEDS, SynthConfig, render_clip

SYNTHETIC = "synthetic"
#: Image side at which sources without depth measure the label-free overlap of a clip.
OVERLAP_IMAGE_SIZE = 64
#: Depth-map side of the synthetic clips' geometric overlap (16² points per frame: the curve
#: agrees with the 64 px one to ~0.05 and costs a few tens of ms per clip).
OVERLAP_DEPTH_SIZE = 16
log = logging.getLogger(__name__)


class DataSourceNotFoundError(FileNotFoundError, ValueError):
    """A ``data.source`` entry names no usable file or folder.

    Both a FileNotFoundError (a path is missing) and a ValueError (the config value is bad).
    """


@dataclass
class Clip:
    """Some frames of one clip at the training resolution.

    Attributes:
        images: (V, 3, H, W) float32 in [0, 1] (H = W = S for a square size).
        c2w: (V, 4, 4) float32 OpenCV camera-to-world in the source's world frame and scale, or
            None for an unposed scene.
        K: (V, 4) float32 pixel intrinsics (fx, fy, cx, cy) of ``images``, or None if unposed.
    """

    images: Tensor
    c2w: Tensor | None
    K: Tensor | None


@dataclass(frozen=True)
class SkippedScene:
    """A scene a source left out, and why (for the one warning of :func:`open_clip_sources`)."""

    name: str
    reason: str


class ClipSource(ABC):
    """An indexable collection of clips (module docstring).

    Attributes:
        name: the ``data.source`` entry this source was opened from (for messages).
        skipped: scenes left out when the source was opened.
    """

    name: str
    skipped: list[SkippedScene]

    @abstractmethod
    def __len__(self) -> int:
        """Number of usable clips."""

    @abstractmethod
    def num_frames(self, clip: int) -> int:
        """F, the number of frames of clip ``clip`` (in ``[0, len(self))``)."""

    @abstractmethod
    def clip_id(self, clip: int) -> int:
        """A stable integer naming the clip in its source (provenance; synthetic: the seed)."""

    @abstractmethod
    def load(self, clip: int, frames: Tensor, size: int | tuple[int, int] | None = None) -> Clip:
        """Frames ``frames`` ((V,) int64 frame numbers in ``[0, F)``) of clip ``clip``.

        ``size``: ``(H, W)`` of the images, or one int for a square (None = the source's
        training resolution); the stream asks for a smaller one during the
        progressive-resolution steps.
        """

    def describe(self, clip: int) -> str:
        """A human-readable name of a clip (for error messages)."""
        return f"{self.name} clip {clip}"

    def overlap_curve(self, clip: int) -> OverlapCurve:
        """The clip's overlap-vs-frame-gap statistics (E-RayZer's curriculum), computed once
        per clip and process. Default: label-free (:func:`rayzer.data.overlap.image_overlap`)
        from all its frames at a small size; sources with depth override it."""
        memo = self.__dict__.setdefault("_overlap_memo", {})
        if clip not in memo:
            frames = torch.arange(self.num_frames(clip))
            memo[clip] = image_overlap(self.load(clip, frames, OVERLAP_IMAGE_SIZE).images)
        return memo[clip]


class SyntheticClips(ClipSource):
    """The built-in synthetic training clips (``TRAIN_SEEDS``), rendered at ``synth``'s size."""

    def __init__(self, synth: SynthConfig) -> None:
        self.name, self.synth, self.skipped = SYNTHETIC, synth, []

    def __len__(self) -> int:
        return len(TRAIN_SEEDS)

    def num_frames(self, clip: int) -> int:
        return self.synth.frames

    def clip_id(self, clip: int) -> int:
        return int(TRAIN_SEEDS[clip])

    def load(self, clip: int, frames: Tensor, size: int | tuple[int, int] | None = None) -> Clip:
        synth = self.synth
        if size is not None:
            h, w = as_hw(size)
            if (h, w) != (synth.height, synth.width):
                synth = dataclasses.replace(synth, height=h, width=w)
        out = render_clip(self.clip_id(clip), synth, frames=frames)  # only these frames
        return Clip(out.images, out.c2w, out.K)

    def describe(self, clip: int) -> str:
        return f"synthetic {self.synth.family} seed {self.clip_id(clip)}"

    def overlap_curve(self, clip: int) -> OverlapCurve:
        """Geometric overlap from the clip's exact depth and cameras, rendered small: the
        camera path and the scene do not depend on the resolution (only its precision does).
        A non-square clip is rendered at its aspect (short side ``OVERLAP_DEPTH_SIZE``): the
        vertical field of view, and so what two frames share, depends on it."""
        from rayzer.data.real_clips import square_crop_geometry  # real_clips imports this module

        (h, w), _, _ = square_crop_geometry(self.synth.height, self.synth.width, OVERLAP_DEPTH_SIZE)
        small = dataclasses.replace(self.synth, height=h, width=w)
        out = render_clip(self.clip_id(clip), small)
        return geometric_overlap(out.depth, out.c2w, out.K, size=OVERLAP_DEPTH_SIZE)


def synth_config(cfg: DataConfig) -> SynthConfig:
    """The :class:`SynthConfig` of the clips: family / frames / size (``height, width =
    cfg.image_hw``) from ``cfg``, rest from ``cfg.synth``. Raises ValueError on unknown or
    conflicting keys."""
    names = {f.name for f in dataclasses.fields(SynthConfig)}
    owned = {"family", "frames", "height", "width"}
    extra = dict(cfg.synth)
    unknown = sorted(set(extra) - names)
    if unknown:
        raise ValueError(
            f"data.synth: unknown SynthConfig option(s) {unknown}; valid: {sorted(names - owned)}"
        )
    clash = sorted(set(extra) & owned)
    if clash:
        raise ValueError(
            f"data.synth must not set {clash}: use data.family / data.frames_per_clip / "
            "data.image_size"
        )
    height, width = cfg.image_hw
    synth = SynthConfig(
        family=cfg.family,
        frames=cfg.frames_per_clip,
        height=height,
        width=width,
        **extra,
    )
    synth.validate()
    return synth


def open_clip_source(
    entry: str, cfg: DataConfig, min_frames: int, require_poses: bool = False
) -> ClipSource:
    """Open one ``data.source`` entry (see :class:`rayzer.config.DataConfig`).

    Args:
        entry: ``"synthetic"``, a scene folder, a folder of scene folders, a manifest file, or
            RealEstate10K ``.torch`` chunk(s).
        min_frames: scenes with fewer frames are skipped (recorded in ``source.skipped``).
        require_poses: also skip scenes without cameras.
    Raises:
        DataSourceNotFoundError: the path does not exist or holds no scene / chunk.
        ValueError: every scene was skipped, or a scene / manifest / chunk is malformed.
    """
    from rayzer.data import real_clips

    if entry == SYNTHETIC:
        return SyntheticClips(synth_config(cfg))
    path = Path(entry).expanduser()
    if not path.exists():
        raise DataSourceNotFoundError(
            f"data.source entry {entry!r}: no such file or folder (an entry is 'synthetic', a "
            "scene folder, a folder of scene folders, a manifest file or RealEstate10K .torch "
            "chunks)"
        )
    if real_clips.is_chunk_source(path):
        source: ClipSource = real_clips.Re10kChunkClips(
            path, cfg.image_hw, min_frames, require_poses, name=entry
        )
    else:
        scenes = real_clips.read_manifest(path) if path.is_file() else real_clips.scene_dirs(path)
        source = real_clips.SceneFolderClips(
            scenes, cfg.image_hw, min_frames, require_poses, name=entry
        )
    if len(source) == 0:
        reasons = "; ".join(f"{s.name}: {s.reason}" for s in source.skipped[:5])
        more = f" (and {len(source.skipped) - 5} more)" if len(source.skipped) > 5 else ""
        raise ValueError(
            f"data.source entry {entry!r}: no usable scene, all {len(source.skipped)} skipped: "
            f"{reasons}{more}"
        )
    return source


def open_clip_sources(cfg: DataConfig, require_poses: bool = False) -> list[ClipSource]:
    """One source per ``data.source`` entry; one warning lists every skipped scene.

    A scene needs ``span_min`` frames (the narrowest window of the curriculum) and, when
    ``require_poses``, cameras.
    """
    min_frames = cfg.span_range()[0]
    sources = [open_clip_source(e, cfg, min_frames, require_poses) for e in cfg.source_list()]
    skipped = sum(len(s.skipped) for s in sources)
    if skipped:
        listing = "".join(
            f"\n  in {s.name!r}:" + "".join(f"\n    {k.name}: {k.reason}" for k in s.skipped)
            for s in sources
            if s.skipped
        )
        log.warning(
            f"data.source: skipping {skipped} scene(s) that cannot make a training sample:{listing}"
        )
    return sources


def choose_source(probabilities: Tensor, generator: torch.Generator) -> int:
    """Index of a source drawn with the given (normalised, (S,) float64) probabilities.

    Inverse-CDF sampling from one uniform draw: explicit, so the choice is a documented function
    of the generator state (unlike the internals of ``torch.multinomial``).
    """
    u = torch.rand((), generator=generator, dtype=torch.float64)
    cdf = probabilities.cumsum(0)
    return min(int(torch.searchsorted(cdf, u, right=True)), len(probabilities) - 1)
