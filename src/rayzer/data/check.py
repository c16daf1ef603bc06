"""``rayzer data check``: validate scene folders and summarise them.

Errors (the scene cannot be loaded as it is): unreadable or invalid JSON, frames without a file,
duplicate frames, missing or unreadable images, image files in ``images/`` that no frame lists,
``width`` / ``height`` that disagree with the image, missing / non-numeric / non-finite cameras,
non-positive focal lengths, non-rigid ``c2w`` (``scene_folder.check_c2w``), depth maps that are
missing or of the wrong shape.

Warnings (loadable, but worth knowing): mixed image sizes (load with ``size=``), principal point
outside the image, strongly anisotropic focal lengths (fx/fy beyond 1.1), coincident cameras, frames
without width / height.

Summary per scene: frame count, image sizes, focal range (pixels and horizontal field of view),
baseline span (largest distance between camera centres) and median step to the nearest camera
(world units of the scene), pose rigidity.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from rayzer.data.formats.base import natural_key
from rayzer.data.scene_folder import CAMERAS_JSON, FRAMES_JSON, IMAGE_SUFFIXES, check_c2w
from rayzer.utils.paths import path_inside

ANISOTROPY_WARN = 1.1
MAX_PAIRWISE = 2000  # above this many cameras the span is computed on an even subsample


@dataclass
class Issue:
    level: str  # "error" | "warning"
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.where}: {self.message}"


@dataclass
class SceneReport:
    """What :func:`check_scene` found. ``summary`` holds the numbers printed by :func:`format_report`."""

    path: Path
    scene: str
    frames: int = 0
    posed: bool = False
    sizes: Counter = field(default_factory=Counter)
    summary: dict[str, Any] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, where: str, message: str) -> None:
        self.issues.append(Issue("error", where, message))

    def warn(self, where: str, message: str) -> None:
        self.issues.append(Issue("warning", where, message))


def find_scenes(path: str | Path) -> list[Path]:
    """Scene folders at ``path``: itself, or its subfolders (two levels deep) holding a scene file."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")

    def is_scene(p: Path) -> bool:
        return (p / CAMERAS_JSON).is_file() or (p / FRAMES_JSON).is_file()

    if is_scene(root):
        return [root]
    found = [p.parent for p in root.glob(f"*/{CAMERAS_JSON}")]
    found += [p.parent for p in root.glob(f"*/{FRAMES_JSON}") if not is_scene_posed(p.parent)]
    if not found:
        found = [p.parent for p in root.glob(f"*/*/{CAMERAS_JSON}")]
        found += [p.parent for p in root.glob(f"*/*/{FRAMES_JSON}") if not is_scene_posed(p.parent)]
    found = [p for p in found if not p.name.startswith(".")]  # skip temporary conversion folders
    if not found:
        raise FileNotFoundError(f"{root}: no scene folders ({CAMERAS_JSON} or {FRAMES_JSON}) found")
    return sorted(set(found), key=lambda p: natural_key(str(p)))


def is_scene_posed(path: Path) -> bool:
    return (path / CAMERAS_JSON).is_file()


def _image_size(path: Path, decode: bool) -> tuple[int, int]:
    with Image.open(path) as im:
        if decode:
            im.load()  # a truncated / corrupt file fails here, not just on the header
        return im.width, im.height


def _camera(fr: dict[str, Any], where: str, report: SceneReport):
    missing = [k for k in ("fx", "fy", "cx", "cy", "c2w") if k not in fr]
    if missing:
        report.error(where, f"missing camera key(s) {missing}")
        return None
    try:
        K = np.array([fr["fx"], fr["fy"], fr["cx"], fr["cy"]], dtype=np.float64)
        c2w = np.asarray(fr["c2w"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        report.error(where, f"cameras must be numbers ({exc})")
        return None
    if not np.all(np.isfinite(K)):
        report.error(where, f"intrinsics are not finite: {K.tolist()}")
        return None
    if K[0] <= 0 or K[1] <= 0:
        report.error(where, f"focal lengths must be > 0, got fx={K[0]}, fy={K[1]}")
        return None
    try:
        check_c2w(c2w, "c2w")
    except ValueError as exc:
        report.error(where, str(exc).removeprefix("c2w: "))
        return None
    return K, c2w


def check_scene(path: str | Path, decode: bool = True) -> SceneReport:
    """Validate one scene folder (see module doc). Never raises for bad content: it reports."""
    root = Path(path)
    report = SceneReport(path=root, scene=root.name)
    loaded = _read_scene_file(root, report)
    if loaded is None:
        return report
    json_path, frames = loaded
    listed: Counter = Counter()
    Ks, c2ws, sizes = [], [], []
    for i, fr in enumerate(frames):
        if not isinstance(fr, dict) or not isinstance(fr.get("file"), str) or not fr["file"]:
            report.error(f"{json_path.name} frame {i}", "no 'file' string")
            continue
        listed[Path(fr["file"]).as_posix()] += 1
        size, cam = _check_frame(root, json_path.name, i, fr, decode, report)
        if size is not None:
            sizes.append(size)
        if cam is not None:
            Ks.append(cam[0])
            c2ws.append(cam[1])
    _check_listing(root, json_path.name, listed, report)
    if len(report.sizes) > 1:
        report.warn(
            json_path.name, f"mixed image sizes {dict(report.sizes)}; load with size=(H, W)"
        )
    _summarise(report, Ks, c2ws, sizes)
    return report


def _read_scene_file(root: Path, report: SceneReport) -> tuple[Path, list[Any]] | None:
    """The scene file and its frame list (sets ``posed``, ``scene``, ``frames`` on the report),
    or None after reporting why there is none."""
    json_path = root / CAMERAS_JSON
    report.posed = json_path.is_file()
    if not report.posed:
        json_path = root / FRAMES_JSON
    if not json_path.is_file():
        report.error(str(root), f"neither {CAMERAS_JSON} nor {FRAMES_JSON} found")
        return None
    try:
        doc = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        report.error(str(json_path), f"invalid JSON ({exc})")
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("frames"), list) or not doc["frames"]:
        report.error(str(json_path), "expected an object with a non-empty 'frames' list")
        return None
    report.scene = str(doc.get("scene") or root.name)
    report.frames = len(doc["frames"])
    return json_path, doc["frames"]


def _check_frame(
    root: Path, scene_file: str, i: int, fr: dict[str, Any], decode: bool, report: SceneReport
) -> tuple[tuple[int, int] | None, tuple[np.ndarray, np.ndarray] | None]:
    """Frame ``i`` of ``scene_file``: its image (inside the folder, readable, the recorded size),
    its camera on a posed scene, its depth map. Returns the image size ``(W, H)`` and
    ``(K, c2w)``, each None where unknown."""
    where = f"{scene_file} frame {i} ({fr['file']})"
    try:
        img = path_inside(root, fr["file"])
    except ValueError as exc:
        report.error(where, str(exc))
        return None, None
    size = None
    if not img.is_file():
        report.error(where, f"image file is missing: {img}")
    else:
        try:
            size = _image_size(img, decode)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            report.error(where, f"cannot read image {img}: {exc}")
    if size is not None:
        report.sizes[size] += 1
        if "width" not in fr or "height" not in fr:
            report.warn(where, "no width / height recorded")
        elif (fr["width"], fr["height"]) != size:
            report.error(
                where,
                f"{scene_file} says {fr['width']}x{fr['height']}, the image is {size[0]}x{size[1]}",
            )
    cam = _camera(fr, where, report) if report.posed else None
    if cam is not None and size is not None:
        K = cam[0]
        W, H = size
        if not (0 <= K[2] <= W and 0 <= K[3] <= H):
            report.warn(
                where,
                f"principal point ({K[2]:.1f}, {K[3]:.1f}) outside the {W}x{H} image",
            )
        if max(K[0] / K[1], K[1] / K[0]) > ANISOTROPY_WARN:
            report.warn(where, f"anisotropic focal lengths fx={K[0]:.1f}, fy={K[1]:.1f}")
    _check_depth(root, fr, size, where, report)
    return size, cam


def _check_listing(root: Path, scene_file: str, listed: Counter, report: SceneReport) -> None:
    """No frame listed twice; every image in ``images/`` listed."""
    dupes = sorted(f for f, n in listed.items() if n > 1)
    if dupes:
        report.error(scene_file, f"duplicate frames {dupes[:5]}")
    if (root / "images").is_dir():
        on_disk = {
            f"images/{p.name}"
            for p in (root / "images").iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES
        }
        unlisted = sorted(on_disk - set(listed))
        if unlisted:
            report.error(
                scene_file,
                f"frames do not match the files: {len(unlisted)} image(s) in images/ are not "
                f"listed, e.g. {unlisted[:3]}",
            )


def _check_depth(root: Path, fr: dict, size, where: str, report: SceneReport) -> None:
    depth_dir = root / "depth"
    if not depth_dir.is_dir():
        return
    dpath = depth_dir / f"{Path(fr['file']).stem}.npy"
    if not dpath.is_file():
        report.error(where, f"depth map missing: {dpath}")
        return
    try:
        shape = np.load(dpath, mmap_mode="r", allow_pickle=False).shape
    except (ValueError, OSError) as exc:
        report.error(where, f"cannot read depth map {dpath}: {exc}")
        return
    if size is not None and shape != (size[1], size[0]):
        report.error(where, f"depth shape {shape} != image size {(size[1], size[0])}")


def _summarise(report: SceneReport, Ks: list, c2ws: list, sizes: list) -> None:
    s = report.summary
    s["frames"] = report.frames
    s["sizes"] = {f"{w}x{h}": n for (w, h), n in sorted(report.sizes.items())}
    if not Ks:
        return
    K = np.stack(Ks)
    s["fx"] = [float(K[:, 0].min()), float(K[:, 0].max())]
    s["fy"] = [float(K[:, 1].min()), float(K[:, 1].max())]
    if sizes and len(sizes) == len(Ks):
        widths = np.array([w for w, _ in sizes], dtype=np.float64)
        hfov = np.degrees(2 * np.arctan(widths / (2 * K[:, 0])))
        s["hfov_deg"] = [float(hfov.min()), float(hfov.max())]
    T = np.stack(c2ws)
    R = T[:, :3, :3]
    ortho = np.abs(np.swapaxes(R, -1, -2) @ R - np.eye(3)).max()
    s["max_rotation_error"] = float(ortho)
    centres = T[:, :3, 3]
    sub = centres[:: max(1, math.ceil(len(centres) / MAX_PAIRWISE))]
    if len(centres) > 1:
        from scipy.spatial import cKDTree
        from scipy.spatial.distance import pdist

        s["baseline_span"] = float(pdist(sub).max())
        nn, _ = cKDTree(centres).query(centres, k=2)
        s["median_step"] = float(np.median(nn[:, 1]))
        coincident = int((nn[:, 1] <= 1e-9 * max(1.0, s["baseline_span"])).sum())
        if coincident:
            report.warn("cameras", f"{coincident} camera(s) share their centre with another")
    s["centre"] = [float(v) for v in centres.mean(0)]


def check_dataset(path: str | Path, decode: bool = True) -> list[SceneReport]:
    """Check every scene folder at ``path`` (a scene folder or a folder of them)."""
    return [check_scene(p, decode=decode) for p in find_scenes(path)]


def _range(values: list[float], unit: str = "", fmt: str = ".1f") -> str:
    lo, hi = values
    return (
        f"{lo:{fmt}}{unit}"
        if math.isclose(lo, hi, rel_tol=1e-6)
        else f"{lo:{fmt}}-{hi:{fmt}}{unit}"
    )


def format_scene(report: SceneReport) -> str:
    s = report.summary
    status = "OK" if report.ok else f"{len(report.errors)} ERROR(S)"
    lines = [f"{report.scene}  ({report.path})  {status}"]
    kind = "posed" if report.posed else "unposed"
    sizes = ", ".join(f"{k} x{n}" for k, n in s.get("sizes", {}).items()) or "-"
    lines.append(f"  frames: {report.frames} ({kind}); sizes: {sizes}")
    if "fx" in s:
        fov = f", hfov {_range(s['hfov_deg'], ' deg')}" if "hfov_deg" in s else ""
        lines.append(f"  focal: fx {_range(s['fx'], ' px')}, fy {_range(s['fy'], ' px')}{fov}")
    if "baseline_span" in s:
        lines.append(
            f"  baseline: span {s['baseline_span']:.4g}, median step {s['median_step']:.4g} "
            "(world units)"
        )
    if "max_rotation_error" in s:
        lines.append(
            f"  poses: finite and rigid (max |R^T R - I| = {s['max_rotation_error']:.1e})"
            if report.ok
            else f"  poses: max |R^T R - I| = {s['max_rotation_error']:.1e}"
        )
    shown = report.errors[:10] + report.warnings[:5]
    lines += [f"  {issue}" for issue in shown]
    hidden = len(report.issues) - len(shown)
    if hidden > 0:
        lines.append(f"  ... and {hidden} more issue(s)")
    return "\n".join(lines)


def format_report(reports: list[SceneReport], max_scenes: int = 20) -> str:
    """Human-readable report: every scene (or only the failing ones beyond ``max_scenes``)."""
    shown = reports if len(reports) <= max_scenes else [r for r in reports if r.issues][:max_scenes]
    parts = [format_scene(r) for r in shown]
    bad = sum(not r.ok for r in reports)
    frames = sum(r.frames for r in reports)
    posed = sum(r.posed for r in reports)
    parts.append(
        f"{len(reports)} scene(s), {frames} frames, {posed} posed; "
        + ("all OK" if not bad else f"{bad} scene(s) with errors")
        + f"; {sum(len(r.warnings) for r in reports)} warning(s)"
    )
    return "\n".join(parts)
