"""RealEstate10K sources: pixelSplat .torch chunks (normalised intrinsics, 3x4 w2c, JPEG bytes)
and the per-scene JSON layouts of LVSM and RayZer, converted back to the original real cameras."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from rayzer.data.formats import detect_format
from rayzer.utils.paths import OUTPUT_MARKER

F32_POSE = 1e-5  # chunks store cameras as float32
F32_K = 1e-6


def test_pixelsplat_chunks_round_trip(fox, lego, write, check, cli, tmp_path: Path) -> None:
    root = tmp_path / "re10k"
    write.re10k(
        root / "test", {"000000.torch": [("foxkey", fox)], "000001.torch": [("legokey", lego)]}
    )
    assert detect_format(root) == "re10k"
    code, out, err = cli("data", "convert", "--input", root, "--output", tmp_path / "out")
    assert code == 0, err
    assert "converted 2 scene(s) from re10k" in out
    for key, frames in (("foxkey", fox), ("legokey", lego)):
        # The chunk holds the original JPEG bytes: they are written out untouched.
        doc = check.scene_matches(tmp_path / "out" / key, frames, pose_atol=F32_POSE, k_rtol=F32_K)
        assert [f["file"] for f in doc["frames"]] == [
            f"images/{i:05d}.jpg" for i in range(len(frames))
        ]
        assert [f["timestamp"] for f in doc["frames"]] == [
            1000 + 33366 * i for i in range(len(frames))
        ]
        assert doc["split"] == "test" and doc["url"].endswith(key)


def test_scene_selection_opens_only_the_needed_chunk(
    fox, lego, write, check, tmp_path: Path
) -> None:
    from rayzer.data.convert import convert

    root = write.re10k(
        tmp_path / "chunks", {"a.torch": [("foxkey", fox)], "b.torch": [("legokey", lego)]}
    )
    (root / "b.torch").write_bytes(b"corrupt")  # would fail if it were opened
    res = convert(root, tmp_path / "out", scenes=["foxkey"])
    assert [s.name for s in res.scenes] == ["foxkey"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([OUTPUT_MARKER, "foxkey"])


def test_corrupt_chunk_names_the_file(fox, write, check, cli, tmp_path: Path) -> None:
    root = write.re10k(tmp_path / "chunks", {"a.torch": [("foxkey", fox)]})
    (root / "b.torch").write_bytes(b"corrupt")
    code, _, err = cli("data", "convert", "--input", root, "--output", tmp_path / "out")
    assert code != 0 and "b.torch" in err and "cannot read the chunk" in err
    check.no_output(tmp_path / "out")


def test_chunk_with_non_finite_camera(fox, write, check, tmp_path: Path) -> None:
    import pytest

    from rayzer.data.convert import convert

    ex = write.re10k_example("foxkey", fox)
    ex["cameras"][2, 9] = float("inf")
    (tmp_path / "c").mkdir()
    torch.save([ex], tmp_path / "c" / "x.torch")
    with pytest.raises(ValueError, match=r"x\.torch scene foxkey frame 2.*non-finite"):
        convert(tmp_path / "c", tmp_path / "out")
    check.no_output(tmp_path / "out")


def test_lvsm_layout_round_trip(fox, lego, write, check, cli, tmp_path: Path) -> None:
    root = tmp_path / "lvsm_test"
    write.lvsm(root, "foxkey", fox)
    write.lvsm(root, "legokey", lego)
    assert detect_format(root) == "re10k-json"
    code, _, err = cli(
        "data", "convert", "--input", root, "--output", tmp_path / "out", "--format", "lvsm"
    )
    assert code == 0, err
    check.scene_matches(tmp_path / "out" / "foxkey", fox, pose_atol=1e-9)
    check.scene_matches(tmp_path / "out" / "legokey", lego, pose_atol=1e-9)
    # also from the metadata folder alone (no full_list.txt), and a single scene by key
    (root / "full_list.txt").unlink()
    code, _, err = cli(
        "data", "convert", "--input", root, "--output", tmp_path / "one", "--scenes", "legokey"
    )
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == sorted(
        [OUTPUT_MARKER, "legokey"]
    )


def test_rayzer_dl3dv_layout_round_trip(fox, lego, write, check, tmp_path: Path) -> None:
    from rayzer.data.convert import convert

    root = tmp_path / "dl3dv"
    write.rayzer_json(root / "1a2b", "1a2b", fox)
    write.rayzer_json(root / "3c4d", "3c4d", lego)
    convert(root, tmp_path / "out")
    check.scene_matches(tmp_path / "out" / "1a2b", fox, pose_atol=1e-9)
    check.scene_matches(tmp_path / "out" / "3c4d", lego, pose_atol=1e-9)
    doc = json.loads((tmp_path / "out" / "1a2b" / "cameras.json").read_text())
    assert doc["source_format"] == "re10k-json"
    assert np.isfinite(np.array(doc["frames"][0]["c2w"])).all()
