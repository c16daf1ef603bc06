"""Photos and video frames → model input views: the resize / crop policy and its pixel mapping,
EXIF orientation, colour-mode conversions, capture order, huge images with bounded memory,
and clear errors (or warnings under skip_bad) for bad files."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rayzer.data.images import (
    decode_image,
    load_image_files,
    load_image_folder,
    load_video_frames,
    output_size,
    to_rgb,
)

PATCH = 8


def test_output_size_policy() -> None:
    assert output_size(32, PATCH, "square", (300, 100)) == (32, 32)
    assert output_size(32, PATCH, "keep", (160, 90)) == (32, 56)  # 32·16/9 = 56.9 → 56
    assert output_size(32, PATCH, "keep", (90, 160)) == (56, 32)  # portrait
    assert output_size(32, PATCH, "keep", (1000, 100)) == (32, 64)  # long side capped at 2×
    for bad in (30, 0, 4):
        with pytest.raises(ValueError, match="multiple of the model's patch size 8"):
            output_size(bad, PATCH)
    with pytest.raises(ValueError, match="aspect"):
        output_size(32, PATCH, "stretch")


def test_cover_and_centre_crop_maps_pixels_as_documented(tmp_path: Path) -> None:
    """A white block centred at (72, 30) of a 120×60 image lands at u = (72 − x0)·W/(x1 − x0)."""
    a = np.zeros((60, 120, 3), np.uint8)
    a[27:33, 69:75] = 255  # block centre (u, v) = (72, 30) in corner convention
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(a).save(tmp_path / "b.png")
    views = load_image_folder(tmp_path, 32, PATCH)
    assert views.images.shape == (2, 32, 32, 3)
    v = views.views[0]
    assert v.box == pytest.approx((30.0, 0.0, 90.0, 60.0))  # 60×60 centre square
    g = views.images[0, ..., 0].astype(np.float64)
    rows, cols = np.mgrid[0:32, 0:32] + 0.5
    u, w = (g * cols).sum() / g.sum(), (g * rows).sum() / g.sum()
    assert u == pytest.approx((72 - 30) * 32 / 60, abs=0.15)
    assert w == pytest.approx(30 * 32 / 60, abs=0.15)
    # intrinsics follow the same map: a pixel-centred principal point maps back to (60, 30)
    fx, fy, cx, cy = v.source_intrinsics([40.0, 40.0, 16.0, 16.0], (32, 32))
    assert (fx, fy, cx, cy) == pytest.approx((75.0, 75.0, 60.0, 30.0))


def test_keep_aspect_uses_first_view_and_fits_others(tmp_path: Path, helpers, caplog) -> None:
    helpers.write_images(tmp_path, 1, size=(160, 90), names=["a1.png"])
    helpers.write_images(tmp_path, 1, size=(90, 160), names=["a2.png"], seed=1)  # portrait
    helpers.write_images(tmp_path, 1, size=(320, 180), names=["a3.png"], seed=2)
    views = load_image_folder(tmp_path, 32, PATCH, aspect="keep")
    assert views.images.shape == (3, 32, 56, 3)
    assert [v.source_size for v in views.views] == [(160, 90), (90, 160), (320, 180)]
    assert any("different aspect ratios" in n for n in views.notes)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    """Stored 40×20 with top half red; orientation 6 = rotate 90° clockwise for display, so the
    upright image is 20×40 with its RIGHT half red."""
    a = np.zeros((20, 40, 3), np.uint8)
    a[:10] = (255, 0, 0)
    a[10:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(a).save(tmp_path / "rot.jpg", exif=exif, quality=95)
    img, upright = decode_image(tmp_path / "rot.jpg")
    assert upright == (20, 40) and img.size == (20, 40)
    px = np.asarray(img).astype(int)
    assert px[20, 15, 0] > 200 and px[20, 15, 2] < 60  # right half red
    assert px[20, 4, 2] > 200 and px[20, 4, 0] < 60  # left half blue


def test_colour_modes_become_8bit_rgb(tmp_path: Path, helpers) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:, :4] = (255, 0, 0, 255)  # opaque red | fully transparent → white
    assert np.asarray(to_rgb(Image.fromarray(rgba)))[0, [0, 7]].tolist() == [
        [255, 0, 0],
        [255, 255, 255],
    ]
    gray16 = np.full((8, 8), 32768, np.uint16)  # half of the 16-bit range
    out = np.asarray(decode_image(helpers.png16(tmp_path / "g16.png", gray16))[0])
    assert out.shape == (8, 8, 3) and np.all(np.abs(out.astype(int) - 128) <= 1)
    rgb16 = np.zeros((8, 8, 3), np.uint16)
    rgb16[...] = (65535, 32768, 2570)
    out = np.asarray(decode_image(helpers.png16(tmp_path / "c16.png", rgb16))[0])
    assert np.abs(out[0, 0].astype(int) - [255, 128, 10]).max() <= 1
    rgba16 = np.zeros((8, 8, 4), np.uint16)  # 16-bit with alpha 0 → white
    out = np.asarray(decode_image(helpers.png16(tmp_path / "a16.png", rgba16))[0])
    assert np.all(out == 255)
    gray = Image.fromarray(np.full((8, 8), 77, np.uint8))
    assert np.all(np.asarray(to_rgb(gray)) == 77)
    assert np.asarray(to_rgb(gray.convert("P"))).shape == (8, 8, 3)
    assert np.asarray(to_rgb(Image.new("CMYK", (8, 8), (0, 255, 255, 0))))[0, 0].tolist() == [
        255,
        0,
        0,
    ]
    floats = Image.fromarray(np.full((8, 8), 0.5, np.float32))
    assert np.all(np.abs(np.asarray(to_rgb(floats)).astype(int) - 128) <= 1)


def test_natural_order_and_even_subsampling(tmp_path: Path, helpers) -> None:
    names = [f"img{i}.png" for i in (10, 2, 1, 0, 3, 4, 5, 6, 7, 8, 9)]
    helpers.write_images(tmp_path, len(names), names=names)
    views = load_image_folder(tmp_path, 32, PATCH)
    assert [Path(v.source).name for v in views.views] == [f"img{i}.png" for i in range(11)]
    assert views.names[:3] == ["000_img0", "001_img1", "002_img2"]
    views = load_image_folder(tmp_path, 32, PATCH, max_views=4)
    assert [Path(v.source).name for v in views.views] == [f"img{i}.png" for i in (0, 3, 7, 10)]
    assert views.found == 11 and "kept 4 evenly spaced" in views.notes[0]
    with pytest.raises(ValueError, match="max-views"):
        load_image_folder(tmp_path, 32, PATCH, max_views=65)


def test_images_subfolder_and_empty_or_missing_folders(tmp_path: Path, helpers) -> None:
    helpers.write_images(tmp_path / "scene" / "images", 2)
    assert len(load_image_folder(tmp_path / "scene", 32, PATCH)) == 2
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"empty: no image files"):
        load_image_folder(tmp_path / "empty", 32, PATCH)
    with pytest.raises(FileNotFoundError, match="missing"):
        load_image_folder(tmp_path / "missing", 32, PATCH)


def test_one_image_is_not_enough(tmp_path: Path, helpers) -> None:
    helpers.write_images(tmp_path, 1)
    with pytest.raises(ValueError, match="1 usable view; RayZer needs at least 2"):
        load_image_folder(tmp_path, 32, PATCH)


def test_non_image_and_truncated_files_name_the_file(tmp_path: Path, helpers, caplog) -> None:
    paths = helpers.write_images(tmp_path, 4, size=(64, 64))
    (tmp_path / "img1.jpg").write_text("this is not a JPEG")
    helpers.truncate(paths[2], keep=0.4)
    with pytest.raises(ValueError, match=r"img1\.jpg: not an image file"):
        load_image_folder(tmp_path, 32, PATCH)
    (tmp_path / "img1.jpg").unlink()
    with pytest.raises(
        ValueError, match=r"img2\.jpg: cannot decode the image: the file is truncated"
    ):
        load_image_folder(tmp_path, 32, PATCH)
    with caplog.at_level(logging.WARNING, logger="rayzer.infer"):
        views = load_image_folder(tmp_path, 32, PATCH, skip_bad=True)
    assert [Path(v.source).name for v in views.views] == ["img0.jpg", "img3.jpg"]
    assert [Path(s["file"]).name for s in views.skipped] == ["img2.jpg"]
    assert "img2.jpg" in caplog.text and "truncated" in caplog.text


@pytest.mark.parametrize(
    ("size", "message"),
    [((1, 1), r"1x1 px is too small"), ((4, 64), r"4x64 px is too small"),
     ((20000, 100), r"20000x100 px is a strip \(aspect ratio 200:1")],
    ids=["1x1", "4x64", "20000x100"],
)  # fmt: skip
def test_images_without_a_usable_view_are_refused(tmp_path: Path, helpers, size, message):
    """A 1x1 icon and a 200:1 strip were accepted (upsampled into a flat square / a centre
    crop of half a percent); now refused naming the file, or skipped under skip_bad."""
    helpers.write_images(tmp_path, 2, size=(64, 48))
    Image.new("RGB", size, (200, 30, 30)).save(tmp_path / "odd.png")
    with pytest.raises(ValueError, match=rf"odd\.png: image of {message}"):
        load_image_folder(tmp_path, 32, PATCH)
    views = load_image_folder(tmp_path, 32, PATCH, skip_bad=True)
    assert [Path(s["file"]).name for s in views.skipped] == ["odd.png"]
    assert len(views.views) == 2


def test_skip_bad_still_needs_two_views(tmp_path: Path, helpers) -> None:
    paths = helpers.write_images(tmp_path, 2, size=(64, 64))
    helpers.truncate(paths[1], keep=0.3)
    with pytest.raises(ValueError, match=r"1 usable view.*1 skipped.*img1\.jpg"):
        load_image_folder(tmp_path, 32, PATCH, skip_bad=True)


def test_mixed_sizes_share_the_input_size(tmp_path: Path, helpers) -> None:
    for i, size in enumerate([(64, 48), (48, 64), (200, 200), (33, 17)]):
        helpers.write_images(tmp_path, 1, size=size, names=[f"v{i}.png"], seed=i)
    views = load_image_files(sorted(tmp_path.iterdir()), 32, PATCH)
    assert views.images.shape == (4, 32, 32, 3)
    assert views.views[3].source_size == (33, 17)  # upsampled to cover 32×32
    assert "different aspect ratios" in views.notes[0]


HUGE_SCRIPT = """
import json, resource, sys
from rayzer.data.images import load_image_files
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
views = load_image_files(sys.argv[1:], 32, 8)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"extra_mb": (peak - base) / 1024, "decoded": views.views[0].decoded_size,
                  "source": views.views[0].source_size, "shape": list(views.images.shape)}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB is Linux-specific")
def test_huge_jpeg_is_drafted_with_bounded_memory(tmp_path: Path) -> None:
    """A 10000×10000 JPEG is decoded at 1/8 scale: the loader's peak memory grows by far less
    than the 300 MB a full RGB decode needs (measured in a fresh process)."""
    big = Image.linear_gradient("L").resize((10000, 10000)).convert("RGB")
    big.save(tmp_path / "huge.jpg", quality=60)
    del big
    Image.new("RGB", (64, 64), (10, 20, 30)).save(tmp_path / "small.jpg")
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            HUGE_SCRIPT,
            str(tmp_path / "huge.jpg"),
            str(tmp_path / "small.jpg"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={"OMP_NUM_THREADS": "1", "PATH": ""},
    )
    result = json.loads(run.stdout)
    assert result["source"] == [10000, 10000] and result["shape"] == [2, 32, 32, 3]
    assert max(result["decoded"]) <= 1250
    assert result["extra_mb"] < 100, result


def test_video_frames_evenly_spaced_in_order(tmp_path: Path, helpers) -> None:
    video = helpers.write_video(tmp_path / "clip.mp4", frames=10)
    views = load_video_frames(video, 32, PATCH, max_views=4)
    assert [v.source for v in views.views] == [f"clip.mp4#frame={k}" for k in (0, 3, 6, 9)]
    brightness = views.images.reshape(4, -1).mean(1)
    assert brightness == pytest.approx([20 + 20 * k for k in (0, 3, 6, 9)], abs=3)
    assert views.found == 10 and views.kind == "video"


def test_undecodable_video_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    with pytest.raises(ValueError, match=r"broken\.mp4"):
        load_video_frames(bad, 32, PATCH)
    with pytest.raises(FileNotFoundError, match=r"nope\.mp4"):
        load_video_frames(tmp_path / "nope.mp4", 32, PATCH)
