"""Scene folders: the project's native on-disk format for multi-view scenes.

Layout::

    <scene>/
      images/NNN[_name].{png,jpg}     frames, NNN = order in the source (video order)
      cameras.json                    posed scenes (or frames.json for unposed ones)
      depth/<image stem>.npy          optional float32 z-depth per frame (H, W)

``cameras.json`` = ``{"scene", "convention", ..., "frames": [{"file", "width", "height", "fx", "fy",
"cx", "cy", "c2w"}, ...]}`` with ``c2w`` a 4×4 camera-to-world matrix (nested lists) in OpenCV axes
(x right, y down, z forward) and pixel intrinsics of the stored image (principal point from the
top-left corner, pixel centres at +0.5). ``frames.json`` has the same ``frames`` list without the
camera keys. Depth is the camera-frame z coordinate in the units of ``c2w``; ``+inf`` where a ray
hits nothing.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from rayzer.geometry import resize_intrinsics
from rayzer.utils.atomic import staged_dir
from rayzer.utils.paths import path_inside

CAMERAS_JSON = "cameras.json"
FRAMES_JSON = "frames.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CONVENTION = (
    "c2w: 4x4 camera-to-world, OpenCV camera axes (x right, y down, z forward). fx,fy,cx,cy: "
    "pixels of the stored image; principal point measured from the top-left image corner (pixel "
    "centres at +0.5)."
)
DEPTH_CONVENTION = (
    "depth/<image stem>.npy: float32 (H, W) z-depth (camera-frame z, units of c2w); +inf where "
    "the ray hits nothing."
)
RIGID_TOL = 1e-3  # max |R^T R - I| and |det R - 1| accepted for a c2w rotation


@dataclass
class SceneFolder:
    """A loaded scene folder.

    Attributes:
        path: the folder.
        scene: scene name (``"scene"`` in the JSON, else the folder name).
        files: image paths relative to ``path``, in frame order, ``(V,)``.
        images: ``(V, 3, H, W)`` float32 in [0, 1] (at the requested size).
        c2w: ``(V, 4, 4)`` float32 camera-to-world (OpenCV axes), None for unposed scenes.
        K: ``(V, 4)`` float32 pixel intrinsics for the LOADED size, None for unposed scenes.
        depth: ``(V, H, W)`` float32 z-depth, None when the folder has no ``depth/``.
        index: ``(V,)`` int64 positions of the loaded frames in the folder's frame list.
        meta: the top-level JSON entries other than ``frames``.
        frames: the raw JSON frame entries of the loaded frames.
    """

    path: Path
    scene: str
    files: list[str]
    images: torch.Tensor
    c2w: torch.Tensor | None
    K: torch.Tensor | None
    depth: torch.Tensor | None
    index: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)
    frames: list[dict[str, Any]] = field(default_factory=list)

    @property
    def posed(self) -> bool:
        return self.c2w is not None

    def as_batch(self) -> dict[str, torch.Tensor]:
        """The batch dict of one sample (no batch dim); camera / depth keys when known."""
        batch = {"image": self.images, "index": self.index}
        if self.c2w is not None:
            batch["c2w"], batch["K"] = self.c2w, self.K
        if self.depth is not None:
            batch["depth"] = self.depth
        return batch


# ------------------------------------------------------------------------------------------------
# validation shared by reader and writer


def check_c2w(c2w: np.ndarray, where: str) -> None:
    """Raise ValueError unless ``c2w`` is a finite rigid 4×4 transform (rotation + translation)."""
    c2w = np.asarray(c2w, dtype=np.float64)
    if c2w.shape != (4, 4):
        raise ValueError(f"{where}: c2w must be 4x4, got shape {c2w.shape}")
    if not np.all(np.isfinite(c2w)):
        raise ValueError(f"{where}: c2w has non-finite entries")
    if np.abs(c2w[3] - [0, 0, 0, 1]).max() > RIGID_TOL:
        raise ValueError(f"{where}: c2w last row must be [0, 0, 0, 1], got {c2w[3].tolist()}")
    R = c2w[:3, :3]
    ortho = float(np.abs(R.T @ R - np.eye(3)).max())
    det = float(np.linalg.det(R))
    if ortho > RIGID_TOL or abs(det - 1.0) > RIGID_TOL:
        raise ValueError(
            f"{where}: c2w rotation is not rigid (max |R^T R - I| = {ortho:.2e}, det = {det:.6f}; "
            f"tolerance {RIGID_TOL})"
        )


def _check_intrinsics(k: Sequence[float], where: str) -> None:
    fx, fy, cx, cy = (float(v) for v in k)
    if not all(math.isfinite(v) for v in (fx, fy, cx, cy)):
        raise ValueError(f"{where}: intrinsics must be finite, got {(fx, fy, cx, cy)}")
    if fx <= 0 or fy <= 0:
        raise ValueError(f"{where}: focal lengths must be > 0, got fx={fx}, fy={fy}")


def _as_numpy(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as exc:
        raise ValueError(f"{name}: cannot convert to an array ({exc})") from None


# ------------------------------------------------------------------------------------------------
# writing


def write_scene_folder(
    out_dir: str | os.PathLike,
    images,
    c2w=None,
    K=None,
    depth=None,
    names: Sequence[str] | None = None,
    scene: str | None = None,
    meta: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a scene folder atomically.

    Everything is written into a temporary sibling directory which is renamed to ``out_dir`` only
    when complete, so an interrupted write never leaves a complete-looking half folder.

    Args:
        out_dir: the scene folder to create.
        images: ``(V, 3, H, W)`` float in [0, 1] (tensor or array); stored as 8-bit PNG.
        c2w: ``(V, 4, 4)`` camera-to-world (OpenCV axes) or None (unposed: writes ``frames.json``).
        K: ``(V, 4)`` pixel intrinsics (required with ``c2w``).
        depth: optional ``(V, H, W)`` z-depth, stored as float32 ``depth/<stem>.npy``.
        names: optional ``V`` unique file stems (default ``000``, ``001``, ...).
        scene: scene name (default: the folder name).
        meta: extra top-level JSON entries (JSON-serialisable).
        overwrite: replace an existing ``out_dir`` (otherwise FileExistsError).
    Returns:
        ``Path(out_dir)``.
    """
    out_dir = Path(out_dir)
    imgs, c2w_np, K_np, depth_np = _checked_arrays(images, c2w, K, depth)
    V, _, H, W = imgs.shape
    names = _checked_stems(names, V)
    with staged_dir(out_dir, overwrite) as tmp:
        (tmp / "images").mkdir(parents=True)
        if depth_np is not None:
            (tmp / "depth").mkdir()
        frames = []
        for i, stem in enumerate(names):
            file = f"images/{stem}.png"
            pixels = np.clip(imgs[i].transpose(1, 2, 0), 0.0, 1.0) * 255.0 + 0.5
            Image.fromarray(pixels.astype(np.uint8)).save(tmp / file)
            entry: dict[str, Any] = {"file": file, "width": int(W), "height": int(H)}
            if c2w_np is not None:
                fx, fy, cx, cy = (float(v) for v in K_np[i])
                entry.update(fx=fx, fy=fy, cx=cx, cy=cy, c2w=c2w_np[i].tolist())
            if depth_np is not None:
                np.save(tmp / "depth" / f"{stem}.npy", depth_np[i])
            frames.append(entry)
        doc: dict[str, Any] = {"scene": scene or out_dir.name}
        if c2w_np is not None:
            doc["convention"] = CONVENTION
        else:
            doc["poses"] = None
        if depth_np is not None:
            doc["depth_convention"] = DEPTH_CONVENTION
        for key, value in (meta or {}).items():
            if key == "frames":
                raise ValueError("meta must not contain the key 'frames'")
            doc.setdefault(key, value)
        doc["frames"] = frames
        json_name = CAMERAS_JSON if c2w_np is not None else FRAMES_JSON
        with open(tmp / json_name, "w") as f:
            json.dump(doc, f, indent=1, allow_nan=False)
    return out_dir


def _checked_arrays(
    images: Any, c2w: Any, K: Any, depth: Any
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """``images`` (V, 3, H, W) finite floats, rigid ``c2w`` (V, 4, 4) with valid ``K`` (V, 4)
    (both or neither), ``depth`` (V, H, W) float32 or None, as numpy arrays."""
    imgs = _as_numpy(images, "images")
    if imgs.ndim != 4 or imgs.shape[1] != 3 or imgs.shape[0] < 1:
        raise ValueError(f"images must have shape (V, 3, H, W) with V >= 1, got {imgs.shape}")
    V, _, H, W = imgs.shape
    if not np.issubdtype(imgs.dtype, np.floating) or not np.all(np.isfinite(imgs)):
        raise ValueError("images must be finite floats in [0, 1]")
    if (c2w is None) != (K is None):
        raise ValueError("c2w and K must be given together (or both None for an unposed scene)")
    c2w_np = K_np = depth_np = None
    if c2w is not None:
        c2w_np = _as_numpy(c2w, "c2w").astype(np.float64)
        K_np = _as_numpy(K, "K").astype(np.float64)
        if c2w_np.shape != (V, 4, 4):
            raise ValueError(f"c2w must have shape ({V}, 4, 4), got {c2w_np.shape}")
        if K_np.shape != (V, 4):
            raise ValueError(f"K must have shape ({V}, 4), got {K_np.shape}")
        for i in range(V):
            check_c2w(c2w_np[i], f"frame {i}")
            _check_intrinsics(K_np[i], f"frame {i}")
    if depth is not None:
        depth_np = _as_numpy(depth, "depth").astype(np.float32)
        if depth_np.shape != (V, H, W):
            raise ValueError(f"depth must have shape ({V}, {H}, {W}), got {depth_np.shape}")
    return imgs, c2w_np, K_np, depth_np


def _checked_stems(names: Sequence[str] | None, V: int) -> list[str]:
    """``V`` unique file stems without path separators or leading dots (default ``000``, …)."""
    if names is None:
        digits = max(3, len(str(V - 1)))
        names = [f"{i:0{digits}d}" for i in range(V)]
    names = [str(n) for n in names]
    if len(names) != V or len(set(names)) != V:
        raise ValueError(
            f"names must be {V} unique stems, got {len(names)} ({len(set(names))} unique)"
        )
    bad = [n for n in names if not n or "/" in n or "\\" in n or n.startswith(".")]
    if bad:
        raise ValueError(f"invalid file stems {bad[:3]}: no path separators or leading dots")
    return names


# ------------------------------------------------------------------------------------------------
# reading


def load_scene_json(path: Path) -> dict[str, Any]:
    """A scene file's JSON: an object with a non-empty ``frames`` list (ValueError otherwise)."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("frames"), list) or not doc["frames"]:
        raise ValueError(f"{path}: expected an object with a non-empty 'frames' list")
    return doc


def _target_size(
    hw: tuple[int, int], size: tuple[int, int] | None, max_side: int | None
) -> tuple[int, int]:
    if size is not None:
        h, w = (int(v) for v in size)
        if h < 1 or w < 1:
            raise ValueError(f"size must be a positive (height, width), got {size}")
        return h, w
    if max_side is not None:
        if int(max_side) < 1:
            raise ValueError(f"max_side must be >= 1, got {max_side}")
        scale = min(1.0, int(max_side) / max(hw))
        return max(1, round(hw[0] * scale)), max(1, round(hw[1] * scale))
    return hw


def _read_image(path: Path) -> Image.Image:
    if not path.is_file():
        raise FileNotFoundError(f"image listed in the scene file is missing: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from None


def _resize_depth(depth: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resampling at the new pixel centres (depth must not be blended across
    occlusion boundaries)."""
    H, W = depth.shape
    rows = np.minimum(((np.arange(hw[0]) + 0.5) * H / hw[0]).astype(np.int64), H - 1)
    cols = np.minimum(((np.arange(hw[1]) + 0.5) * W / hw[1]).astype(np.int64), W - 1)
    return depth[rows[:, None], cols[None, :]]


def read_scene_folder(
    path: str | os.PathLike,
    *,
    indices: Sequence[int] | None = None,
    size: tuple[int, int] | None = None,
    max_side: int | None = None,
    load_depth: bool = True,
    strict: bool = True,
) -> SceneFolder:
    """Read a scene folder (``cameras.json`` if present, else ``frames.json``).

    Args:
        path: the scene folder.
        indices: load only these positions of the frame list (default: all, in order).
        size: resize every image to ``(H, W)``; or ``max_side``: shrink (never enlarge) so the
            longer side is at most this, keeping the aspect ratio. Intrinsics are updated with
            ``rayzer.geometry.resize_intrinsics`` (scaling about the image corner, the convention
            of Pillow's resampling); depth is resampled nearest-neighbour.
        load_depth: load ``depth/<stem>.npy`` when the folder has a ``depth`` directory.
        strict: also require that ``images/`` holds no image files missing from the frame list.
    Returns:
        :class:`SceneFolder`.
    Raises:
        FileNotFoundError: missing folder, scene file, image or depth file (named).
        ValueError: malformed JSON, duplicate or unlisted frames, bad / non-rigid cameras,
            unreadable images, width/height that disagree with the image, mixed image sizes.
    """
    root = Path(path)
    json_path = scene_file(root)
    doc = load_scene_json(json_path)
    all_frames = doc["frames"]
    _check_frame_files(root, json_path, all_frames, strict)
    indices = _check_indices(indices, len(all_frames))
    frames = [all_frames[i] for i in indices]
    images, orig_hw, new_hw = _load_images(root, json_path, frames, size, max_side)
    c2w = K = None
    if json_path.name == CAMERAS_JSON:
        c2w, K = _load_cameras(json_path, frames, orig_hw, new_hw)
    depth = None
    if load_depth and (root / "depth").is_dir():
        depth = _load_depth(root, frames, orig_hw, new_hw)
    return SceneFolder(
        path=root,
        scene=str(doc.get("scene") or root.name),
        files=[fr["file"] for fr in frames],
        images=images,
        c2w=c2w,
        K=K,
        depth=depth,
        index=torch.tensor(indices, dtype=torch.int64),
        meta={k: v for k, v in doc.items() if k != "frames"},
        frames=frames,
    )


def scene_file(root: Path) -> Path:
    """``cameras.json`` (posed scene) or else ``frames.json`` (unposed) of a scene folder."""
    if not root.is_dir():
        raise FileNotFoundError(f"scene folder not found: {root}")
    for name in (CAMERAS_JSON, FRAMES_JSON):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"{root}: neither {CAMERAS_JSON} nor {FRAMES_JSON} found")


@dataclass(frozen=True)
class SceneHeader:
    """What a scene folder's JSON says without decoding an image: its name, frame count and
    whether it is posed (``cameras.json``) or not (``frames.json``)."""

    name: str
    path: Path
    num_frames: int
    posed: bool


def read_scene_header(path: str | os.PathLike) -> SceneHeader:
    """The :class:`SceneHeader` of a scene folder (the name: ``"scene"`` in the JSON, else the
    folder name). Raises FileNotFoundError (no scene file) or ValueError (not a scene file)."""
    root = Path(path)
    json_path = scene_file(root)
    try:
        doc = json.loads(json_path.read_text())
        count = len(doc["frames"])
        name = str(doc.get("scene") or root.name)
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{json_path}: not a valid scene file ({exc})") from None
    return SceneHeader(name, root, count, json_path.name == CAMERAS_JSON)


def _check_frame_files(root: Path, json_path: Path, all_frames: list[Any], strict: bool) -> None:
    """Every frame names a distinct file inside the folder; with ``strict``, every image in
    ``images/`` is listed."""
    files: list[str] = []
    for i, fr in enumerate(all_frames):
        if not isinstance(fr, dict) or not isinstance(fr.get("file"), str) or not fr["file"]:
            raise ValueError(f"{json_path}: frame {i} has no 'file' string")
        try:
            path_inside(root, fr["file"])
        except ValueError as exc:
            raise ValueError(f"{json_path}: frame {i}: {exc}") from None
        files.append(fr["file"])
    dupes = sorted({f for f in files if files.count(f) > 1})
    if dupes:
        raise ValueError(f"{json_path}: duplicate frame files {dupes[:5]}")
    if strict and (root / "images").is_dir():
        listed = {os.path.normpath(f) for f in files}
        on_disk = {
            os.path.normpath(os.path.join("images", p.name))
            for p in (root / "images").iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES
        }
        unlisted = sorted(on_disk - listed)
        if unlisted:
            raise ValueError(
                f"{json_path}: frames do not match the files: {len(unlisted)} image(s) in images/ "
                f"are not listed, e.g. {unlisted[:3]} (pass strict=False to ignore)"
            )


def _check_indices(indices: Sequence[int] | None, n_frames: int) -> list[int]:
    """The selected frame positions (default: all), each in ``[0, n_frames)``."""
    if indices is None:
        indices = range(n_frames)
    indices = [int(i) for i in indices]
    if not indices:
        raise ValueError("indices must select at least one frame")
    bad = [i for i in indices if not 0 <= i < n_frames]
    if bad:
        raise ValueError(f"indices {bad[:5]} out of range for {n_frames} frames")
    return indices


def _load_images(
    root: Path,
    json_path: Path,
    frames: list[dict[str, Any]],
    size: tuple[int, int] | None,
    max_side: int | None,
) -> tuple[torch.Tensor, list[tuple[int, int]], list[tuple[int, int]]]:
    """The frames' images as ``(V, 3, H, W)`` float32 in [0, 1], with each frame's stored and
    loaded ``(H, W)``; width / height entries of the scene file must match the image."""
    pil_images, orig_hw = [], []
    for fr in frames:
        img_path = root / fr["file"]
        im = _read_image(img_path)
        for key, actual in (("width", im.width), ("height", im.height)):
            if key in fr and int(fr[key]) != actual:
                raise ValueError(
                    f"{img_path}: {json_path.name} says {key} = {fr[key]}, the image has {actual}"
                )
        pil_images.append(im)
        orig_hw.append((im.height, im.width))
    if size is None and len(set(orig_hw)) > 1:
        raise ValueError(
            f"{root}: images have different sizes {sorted(set(orig_hw))[:3]}; pass size=(H, W)"
        )

    images, new_hw = [], []
    for im, hw in zip(pil_images, orig_hw):
        hw_new = _target_size(hw, size, max_side)
        if hw_new != hw:
            im = im.resize((hw_new[1], hw_new[0]), Image.Resampling.LANCZOS)
        images.append(torch.from_numpy(np.asarray(im, np.float32) / 255.0).permute(2, 0, 1))
        new_hw.append(hw_new)
    return torch.stack(images), orig_hw, new_hw


def _load_cameras(
    json_path: Path,
    frames: list[dict[str, Any]],
    orig_hw: list[tuple[int, int]],
    new_hw: list[tuple[int, int]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked ``c2w (V, 4, 4)`` and ``K (V, 4)`` (intrinsics for the loaded size), float32."""
    c2w_list, K_list = [], []
    for fr, hw, hw_new in zip(frames, orig_hw, new_hw):
        m, k = _checked_camera(json_path, fr)
        k_t = torch.from_numpy(k)
        if hw_new != hw:
            k_t = resize_intrinsics(k_t, hw, hw_new)
        c2w_list.append(torch.from_numpy(m))
        K_list.append(k_t)
    return torch.stack(c2w_list).float(), torch.stack(K_list).float()


def _checked_camera(json_path: Path, fr: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """One frame's ``c2w (4, 4)`` and ``[fx, fy, cx, cy]`` (float64), checked: keys present,
    numbers, a finite rigid c2w, finite intrinsics with positive focal lengths."""
    where = f"{json_path} frame {fr['file']}"
    missing = [k for k in ("fx", "fy", "cx", "cy", "c2w") if k not in fr]
    if missing:
        raise ValueError(f"{where}: missing camera key(s) {missing}")
    try:
        m = np.asarray(fr["c2w"], dtype=np.float64)
        k = np.array([fr["fx"], fr["fy"], fr["cx"], fr["cy"]], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: cameras must be numbers ({exc})") from None
    check_c2w(m, where)
    _check_intrinsics(k, where)
    return m, k


def check_scene_frames(path: str | os.PathLike) -> None:
    """Check every frame of a scene folder without decoding images: its file exists (inside
    the folder) and, in a ``cameras.json``, its camera is valid.

    Why: :func:`read_scene_folder` checks the frames it loads; a command that uses a few
    frames of each scene (evaluation) calls this first so that a damaged camera or a missing
    image in a frame it happens not to use is still reported instead of passing silently.

    Raises:
        FileNotFoundError / ValueError: naming the file, the frame and the problem (as
            :func:`read_scene_folder`).
    """
    root = Path(path)
    json_path = scene_file(root)
    frames = load_scene_json(json_path)["frames"]
    _check_frame_files(root, json_path, frames, strict=False)
    for fr in frames:
        if not (root / fr["file"]).is_file():
            raise FileNotFoundError(
                f"image listed in the scene file is missing: {root / fr['file']}"
            )
        if json_path.name == CAMERAS_JSON:
            _checked_camera(json_path, fr)


def _load_depth(
    root: Path,
    frames: list[dict[str, Any]],
    orig_hw: list[tuple[int, int]],
    new_hw: list[tuple[int, int]],
) -> torch.Tensor:
    """``depth/<stem>.npy`` of every frame, resampled to the loaded size: ``(V, H, W)`` float32."""
    maps = []
    for fr, hw, hw_new in zip(frames, orig_hw, new_hw):
        dpath = root / "depth" / f"{Path(fr['file']).stem}.npy"
        if not dpath.is_file():
            raise FileNotFoundError(f"depth map missing for {fr['file']}: {dpath}")
        try:
            d = np.load(dpath, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ValueError(f"cannot read depth map {dpath}: {exc}") from None
        if d.shape != hw:
            raise ValueError(f"{dpath}: depth shape {d.shape} != image size {hw}")
        d = d.astype(np.float32)
        maps.append(torch.from_numpy(_resize_depth(d, hw_new) if hw_new != hw else d))
    return torch.stack(maps)
