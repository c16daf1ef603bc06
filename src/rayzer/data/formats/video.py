"""A video file (unposed): frames at a stride or a target count, decoded with imageio-ffmpeg.

imageio-ffmpeg ships its own ffmpeg binary (a core dependency), so no system ffmpeg or PyAV is
needed. ffmpeg applies the rotation metadata of phone videos. Frames are decoded in one sequential
pass and written as ``frame_<index>.jpg`` (index = frame number in the video; JPEG quality 95) with
``source_frame`` and ``time`` (seconds) recorded per frame.

Selection: ``stride=k`` keeps frames 0, k, 2k, ...; ``num_frames=n`` keeps n frames evenly spaced
over the whole video (first and last included); both may be combined with ``max_frames``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from rayzer.data.formats.base import SourceFrame, SourceScene

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


def _ffmpeg_error(exc: Exception) -> str:
    """The last informative line of an ffmpeg error (its banner is hundreds of lines long)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if "rror" in ln or "nvalid" in ln or "matches no streams" in ln]
    return (useful or lines or [type(exc).__name__])[-1]


def select_frames(
    total: int,
    stride: int | None = None,
    num_frames: int | None = None,
    max_frames: int | None = None,
) -> list[int]:
    """Frame numbers to keep out of ``total`` (see module doc)."""
    if stride is not None and num_frames is not None:
        raise ValueError("give either stride or num_frames, not both")
    if stride is not None and stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if num_frames is not None and num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if num_frames is not None:
        # round half up: np.round's half-to-even could merge two neighbouring picks
        spaced = np.floor(np.linspace(0, total - 1, min(num_frames, total)) + 0.5)
        picks = sorted({int(x) for x in spaced})
    else:
        picks = list(range(0, total, stride or 1))
    return picks[:max_frames] if max_frames is not None else picks


class _SequentialDecoder:
    """Hands out decoded frames by frame number, in increasing order, from one ffmpeg pass."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._gen: Iterator | None = None
        self._next = 0  # frame number the generator yields next
        self.size: tuple[int, int] = (0, 0)

    def _start(self) -> None:
        import imageio_ffmpeg

        try:
            self._gen = imageio_ffmpeg.read_frames(str(self.path), pix_fmt="rgb24")
            meta = next(self._gen)
        except (RuntimeError, OSError, StopIteration) as exc:
            raise ValueError(
                f"{self.path}: cannot decode the video ({_ffmpeg_error(exc)})"
            ) from None
        self.size = tuple(meta["size"])

    def frame(self, index: int) -> Image.Image:
        if self._gen is None:
            self._start()
        if index < self._next:
            raise RuntimeError("video frames must be requested in increasing order")
        W, H = self.size
        try:
            while True:
                data = next(self._gen)
                self._next += 1
                if self._next - 1 == index:
                    break
        except StopIteration:
            raise ValueError(
                f"{self.path}: the video ended after {self._next} frames, frame {index} requested"
            ) from None
        except RuntimeError as exc:
            raise ValueError(f"{self.path}: decoding failed ({_ffmpeg_error(exc)})") from None
        return Image.fromarray(np.frombuffer(data, np.uint8).reshape(H, W, 3).copy())

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()  # stops the ffmpeg process
            self._gen = None


def read_video(
    path: str | Path,
    stride: int | None = None,
    num_frames: int | None = None,
    max_frames: int | None = None,
) -> list[SourceScene]:
    """Read a video file into one unposed :class:`SourceScene` (see module doc).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not a decodable video, a video without frames, bad selection arguments.
    """
    import imageio_ffmpeg

    video = Path(path)
    if not video.is_file():
        raise FileNotFoundError(f"video file not found: {video}")
    try:
        total, seconds = imageio_ffmpeg.count_frames_and_secs(str(video))
    except (RuntimeError, OSError) as exc:
        raise ValueError(f"{video}: not a readable video ({_ffmpeg_error(exc)})") from None
    if total < 1:
        raise ValueError(f"{video}: empty video (no frames)")
    picks = select_frames(total, stride, num_frames, max_frames)
    fps = total / seconds if seconds > 0 else None
    decoder = _SequentialDecoder(video)
    digits = max(6, len(str(total - 1)))
    frames = []
    for k, idx in enumerate(picks):
        last = k == len(picks) - 1

        def _open(idx=idx, last=last) -> Image.Image:
            img = decoder.frame(idx)
            if last:
                decoder.close()
            return img

        extra = {"source_frame": idx}
        if fps is not None:
            extra["time"] = round(idx / fps, 6)
        frames.append(
            SourceFrame(
                name=f"frame_{idx:0{digits}d}.jpg",
                source_file=f"{video.name}#frame={idx}",
                open=_open,
                extra=extra,
            )
        )
    meta = {
        "source_format": "video",
        "source_video": video.name,
        "source_frames": total,
        "fps": fps,
        "conversion": f"frames {'every ' + str(stride) if stride else ''}"
        f"{str(num_frames) + ' evenly spaced' if num_frames else ''}"
        f"{'all' if not stride and not num_frames else ''} of {total}, decoded by imageio-ffmpeg",
    }
    return [SourceScene(name=video.stem, frames=frames, meta=meta)]
