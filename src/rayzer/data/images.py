"""User photos and video frames → model input views, with a documented resize / crop policy.

Policy (the same for the CLI and the Python API):

1. **Order**: an image folder (or its ``images/`` subfolder) is read in natural sort order of
   the file names (``img2`` before ``img10``); a video in frame order. When there are more than
   ``max_views``, that many are kept, evenly spaced over the sequence (first and last included).
2. **Decode**: EXIF orientation is applied (phone photos come out upright); every mode becomes
   8-bit RGB: alpha (RGBA, LA, palette transparency) is composited over white, 16-bit and
   32-bit integer images are scaled from their full range (65535 → 255), float images are
   clipped to [0, 1], grayscale / CMYK / palette images are converted.
3. **Size**: the model input is ``H × W``. ``aspect="square"`` (default, the training
   distribution): ``S × S`` with ``S = size`` (default: the model's training size), which must
   be a multiple of the patch size. ``aspect="keep"``: the short side is ``S`` and the long side
   follows the aspect ratio of the first view, rounded down to a multiple of the patch size and
   at most ``2 S``.
4. **Resample**: every view is scaled (antialiased, Lanczos) so that it covers ``H × W`` and is
   centre-cropped: "resize the short side, centre-crop the long side". Views of other sizes or
   aspect ratios are each fitted the same way (a note records it: the model predicts one focal
   length for all views, so they should come from one camera).
5. **Pixel mapping**: with the crop box ``(x0, y0, x1, y1)`` in pixels of the upright source
   image, ``u = (u_src - x0) W / (x1 - x0)`` (corner convention, pixel centres at +0.5), so
   intrinsics predicted for the view map back to the source as
   ``fx_src = fx (x1 - x0) / W``, ``cx_src = x0 + cx (x1 - x0) / W`` (same for y).

Memory: JPEGs are decoded at a reduced scale when they are much larger than needed (Pillow's
``draft``: DCT scaling by 1/2, 1/4 or 1/8), so a 10000×10000 photo costs about as much as a
1250×1250 one. Other formats are decoded at full size, one image at a time, and refused beyond
Pillow's decompression-bomb limit. Decoding errors name the file; with ``skip_bad`` an
undecodable image is skipped with a warning instead.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from rayzer.data.formats.base import IMAGE_EXTENSIONS, list_images
from rayzer.data.formats.image_folder import EXIF_ORIENTATION, image_dir
from rayzer.data.formats.video import read_video, select_frames

log = logging.getLogger("rayzer.infer")

MIN_VIEWS = 2
MAX_VIEWS = 64
MAX_ASPECT = 2.0  # aspect="keep": the long side is at most this times the short side
# Largest short side accepted: 4x the paper's 256 px training size. Far from the training size the
# models degrade anyway, and attention cost grows with the 4th power of the side (24 views at
# 1024 px, patch 16, are ~98k tokens); without a bound a typo ends in an out-of-memory kill.
MAX_SIZE = 1024
ASPECTS = ("square", "keep")
# Source images outside these bounds hold no usable view: a 1x1 icon would be upsampled into a
# flat square, and the centre crop of a 200:1 strip is half a percent of it.
MIN_SOURCE_SIDE = 8
MAX_SOURCE_ASPECT = 10.0
_TRANSPOSED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


@dataclass
class PreparedView:
    """Where one input view came from and how it was fitted to the model input.

    Attributes:
        name: output file stem (``NNN_<source stem>``, NNN = position in capture order).
        source: the source file (or ``video.mp4#frame=N``).
        source_size: ``(W, H)`` of the upright source image.
        box: crop box ``(x0, y0, x1, y1)`` in source pixels (see module doc, item 5).
        decoded_size: ``(W, H)`` actually decoded (smaller than ``source_size`` for drafted JPEGs).
    """

    name: str
    source: str
    source_size: tuple[int, int]
    box: tuple[float, float, float, float]
    decoded_size: tuple[int, int]

    def source_intrinsics(self, K: Sequence[float], out_wh: tuple[int, int]) -> list[float]:
        """Pixel intrinsics ``(fx, fy, cx, cy)`` of the view → of the upright source image."""
        x0, y0, x1, y1 = self.box
        sx, sy = (x1 - x0) / out_wh[0], (y1 - y0) / out_wh[1]
        fx, fy, cx, cy = (float(v) for v in K)
        return [fx * sx, fy * sy, x0 + cx * sx, y0 + cy * sy]


@dataclass
class PreparedViews:
    """Model-ready views of one capture.

    Attributes:
        images: ``(V, H, W, 3)`` uint8 RGB, in capture order.
        views: per-view provenance, ``V`` entries.
        kind: ``"images"``, ``"video"`` or ``"files"``.
        source: the folder, video or a description of the file list.
        found: number of candidate images / frames in the source.
        skipped: ``[{"file", "reason"}]`` of undecodable images skipped under ``skip_bad``.
        notes: human-readable remarks (subsampling, mixed sizes, ...).
        at_sizes: the same views at other short sides, ``{size: (V, H', W', 3) uint8}``, each
            fitted from the same decode with its own crop box of the same aspect ratio (what
            ``also_sizes`` of the loaders asked for, e.g. ``rayzer infer --fit-size``).
    """

    images: np.ndarray
    views: list[PreparedView]
    kind: str
    source: str
    found: int
    skipped: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    at_sizes: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.images.shape[1])

    @property
    def width(self) -> int:
        return int(self.images.shape[2])

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.views]

    def __len__(self) -> int:
        return len(self.views)


# ------------------------------------------------------------------------------------------------
# geometry of the policy


def output_size(
    size: int, patch_size: int, aspect: str = "square", first_wh: tuple[int, int] | None = None
) -> tuple[int, int]:
    """Model input ``(H, W)`` for short side ``size`` (see module doc, item 3)."""
    if aspect not in ASPECTS:
        raise ValueError(f"aspect must be one of {', '.join(ASPECTS)}, got {aspect!r}")
    if size < patch_size or size % patch_size:
        raise ValueError(
            f"--size {size} must be a positive multiple of the model's patch size {patch_size}"
        )
    if size > MAX_SIZE:
        raise ValueError(f"--size {size} is too large: at most {MAX_SIZE} pixels")
    if aspect == "square" or first_wh is None:
        return size, size
    w, h = first_wh
    ratio = min(max(w, h) / min(w, h), MAX_ASPECT)
    long = max(patch_size, math.floor(size * ratio / patch_size) * patch_size)
    return (size, long) if w >= h else (long, size)


def cover_box(src_wh: tuple[int, int], out_hw: tuple[int, int]) -> tuple[float, ...]:
    """Centre crop box ``(x0, y0, x1, y1)`` of the source with the aspect of ``out_hw``, as large
    as possible: scaling it to ``out_hw`` is "resize to cover, then centre-crop"."""
    w, h = src_wh
    H, W = out_hw
    s = max(W / w, H / h)
    bw, bh = W / s, H / s
    x0, y0 = (w - bw) / 2.0, (h - bh) / 2.0
    return (x0, y0, x0 + bw, y0 + bh)


# ------------------------------------------------------------------------------------------------
# decoding


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode → 8-bit RGB (see module doc, item 2)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode.startswith("I") or mode == "F":
        a = np.asarray(img)
        if mode == "F":
            a = np.clip(np.nan_to_num(a.astype(np.float64)), 0.0, 1.0) * 255.0
        elif mode.startswith("I;16") or a.max(initial=0) > 255:
            # Pillow's own I;16 -> RGB conversion clips at 255 (a white image); scale instead.
            a = np.clip(a.astype(np.float64), 0, 65535) / 257.0
        gray = np.clip(a + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    return img.convert("RGB")


def _open_error(path: Path, err: BaseException) -> ValueError:
    if isinstance(err, Image.DecompressionBombError):
        return ValueError(f"{path}: image too large to decode safely ({err})")
    if isinstance(err, UnidentifiedImageError):
        return ValueError(f"{path}: not an image file Pillow can read (wrong extension or damaged)")
    if "truncated" in str(err).lower():
        return ValueError(f"{path}: cannot decode the image: the file is truncated ({err})")
    return ValueError(f"{path}: cannot decode the image ({err})")


def image_header(path: Path) -> tuple[int, int]:
    """Upright ``(W, H)`` from the file header (no pixel decoding)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                orientation = im.getexif().get(EXIF_ORIENTATION, 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise _open_error(path, err) from None
    except Image.DecompressionBombError as err:
        raise _open_error(path, err) from None
    return (h, w) if orientation in _TRANSPOSED else (w, h)


def decode_image(
    path: str | Path, out_hw: tuple[int, int] | None = None
) -> tuple[Image.Image, tuple[int, int]]:
    """Decode an image upright as 8-bit RGB.

    Args:
        path: the file.
        out_hw: the size it will be fitted to; JPEGs much larger than that are decoded at a
            reduced scale (draft), so the result may be smaller than the source.
    Returns:
        ``(image, source_wh)``: the decoded RGB image and the upright size of the full source.
    Raises:
        ValueError: not an image, truncated / corrupt data, too large (the message names the file).
    """
    path = Path(path)
    im = None
    try:
        with warnings.catch_warnings():
            # Huge images are expected here: JPEGs are drafted down, others are bounded by
            # Pillow's DecompressionBombError (twice the warning threshold).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        stored_w, stored_h = im.size
        orientation = im.getexif().get(EXIF_ORIENTATION, 1)
        upright = (stored_h, stored_w) if orientation in _TRANSPOSED else (stored_w, stored_h)
        if out_hw is not None and im.format == "JPEG":
            s = max(out_hw[1] / upright[0], out_hw[0] / upright[1])
            if s < 0.5:
                im.draft("RGB", (math.ceil(stored_w * s), math.ceil(stored_h * s)))
        im.load()  # closes the file of a single-frame image; no copy of the pixels is made
        img = ImageOps.exif_transpose(im) if orientation not in (None, 1) else im
    except Image.DecompressionBombError as err:
        raise _open_error(path, err) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        if im is not None:
            im.close()
        raise _open_error(path, err) from None
    _check_source_shape(path, upright)
    return to_rgb(img), upright


def _check_source_shape(path: Path, wh: tuple[int, int]) -> None:
    """Refuse a source too small or too elongated to hold a view (:data:`MIN_SOURCE_SIDE`,
    :data:`MAX_SOURCE_ASPECT`), naming the file and its size."""
    w, h = wh
    if min(w, h) < MIN_SOURCE_SIDE:
        raise ValueError(
            f"{path}: image of {w}x{h} px is too small to hold a view (at least "
            f"{MIN_SOURCE_SIDE} px a side)"
        )
    if max(w, h) > MAX_SOURCE_ASPECT * min(w, h):
        raise ValueError(
            f"{path}: image of {w}x{h} px is a strip (aspect ratio {max(w, h) / min(w, h):.0f}:1, "
            f"at most {MAX_SOURCE_ASPECT:g}:1): not a photo of the scene"
        )


def fit_image(
    img: Image.Image, source_wh: tuple[int, int], out_hw: tuple[int, int]
) -> tuple[np.ndarray, tuple[float, ...]]:
    """Resize-to-cover + centre-crop ``img`` to ``out_hw`` in one antialiased resampling.

    ``img`` may be a reduced decode of a source of size ``source_wh``; the crop box is computed
    (and returned) in source pixels. Returns ``((H, W, 3) uint8, box)``.
    """
    H, W = out_hw
    box = cover_box(source_wh, out_hw)
    sx, sy = img.width / source_wh[0], img.height / source_wh[1]
    box_img = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
    out = img.resize((W, H), Image.Resampling.LANCZOS, box=box_img, reducing_gap=3.0)
    return np.asarray(out, dtype=np.uint8), box


# ------------------------------------------------------------------------------------------------
# sources


def _check_max_views(max_views: int) -> None:
    if not MIN_VIEWS <= max_views <= MAX_VIEWS:
        raise ValueError(f"--max-views must be in [{MIN_VIEWS}, {MAX_VIEWS}], got {max_views}")


def _stem(text: str) -> str:
    """A file stem safe for COLMAP's whitespace-separated images.txt and every file system."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(text).stem).strip("._")
    return clean or "view"


def _names(stems: list[str]) -> list[str]:
    digits = max(3, len(str(len(stems) - 1)))
    return [f"{i:0{digits}d}_{s}" for i, s in enumerate(stems)]


def _too_few(source: str, count: int, skipped: list[dict[str, str]]) -> ValueError:
    msg = (
        f"{source}: {count} usable view{'s' if count != 1 else ''}; RayZer needs at least "
        f"{MIN_VIEWS} views of the same scene"
    )
    if skipped:
        msg += f" ({len(skipped)} skipped: " + "; ".join(s["reason"] for s in skipped[:3]) + ")"
    return ValueError(msg)


def _size_notes(sizes: list[tuple[int, int]], out_hw: tuple[int, int]) -> list[str]:
    notes = []
    if len(set(sizes)) > 1:
        aspects = sorted({round(w / h, 2) for w, h in sizes})
        if len(aspects) > 1:
            notes.append(
                f"views have different aspect ratios {aspects}: each was centre-cropped to "
                f"{out_hw[1]}x{out_hw[0]}, and the model predicts one focal length for all views"
            )
        else:
            notes.append(
                f"views have {len(set(sizes))} different sizes (same aspect): all were resampled "
                f"to {out_hw[1]}x{out_hw[0]}"
            )
    return notes


def _prepare(
    items: Sequence[tuple[str, str, Callable[[tuple[int, int] | None], tuple[Image.Image, Any]]]],
    header: Callable[[int], tuple[int, int]] | None,
    size: int,
    patch_size: int,
    aspect: str,
    skip_bad: bool,
    source: str,
    also_sizes: Sequence[int] = (),
) -> tuple[np.ndarray, list[PreparedView], list[dict[str, str]], list[str], dict[int, np.ndarray]]:
    """Decode and fit ``items`` = ``(source label, stem, open(out_hw) -> (img, source_wh))``;
    each item is decoded once (for the largest size asked) and fitted at ``size`` and at each
    of ``also_sizes`` (returned last, ``{size: (V, H', W', 3)}``)."""
    # A bad size fails before any decoding; "keep" takes the aspect ratio of the first view.
    square = output_size(size, patch_size, aspect)
    also = [s for s in dict.fromkeys(also_sizes) if s != size]
    also_square = {s: output_size(s, patch_size, aspect) for s in also}
    out_hw: tuple[int, int] | None = square if aspect == "square" else None
    also_hw: dict[int, tuple[int, int]] = also_square if aspect == "square" else {}

    def sizes_of(wh: tuple[int, int]) -> None:  # "keep": the first view's aspect ratio
        nonlocal out_hw, also_hw
        out_hw = output_size(size, patch_size, aspect, wh)
        also_hw = {s: output_size(s, patch_size, aspect, wh) for s in also}

    pixels: list[np.ndarray] = []
    also_pixels: dict[int, list[np.ndarray]] = {s: [] for s in also}
    kept: list[tuple[str, str, tuple[int, int], tuple[float, ...], tuple[int, int]]] = []
    skipped: list[dict[str, str]] = []
    for k, (label, stem, opener) in enumerate(items):
        try:
            if out_hw is None and header is not None:
                sizes_of(header(k))
            # decoded for the largest size asked (a JPEG's reduced decode must cover it)
            largest = (
                None
                if out_hw is None
                else max([out_hw, *also_hw.values()], key=lambda x: x[0] * x[1])
            )
            img, src_wh = opener(largest)
            if out_hw is None:
                sizes_of(src_wh)
            arr, box = fit_image(img, src_wh, out_hw)
            extra = {s: fit_image(img, src_wh, hw)[0] for s, hw in also_hw.items()}
        except ValueError as err:  # decoding errors only: the size was checked above
            if not skip_bad:
                raise
            log.warning("skipped %s", err)
            skipped.append({"file": label, "reason": str(err)})
            continue
        pixels.append(arr)
        for s, a in extra.items():
            also_pixels[s].append(a)
        kept.append((label, stem, src_wh, box, img.size))
    if len(kept) < MIN_VIEWS:
        raise _too_few(source, len(kept), skipped)
    assert out_hw is not None
    names = _names([stem for _, stem, *_ in kept])
    views = [
        PreparedView(name=n, source=label, source_size=tuple(wh), box=tuple(box), decoded_size=dec)
        for n, (label, _, wh, box, dec) in zip(names, kept)
    ]
    notes = _size_notes([v.source_size for v in views], out_hw)
    return np.stack(pixels), views, skipped, notes, {s: np.stack(a) for s, a in also_pixels.items()}


def _subsample(count: int, max_views: int, what: str, notes: list[str]) -> list[int]:
    picks = select_frames(count, num_frames=max_views)
    if len(picks) < count:
        notes.append(f"{count} {what} found; kept {len(picks)} evenly spaced (--max-views)")
    return picks


def load_image_files(
    paths: Sequence[str | Path],
    size: int,
    patch_size: int,
    aspect: str = "square",
    max_views: int = MAX_VIEWS,
    skip_bad: bool = False,
    source: str | None = None,
    sort: bool = False,
    also_sizes: Sequence[int] = (),
) -> PreparedViews:
    """Views from a list of image files, in the given order (or natural order with ``sort``);
    with ``also_sizes``, each file decoded once is also fitted at those short sides
    (:attr:`PreparedViews.at_sizes`).

    Raises:
        FileNotFoundError: a listed file does not exist.
        ValueError: undecodable image (unless ``skip_bad``), fewer than 2 usable views, bad size.
    """
    _check_max_views(max_views)
    files = [Path(p) for p in paths]
    if sort:
        from rayzer.data.formats.base import natural_key

        files.sort(key=lambda p: natural_key(p.name))
    source = source or (f"{len(files)} image files" if files else "image list")
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"image file not found: {missing[0]}")
    if len(files) < MIN_VIEWS:
        raise _too_few(source, len(files), [])
    notes: list[str] = []
    files = [files[i] for i in _subsample(len(files), max_views, "images", notes)]
    items = [(str(p), _stem(p.name), lambda hw, p=p: decode_image(p, hw)) for p in files]
    header = None
    if aspect == "keep":

        def header(k: int) -> tuple[int, int]:
            return image_header(files[k])

    images, views, skipped, size_notes, at_sizes = _prepare(
        items, header, size, patch_size, aspect, skip_bad, source, also_sizes
    )
    return PreparedViews(
        images=images,
        views=views,
        kind="files",
        source=source,
        found=len(paths),
        skipped=skipped,
        notes=notes + size_notes,
        at_sizes=at_sizes,
    )


def find_image_files(folder: str | Path) -> list[Path]:
    """Image files of a folder (or of its ``images/`` subfolder) in natural sort order.

    Raises:
        FileNotFoundError: no such folder. ValueError: a file, or no image files in it.
    """
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"image folder not found: {root}")
    if not root.is_dir():
        raise ValueError(f"{root} is a file; --images expects a folder of images (or use --video)")
    found = image_dir(root)
    if found is None:
        raise ValueError(
            f"{root}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in it or in its images/ "
            "subfolder"
        )
    return list_images(found)


def load_image_folder(
    folder: str | Path,
    size: int,
    patch_size: int,
    aspect: str = "square",
    max_views: int = MAX_VIEWS,
    skip_bad: bool = False,
    also_sizes: Sequence[int] = (),
) -> PreparedViews:
    """Views from a folder of images (or its ``images/`` subfolder), in natural sort order
    (``also_sizes``: as :func:`load_image_files`).

    Raises:
        FileNotFoundError: no such folder.
        ValueError: not a folder, no images in it, only one, undecodable images (unless
            ``skip_bad``), bad size.
    """
    root = Path(folder)
    files = find_image_files(root)
    views = load_image_files(
        files, size, patch_size, aspect, max_views, skip_bad, source=str(root), sort=False,
        also_sizes=also_sizes,
    )  # fmt: skip
    views.kind = "images"
    return views


def load_video_frames(
    video: str | Path,
    size: int,
    patch_size: int,
    aspect: str = "square",
    max_views: int = 24,
    also_sizes: Sequence[int] = (),
) -> PreparedViews:
    """``max_views`` frames evenly spaced over a video (first and last included), in order
    (``also_sizes``: as :func:`load_image_files`).

    Raises:
        FileNotFoundError: no such file. ValueError: undecodable video, fewer than 2 frames.
    """
    _check_max_views(max_views)
    for s in (size, *also_sizes):  # a bad --size fails before the video is opened
        output_size(s, patch_size, aspect)
    (scene,) = read_video(video, num_frames=max_views)
    total = int(scene.meta.get("source_frames", len(scene.frames)))
    notes = []
    if total > len(scene.frames):
        notes.append(f"video has {total} frames; kept {len(scene.frames)} evenly spaced")

    def opener(frame):
        def _open(_hw):
            img = frame.open()
            return to_rgb(img), img.size

        return _open

    items = [(f.source_file, _stem(f.name), opener(f)) for f in scene.frames]
    images, views, skipped, size_notes, at_sizes = _prepare(
        items, None, size, patch_size, aspect, False, str(video), also_sizes
    )
    return PreparedViews(
        images=images,
        views=views,
        kind="video",
        source=str(video),
        found=total,
        skipped=skipped,
        notes=notes + size_notes,
        at_sizes=at_sizes,
    )
