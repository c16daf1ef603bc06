"""LLFF poses_bounds.npy ((down, right, backwards) axes, hwf) converts to our convention."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rayzer.data.formats.llff import llff_to_c2w


def test_llff_round_trip_on_real_scene(lego, write, check, cli, tmp_path: Path) -> None:
    src = write.llff(tmp_path / "lego_llff", lego)
    code, _, err = cli("data", "convert", "--input", src, "--output", tmp_path / "out")
    assert code == 0, err
    doc = check.scene_matches(tmp_path / "out", lego, pose_atol=1e-12)
    assert doc["source_format"] == "llff"
    assert [(f["near"], f["far"]) for f in doc["frames"]] == [(0.5, 10.0)] * len(lego)


def test_llff_axis_order_on_a_known_camera() -> None:
    """A camera at (0, 0, 5) looking at the origin (forward = -z_w) with right = +x_w, so that
    down = forward x right = -y_w; its LLFF matrix is written by hand in the DRB column order."""
    right, down, forward = np.array([1.0, 0, 0]), np.array([0, -1.0, 0]), np.array([0, 0, -1.0])
    pose = np.stack([down, right, -forward, [0, 0, 5.0], [480, 640, 500.0]], axis=1)
    c2w = llff_to_c2w(pose)
    np.testing.assert_array_equal(c2w[:3, 0], right)
    np.testing.assert_array_equal(c2w[:3, 1], down)
    np.testing.assert_array_equal(c2w[:3, 2], forward)
    assert np.linalg.det(c2w[:3, :3]) == pytest.approx(1.0)
    # the camera sees the origin in front of it (positive depth)
    assert (np.linalg.inv(c2w) @ [0, 0, 0, 1.0])[2] == pytest.approx(5.0)


def test_llff_downscaled_images(lego, write, check, tmp_path: Path) -> None:
    from rayzer.data.convert import convert

    src = write.llff(tmp_path / "lego_llff", lego)
    (src / "images_2").mkdir()
    for f in sorted((src / "images").iterdir()):
        Image.open(f).resize((256, 256)).save(src / "images_2" / f.name)
    convert(src, tmp_path / "out", images="images_2")
    check.scene_matches(tmp_path / "out", lego, pose_atol=1e-12, same_bytes=False, scale=0.5)


def test_llff_pose_image_count_mismatch(lego, write, check, cli, tmp_path: Path) -> None:
    src = write.llff(tmp_path / "lego_llff", lego)
    Image.new("RGB", (512, 512)).save(src / "images" / "zzz_extra.jpg")
    code, _, err = cli("data", "convert", "--input", src, "--output", tmp_path / "out")
    assert code != 0 and "5 poses" in err and "6 images" in err
    check.no_output(tmp_path / "out")
