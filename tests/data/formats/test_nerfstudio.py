"""transforms*.json (nerfstudio / instant-ngp / DL3DV / NeRF-synthetic): OpenGL -> OpenCV at the
edge, intrinsics from fl_x.. or camera_angle_x, downscaled image folders, and clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rayzer.data.formats import detect_format


@pytest.mark.parametrize("per_frame", [False, True])
def test_transforms_round_trip_on_real_scene(
    per_frame, fox, write, check, cli, tmp_path: Path
) -> None:
    src = write.transforms(tmp_path / "fox", fox, per_frame=per_frame)
    assert detect_format(src) == "nerfstudio"
    code, _, err = cli("data", "convert", "--input", src, "--output", tmp_path / "out")
    assert code == 0, err
    # frames come back in file order although the JSON lists them reversed
    doc = check.scene_matches(tmp_path / "out", fox, pose_atol=1e-12)
    assert doc["source_format"] == "nerfstudio"
    assert "diag(1, -1, -1, 1)" in doc["conversion"]


def test_dl3dv_style_downscaled_images_rescale_intrinsics(
    fox, write, check, tmp_path: Path
) -> None:
    """DL3DV ships images_4/ while transforms.json describes the full-resolution images."""
    from rayzer.data.convert import convert

    src = write.transforms(tmp_path / "dl3dv_scene", fox)
    (src / "images_4").mkdir()
    W, H = fox.size
    for f in fox.files:
        Image.open(f).resize((W // 4, H // 4), Image.Resampling.LANCZOS).save(
            src / "images_4" / f.name
        )
    convert(src, tmp_path / "out", format="dl3dv", images="images_4")
    doc = check.scene_matches(tmp_path / "out", fox, pose_atol=1e-12, same_bytes=False, scale=0.25)
    assert all(f["source_file"].startswith("images_4/") for f in doc["frames"])


def test_nerf_synthetic_splits_and_camera_angle(lego, write, check, tmp_path: Path) -> None:
    from rayzer.data.convert import convert

    src = tmp_path / "lego"
    write.blender(src, lego, "train", [0, 1, 2])
    write.blender(src, lego, "test", [3, 4])
    convert(src, tmp_path / "all")
    doc = check.scene_matches(tmp_path / "all", lego, pose_atol=1e-12, k_rtol=1e-9)
    assert [f["split"] for f in doc["frames"]] == ["train"] * 3 + ["test"] * 2
    assert [f["file"] for f in doc["frames"]] == [f"images/r_{i}.jpg" for i in range(5)]
    convert(src, tmp_path / "test", split="test")
    assert [f["file"] for f in check.read_cameras(tmp_path / "test")["frames"]] == [
        "images/r_3.jpg",
        "images/r_4.jpg",
    ]


def _edit_transforms(src: Path, fn) -> None:
    doc = json.loads((src / "transforms.json").read_text())
    fn(doc)
    (src / "transforms.json").write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(camera_model="OPENCV_FISHEYE"), "OPENCV_FISHEYE"),
        (lambda d: d.update(is_fisheye=True), "fisheye"),
        (lambda d: d.update(k4=0.1), "k4"),
        (
            lambda d: d["frames"][2]["transform_matrix"][0].__setitem__(3, float("nan")),
            "non-finite",
        ),
        (
            lambda d: d["frames"][1].__setitem__(
                "transform_matrix", np.diag([2.0, 2.0, 2.0, 1.0]).tolist()
            ),
            "not rigid",
        ),
        (lambda d: d.pop("fl_x"), "no focal length"),
        (lambda d: d["frames"][0].__setitem__("file_path", "images/nope.jpg"), "nope.jpg"),
    ],
)
def test_bad_transforms_fail_cleanly(edit, message, fox, write, check, cli, tmp_path: Path) -> None:
    src = write.transforms(tmp_path / "fox", fox)
    _edit_transforms(src, edit)
    code, _, err = cli("data", "convert", "--input", src, "--output", tmp_path / "out")
    assert code != 0 and message in err, err
    check.no_output(tmp_path / "out")


def test_nerfstudio_distortion_is_undistorted(fox, write, check, tmp_path: Path) -> None:
    pytest.importorskip("cv2")
    from rayzer.data.convert import convert

    src = write.transforms(tmp_path / "fox", fox)
    _edit_transforms(src, lambda d: d.update(k1=0.05, k2=-0.08, p1=-0.001, p2=0.0002))
    convert(src, tmp_path / "out")
    doc = check.scene_matches(tmp_path / "out", fox, pose_atol=1e-12, same_bytes=False)
    removed = doc["frames"][0]["source_distortion_removed"]
    assert removed["k1"] == 0.05 and removed["p2"] == 0.0002 and removed["k3"] == 0.0
    a = np.asarray(Image.open(tmp_path / "out" / doc["frames"][0]["file"]), np.float64)
    b = np.asarray(Image.open(fox.files[0]), np.float64)
    assert np.abs(a - b).mean() > 1.0  # pixels were remapped, not copied
