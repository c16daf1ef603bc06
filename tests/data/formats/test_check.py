"""`rayzer data check`: real scenes pass with a sensible summary; every kind of damage is reported
as an error naming the file, with a non-zero exit code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rayzer.data.check import check_dataset, check_scene, format_report

from .conftest import REAL


def test_real_scenes_pass_with_summary(cli) -> None:
    if not (REAL / "fox_instantngp").is_dir():
        pytest.skip("shared real data not available")
    reports = {r.scene: r for r in check_dataset(REAL)}
    assert all(r.ok for r in reports.values()), [str(i) for r in reports.values() for i in r.errors]
    fox, lego = reports["fox_instantngp"], reports["nerf_synthetic_lego"]
    assert fox.frames == 67 and fox.posed and dict(fox.sizes) == {(288, 512): 67}
    assert lego.summary["fx"] == pytest.approx([711.11, 711.11], abs=0.01)
    # lego: 800 px, camera_angle_x = 0.6911 rad in the source -> 39.6 deg
    assert lego.summary["hfov_deg"] == pytest.approx([39.6, 39.6], abs=0.05)
    assert lego.summary["max_rotation_error"] < 1e-5
    # lego cameras sit on a sphere of radius ~4.03 around the object: span close to the diameter
    assert 7.0 < lego.summary["baseline_span"] <= 8.07
    assert not reports["colosseum_video"].posed
    code, out, err = cli("data", "check", REAL)
    assert code == 0, err
    assert "6 scene(s)" in out and "all OK" in out and "hfov" in out


@pytest.fixture
def scene(fox, write, tmp_path: Path) -> Path:
    from rayzer.data.convert import convert

    convert(write.transforms(tmp_path / "src", fox), tmp_path / "scene")
    return tmp_path / "scene"


def _edit(scene: Path, fn) -> None:
    doc = json.loads((scene / "cameras.json").read_text())
    fn(doc)
    (scene / "cameras.json").write_text(json.dumps(doc))


def _set_c2w(i: int, value):
    def fn(doc):
        doc["frames"][i]["c2w"] = value

    return fn


DAMAGE = {
    "missing image": (lambda s: next((s / "images").iterdir()).unlink(), "image file is missing"),
    "truncated image": (
        lambda s: (lambda p: p.write_bytes(p.read_bytes()[:2000]))(
            sorted((s / "images").iterdir())[1]
        ),
        "cannot read image",
    ),
    "unlisted image": (
        lambda s: Image.new("RGB", (288, 512)).save(s / "images" / "stray.png"),
        "not listed",
    ),
    "size mismatch": (
        lambda s: _edit(s, lambda d: d["frames"][2].update(width=300)),
        "says 300x512",
    ),
    "non-finite pose": (
        lambda s: _edit(s, lambda d: d["frames"][1]["c2w"][0].__setitem__(3, float("nan"))),
        "non-finite",
    ),
    "non-rigid pose": (
        lambda s: _edit(s, _set_c2w(3, np.diag([1, 1, 2, 1.0]).tolist())),
        "not rigid",
    ),
    "bad focal": (
        lambda s: _edit(s, lambda d: d["frames"][0].update(fx=-1)),
        "focal lengths must be > 0",
    ),
    "missing camera": (
        lambda s: _edit(s, lambda d: d["frames"][5].pop("cy")),
        "missing camera key",
    ),
    "duplicate frame": (
        lambda s: _edit(s, lambda d: d["frames"].append(dict(d["frames"][0]))),
        "duplicate frames",
    ),
    "invalid json": (lambda s: (s / "cameras.json").write_text("{"), "invalid JSON"),
    "frame outside the folder": (
        lambda s: _edit(s, lambda d: d["frames"][0].update(file="../../../../etc/hostname")),
        "points outside the folder",
    ),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damage_is_reported(damage, scene: Path, cli) -> None:
    assert check_scene(scene).ok
    apply, message = DAMAGE[damage]
    apply(scene)
    report = check_scene(scene)
    assert not report.ok
    assert any(message in str(i) for i in report.errors), [str(i) for i in report.issues]
    code, out, err = cli("data", "check", scene)
    assert code != 0 and "error(s)" in err and message in out


def test_no_decode_reads_headers_only(scene: Path) -> None:
    p = sorted((scene / "images").iterdir())[1]
    p.write_bytes(p.read_bytes()[:2000])
    assert check_scene(scene, decode=False).ok
    assert not check_scene(scene, decode=True).ok


def test_dataset_of_scenes_and_warnings(scene: Path, tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    ds.mkdir()
    shutil.copytree(scene, ds / "a")
    shutil.copytree(scene, ds / "b")
    # b: one frame at another size (consistent JSON) -> loadable with size=, so only a warning
    doc = json.loads((ds / "b" / "cameras.json").read_text())
    f = doc["frames"][0]
    Image.open(ds / "b" / f["file"]).resize((144, 256)).save(ds / "b" / f["file"])
    f.update(width=144, height=256, fx=f["fx"] / 2, fy=f["fy"] / 2, cx=f["cx"] / 2, cy=f["cy"] / 2)
    (ds / "b" / "cameras.json").write_text(json.dumps(doc))
    reports = check_dataset(ds)
    assert [r.path.name for r in reports] == ["a", "b"]
    assert all(r.ok for r in reports)
    assert any("mixed image sizes" in str(w) for w in reports[1].warnings)
    text = format_report(reports)
    assert "2 scene(s), 12 frames, 2 posed; all OK; 1 warning(s)" in text


def test_not_a_dataset(cli, tmp_path: Path) -> None:
    code, _, err = cli("data", "check", tmp_path)
    assert code != 0 and "no scene folders" in err
