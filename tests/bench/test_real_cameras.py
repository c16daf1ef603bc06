"""``rayzer bench real-cameras``: window selection, the four methods on a tiny synthetic posed
scene (tiny E-RayZer and RayZer checkpoints; pycolmap stubbed with known cameras, and once for
real on a shared real scene when present), the shared refinement entry point, and bad input."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from _tiny import TINY_MODEL, tiny_data
from rayzer.bench.real_cameras import parse_windows, window_frames
from rayzer.cli import main
from rayzer.config import load_config
from rayzer.data.synthetic import synth_command
from rayzer.geometry import relative_pose_errors
from rayzer.models import build_model
from rayzer.train.checkpoint import save_checkpoint

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
METHODS = ("identity", "model", "model_refined", "pycolmap")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _checkpoint(root: Path, preset: str, *overrides: str) -> Path:
    cfg = load_config(preset, [*tiny_data(32), *overrides])
    torch.manual_seed(0)
    return save_checkpoint(root, 3, build_model(cfg.model), {}, cfg)


@pytest.fixture(scope="module")
def erayzer_ckpt(tmp_path_factory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("erayzer"), "erayzer-tiny-cpu")


@pytest.fixture(scope="module")
def rayzer_ckpt(tmp_path_factory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("rayzer"), "tiny-cpu", *TINY_MODEL)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    """Two posed synthetic scenes (10 and 5 frames, 32 px) and one unposed folder."""
    root = tmp_path_factory.mktemp("scenes")
    synth_command("orbit", 7, 10, 32, str(root / "orbit10"))
    synth_command("walk", 8, 5, 32, str(root / "walk5"))
    unposed = root / "photos"
    (unposed / "images").mkdir(parents=True)
    from PIL import Image

    files = []
    for i in range(3):
        name = f"{i:03d}.png"
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(unposed / "images" / name)
        files.append({"file": f"images/{name}", "width": 32, "height": 32})
    (unposed / "frames.json").write_text(json.dumps({"scene": "photos", "frames": files}))
    return root


def _gt(scene: Path) -> dict[str, np.ndarray]:
    """``{image file name: c2w}`` of a scene folder's cameras.json."""
    frames = json.loads((scene / "cameras.json").read_text())["frames"]
    return {Path(f["file"]).name: np.array(f["c2w"], dtype=np.float64) for f in frames}


def _run(*args) -> tuple[int, str, str]:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["bench", "real-cameras", *(str(a) for a in args)])
    return code, out.getvalue(), err.getvalue()


# -- windows ----------------------------------------------------------------------------------


@pytest.fixture
def one_focal(monkeypatch):
    """The matches from one starting focal (the model's) instead of 13: the focal search has its
    own tests (tests/refine/test_matched_cameras.py) and costs 3x the time."""
    import functools

    import rayzer.refine.matched_cameras as mc

    monkeypatch.setattr(mc, "MatchConfig", functools.partial(mc.MatchConfig, focal_factors=(1.0,)))


def test_window_frames_consecutive_and_spread():
    assert window_frames(67, "consecutive", 8, 2) == [list(range(8)), list(range(59, 67))]
    assert window_frames(67, "consecutive", 8, 3)[1] == list(range(30, 38))
    assert window_frames(67, "spread", 8) == [[0, 9, 19, 28, 38, 47, 57, 66]]
    assert window_frames(16, "spread", 8) == [[0, 2, 4, 6, 9, 11, 13, 15]]
    # more windows than starts: no window twice
    assert window_frames(9, "consecutive", 8, 5) == [list(range(8)), list(range(1, 9))]
    # shorter than the window: one window of all frames
    assert window_frames(5, "consecutive", 8, 2) == [[0, 1, 2, 3, 4]]
    assert window_frames(5, "spread", 8) == [[0, 1, 2, 3, 4]]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((1, "consecutive"), "at least 2 frames"),
        ((10, "middle"), "unknown window kind"),
        ((10, "spread", 1), "views >= 2"),
        ((10, "consecutive", 8, 0), "count >= 1"),
    ],
)
def test_window_frames_refuses_bad_requests(args, match):
    with pytest.raises(ValueError, match=match):
        window_frames(*args)


def test_parse_windows():
    assert parse_windows("consecutive,spread") == ("consecutive", "spread")
    assert parse_windows(" spread , spread") == ("spread",)
    for bad in ("", "random", "spread,all"):
        with pytest.raises(ValueError, match="--windows must be"):
            parse_windows(bad)


# -- end to end ---------------------------------------------------------------------------------


def test_erayzer_table_with_stubbed_colmap(erayzer_ckpt, scenes, tmp_path, monkeypatch):
    """Model, refinement and a pycolmap stub that registers all views but the first with the
    true cameras: its errors are ~0 on the registered pairs and its all-pairs AUC counts the
    missing ones; the identity row equals the true relative rotations."""
    from rayzer.eval import colmap_reference as cr

    calls = []

    def fake_colmap(files, workdir, **kwargs):
        calls.append(kwargs)
        gt = _gt(Path(files[0]).parent.parent)
        names = [Path(f).name for f in files]
        return cr.ColmapCameras({n: gt[n] for n in names[1:]}, len(files), 100)

    monkeypatch.setattr(cr, "run_colmap", fake_colmap)
    out = tmp_path / "bench"
    code, _, err = _run(
        "--ckpt", erayzer_ckpt, "--data", scenes, "--views", 4, "--refine", 2,
        "--refine-size", 48, "--colmap", "--threads", 1, "--out", out,
    )  # fmt: skip
    assert code == 0, err
    assert "[1/6] synth_orbit_7 consecutive 0-3" in err  # progress lines
    result = json.loads((out / "real_cameras.json").read_text())
    assert (out / "real_cameras.md").read_text().startswith("# Camera accuracy")
    assert result["skipped"] == [
        {"scene": "photos", "reason": "unposed: no cameras.json with poses"}
    ]
    windows = [(r["scene"], r["window"], r["frames"]) for r in result["rows"]]
    assert windows == [
        ("synth_orbit_7", "consecutive", [0, 1, 2, 3]),
        ("synth_orbit_7", "consecutive", [6, 7, 8, 9]),
        ("synth_orbit_7", "spread", [0, 3, 6, 9]),
        ("synth_walk_8", "consecutive", [0, 1, 2, 3]),
        ("synth_walk_8", "consecutive", [1, 2, 3, 4]),
        ("synth_walk_8", "spread", [0, 1, 3, 4]),
    ]
    assert len(calls) == 6 and all(c["num_threads"] == 1 for c in calls)

    row = result["rows"][0]
    m = row["methods"]
    assert set(m) == set(METHODS)
    gt = torch.from_numpy(np.stack(list(_gt(scenes / "orbit10").values())[:4]))
    truth = relative_pose_errors(torch.eye(4, dtype=torch.float64).expand(4, 4, 4), gt)
    assert m["identity"]["rot_err_deg_median"] == pytest.approx(truth["rot_deg"].median().item())
    assert m["model"]["registered"] == 4 and m["model"]["num_pairs"] == 6
    ref = m["model_refined"]
    assert ref["status"] == "ok" and ref["cameras"] in ("refined", "input")
    assert ref["refine_size"] == [48, 48] and ref["refine"]["steps"] == 2
    assert ref["seconds"] >= m["model"]["seconds"]
    col = m["pycolmap"]
    assert col["registered"] == 3 and col["num_pairs"] == 3
    assert col["rot_err_deg_median"] < 1e-3 and col["trans_dir_err_deg_median"] < 1e-3
    assert col["auc"]["@10"] > 0.99
    assert col["auc_all_pairs"]["@10"] == pytest.approx(col["auc"]["@10"] * 3 / 6)

    pooled = result["summary"]["consecutive"]["pycolmap"]
    assert pooled["windows"] == 4 and pooled["registered"] == 12 and pooled["views"] == 16
    assert pooled["num_pairs"] == 12
    spread = result["summary"]["spread"]["model"]
    assert spread["windows"] == 2 and spread["num_pairs"] == 12


def test_colmap_failure_is_reported_not_fatal(erayzer_ckpt, scenes, tmp_path, monkeypatch):
    from rayzer.eval import colmap_reference as cr

    def failing(files, workdir, **kwargs):
        raise cr.ColmapFailed("COLMAP registered no image pair (no reconstruction)")

    monkeypatch.setattr(cr, "run_colmap", failing)
    code, stdout, err = _run(
        "--ckpt", erayzer_ckpt, "--data", scenes / "walk5", "--windows", "spread", "--views", 8,
        "--refine", 0, "--colmap",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(stdout[stdout.index("\n{") :])
    (row,) = result["rows"]
    assert row["num_views"] == 5 and "5 frames < 8" in row["note"]
    assert row["methods"]["pycolmap"]["status"] == "failed"
    assert "no image pair" in row["methods"]["pycolmap"]["reason"]
    assert row["methods"]["model_refined"] == {
        "status": "n/a",
        "reason": "not requested (--refine 0)",
        "registered": 0,
    }
    pooled = result["summary"]["spread"]["pycolmap"]
    assert pooled["status"] == "failed" and pooled["failed_windows"] == 1
    assert pooled["auc_all_pairs"]["@30"] == 0.0 and "rot_err_deg_median" not in pooled
    assert "| synth_walk_8 | 0-4 (all) |" in stdout


def test_model_without_depth_gets_model_alone(rayzer_ckpt, scenes, tmp_path):
    code, _, err = _run(
        "--ckpt", rayzer_ckpt, "--data", scenes / "orbit10", "--windows", "spread",
        "--views", 3, "--out", tmp_path / "o",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads((tmp_path / "o" / "real_cameras.json").read_text())
    m = result["rows"][0]["methods"]
    assert m["model"]["status"] == "ok"
    assert m["model_refined"]["status"] == "n/a"
    assert "outputs no depth" in m["model_refined"]["reason"]
    assert result["summary"]["spread"]["model_refined"]["status"] == "n/a"


@pytest.mark.skipif(not (REAL / "fox_instantngp").is_dir(), reason="no shared real scenes")
def test_real_pycolmap_on_a_real_scene(rayzer_ckpt, tmp_path):
    """pycolmap for real on the first 8 frames of the fox capture (about 5 s on one thread;
    fewer consecutive frames give it too little baseline to register)."""
    from rayzer.eval.colmap_reference import colmap_unavailable_reason

    if colmap_unavailable_reason() is not None:
        pytest.skip(colmap_unavailable_reason())
    code, _, err = _run(
        "--ckpt", rayzer_ckpt, "--data", REAL, "--scenes", "fox_instantngp", "--windows",
        "consecutive", "--consecutive-windows", 1, "--colmap", "--threads", 1,
        "--out", tmp_path / "o",
    )  # fmt: skip
    assert code == 0, err
    col = json.loads((tmp_path / "o" / "real_cameras.json").read_text())["rows"][0]["methods"]
    col = col["pycolmap"]
    assert col["status"] == "ok", col
    assert col["registered"] == 8
    assert col["rot_err_deg_median"] < 1.0  # the capture's own poses came from COLMAP


# -- the shared refinement entry point --------------------------------------------------------


def test_refine_predicted_cameras_rescales_to_the_refined_views(monkeypatch):
    """Views larger than the model input: intrinsics scaled, depth and opacity resampled, depth
    dropped where the opacity is below MIN_ALPHA; the returned cameras are of the larger size."""
    import rayzer.refine
    from rayzer.infer.predict import Cameras
    from rayzer.infer.refine_predicted import refine_predicted_cameras

    seen = {}

    def fake(images, c2w, K, depth, steps, *, held_out=True, anchor=None, progress=None):
        seen.update(images=images, K=K, depth=depth, steps=steps, held_out=held_out)
        return c2w + 1, K, {"cameras": "refined"}

    monkeypatch.setattr(rayzer.refine, "refine_with_report", fake)
    K = torch.tensor([[40.0, 40.0, 16.0, 16.0]]).repeat(3, 1)
    cams = Cameras(torch.eye(4).repeat(3, 1, 1), K, 32, 32, canonical=1)
    depth = torch.full((3, 1, 32, 32), 2.0)
    alpha = torch.ones(3, 1, 32, 32)
    alpha[:, :, :, :16] = 0.0  # left half transparent
    out, report = refine_predicted_cameras(torch.rand(3, 3, 64, 64), cams, depth, alpha, 7)
    assert report == {"cameras": "refined"} and seen["steps"] == 7 and seen["held_out"]
    assert torch.allclose(seen["K"], K * 2)
    assert seen["depth"].shape == (3, 64, 64)
    assert (seen["depth"][:, :, :30] == 0).all() and (seen["depth"][:, :, 34:] == 2.0).all()
    assert (out.height, out.width) == (64, 64) and torch.equal(out.c2w, cams.c2w + 1)


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--views", 1], "--views must be >= 2"),
        (["--refine", -1], "--refine must be >= 0"),
        (["--refine-size", 4], "--refine-size must be >= 8"),
        (["--fit", -1], "--fit must be >= 0"),
        (["--consecutive-windows", 0], "--consecutive-windows must be >= 1"),
        (["--windows", "random"], "--windows must be"),
        (["--scenes", "nope"], "no scene 'nope'"),
        (["--threads", 0], "--threads must be >= 1"),
    ],
)
def test_bad_arguments_are_clear_errors(erayzer_ckpt, scenes, tmp_path, extra, match):
    out = tmp_path / "o"
    code, _, err = _run("--ckpt", erayzer_ckpt, "--data", scenes, "--out", out, *extra)
    assert code == 2 and match in err and "Traceback" not in err
    assert not out.exists()


def test_bad_data_and_models_are_clear_errors(erayzer_ckpt, scenes, tmp_path):
    code, _, err = _run("--ckpt", erayzer_ckpt, "--data", tmp_path / "missing")
    assert code == 2 and "--data not found" in err
    code, _, err = _run("--ckpt", erayzer_ckpt, "--data", scenes / "photos")
    assert code == 2 and "no posed scene" in err and "photos" in err
    lvsm = _checkpoint(tmp_path / "lvsm", "tiny-cpu", *TINY_MODEL, "model.name=lvsm")
    code, _, err = _run("--ckpt", lvsm, "--data", scenes / "orbit10")
    assert code == 2 and "does not predict cameras" in err


def test_colmap_without_pycolmap_says_how_to_install(erayzer_ckpt, scenes, tmp_path, monkeypatch):
    """pycolmap is an optional extra: --colmap without it is refused before any window, with
    the install command (review check: untested before)."""
    monkeypatch.setitem(sys.modules, "pycolmap", None)  # `import pycolmap` raises ImportError
    out = tmp_path / "o"
    code, _, err = _run("--ckpt", erayzer_ckpt, "--data", scenes, "--colmap", "--out", out)
    assert code == 2 and "Traceback" not in err
    assert "--colmap: pycolmap is not installed" in err and "pip install 'rayzer[colmap]'" in err
    assert not out.exists()


# -- a refinement that is not kept ------------------------------------------------------------


@pytest.fixture(scope="module")
def nas3r_ckpt(tmp_path_factory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("nas3r"), "nas3r-tiny-cpu")


@pytest.mark.parametrize(("model", "canonical"), [("erayzer", 2), ("nas3r", 0)])
def test_rejected_refinement_is_scored_beside_the_kept_model_cameras(
    model, canonical, erayzer_ckpt, nas3r_ckpt, scenes, tmp_path, monkeypatch
):
    """A stand-in refinement that reaches identity cameras and is rejected: the row keeps the
    model's errors, ``not_kept`` holds the identity row's errors, the Markdown cell shows both,
    and the bench holds the model's canonical camera as ``rayzer infer --refine`` does (NAS3R:
    view 0, E-RayZer: the middle one)."""
    import rayzer.refine

    anchors = []

    def rejected(images, c2w, K, depth, steps, *, held_out, anchor, progress, on_reached):
        anchors.append(anchor)
        v = c2w.shape[0]
        on_reached(torch.eye(4).repeat(v, 1, 1), K)
        report = {"steps": steps, "stopped": None, "rejected": "the leave-one-out PSNR fell"}
        return c2w, K, {**report, "cameras": "input"}

    monkeypatch.setattr(rayzer.refine, "refine_with_report", rejected)
    ckpt = {"erayzer": erayzer_ckpt, "nas3r": nas3r_ckpt}[model]
    out = tmp_path / "o"
    code, _, err = _run(
        "--ckpt", ckpt, "--data", scenes / "orbit10", "--windows", "spread", "--views", 4,
        "--refine", 3, "--out", out,
    )  # fmt: skip
    assert code == 0, err
    assert anchors == [canonical]
    _assert_rejected_identity_is_scored(out, "model_refined")
    assert "Refinement: 3 iterations at 32 px" in (out / "real_cameras.md").read_text()


def _assert_rejected_identity_is_scored(out: Path, method: str) -> dict:
    """``method``'s row of the first window keeps the model's cameras and scores what the
    rejected stand-in reached (identity cameras) as ``not_kept``, shown in the Markdown cell;
    returns the row."""
    m = json.loads((out / "real_cameras.json").read_text())["rows"][0]["methods"]
    rec = m[method]
    assert rec["cameras"] == "input"
    assert rec["rot_err_deg_median"] == m["model"]["rot_err_deg_median"]
    nk = rec["not_kept"]
    assert nk["why"] == "rejected" and nk["status"] == "ok"
    for key in ("rot_err_deg_median", "trans_dir_err_deg_median"):
        assert nk[key] == pytest.approx(m["identity"][key], abs=1e-6)
    label = f"rejected: {nk['rot_err_deg_median']:.2f} / {nk['trans_dir_err_deg_median']:.2f}"
    assert f"input kept ({label})" in (out / "real_cameras.md").read_text()
    return rec


def test_not_kept_scores_and_labels():
    """``_not_kept`` scores the cameras a refinement reached (``stopped`` when a guard fired)
    and says when there are none or they are not finite; ``not_kept_label`` formats them."""
    from rayzer.bench.real_cameras import _cell, _not_kept, not_kept_label

    gt = torch.eye(4, dtype=torch.float64).repeat(3, 1, 1)
    gt[:, 0, 3] = torch.tensor([0.0, 1.0, 2.0])  # along x
    moved = gt.clone()
    moved[:, :3, 3] = gt[:, [1, 0, 2], 3]  # the same steps along y: 90° off
    nk = _not_kept({"stopped": "a camera rotated by 25.0° > 20°"}, moved.float(), gt)
    assert nk["why"] == "stopped" and nk["status"] == "ok"
    assert nk["rot_err_deg_median"] == pytest.approx(0.0, abs=1e-4)
    assert nk["trans_dir_err_deg_median"] == pytest.approx(90.0, abs=1e-3)
    assert not_kept_label({"not_kept": nk}) == "stopped: 0.00 / 90.00"
    nan = _not_kept({"stopped": "the loss became nan"}, moved.float() * math.nan, gt)
    assert not_kept_label({"not_kept": nan}) == "stopped: non-finite cameras"
    none = _not_kept({"stopped": "no usable depth", "rejected": None}, None, gt)
    assert not_kept_label({"not_kept": none}) == "stopped: no cameras"
    assert _not_kept({"stopped": None, "rejected": "fell"}, gt.float(), gt)["why"] == "rejected"
    assert not_kept_label({"cameras": "refined"}) == ""

    kept = {
        "status": "ok", "registered": 3, "rot_err_deg_median": 1.5,
        "trans_dir_err_deg_median": 2.25, "auc": {"@10": 0.5, "@30": 0.75}, "seconds": 4.0,
    }  # fmt: skip
    assert _cell(kept, 3) == "1.50 / 2.25 · 0.50 / 0.75 · 4.0 s"
    rejected = {**kept, "cameras": "input", "not_kept": nk}
    assert (
        _cell(rejected, 3)
        == "1.50 / 2.25 · 0.50 / 0.75 · input kept (stopped: 0.00 / 90.00) · 4.0 s"
    )


def test_the_matches_are_scored_again_on_pycolmaps_views():
    """When the matches and pycolmap register different views (temple ring 0-7: the matches
    5-7, pycolmap 2-4), the matches' own figure is on other frames: the bench scores them on
    pycolmap's views when it registered two or more of them, else says it did not."""
    from rayzer.bench.real_cameras import _cell, _Scored, on_pycolmap_label, on_pycolmap_views

    gt = torch.eye(4, dtype=torch.float64).repeat(6, 1, 1)
    gt[:, 0, 3] = torch.arange(6.0)  # along x
    c2w = gt.clone()
    c2w[3:, :3, 3] = gt[3:, :3, 3][:, [1, 0, 2]]  # views 3-5: the same steps along y
    files = [f"img/{k:03d}.jpg" for k in range(6)]

    def run(ours, theirs):
        views = torch.tensor([k in ours for k in range(6)])
        scored = _Scored({}, 6, c2w=c2w.float(), views=views)
        return on_pycolmap_views(
            scored, {"status": "ok", "registered_images": [f"{k:03d}.jpg" for k in theirs]},
            files, gt,
        )  # fmt: skip

    on = run([0, 1, 2, 3, 4, 5], [3, 4, 5])  # all of pycolmap's, and more
    assert on["pycolmap_views"] == [3, 4, 5] and on["common_views"] == [3, 4, 5]
    assert not on["same_views"] and on["all_pycolmap_views"]
    assert on["rot_err_deg_median"] == pytest.approx(0.0, abs=1e-4)
    assert on["trans_dir_err_deg_median"] == pytest.approx(90.0, abs=1e-3)
    assert on_pycolmap_label(on) == " · on pycolmap's views 3,4,5: 0.00 / 90.00"
    some = run([0, 1, 2], [1, 2, 4])
    assert on_pycolmap_label(some) == " · on pycolmap's views 1,2,4 (only 1,2): 0.00 / 0.00"
    apart = run([3, 4, 5], [0, 1, 2])
    assert apart["common_views"] == [] and "rot_err_deg_median" not in apart
    assert on_pycolmap_label(apart) == " · not on pycolmap's views 0,1,2 (registered 0 of them)"
    same = run([0, 1, 2], [0, 1, 2])
    assert same["same_views"] and on_pycolmap_label(same) == ""
    assert run([0, 1, 2], []) is not None  # pycolmap's record says ok only with 2 or more
    assert on_pycolmap_views(_Scored({}, 6), {"status": "ok"}, files, gt) is None
    assert on_pycolmap_views(_Scored({}, 6, c2w=c2w, views=torch.ones(6, dtype=torch.bool)),
                             {"status": "failed"}, files, gt) is None  # fmt: skip
    rec = {
        "status": "ok", "registered": 3, "rot_err_deg_median": 1.5,
        "trans_dir_err_deg_median": 2.25, "auc": {"@10": 0.5, "@30": 0.75}, "seconds": 4.0,
        "on_pycolmap_views": apart,
    }  # fmt: skip
    assert _cell(rec, 6) == (
        "1.50 / 2.25 · 0.50 / 0.75 · 3/6 reg. · not on pycolmap's views 0,1,2 (registered 0 of "
        "them) · 4.0 s"
    )


# -- the Gaussian + camera fit ------------------------------------------------------------------


def test_fit_column_on_consecutive_windows_only(erayzer_ckpt, scenes, tmp_path):
    """--fit STEPS: the fit (as rayzer infer --fit STEPS --fit-cameras) is scored on the
    consecutive windows, n/a on the spread one, and gets its own column and pooled rows."""
    out = tmp_path / "o"
    code, _, err = _run(
        "--ckpt", erayzer_ckpt, "--data", scenes / "orbit10", "--views", 4,
        "--consecutive-windows", 1, "--refine", 0, "--fit", 2, "--out", out,
    )  # fmt: skip
    assert code == 0, err
    result = json.loads((out / "real_cameras.json").read_text())
    assert result["fit_steps"] == 2 and result["methods"][3] == "model_fit"
    consecutive, spread = result["rows"]
    fit = consecutive["methods"]["model_fit"]
    assert fit["status"] == "ok" and fit["registered"] == 4 and fit["num_pairs"] == 6
    assert fit["cameras"] in ("fitted", "input") and fit["fit"]["steps"] == 2
    assert fit["fit"]["cameras_fitted"] is True
    assert fit["fit"]["scene"] == ("fitted" if fit["cameras"] == "fitted" else "input")
    assert fit["seconds"] >= consecutive["methods"]["model"]["seconds"]
    assert spread["methods"]["model_fit"] == {
        "status": "n/a",
        "reason": "consecutive windows only",
        "registered": 0,
    }
    assert result["summary"]["consecutive"]["model_fit"]["windows"] == 1
    assert result["summary"]["spread"]["model_fit"]["status"] == "n/a"
    md = (out / "real_cameras.md").read_text()
    assert "| model + Gaussian fit | pycolmap |" in md and "Gaussian + camera fit: 2 steps" in md
    assert "No refinement." in md and "Refinement:" not in md


def test_fit_is_na_for_a_model_without_gaussians(rayzer_ckpt, scenes, tmp_path):
    code, _, err = _run(
        "--ckpt", rayzer_ckpt, "--data", scenes / "orbit10", "--windows", "consecutive",
        "--consecutive-windows", 1, "--views", 3, "--fit", 2, "--out", tmp_path / "o",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads((tmp_path / "o" / "real_cameras.json").read_text())
    fit = result["rows"][0]["methods"]["model_fit"]
    assert fit["status"] == "n/a" and "no 3D Gaussians" in fit["reason"]


def test_rejected_fit_is_scored_beside_the_kept_model_cameras(
    erayzer_ckpt, scenes, tmp_path, monkeypatch
):
    """A stand-in fit that reaches identity cameras and is rejected by the leave-one-out check:
    the fit's row keeps the model's errors, ``not_kept`` holds the identity row's errors and
    the Markdown cell shows both (as for a rejected refinement)."""
    import rayzer.refine.splat as splat

    def fit(images, scene, **kwargs):
        v, _, h, w = images.shape
        K = scene.K_norm[0] * torch.tensor([w, h, w, h])
        c2w = torch.eye(4).repeat(v, 1, 1)
        return splat.SplatFitResult(scene, c2w, K, 10.0, 12.0, reached_c2w=c2w, reached_K=K)

    def held_out(images, scene, view, **kwargs):
        return splat.SplatHeldOut(view, 9.0, 8.0, fit(images, scene))  # the left-out view fell

    monkeypatch.setattr(splat, "fit_scene", fit)
    monkeypatch.setattr(splat, "held_out_fit_psnr", held_out)
    out = tmp_path / "o"
    code, _, err = _run(
        "--ckpt", erayzer_ckpt, "--data", scenes / "orbit10", "--windows", "consecutive",
        "--views", 4, "--consecutive-windows", 1, "--refine", 0, "--fit", 2, "--out", out,
    )  # fmt: skip
    assert code == 0, err
    fit_rec = _assert_rejected_identity_is_scored(out, "model_fit")
    assert "leave-one-out" in fit_rec["fit"]["rejected"]


def test_fit_not_kept_says_why():
    """A fit's cell says why its cameras were not kept and, when it has them, the errors of the
    cameras it reached (its ``not_kept``, as a refinement's)."""
    from rayzer.bench.real_cameras import _cell

    rec = {
        "status": "ok", "registered": 3, "rot_err_deg_median": 1.5,
        "trans_dir_err_deg_median": 2.25, "auc": {"@10": 0.5, "@30": 0.75}, "seconds": 4.0,
        "cameras": "input",
    }  # fmt: skip
    stopped = {**rec, "not_kept": {"why": "stopped", "status": "no cameras"}}
    assert "input kept (stopped: no cameras)" in _cell(stopped, 3)
    errors = {"rot_err_deg_median": 12.3, "trans_dir_err_deg_median": 95.1}
    rejected = {**rec, "not_kept": {"why": "rejected", "status": "ok", **errors}}
    assert "input kept (rejected: 12.30 / 95.10)" in _cell(rejected, 3)


def test_matches_columns_on_a_scene_with_real_texture(
    one_focal, erayzer_ckpt, tmp_path, monkeypatch
):
    """--matches: the cameras from feature matches of the stored photos (192 px) and their
    refinement get columns before pycolmap's; --no-model-refine skips the model's own. With
    --colmap (stubbed: views 1, 3, 4 registered with the true cameras) the matches, which
    register all 6, are scored again on pycolmap's 3 and the cell says so."""
    pytest.importorskip("cv2")
    from rayzer.eval import colmap_reference as cr

    def fake_colmap(files, workdir, **kwargs):
        gt = _gt(Path(files[0]).parent.parent)
        names = [Path(f).name for f in files]
        return cr.ColmapCameras({names[k]: gt[names[k]] for k in (1, 3, 4)}, len(files), 100)

    monkeypatch.setattr(cr, "run_colmap", fake_colmap)
    scene = tmp_path / "walk6"
    synth_command("walk", 0, 6, 192, str(scene))  # tests/refine/test_matched_cameras.py's walk
    out = tmp_path / "o"
    code, _, err = _run(
        "--ckpt", erayzer_ckpt, "--data", scene, "--views", 6, "--windows", "consecutive",
        "--consecutive-windows", 1, "--refine", 2, "--no-model-refine", "--matches",
        "--colmap", "--threads", 1, "--out", out,
    )  # fmt: skip
    assert code == 0, err
    result = json.loads((out / "real_cameras.json").read_text())
    assert result["methods"] == [*METHODS[:3], "matches", "matches_refined", "pycolmap"]
    (row,) = result["rows"]
    m = row["methods"]
    assert m["model_refined"]["reason"] == "not requested (--no-model-refine)"
    assert m["matches"]["status"] == "ok" and m["matches"]["registered"] == 6
    assert (
        m["matches"]["rot_err_deg_median"] < 2.0
    )  # the bound of tests/refine/test_matched_cameras.py
    assert m["matches"]["matches"]["num_registered"] == 6
    assert m["matches_refined"]["status"] == "ok" and m["matches_refined"]["registered"] == 6
    assert m["matches_refined"]["refine"]["steps"] == 2
    # the registered views are held (as rayzer infer holds them): all 6 here, nothing refined
    assert m["matches_refined"]["refine"]["held"] == list(range(6))
    assert m["matches_refined"]["rot_err_deg_median"] == m["matches"]["rot_err_deg_median"]
    assert "every view held" in (out / "real_cameras.md").read_text()
    assert m["matches_refined"]["seconds"] >= m["matches"]["seconds"]
    md = (out / "real_cameras.md").read_text()
    assert "| matches + BA | matches + BA + refinement | pycolmap |" in md
    on = m["matches"]["on_pycolmap_views"]
    assert m["pycolmap"]["registered"] == 3
    assert on["pycolmap_views"] == on["common_views"] == [1, 3, 4]
    assert on["matches_views"] == list(range(6)) and not on["same_views"]
    assert on["all_pycolmap_views"] and on["rot_err_deg_median"] < 2.0
    label = f"on pycolmap's views 1,3,4: {on['rot_err_deg_median']:.2f} / "
    assert label in md, md
