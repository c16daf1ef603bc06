"""The bundled explicit-3D model: picked by name (``--ckpt explicit``) wherever a checkpoint is
accepted, refused for a model without depth and Gaussians, and shown by ``rayzer demo`` beside
RayZer on the same scene.

A tiny randomly initialised E-RayZer made here stands in for the shipped one (installed into a
temporary folder that the ``explicit`` slot points at); the shipped checkpoint has its own smoke
test in tests/infer/test_bundled_model.py.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _tiny import TINY_MODEL, orbit_photos, tiny_data
from rayzer import bundled
from rayzer.cli import build_parser
from rayzer.config import load_config
from rayzer.eval.image_metrics import psnr
from rayzer.infer import demo
from rayzer.infer.model import load_model
from rayzer.models import build_model
from rayzer.render import load_ply
from rayzer.train.checkpoint import save_checkpoint

SIZE = 32  # the tiny RayZer's (tests/infer/conftest.py) input size: the demo scenes' size


@pytest.fixture(scope="module")
def explicit_dir(tmp_path_factory) -> Path:
    """A tiny E-RayZer installed as a bundled model folder (not yet the slot's)."""
    cfg = load_config("erayzer-tiny-cpu", tiny_data(SIZE))
    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("erayzer_run")
    ckpt = save_checkpoint(run, 3, build_model(cfg.model), {}, cfg)
    dest = tmp_path_factory.mktemp("assets") / "explicit-default"
    return bundled.install_bundled_model(ckpt, dest, {"command": "test"}, name="explicit")


def _point_slot(monkeypatch, name: str, folder: Path) -> None:
    """Make bundled model ``name`` live in ``folder``; the other slots stay where they are."""
    real = bundled.bundled_model_dir

    def patched(slot: str = bundled.DEFAULT) -> Path:
        return folder if bundled.ALIASES.get(slot, slot) == name else real(slot)

    monkeypatch.setattr(bundled, "bundled_model_dir", patched)


@pytest.fixture
def explicit_slot(explicit_dir: Path, monkeypatch) -> Path:
    """The ``explicit`` slot holds the tiny E-RayZer for this test."""
    _point_slot(monkeypatch, bundled.EXPLICIT, explicit_dir)
    return explicit_dir


# -- picking a bundled model by name --------------------------------------------------------------


def test_only_a_bare_word_names_a_bundled_model() -> None:
    assert bundled.bundled_name(None) == "default"
    assert bundled.bundled_name("default") == "default"
    assert bundled.bundled_name("bundled") == "default"  # bench quality's older name
    assert bundled.bundled_name("explicit") == "explicit"
    for path in ("./explicit", "runs/explicit", "explicit/", "Explicit", Path("explicit")):
        assert bundled.bundled_name(path) is None, path


def test_load_model_by_name(explicit_slot: Path) -> None:
    loaded = load_model("explicit", "cpu")
    assert loaded.model.name == "erayzer" and loaded.checkpoint == explicit_slot
    assert loaded.bundled and loaded.bundled_name == "explicit" and loaded.step == 3
    caps = loaded.model.capabilities
    assert caps.predicts_cameras and caps.outputs_depth and caps.outputs_gaussians
    meta = json.loads((explicit_slot / "meta.json").read_text())
    assert meta["bundled_as"] == "explicit" and meta["command"] == "test"


def test_the_name_wins_over_a_folder_of_that_name_which_is_passed_as_a_path(
    explicit_slot: Path, tiny_ckpt: Path, tmp_path: Path, monkeypatch, caplog
) -> None:
    """A command means the same wherever it runs; the folder is ./explicit (or a Path)."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_ckpt, tmp_path / "explicit")  # a RayZer checkpoint called "explicit"
    with caplog.at_level(logging.WARNING, logger="rayzer.bundled"):
        assert load_model("explicit", "cpu").model.name == "erayzer"
    assert "the folder ./explicit here is not used (pass ./explicit for it)" in caplog.text
    for path in ("./explicit", Path("explicit")):
        mine = load_model(path, "cpu")
        assert mine.model.name == "rayzer" and not mine.bundled and mine.bundled_name is None


def test_a_mistyped_name_lists_the_bundled_models(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        FileNotFoundError, match=r"'explict' does not exist \(and is not a bundled model: "
    ):
        load_model("explict", "cpu")


def test_missing_explicit_model_says_pass_ckpt(tmp_path: Path, monkeypatch) -> None:
    _point_slot(monkeypatch, bundled.EXPLICIT, tmp_path / "explicit-default")
    assert not bundled.has_bundled_model("explicit") and bundled.has_bundled_model()
    with pytest.raises(bundled.BundledModelMissing, match=r"explicit-3D model.*pass --ckpt"):
        load_model("explicit", "cpu")


def test_the_explicit_slot_refuses_a_model_without_depth_and_gaussians(
    tiny_ckpt: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="'rayzer' model, which does not output depth maps"):
        bundled.install_bundled_model(tiny_ckpt, tmp_path / "explicit-default", name="explicit")
    assert not (tmp_path / "explicit-default").exists()
    default = bundled.install_bundled_model(tiny_ckpt, tmp_path / "rayzer-default")
    assert json.loads((default / "meta.json").read_text())["bundled_as"] == "default"
    with pytest.raises(ValueError, match="no bundled model named 'best'"):
        bundled.install_bundled_model(tiny_ckpt, tmp_path / "x", name="best")


@pytest.mark.parametrize(
    "command",
    [
        ["infer", "--images", "photos"],
        ["eval", "--data", "scenes"],
        ["demo"],
        ["serve"],
        ["bench", "real-cameras", "--data", "scenes"],
    ],
)
def test_every_ckpt_option_keeps_the_spelling(command: list[str]) -> None:
    """``./explicit`` must reach the loader as written (``type=Path`` would make it
    ``explicit``, the bundled name)."""
    for value in ("./explicit", "explicit"):
        args = build_parser().parse_args([*command, "--ckpt", value])
        assert args.ckpt == value


def test_infer_and_eval_take_the_name(cli, explicit_slot: Path, tmp_path: Path) -> None:
    photos = orbit_photos(tmp_path / "photos", SIZE)
    out = tmp_path / "infer"
    code, _, err = cli("infer", "--images", photos, "--ckpt", "explicit", "--out", out)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["bundled_name"] == "explicit"
    assert summary["model"]["checkpoint"] == str(explicit_slot)
    assert load_ply(out / "gaussians.ply").means.shape == (4 * SIZE * SIZE, 3)
    assert len(list((out / "depth").glob("*.npy"))) == 4

    from rayzer.eval.run import _load_model

    loaded = _load_model("explicit", "cpu", None, needs_cameras=True)
    assert loaded.bundled and loaded.model.name == "erayzer"
    assert loaded.trained.path == explicit_slot


# -- rayzer demo: the explicit model beside RayZer ------------------------------------------------


def _png(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1) / 255.0


def test_demo_shows_the_explicit_model_beside_rayzer_on_the_same_scene(
    explicit_slot: Path, tiny_ckpt: Path, tmp_path: Path
) -> None:
    result = demo.run_demo(tmp_path / "demo", ckpt=tiny_ckpt, frames=2, device="cpu")
    out, s = result.out, result.summary
    ex = out / "explicit"
    # RayZer's files stay where they were; depth and Gaussians come from the explicit model
    assert not (out / "depth").exists() and not (out / "gaussians.ply").exists()
    assert len(list((ex / "depth").glob("*.npy"))) == 2  # the tiny config's 2 input views
    assert load_ply(ex / "gaussians.ply").means.shape == (2 * SIZE * SIZE, 3)
    w, h = Image.open(ex / "depth_grid.png").size
    assert w > 2 * SIZE and h > 2 * SIZE
    assert (ex / "novel_views.mp4").is_file() and (ex / "points.ply").is_file()

    entry = s["explicit"]
    assert entry["model"]["name"] == "erayzer" and entry["model"]["bundled_name"] == "explicit"
    assert (
        {"explicit/gaussians.ply", "explicit/depth/", "explicit/depth_grid.png"}
        <= set(entry["outputs"])
        <= set(s["outputs"])
    )
    assert (
        "explicit/ holds those of the bundled explicit-3D model (E-RayZer)"
        in (s["notes"]["depth_gaussians"])
    )
    inner = json.loads((ex / "summary.json").read_text())
    assert inner["model"]["name"] == "erayzer" and entry["psnr"] == inner["psnr"]["rayzer"]
    # the same scene, targets and baselines; the renders are the explicit model's own
    assert inner["scenes"][0]["frames"] == s["scenes"][0]["frames"]
    assert inner["psnr"]["copy"] == s["psnr"]["copy"]
    assert entry["psnr"] != s["psnr"]["rayzer"]
    names = sorted(p.name for p in (ex / "renders").iterdir())
    assert names == sorted(p.name for p in (out / "targets").iterdir())
    renders = torch.stack([_png(ex / "renders" / n) for n in names])
    targets = torch.stack([_png(out / "targets" / n) for n in names])
    assert float(psnr(renders, targets).mean()) == pytest.approx(entry["psnr"], abs=0.1)


def test_demo_cli_says_which_model_made_which_output(
    cli, explicit_slot: Path, tiny_ckpt: Path, tmp_path: Path
) -> None:
    out = tmp_path / "demo"
    code, stdout, err = cli("demo", "--ckpt", tiny_ckpt, "--out", out, "--frames", "2")
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[1].startswith("  RayZer (checkpoint): images/, cameras.json")
    assert lines[2].startswith("  E-RayZer (bundled explicit): explicit/ (depth maps: depth/")
    # its rotation error beside the identity's, as the RayZer line has it
    pose = json.loads((out / "summary.json").read_text())["explicit"]["pose"]
    assert lines[2].endswith(
        f"median rotation error {pose['rot_err_deg_median']:.1f} deg "
        f"(identity {pose['identity_rot_err_deg_median']:.1f} deg)"
    )
    assert "[6/7] bundled explicit-3D model: cameras, renders, depth, Gaussians" in err
    assert "note:" not in stdout


def test_demo_of_the_explicit_model_itself_has_no_second_model(
    explicit_slot: Path, tmp_path: Path
) -> None:
    result = demo.run_demo(tmp_path / "demo", ckpt="explicit", frames=2, device="cpu")
    assert result.summary["model"]["bundled_name"] == "explicit"
    assert "outputs depth / Gaussians itself" in result.summary["explicit"]["skipped"]
    assert (result.out / "gaussians.ply").is_file() and not (result.out / "explicit").exists()


def test_demo_without_the_explicit_model_says_where_depth_comes_from(
    cli, tiny_ckpt: Path, tmp_path: Path, monkeypatch
) -> None:
    _point_slot(monkeypatch, bundled.EXPLICIT, tmp_path / "none")
    out = tmp_path / "demo"
    code, stdout, err = cli("demo", "--ckpt", tiny_ckpt, "--out", out, "--frames", "2")
    assert code == 0, err
    assert "skipped: this install carries no bundled explicit-3D model" in err
    assert "\nnote: RayZer outputs no depth maps" in stdout and not (out / "explicit").exists()


def test_demo_skips_the_explicit_model_on_scenes_its_patch_does_not_divide(
    explicit_slot: Path, tmp_path: Path
) -> None:
    """A RayZer at 36 px (patch 4): the tiny E-RayZer (patch 8) cannot take those scenes."""
    cfg = load_config("tiny-cpu", [*TINY_MODEL, "model.patch_size=4", *tiny_data(36)])
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "run", 1, build_model(cfg.model), {}, cfg)
    result = demo.run_demo(tmp_path / "demo", ckpt=ckpt, frames=2, device="cpu")
    assert result.summary["explicit"] == {
        "skipped": "the scenes' 36x36 px are not a multiple of its patch (8)"
    }
    assert not (result.out / "explicit").exists() and (result.out / "renders").is_dir()


def test_the_explicit_summary_times_the_explicit_model_and_names_its_training_family(
    explicit_slot: Path, tmp_path: Path
) -> None:
    """explicit/summary.json is the explicit model's own: its timings are its load, its
    predictions and renders, its novel views and its files (not the main model's stages), and
    ``model_family`` is the family it was trained on (the scenes' family is ``family``)."""
    cfg = load_config("tiny-cpu", [*TINY_MODEL, *tiny_data(SIZE), "data.family=walk"])
    torch.manual_seed(0)
    walk = save_checkpoint(tmp_path / "walk_run", 1, build_model(cfg.model), {}, cfg)
    result = demo.run_demo(tmp_path / "demo", ckpt=walk, frames=2, device="cpu")
    top = result.summary["timings_s"]
    inner = json.loads((result.out / "explicit" / "summary.json").read_text())
    own = inner["timings_s"]
    assert set(own) == {"load_model", "rayzer", "novel_views", "write", "total"}
    stages = sum(v for k, v in own.items() if k != "total")
    assert own["total"] == inner["total_s"] == pytest.approx(stages, abs=1e-3)
    # its stages ran inside the demo's explicit stage, its files inside the demo's write stage
    assert own["load_model"] + own["rayzer"] + own["novel_views"] <= top["explicit"]
    assert own["write"] <= top["write"]
    assert result.summary["data"]["model_family"] == "walk" == inner["data"]["family"]
    assert inner["data"]["model_family"] == load_model("explicit", "cpu").config.data.family
    assert inner["data"]["model_family"] == "orbit"


@pytest.mark.parametrize("command", ["infer", "eval"])
def test_an_output_inside_the_named_bundled_model_is_refused(
    cli, explicit_slot: Path, tmp_path: Path, command: str
) -> None:
    """``--ckpt explicit`` is checked against the output folder as the package folder it names
    (not as ``./explicit``), so nothing is written into the installed model."""
    out = explicit_slot / "out"
    source = ["--images", orbit_photos(tmp_path / "photos", SIZE)] if command == "infer" else []
    if command == "eval":
        source = ["--data", orbit_photos(tmp_path / "scene", SIZE)]
    code, _, err = cli(command, *source, "--ckpt", "explicit", "--out", out)
    assert code != 0 and "lies inside" in err and "--ckpt" in err, err
    assert not out.exists()
