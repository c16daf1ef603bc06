"""`rayzer bench quality` end to end at tiny scale, `--skip-train`, and its helpers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import pytest
import torch
import yaml

from _tiny import TINY_MODEL
from rayzer.bench.quality import check_targets
from rayzer.bench.run_history import minutes_at, pick_checkpoints
from rayzer.cli import main

#: Tiny model and 32-px images; the clip length and views stay those of tiny-cpu so the
#: test set keeps its ≥ 15° rotation check.
TINY = [
    *TINY_MODEL,
    "data.image_size=32",
    "train.batch_size=2",
    "train.log_every=5",
    "train.image_every=0",
    "train.num_threads=1",
]
METHODS = {"rayzer", "lvsm", "copy_nearest", "mean_of_inputs"}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_bench_quality_end_to_end_and_skip_train(tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["bench", "quality", "--minutes", "0.05", "--test-scenes", "2", "--no-lpips"]
    args += ["--ckpt-every", "20", "--curve-points", "2", "--out", str(out), *TINY]
    assert main(args) == 0
    for name in ("quality.json", "quality.md", "quality.png"):
        assert (out / name).is_file(), name
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    result = json.loads((out / "quality.json").read_text())
    for key in (
        "benchmark",
        "family",
        "config",
        "overrides",
        "minutes",
        "test_set",
        "training",
        "results",
        "targets",
        "learning_curves",
        "per_sample",
        "machine",
        "wall_time_s",
    ):
        assert key in result, key
    assert result["family"] == "orbit" and result["minutes"] == 0.05
    ts = result["test_set"]
    assert ts["num_scenes"] == 2 and len(ts["scenes"]) == 2
    assert ts["protocols"]["even"]["gt_rel_rot_deg_median"] >= 15.0
    for protocol in ("even", "random"):
        res = result["results"][protocol]
        for metric in ("psnr", "ssim"):
            assert set(res[metric]) == METHODS
            assert all(isinstance(v, float) for v in res[metric].values())
        assert all(v is None for v in res["lpips"].values()) and "disabled" in res["lpips_note"]
        for key in ("rot_err_deg_median", "trans_dir_err_deg_median", "rot_acc", "auc"):
            assert key in res["pose"]
        assert "focal_pred_mean" in res["pose"] and "focal_true_mean" in res["pose"]
        assert "rot_err_deg_median" in res["identity_pose"]
        for key in ("noncanonical_spread_deg_median", "pred_rel_rot_deg_median", "focal_spread"):
            assert key in res["collapse"]
        assert [t["name"] for t in result["targets"][protocol]] == [
            "psnr_vs_baselines",
            "psnr_vs_lvsm",
            "rotation_error",
        ]
        assert all(isinstance(t["pass"], bool) for t in result["targets"][protocol])
        assert set(result["per_sample"][protocol]) == METHODS
        assert len(result["per_sample"][protocol]["rayzer"]) == 2
    for name in ("rayzer", "lvsm"):
        t = result["training"][name]
        assert t["step"] >= 1 and t["stopped_by"] in ("time_budget", None)
        curve = result["learning_curves"][name]
        assert curve["train"] and all("psnr" in r and "minutes" in r for r in curve["train"])
        steps = [r["step"] for r in curve["test"]]
        assert 1 <= len(steps) <= 2 and steps[-1] == t["step"] and steps == sorted(steps)
    assert result["learning_curves"]["rayzer"]["test"][-1]["rot_err_deg_median"] is not None
    assert result["learning_curves"]["rayzer"]["full_resolution_from"] is None  # one size
    md = (out / "quality.md").read_text()
    assert "| even | PSNR (dB) ↑ |" in md and "identity pose" in md
    assert md.count("PASS") + md.count("FAIL") >= 6
    png = iio.imread(out / "quality.png")
    assert png.ndim == 3 and png.shape[0] > 300 and png.shape[1] > 300

    # evaluating the saved runs again reproduces the final numbers
    again = tmp_path / "again"
    runs = [str(out / "rayzer"), str(out / "lvsm")]
    skip = ["bench", "quality", "--skip-train", *runs, "--test-scenes", "2", "--no-lpips"]
    assert main([*skip, "--curve-points", "1", "--out", str(again)]) == 0
    second = json.loads((again / "quality.json").read_text())
    for protocol in ("even", "random"):
        for m in METHODS:
            assert second["results"][protocol]["psnr"][m] == pytest.approx(
                result["results"][protocol]["psnr"][m], abs=1e-5
            )
    assert second["training"]["rayzer"]["step"] == result["training"]["rayzer"]["step"]

    capsys.readouterr()
    swapped = ["bench", "quality", "--skip-train", runs[1], runs[0], "--out", str(tmp_path / "x")]
    assert main(swapped) == 2
    assert "expected 'rayzer'" in capsys.readouterr().err
    assert main([*skip, "model.dim=64", "--out", str(tmp_path / "y")]) == 2
    assert "not allowed" in capsys.readouterr().err
    # training into a folder that already holds runs is refused (no silent mixing)
    assert main(args) == 2
    assert "already holds checkpoints" in capsys.readouterr().err

    # --lvsm-run: RayZer is trained, the existing LVSM run is evaluated beside it
    reuse = ["bench", "quality", "--minutes", "0.05", "--test-scenes", "2", "--no-lpips"]
    reuse += ["--curve-points", "1", "--lvsm-run", runs[1], *TINY]
    # (progressive resolution for this RayZer run: LVSM's data only has to match in size)
    low_res = ["data.low_res_size=16", "data.low_res_steps=5"]
    assert main([*reuse, *low_res, "--out", str(tmp_path / "reuse")]) == 0
    third = json.loads((tmp_path / "reuse" / "quality.json").read_text())
    # the reused run's settings that differ from what this benchmark would have trained
    assert third["lvsm_run_differences"] == [
        "data.low_res_size: 0 vs 16",
        "data.low_res_steps: 0 vs 5",
    ]
    assert "data.low_res_steps: 0 vs 5" in (tmp_path / "reuse" / "quality.md").read_text()
    switch = third["learning_curves"]["rayzer"]["full_resolution_from"]
    assert switch["step"] == 5 and switch["sizes"] == [16, 32] and switch["minutes"] > 0
    assert third["learning_curves"]["lvsm"]["full_resolution_from"] is None
    assert not (tmp_path / "reuse" / "lvsm").exists()
    assert Path(third["lvsm_run"]).is_relative_to(runs[1])
    assert runs[1] in (tmp_path / "reuse" / "quality.md").read_text()
    for protocol in ("even", "random"):
        assert third["results"][protocol]["psnr"]["lvsm"] == pytest.approx(
            result["results"][protocol]["psnr"]["lvsm"], abs=1e-5
        )
    assert third["training"]["rayzer"]["step"] >= 1
    capsys.readouterr()
    bad = [
        (["--lvsm-run", runs[0]], "expected 'lvsm'"),
        (["--minutes", "0.07"], "0.05 min budget"),
        (["data.num_target_views=3"], "different data"),
    ]
    # only the final checkpoint of a run that finished stands in for a trained LVSM
    first = sorted((Path(runs[1]) / "checkpoints").iterdir())[0]
    bad.append((["--lvsm-run", str(first)], "not the last checkpoint"))
    interrupted = tmp_path / "interrupted"
    shutil.copytree(runs[1], interrupted)
    with (interrupted / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"step": 48, "event": "stop", "reason": "SIGTERM"}) + "\n")
    bad.append((["--lvsm-run", str(interrupted)], "stopped by SIGTERM"))
    for extra, message in bad:
        assert main([*reuse, *extra, "--out", str(tmp_path / "z")]) == 2, extra
        assert message in capsys.readouterr().err, extra
        assert not (tmp_path / "z").exists()  # refused before any training
    assert main([*skip, "--lvsm-run", runs[1], "--out", str(tmp_path / "z")]) == 2
    assert "--lvsm-run trains RayZer only" in capsys.readouterr().err


def test_bench_quality_lvsm_set(tmp_path, capsys):
    """--lvsm-set changes the LVSM run only, is reported, and refuses what would make the
    comparison unequal (before any training)."""
    base = ["bench", "quality", "--minutes", "0.03", "--test-scenes", "2", "--no-lpips"]
    base += ["--curve-points", "1", *TINY]
    bad = [
        (["--lvsm-set", "data.num_target_views=3"], "different data"),
        (["--lvsm-set", "model.name=rayzer"], "--lvsm-set model.name is not allowed"),
        (["--lvsm-set", "train.time_budget_minutes=9"], "use --minutes"),
        (["--lvsm-set", "train.steps"], "expects KEY=VALUE"),
        (["--lvsm-set", "train.steps=7", "--lvsm-run", str(tmp_path)], "cannot be combined"),
        (["--lvsm-set", "train.no_such_key=1"], "no_such_key"),
    ]
    for extra, message in bad:
        assert main([*base, *extra, "--out", str(tmp_path / "z")]) == 2, extra
        assert message in capsys.readouterr().err, extra
        assert not (tmp_path / "z").exists()

    out = tmp_path / "bench"
    extra = ["--lvsm-set", "train.steps=7", "--lvsm-set", "train.lr=0.002"]
    assert main([*base, "train.steps=5", *extra, "--out", str(out)]) == 0
    result = json.loads((out / "quality.json").read_text())
    assert result["lvsm_overrides"] == ["train.steps=7", "train.lr=0.002"]
    assert "LVSM only: `train.steps=7 train.lr=0.002`" in (out / "quality.md").read_text()
    cfg = {n: yaml.safe_load((out / n / "config.yaml").read_text()) for n in ("rayzer", "lvsm")}
    assert cfg["rayzer"]["train"]["steps"] == 5 and cfg["lvsm"]["train"]["steps"] == 7
    assert cfg["rayzer"]["train"]["lr"] != 0.002 and cfg["lvsm"]["train"]["lr"] == 0.002
    assert result["training"]["lvsm"]["step"] <= 7


def test_helpers():
    ckpts = [Path(f"step_{i:06d}") for i in range(1, 11)]
    picked = pick_checkpoints(ckpts, 4)
    assert picked[0] == ckpts[0] and picked[-1] == ckpts[-1] and len(picked) == 4
    assert pick_checkpoints(ckpts[:3], 8) == ckpts[:3] and pick_checkpoints(ckpts, 0) == []

    # logs at steps 10 and 20, 1 s/step, started at t = 100 → minutes of steps 5, 20, 30
    recs = [
        {"step": 10, "time": 110.0, "step_time": 1.0},
        {"step": 20, "time": 120.0, "step_time": 1.0},
    ]
    assert minutes_at(recs, [5, 20, 30]) == pytest.approx([5 / 60, 20 / 60, 30 / 60])
    assert minutes_at([], [3]) == [None]

    res = {
        "psnr": {"rayzer": 20.0, "lvsm": 20.5, "copy_nearest": 17.5, "mean_of_inputs": 18.0},
        "pose": {"rot_err_deg_median": 12.0},
        "identity_pose": {"rot_err_deg_median": 30.0},
    }
    checks = {c["name"]: c for c in check_targets(res)}
    assert checks["psnr_vs_baselines"]["pass"] and checks["psnr_vs_lvsm"]["pass"]
    assert not checks["rotation_error"]["pass"] and "12.00°" in checks["rotation_error"]["detail"]
    res["psnr"]["rayzer"] = 19.9
    assert not check_targets(res)[0]["pass"]  # 19.9 < 18 + 2
