"""Unposed sources: a folder of images (natural sort, EXIF orientation) and a video file
(frames at a stride or a target count), on real images; empty / broken inputs fail cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rayzer.data import read_scene_folder
from rayzer.data.formats import detect_format
from rayzer.data.formats.video import select_frames

from .conftest import REAL


def real_images(name: str, n: int) -> list[Path]:
    folder = REAL / name / "images"
    if not folder.is_dir():
        pytest.skip(f"real scene {folder.parent} not available")
    return sorted(folder.iterdir())[:n]


def test_image_folder_natural_sort_and_names(check, cli, tmp_path: Path) -> None:
    files = real_images("vggsfm_statue", 3)
    src = tmp_path / "photos"
    src.mkdir()
    names = ["IMG_10.jpg", "IMG_9.jpg", "img_100.jpg"]  # natural order: 9, 10, 100
    for f, n in zip(files, names):
        (src / n).write_bytes(f.read_bytes())
    (src / "notes.txt").write_text("not an image")
    assert detect_format(src) == "images"
    code, _, err = cli("data", "convert", "--input", src, "--output", tmp_path / "out")
    assert code == 0, err
    doc = json.loads((tmp_path / "out" / "frames.json").read_text())
    assert [f["file"] for f in doc["frames"]] == [
        "images/IMG_9.jpg",
        "images/IMG_10.jpg",
        "images/img_100.jpg",
    ]
    assert doc["poses"] is None and not (tmp_path / "out" / "cameras.json").exists()
    for f in doc["frames"]:
        assert (tmp_path / "out" / f["file"]).read_bytes() == (src / f["source_file"]).read_bytes()
    scene = read_scene_folder(tmp_path / "out")
    assert scene.images.shape[0] == 3 and not scene.posed


def test_exif_orientation_is_applied(check, tmp_path: Path) -> None:
    from rayzer.data.convert import convert

    (src_file,) = real_images("vggsfm_statue", 1)
    upright = Image.open(src_file).convert("RGB")  # 288 x 512 portrait
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a camera stores sideways
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "sideways.jpg").write_bytes(check.jpeg_bytes(stored, exif=exif.tobytes()))
    convert(tmp_path / "src", tmp_path / "out")
    out = Image.open(tmp_path / "out" / "images" / "sideways.jpg")
    assert out.size == upright.size
    assert out.getexif().get(0x0112, 1) == 1
    err = np.abs(np.asarray(out, np.float64) - np.asarray(upright, np.float64)).mean()
    assert err < 3.0, err  # two JPEG generations
    wrong = np.abs(
        np.asarray(out, np.float64)
        - np.asarray(upright.transpose(Image.Transpose.ROTATE_180), np.float64)
    ).mean()
    assert wrong > 5 * err


@pytest.fixture
def video(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    """A 12-frame H.264 video made from real frames (512 x 288)."""
    import imageio_ffmpeg

    frames = [np.asarray(Image.open(f).convert("RGB")) for f in real_images("colosseum_video", 12)]
    H, W, _ = frames[0].shape
    path = tmp_path / "clip.mp4"
    writer = imageio_ffmpeg.write_frames(str(path), (W, H), fps=12, quality=9, macro_block_size=16)
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f))
    writer.close()
    return path, frames


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b) ** 2)))


def test_video_stride(video, cli, tmp_path: Path) -> None:
    path, frames = video
    assert detect_format(path) == "video"
    code, _, err = cli(
        "data", "convert", "--input", path, "--output", tmp_path / "out", "--stride", "4"
    )
    assert code == 0, err
    doc = json.loads((tmp_path / "out" / "frames.json").read_text())
    assert [f["source_frame"] for f in doc["frames"]] == [0, 4, 8]
    assert [f["file"] for f in doc["frames"]] == [f"images/frame_{i:06d}.jpg" for i in (0, 4, 8)]
    assert doc["frames"][1]["time"] == pytest.approx(4 / 12)
    for f in doc["frames"]:
        got = np.asarray(Image.open(tmp_path / "out" / f["file"]))
        scores = [_psnr(got, ref) for ref in frames]
        # the decoded frame is its own source frame (and not a neighbour)
        assert int(np.argmax(scores)) == f["source_frame"] and max(scores) > 28, scores


def test_video_target_count(video, tmp_path: Path) -> None:
    from rayzer.data.convert import convert

    path, _ = video
    res = convert(path, tmp_path / "out", num_frames=5, max_side=256)
    doc = json.loads((tmp_path / "out" / "frames.json").read_text())
    assert [f["source_frame"] for f in doc["frames"]] == [0, 3, 6, 8, 11]
    assert res.scenes[0].size == (256, 144)


def test_frame_selection_rules() -> None:
    assert select_frames(10, stride=3) == [0, 3, 6, 9]
    assert select_frames(10, num_frames=4) == [0, 3, 6, 9]
    assert select_frames(3, num_frames=10) == [0, 1, 2]
    assert select_frames(100, num_frames=50, max_frames=3) == [0, 2, 4]
    with pytest.raises(ValueError, match="either"):
        select_frames(10, stride=2, num_frames=3)
    with pytest.raises(ValueError, match="stride"):
        select_frames(10, stride=0)


def test_empty_and_broken_videos_fail_cleanly(check, cli, tmp_path: Path) -> None:
    import imageio_ffmpeg

    empty = tmp_path / "empty.mp4"
    writer = imageio_ffmpeg.write_frames(str(empty), (64, 48), fps=10, macro_block_size=16)
    writer.send(None)
    writer.close()  # a container without a single frame
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    for bad in (empty, broken):
        code, _, err = cli("data", "convert", "--input", bad, "--output", tmp_path / "out")
        assert code != 0 and str(bad) in err, err
        assert len(err.splitlines()) == 1  # one clear line, not ffmpeg's banner
        check.no_output(tmp_path / "out")


def test_unreadable_image_fails_cleanly(check, cli, tmp_path: Path) -> None:
    files = real_images("vggsfm_statue", 3)
    src = tmp_path / "photos"
    src.mkdir()
    for f in files:
        (src / f.name).write_bytes(f.read_bytes())
    data = files[1].read_bytes()
    (src / files[1].name).write_bytes(data[: len(data) // 3])  # truncated JPEG
    code, _, err = cli("data", "convert", "--input", src, "--output", tmp_path / "out")
    assert code != 0 and files[1].name in err and "cannot read image" in err, err
    check.no_output(tmp_path / "out")
