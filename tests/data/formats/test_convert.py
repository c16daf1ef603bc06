"""`rayzer data convert` as a whole: detection, atomic output, overwrite, downscaling, options,
and the converted folders load with read_scene_folder and pass `rayzer data check`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rayzer.data import read_scene_folder
from rayzer.data.check import check_scene
from rayzer.data.formats import detect_formats


def test_detection_of_every_layout(fox, write, tmp_path: Path) -> None:
    write.transforms(tmp_path / "ns", fox)
    write.llff(tmp_path / "llff", fox)
    write.copy_images(fox, tmp_path / "cm" / "images")
    write.colmap_text(tmp_path / "cm" / "sparse" / "0", fox)
    write.re10k(tmp_path / "rk", {"0.torch": [("k", fox)]})
    write.lvsm(tmp_path / "lv", "k", fox)
    write.rayzer_json(tmp_path / "rz" / "k", "k", fox)
    write.copy_images(fox, tmp_path / "img")
    assert detect_formats(tmp_path / "ns")[0] == "nerfstudio"
    assert detect_formats(tmp_path / "llff")[0] == "llff"
    assert detect_formats(tmp_path / "cm") == ["colmap", "images"]
    assert detect_formats(tmp_path / "cm" / "sparse" / "0") == ["colmap"]
    assert detect_formats(tmp_path / "rk") == ["re10k"]
    assert detect_formats(tmp_path / "rk" / "0.torch") == ["re10k"]
    assert detect_formats(tmp_path / "lv")[0] == "re10k-json"
    assert detect_formats(tmp_path / "rz") == ["re10k-json"]
    assert detect_formats(tmp_path / "rz" / "k")[0] == "re10k-json"
    assert detect_formats(tmp_path / "img") == ["images"]
    (tmp_path / "empty").mkdir()
    assert detect_formats(tmp_path / "empty") == []


def test_undetectable_input_is_a_clear_error(cli, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = cli("data", "convert", "--input", tmp_path / "empty", "--output", tmp_path / "o")
    assert code != 0 and "cannot tell the dataset format" in err and "--format" in err
    code, _, err = cli("data", "convert", "--input", tmp_path / "nope", "--output", tmp_path / "o")
    assert code != 0 and "not found" in err
    code, _, err = cli(
        "data",
        "convert",
        "--input",
        tmp_path / "empty",
        "--output",
        tmp_path / "o",
        "--format",
        "ply",
    )
    assert code != 0 and "unknown format" in err


def test_failure_half_way_leaves_nothing(fox, write, check, cli, tmp_path: Path) -> None:
    """The 5th of 6 images is truncated: the first four were already written into the temporary
    folder, which must disappear with the error."""
    src = write.transforms(tmp_path / "fox", fox)
    data = fox.files[4].read_bytes()
    (src / "images" / fox.names[4]).write_bytes(data[: len(data) // 2])
    code, _, err = cli("data", "convert", "--input", src, "--output", tmp_path / "out")
    assert code != 0 and fox.names[4] in err
    check.no_output(tmp_path / "out")


def test_existing_output_needs_overwrite(fox, write, check, cli, tmp_path: Path) -> None:
    src = write.transforms(tmp_path / "fox", fox)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    code, _, err = cli("data", "convert", "--input", src, "--output", tmp_path / "out")
    assert code != 0 and "already exists" in err and "--overwrite" in err
    assert (tmp_path / "out" / "keep.txt").exists()
    # --overwrite replaces only a folder rayzer wrote: the user's file is never deleted
    code, _, err = cli(
        "data", "convert", "--input", src, "--output", tmp_path / "out", "--overwrite"
    )
    assert code != 0 and "rayzer did not write" in err
    assert (tmp_path / "out" / "keep.txt").read_text() == "x"
    (tmp_path / "out" / "keep.txt").unlink()
    for _ in range(2):  # an empty folder, then our own output
        code, _, err = cli(
            "data", "convert", "--input", src, "--output", tmp_path / "out", "--overwrite"
        )
        assert code == 0, err
    check.scene_matches(tmp_path / "out", fox, pose_atol=1e-12)
    # a failed overwrite keeps the previous output intact
    (src / "images" / fox.names[0]).unlink()
    code, _, _ = cli("data", "convert", "--input", src, "--output", tmp_path / "out", "--overwrite")
    assert code != 0
    check.scene_matches(tmp_path / "out", fox, pose_atol=1e-12)


def test_max_side_rescales_images_and_intrinsics(fox, write, check, tmp_path: Path) -> None:
    from rayzer.data.convert import convert

    src = write.transforms(tmp_path / "fox", fox)
    convert(src, tmp_path / "out", max_side=128)
    check.scene_matches(tmp_path / "out", fox, pose_atol=1e-12, same_bytes=False, scale=0.25)
    scene = read_scene_folder(tmp_path / "out")
    assert scene.images.shape == (6, 3, 128, 72)
    torch.testing.assert_close(scene.K.double(), torch.from_numpy(fox.K) * 0.25)


def test_options_that_do_not_apply_are_rejected(fox, write, cli, tmp_path: Path) -> None:
    src = write.transforms(tmp_path / "fox", fox)
    code, _, err = cli(
        "data", "convert", "--input", src, "--output", tmp_path / "o", "--stride", "2"
    )
    assert code != 0 and "stride" in err and "nerfstudio" in err
    code, _, err = cli(
        "data", "convert", "--input", src, "--output", tmp_path / "o", "--limit", "2"
    )
    assert code != 0 and "limit" in err


def test_converted_scene_loads_and_checks(fox, write, tmp_path: Path) -> None:
    from rayzer.data.convert import convert

    src = write.transforms(tmp_path / "fox", fox)
    convert(src, tmp_path / "out")
    report = check_scene(tmp_path / "out")
    assert report.ok and not report.warnings, report.issues
    scene = read_scene_folder(tmp_path / "out")
    torch.testing.assert_close(scene.c2w.double(), torch.from_numpy(fox.c2w), atol=1e-6, rtol=0)
    torch.testing.assert_close(scene.K.double(), torch.from_numpy(fox.K), atol=1e-4, rtol=0)


def test_scene_folder_reconversion_is_lossless(fox, write, check, tmp_path: Path) -> None:
    """Our own format is a valid source (e.g. to downscale a copy): cameras and extras survive."""
    from rayzer.data.convert import convert

    convert(write.transforms(tmp_path / "fox", fox), tmp_path / "a")
    convert(tmp_path / "a", tmp_path / "b")
    a = json.loads((tmp_path / "a" / "cameras.json").read_text())
    b = json.loads((tmp_path / "b" / "cameras.json").read_text())
    assert a["frames"] == b["frames"]
    for f in a["frames"]:
        assert (tmp_path / "a" / f["file"]).read_bytes() == (
            tmp_path / "b" / f["file"]
        ).read_bytes()


def test_duplicate_file_names_are_made_unique(fox, tmp_path: Path) -> None:
    from rayzer.data.convert import convert

    src = tmp_path / "ns"
    entries = []
    for i, cam in enumerate(("left", "right")):
        (src / cam).mkdir(parents=True)
        (src / cam / "0001.jpg").write_bytes(fox.files[i].read_bytes())
        entries.append({"file_path": f"{cam}/0001.jpg", "transform_matrix": np.eye(4).tolist()})
    k = fox.K[0]
    doc = {"fl_x": k[0], "fl_y": k[1], "w": fox.size[0], "h": fox.size[1], "frames": entries}
    (src / "transforms.json").write_text(json.dumps(doc))
    convert(src, tmp_path / "out")
    files = [
        f["file"] for f in json.loads((tmp_path / "out" / "cameras.json").read_text())["frames"]
    ]
    assert files == ["images/left_0001.jpg", "images/right_0001.jpg"]


def test_mismatched_aspect_ratio_is_refused(fox, write, check, tmp_path: Path) -> None:
    from PIL import Image

    from rayzer.data.convert import convert

    src = write.transforms(tmp_path / "fox", fox)
    Image.open(fox.files[2]).resize((288, 288)).save(src / "images" / fox.names[2])
    with pytest.raises(ValueError, match=r"288x288 but its camera is for 288x512"):
        convert(src, tmp_path / "out")
    check.no_output(tmp_path / "out")


def test_output_overlapping_the_input_is_refused(fox, write, cli, tmp_path: Path) -> None:
    """The check shared with infer / eval (rayzer.utils.paths): the input is never replaced."""
    src = write.transforms(tmp_path / "fox", fox)
    listing = sorted(p.name for p in src.iterdir())
    for out in (src, tmp_path, src / "converted"):
        code, _, err = cli("data", "convert", "--input", src, "--output", out, "--overwrite")
        assert code != 0 and f"output folder {out}" in err and f"the input --input {src}" in err
        assert sorted(p.name for p in src.iterdir()) == listing
