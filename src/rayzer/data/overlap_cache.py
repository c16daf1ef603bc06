"""Overlap statistics of scene folders, cached beside the data (``rayzer data overlap``).

Each scene folder gets an ``overlap.json`` (:func:`rayzer.data.overlap.write_overlap_file`):
its :class:`~rayzer.data.overlap.OverlapCurve` plus a **fingerprint** of what it was computed
from (the scene file's bytes, every listed image's and depth map's size and modification time,
and the settings below). The training stream's :class:`rayzer.data.real_clips.SceneFolderClips`
uses a cached curve only while its fingerprint matches (:func:`cached_scene_overlap`); editing,
adding or replacing a frame makes the cache stale. Copying a dataset without keeping
modification times (``cp`` rather than ``cp -p`` / ``rsync -a``) makes it stale too.

Method ``auto``: **geometric** overlap where the scene has ``cameras.json`` *and* ``depth/``,
label-free **image** overlap otherwise. Cameras alone are not enough for the geometric figure:
whether frame j sees what frame i sees depends on where i's surfaces are (and what hides them),
which takes i's depth and j's depth for the occlusion test.

Both methods measure the frames as training sees them: resized so the short side is
:data:`IMAGE_SIDE` (image) or :data:`DEPTH_SIDE` (geometric) pixels and centre-cropped to a
square (:func:`rayzer.data.real_clips.square_crop_geometry`).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from rayzer.data.overlap import (
    METHODS,
    OVERLAP_FILE,
    OverlapCurve,
    geometric_overlap,
    image_overlap,
    read_overlap_file,
    write_overlap_file,
)
from rayzer.data.scene_folder import (
    CAMERAS_JSON,
    FRAMES_JSON,
    load_scene_json,
    read_scene_folder,
    scene_file,
)
from rayzer.geometry import crop_intrinsics

#: Image side (short side, then square crop) of the label-free overlap.
IMAGE_SIDE = 64
#: Depth-map side (short side, then square crop) of the geometric overlap.
DEPTH_SIDE = 32
#: Frames decoded at once (bounds memory on long, high-resolution scenes).
LOAD_CHUNK = 32
#: Bump when the computation changes: older caches become stale.
CACHE_VERSION = 1
#: ``--method`` choices.
METHOD_CHOICES = ("auto", *METHODS)
#: The overlap level whose widest frame gap the summary reports.
SUMMARY_LEVEL = 0.5
#: Frame gaps the summary table reports.
SUMMARY_GAPS = (1, 5, 10)


# -- one scene -------------------------------------------------------------------------------------


def scene_fingerprint(scene_dir: Path) -> str:
    """SHA-256 (hex) of the scene file's bytes, the size and modification time (ns) of every
    listed image and depth map, and the cache settings: changes whenever the curve could."""
    scene_dir = Path(scene_dir)
    path = scene_file(scene_dir)
    digest = hashlib.sha256()
    settings = f"v{CACHE_VERSION} image {IMAGE_SIDE} depth {DEPTH_SIDE}"
    digest.update(f"{settings}\n{path.name}\n".encode())
    digest.update(path.read_bytes())
    files = [str(fr.get("file")) for fr in load_scene_json(path)["frames"] if isinstance(fr, dict)]
    depth_dir = scene_dir / "depth"
    if depth_dir.is_dir():
        files += [f"depth/{Path(f).stem}.npy" for f in files]
    for rel in files:
        try:
            st = (scene_dir / rel).stat()
            digest.update(f"\n{rel}\0{st.st_size}\0{st.st_mtime_ns}".encode())
        except OSError:
            digest.update(f"\n{rel}\0missing".encode())
    return digest.hexdigest()


def has_geometry(scene_dir: Path) -> bool:
    """Whether the scene has cameras and depth maps (what the geometric overlap needs)."""
    return (Path(scene_dir) / CAMERAS_JSON).is_file() and (Path(scene_dir) / "depth").is_dir()


def choose_method(scene_dir: Path, method: str = "auto") -> str:
    """``"geometric"`` or ``"image"`` for ``method`` in :data:`METHOD_CHOICES` (module
    docstring). Raises ValueError for an unknown method, or ``geometric`` without depth."""
    if method not in METHOD_CHOICES:
        raise ValueError(f"overlap method must be one of {METHOD_CHOICES}, got {method!r}")
    if method == "auto":
        return "geometric" if has_geometry(scene_dir) else "image"
    if method == "geometric" and not has_geometry(scene_dir):
        raise ValueError(
            f"{scene_dir}: geometric overlap needs {CAMERAS_JSON} and per-frame depth maps in "
            "depth/ (use --method image or auto)"
        )
    return method


def _frame_size(scene_dir: Path, frame: dict[str, Any]) -> tuple[int, int]:
    """(H, W) of a frame: from the scene file, else from the image header."""
    if "width" in frame and "height" in frame:
        return int(frame["height"]), int(frame["width"])
    path = Path(scene_dir) / str(frame.get("file"))
    try:
        with Image.open(path) as im:
            return im.height, im.width
    except OSError as err:
        raise ValueError(f"cannot read image {path}: {err}") from None


def compute_scene_overlap(scene_dir: Path, method: str = "auto") -> OverlapCurve:
    """The overlap curve of a scene folder, computed (no cache) with ``method``.

    Frames are decoded :data:`LOAD_CHUNK` at a time at the small measuring size, so memory does
    not grow with the source resolution.
    """
    from rayzer.data.real_clips import square_crop_geometry  # real_clips imports this module

    scene_dir = Path(scene_dir)
    method = choose_method(scene_dir, method)
    frames = load_scene_json(scene_file(scene_dir))["frames"]
    side = DEPTH_SIDE if method == "geometric" else IMAGE_SIDE
    h, w = _frame_size(scene_dir, frames[0] if isinstance(frames[0], dict) else {})
    (nh, nw), top, left = square_crop_geometry(h, w, side)
    crop = (slice(top, top + side), slice(left, left + side))
    images, depth, c2w, K = [], [], [], []
    for start in range(0, len(frames), LOAD_CHUNK):
        part = read_scene_folder(
            scene_dir,
            indices=range(start, min(start + LOAD_CHUNK, len(frames))),
            size=(nh, nw),
            load_depth=method == "geometric",
            strict=False,
        )
        if method == "image":
            images.append(part.images[(..., *crop)])
            continue
        if part.depth is None or part.c2w is None or part.K is None:
            raise ValueError(f"{scene_dir}: geometric overlap needs cameras and depth maps")
        depth.append(part.depth[(..., *crop)])
        c2w.append(part.c2w)
        K.append(crop_intrinsics(part.K, top, left))
    if method == "image":
        return image_overlap(torch.cat(images))
    return geometric_overlap(torch.cat(depth), torch.cat(c2w), torch.cat(K), size=side)


def cached_scene_overlap(scene_dir: Path) -> OverlapCurve | None:
    """The scene's cached curve while fresh (fingerprint matches), else None.

    Raises:
        ValueError: ``overlap.json`` is invalid, or its frame count disagrees with the scene's
            (the message names the file).
    """
    scene_dir = Path(scene_dir)
    curve = read_overlap_file(scene_dir, scene_fingerprint(scene_dir))
    if curve is not None:
        frames = len(load_scene_json(scene_file(scene_dir))["frames"])
        if curve.num_frames != frames:
            raise ValueError(
                f"{scene_dir / OVERLAP_FILE}: a curve of {curve.num_frames} frames for a scene of "
                f"{frames}; delete it or run `rayzer data overlap --force`"
            )
    return curve


# -- a dataset ------------------------------------------------------------------------------------


@dataclass
class SceneOverlap:
    """What ``rayzer data overlap`` did for one scene.

    Attributes:
        path: the scene folder.
        status: ``"computed"``, ``"cached"`` (fresh cache, skipped) or ``"failed"``.
        curve: the scene's curve (None when failed).
        seconds: wall time spent on the scene.
        error: why it failed (None otherwise).
    """

    path: Path
    status: str
    curve: OverlapCurve | None = None
    seconds: float = 0.0
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-ready record: overlap at the :data:`SUMMARY_GAPS` and the widest gap."""
        doc: dict[str, Any] = {"scene": self.path.name, "path": str(self.path)}
        doc |= {"status": self.status, "seconds": round(self.seconds, 3), "error": self.error}
        curve = self.curve
        if curve is not None:
            doc |= {"method": curve.method, "num_frames": curve.num_frames}
            doc |= {f"overlap_gap_{g}": _at(curve, g) for g in SUMMARY_GAPS}
            doc |= {"max_gap": curve.max_gap, "overlap_max_gap": _at(curve, curve.max_gap)}
            doc["widest_gap_0.5"] = curve.widest_gap(SUMMARY_LEVEL)
            doc["overlap"] = list(curve.to_json()["overlap"])
        return doc


def _at(curve: OverlapCurve, gap: int) -> float | None:
    return round(curve.overlap[gap], 4) if gap <= curve.max_gap else None


def overlap_scene(scene_dir: Path, method: str = "auto", force: bool = False) -> SceneOverlap:
    """Compute and cache one scene's curve unless a fresh, valid cache of the same method
    exists (``auto``: the method :func:`choose_method` picks); an invalid cache is replaced.
    Errors are returned, not raised."""
    start = time.perf_counter()
    try:
        wanted = choose_method(scene_dir, method)
        fingerprint = scene_fingerprint(scene_dir)
        if not force:
            try:
                cached = cached_scene_overlap(scene_dir)
            except ValueError:  # an invalid cache is rewritten below
                cached = None
            if cached is not None and cached.method == wanted:
                return SceneOverlap(scene_dir, "cached", cached, time.perf_counter() - start)
        curve = compute_scene_overlap(scene_dir, wanted)
        write_overlap_file(scene_dir, curve, fingerprint)
        return SceneOverlap(scene_dir, "computed", curve, time.perf_counter() - start)
    except (OSError, ValueError) as err:
        return SceneOverlap(scene_dir, "failed", None, time.perf_counter() - start, str(err))


def overlap_dataset(
    scenes: Sequence[Path],
    method: str = "auto",
    force: bool = False,
    progress: Callable[[str], None] | None = None,
    jobs: int = 1,
) -> list[SceneOverlap]:
    """:func:`overlap_scene` for every scene; results in the order of ``scenes``.

    ``jobs > 1`` runs scenes in that many worker processes (spawned, one torch thread each);
    ``progress`` gets one line per finished scene (``[n/N] scene: status (method or error) in
    t s, total s``), in completion order.
    """
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    began = time.perf_counter()

    def report(n: int, scene: Path, result: SceneOverlap) -> None:
        if progress is not None:
            what = result.error if result.curve is None else result.curve.method
            progress(
                f"[{n}/{len(scenes)}] {scene}: {result.status} ({what}) in {result.seconds:.1f} s"
                f", {time.perf_counter() - began:.1f} s total"
            )

    if jobs == 1 or len(scenes) < 2:
        results = []
        for n, scene in enumerate(scenes, 1):
            results.append(overlap_scene(scene, method, force))
            report(n, scene, results[-1])
        return results
    spawn = multiprocessing.get_context("spawn")  # no forking of a process with torch threads
    workers = min(jobs, len(scenes))
    with ProcessPoolExecutor(workers, mp_context=spawn, initializer=_one_thread) as pool:
        futures = {pool.submit(overlap_scene, s, method, force): i for i, s in enumerate(scenes)}
        done: dict[int, SceneOverlap] = {}
        for n, future in enumerate(as_completed(futures), 1):
            i = futures[future]
            done[i] = future.result()
            report(n, scenes[i], done[i])
    return [done[i] for i in range(len(scenes))]


def _one_thread() -> None:
    """Worker initialiser: one intra-op thread per process (the processes share the cores)."""
    torch.set_num_threads(1)


def format_table(results: Sequence[SceneOverlap]) -> str:
    """A Markdown table: one row per scene (overlap at gaps 1 / 5 / 10 / max, widest gap whose
    mean overlap is still ≥ 0.5); ``-`` where a scene is too short or failed."""
    gaps = " | ".join(f"@{g}" for g in SUMMARY_GAPS)
    lines = [
        f"| scene | status | method | frames | {gaps} | @max (gap) | widest gap ≥ 0.5 |",
        "|---|---|---|---:|" + "---:|" * len(SUMMARY_GAPS) + "---:|---:|",
    ]
    for result in results:
        doc = result.summary()
        if result.curve is None:
            cells = ["-"] * (len(SUMMARY_GAPS) + 4)
        else:
            at = [_fmt(doc[f"overlap_gap_{g}"]) for g in SUMMARY_GAPS]
            cells = [doc["method"], str(doc["num_frames"]), *at]
            cells += [f"{doc['overlap_max_gap']:.3f} ({doc['max_gap']})"]
            cells += [str(doc["widest_gap_0.5"])]
        lines.append("| " + " | ".join([doc["scene"], result.status, *cells]) + " |")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def plot_curves(results: Sequence[SceneOverlap], out: Path) -> Path:
    """Write a PNG of overlap vs frame gap, one line per scene with a curve, and the
    :data:`SUMMARY_LEVEL` line (a bare matplotlib Figure: no GUI backend needed)."""
    from matplotlib.figure import Figure

    from rayzer.utils.atomic import atomic_path

    fig = Figure(figsize=(6.4, 4.2), dpi=120)
    ax = fig.add_subplot()
    curves = [r for r in results if r.curve is not None]
    for path, curve in ((r.path, r.curve) for r in curves if r.curve is not None):
        label = f"{path.name} ({curve.method})"
        ax.plot(range(len(curve.overlap)), curve.overlap, label=label, linewidth=1.2)
    ax.axhline(SUMMARY_LEVEL, color="grey", linestyle="--", linewidth=0.8)
    ax.set(xlabel="frame gap", ylabel="mean overlap", ylim=(0.0, 1.02))
    ax.set_title(f"overlap vs frame gap ({len(curves)} scene(s))")
    if 0 < len(curves) <= 12:
        ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lstrip(".").lower() or "png")
    return out


def overlap_command(
    path: Path,
    method: str = "auto",
    force: bool = False,
    as_json: bool = False,
    plot: Path | None = None,
    jobs: int = 1,
) -> list[SceneOverlap]:
    """``rayzer data overlap``: every scene folder at ``path`` (itself, its sub-folders up to two
    levels deep, or those a training manifest lists); progress to stderr, the table (or
    ``--json``) to stdout, an optional plot. Returns the results; the caller fails when any
    scene failed."""
    from rayzer.data.real_clips import read_manifest, scene_dirs

    path = Path(path)
    is_manifest = path.is_file() and path.name not in (CAMERAS_JSON, FRAMES_JSON)
    scenes = read_manifest(path) if is_manifest else scene_dirs(path)
    results = overlap_dataset(
        scenes,
        method,
        force,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
        jobs=jobs,
    )
    if as_json:
        print(json.dumps([r.summary() for r in results], indent=1))
    else:
        print(format_table(results))
    if plot is not None:
        print(f"wrote {plot_curves(results, plot)}", file=sys.stderr)
    return results
