"""A plain folder of images (unposed): natural sort, EXIF orientation applied.

The folder itself or its ``images/`` subfolder. Frames are ordered by natural sort of the file names
(``img2`` before ``img10``) and keep their names. A JPEG whose EXIF orientation tag is not
"normal" is decoded, rotated / mirrored upright (``PIL.ImageOps.exif_transpose``) and re-encoded, so
every consumer sees the same pixels; other files are copied byte for byte.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from rayzer.data.formats.base import IMAGE_EXTENSIONS, SourceFrame, SourceScene, list_images

EXIF_ORIENTATION = 0x0112


def image_dir(path: Path) -> Path | None:
    """The folder holding the images: ``path`` or ``path/images`` (None if neither has any)."""
    for folder in (path, path / "images"):
        if folder.is_dir() and any(
            p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir() if p.is_file()
        ):
            return folder
    return None


def _upright_opener(path: Path):
    def _open() -> bytes | Image.Image:
        if not path.is_file():
            raise FileNotFoundError(f"image file is missing: {path}")
        data = path.read_bytes()
        try:
            with Image.open(io.BytesIO(data)) as im:
                orientation = im.getexif().get(EXIF_ORIENTATION, 1)
                if orientation in (None, 1):
                    return data
                im.load()
                return ImageOps.exif_transpose(im)
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise ValueError(f"cannot read image {path}: {exc}") from None

    return _open


def read_image_folder(path: str | Path) -> list[SourceScene]:
    """Read a folder of images into one unposed :class:`SourceScene`."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    folder = image_dir(root)
    if folder is None:
        raise ValueError(
            f"{root}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in it or in images/"
        )
    frames = [
        SourceFrame(name=p.name, source_file=str(p.relative_to(root)), open=_upright_opener(p))
        for p in list_images(folder)
    ]
    meta = {
        "source_format": "images",
        "conversion": "natural sort of file names; EXIF orientation applied (re-encoded when rotated)",
    }
    return [SourceScene(name=root.resolve().name, frames=frames, meta=meta)]
