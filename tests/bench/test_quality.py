"""`rayzer bench quality` end to end at tiny scale, `--skip-train`, and its helpers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import pytest
import yaml

from _tiny import TINY_MODEL
from rayzer.bench.quality import check_targets
from rayzer.bench.run_history import minutes_at, pick_checkpoints, read_metrics
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
    # The 3-second budget counts this process's CPU time: on a loaded machine a wall-clock
    # budget bought fewer than `log_every` steps and left the training curve empty.
    "train.time_budget_clock=process",
]
METHODS = {"rayzer", "lvsm", "copy_nearest", "mean_of_inputs"}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


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
        pose = res["pose"]["rayzer"]
        for key in ("rot_err_deg_median", "trans_dir_err_deg_median", "rot_acc", "auc", "rpa"):
            assert key in pose
        assert "focal_pred_mean" in pose and "focal_true_mean" in pose
        # what a method cannot output is null, never 0
        for m in ("lvsm", "copy_nearest", "mean_of_inputs"):
            assert res["pose"][m] is None and res["collapse"][m] is None
        assert all(v is None for v in res["depth"].values())  # no method here has depth
        assert "rot_err_deg_median" in res["identity_pose"]
        for key in ("noncanonical_spread_deg_median", "pred_rel_rot_deg_median", "focal_spread"):
            assert key in res["collapse"]["rayzer"]
        assert [(t["method"], t["name"]) for t in result["targets"][protocol]] == [
            ("rayzer", "psnr_vs_baselines"),
            ("rayzer", "psnr_vs_oracle"),
            ("rayzer", "rotation_error"),
        ]
        assert all(isinstance(t["pass"], bool) for t in result["targets"][protocol])
        assert set(result["per_sample"][protocol]) == METHODS
        assert len(result["per_sample"][protocol]["rayzer"]) == 2
    for name in ("rayzer", "lvsm"):
        t = result["training"][name]
        assert t["step"] >= 1 and t["stopped_by"] in ("time_budget", None)
        curve = result["learning_curves"]["runs"][name]
        assert curve["train"] and all("psnr" in r and "minutes" in r for r in curve["train"])
        steps = [r["step"] for r in curve["test"]]
        assert 1 <= len(steps) <= 2 and steps[-1] == t["step"] and steps == sorted(steps)
    curves = result["learning_curves"]["runs"]
    assert curves["rayzer"]["test"][-1]["rot_err_deg_median"] is not None
    assert curves["rayzer"]["full_resolution_from"] is None  # one size
    assert result["methods"] == ["rayzer", "lvsm", "copy_nearest", "mean_of_inputs"]
    md = (out / "quality.md").read_text()
    assert "### Protocol `even`" in md and "identity pose" in md
    assert md.count("| LVSM (oracle) | ") >= 2 and md.count("| copy-nearest | ") == 2
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
    # (progressive resolution for this RayZer run: LVSM's data only has to match in size; an
    # early switch and a scalar every step, so that the 3 s budget reaches it on a busy CPU)
    low_res = ["data.low_res_size=16", "data.low_res_steps=2", "train.log_every=1"]
    assert main([*reuse, *low_res, "--out", str(tmp_path / "reuse")]) == 0
    third = json.loads((tmp_path / "reuse" / "quality.json").read_text())
    # the reused run's settings that differ from what this benchmark would have trained
    assert third["lvsm_run_differences"] == [
        "data.low_res_size: 0 vs 16",
        "data.low_res_steps: 0 vs 2",
    ]
    assert "data.low_res_steps: 0 vs 2" in (tmp_path / "reuse" / "quality.md").read_text()
    switch = third["learning_curves"]["runs"]["rayzer"]["full_resolution_from"]
    assert switch["step"] == 2 and switch["sizes"] == [16, 32] and switch["minutes"] > 0
    # on the run's budget clock (TINY: process), like the curves: the logged cpu_s of step 2
    (at_switch,) = [r for r in read_metrics(tmp_path / "reuse" / "rayzer")[0] if r["step"] == 2]
    assert switch["minutes"] == pytest.approx(at_switch["cpu_s"] / 60)
    assert third["learning_curves"]["runs"]["lvsm"]["full_resolution_from"] is None
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
        (["--clock", "wall"], "trained with a process-clock budget"),
        (["data.num_target_views=3"], "different data"),
    ]
    # only the final checkpoint of a run that finished stands in for a trained LVSM (a copy of
    # the run with a later checkpoint: how many the 3 s budget writes depends on the CPU load)
    continued = tmp_path / "continued"
    shutil.copytree(runs[1], continued)
    final = sorted((continued / "checkpoints").iterdir())[-1]
    shutil.copytree(final, continued / "checkpoints" / "step_999999")
    bad.append((["--lvsm-run", str(final)], "not the last checkpoint"))
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
        (["--lvsm-set", "train.time_budget_clock=wall"], "use --clock"),
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
    assert pick_checkpoints(ckpts, 1) == [ckpts[-1]]

    # logs at steps 10 and 20, 1 s/step, started at t = 100 → minutes of steps 5, 20, 30
    recs = [
        {"step": 10, "time": 110.0, "step_time": 1.0},
        {"step": 20, "time": 120.0, "step_time": 1.0},
    ]
    assert minutes_at(recs, [5, 20, 30]) == pytest.approx([5 / 60, 20 / 60, 30 / 60])
    assert minutes_at([], [3]) == [None]
    # the process clock reads cpu_s (CPU s since training started), not the wall stamps: 3 CPU
    # s/step here; a run logged without cpu_s has no process minutes
    assert minutes_at(recs, [20], "process") == [None]
    cpu = [{**r, "cpu_s": 3.0 * r["step"]} for r in recs]
    assert minutes_at(cpu, [5, 20, 30], "process") == pytest.approx([0.25, 1.0, 1.5])
    assert minutes_at(cpu, [20]) == pytest.approx([20 / 60])  # wall unchanged
    # a resumed invocation restarts cpu_s at 0: its CPU adds to the earlier total
    resumed = [*cpu, {"step": 30, "time": 500.0, "step_time": 1.0, "cpu_s": 30.0}]
    assert minutes_at(resumed, [30], "process") == pytest.approx([1.5])
    with pytest.raises(ValueError, match="unknown clock"):
        minutes_at(cpu, [5], "cpu")


def test_process_minutes_across_resumes(tmp_path):
    """A resumed invocation's cpu_s restarts at 0; its CPU adds to the earlier total even when
    its first record logs more CPU than the earlier invocation's last (a short first run), and
    an abandoned branch's CPU is not counted."""
    lines = [
        {"step": 10, "time": 110.0, "step_time": 1.0, "cpu_s": 30.0},
        {"step": 10, "event": "checkpoint"},
        {"step": 10, "event": "resume", "checkpoint": "step_000010"},
        {"step": 20, "time": 900.0, "step_time": 1.0, "cpu_s": 32.0},  # > 30: no drop
        {"step": 30, "time": 910.0, "step_time": 1.0, "cpu_s": 62.0},
        {"step": 40, "time": 920.0, "step_time": 1.0, "cpu_s": 92.0},  # abandoned below
        {"step": 30, "event": "resume", "checkpoint": "step_000030"},
        {"step": 40, "time": 990.0, "step_time": 1.0, "cpu_s": 31.0},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    scalars, _ = read_metrics(tmp_path)
    assert [r["step"] for r in scalars] == [10, 20, 30, 40]
    got = minutes_at(scalars, [10, 20, 30, 40], "process")
    assert got == pytest.approx([30 / 60, 62 / 60, 92 / 60, 123 / 60])

    res = {
        "psnr": {"rayzer": 20.0, "lvsm": 20.5, "copy_nearest": 17.5, "mean_of_inputs": 18.0},
        "pose": {"rayzer": {"rot_err_deg_median": 12.0}, "lvsm": None},
        "identity_pose": {"rot_err_deg_median": 30.0},
    }
    kinds = {"rayzer": "self", "lvsm": "oracle"}
    checks = {c["name"]: c for c in check_targets(res, kinds)}
    assert checks["psnr_vs_baselines"]["pass"] and checks["psnr_vs_oracle"]["pass"]
    assert not checks["rotation_error"]["pass"] and "12.00°" in checks["rotation_error"]["detail"]
    res["psnr"]["rayzer"] = 19.9
    assert not check_targets(res, kinds)[0]["pass"]  # 19.9 < 18 + 2
    assert check_targets(res, {"lvsm": "oracle"}) == []  # only camera-predicting rows have targets


#: Explicit-3D runs of a few steps on the bundled RayZer's data (orbit, 64 px, 4 + 4 views of
#: 24-frame clips), so the three are tested on one held-out set.
SHORT = ["train.steps=2", "train.batch_size=1", "train.log_every=1", "train.image_every=0"]
SHORT += ["train.ckpt_every=1", "train.num_threads=1"]


@pytest.fixture(scope="module")
def explicit_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("explicit")
    runs = {}
    for name in ("erayzer", "nas3r"):
        runs[name] = root / name
        assert (
            main(["train", "--config", f"{name}-tiny-cpu", "--out", str(runs[name]), *SHORT]) == 0
        )
    return runs


def test_bench_quality_evaluates_any_list_of_runs(tmp_path, explicit_runs, capsys):
    """--runs: the bundled RayZer checkpoint and E-RayZer / NAS3R runs on one test set; one row
    per method, "—" (null in the JSON) for what a method cannot output."""
    from rayzer.bundled import bundled_checkpoint

    out = tmp_path / "bench"
    runs = [f"rayzer={bundled_checkpoint()}"]
    runs += [f"{n}={p}" for n, p in explicit_runs.items()]
    args = ["bench", "quality", "--scenes", "2", "--no-lpips", "--curve-points", "1"]
    assert main([*args, "--out", str(out), "--runs", *runs]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["quality.json", "quality.md", "quality.png"]
    result = json.loads((out / "quality.json").read_text())
    methods = ["rayzer", "erayzer", "nas3r", "copy_nearest", "mean_of_inputs"]
    assert result["methods"] == methods and result["test_set"]["num_scenes"] == 2
    assert (
        result["training"]["erayzer"]["step"] == 2 and result["training"]["rayzer"]["step"] == 1600
    )
    for protocol in ("even", "random"):
        res = result["results"][protocol]
        for metric in ("psnr", "ssim"):
            assert list(res[metric]) == methods
        for m in ("rayzer", "erayzer", "nas3r"):
            pose = res["pose"][m]
            assert set(pose["auc"]) == {"@5", "@10", "@20", "@30"}
            assert set(pose["rpa"]) == {"@5", "@15", "@30"}
            assert pose["focal_rel_err_median"] >= 0
        for m in ("erayzer", "nas3r"):  # depth against the exact synthetic depth
            depth = res["depth"][m]
            assert depth["abs_rel"] > 0 and 0 <= depth["delta_1_25"] <= 1
            assert depth["num_images"] == 2 * 4
        for m in ("rayzer", "copy_nearest", "mean_of_inputs"):
            assert res["depth"][m] is None
        for m in ("copy_nearest", "mean_of_inputs"):
            assert res["pose"][m] is None
    md = (out / "quality.md").read_text()
    lines = md.splitlines()
    main_rows = [r.split(" | ") for r in lines if r.startswith("| E-RayZer |")]
    # the main tables: 15 columns on orbit, whose scenes turn one way (by-turn medians)
    main_rows = [r for r in main_rows if len(r) == 15]
    # every number but LPIPS (disabled here)
    assert len(main_rows) == 2 and all(r[3] == "—" and "—" not in r[:3] + r[4:] for r in main_rows)
    rayzer_row = next(line for line in lines if line.startswith("| RayZer |"))
    assert rayzer_row.split(" | ")[10:12] == ["—", "—"]  # no depth
    even = result["results"]["even"]
    split = even["pose"]["rayzer"]["by_turn"]
    cells = rayzer_row.split(" | ")[5:7]
    assert cells == [
        f"{split['plus']['rot_err_deg_median']:.2f} / {split['minus']['rot_err_deg_median']:.2f}",
        f"{split['balanced_rot_err_deg_median']:.2f}",
    ]
    assert even["identity_pose"]["by_turn"]["balanced_rot_err_deg_median"] > 0
    assert "Turn + / −: the rotation median over the pairs of the scenes" in md
    # the runs must share their data settings
    capsys.readouterr()
    small = tmp_path / "small"
    assert (
        main(
            [
                "train",
                "--config",
                "nas3r-tiny-cpu",
                "--out",
                str(small),
                *SHORT,
                "data.image_size=32",
            ]
        )
        == 0
    )
    bad = [f"rayzer={bundled_checkpoint()}", f"nas3r={small}"]
    assert main([*args, "--out", str(tmp_path / "z"), "--runs", *bad]) == 2
    assert "different data" in capsys.readouterr().err and not (tmp_path / "z").exists()
    # a label that names a model must hold it
    assert (
        main([*args, "--out", str(tmp_path / "z"), "--runs", f"nas3r={explicit_runs['erayzer']}"])
        == 2
    )
    assert "expected 'nas3r'" in capsys.readouterr().err


def test_run_labels_are_checked():
    from rayzer.bench.quality import parse_labelled, resolve_run_path
    from rayzer.bundled import bundled_checkpoint

    assert parse_labelled(["a=x", "b-2=y"], "--runs", need_value=True) == {"a": "x", "b-2": "y"}
    assert parse_labelled(["rayzer", "e=erayzer-tiny-cpu"], "--models", need_value=False) == {
        "rayzer": None,
        "e": "erayzer-tiny-cpu",
    }
    for items, message in (
        (["a=x", "a=y"], "given twice"),
        (["copy_nearest=x"], "baseline"),
        (["a"], "LABEL=PATH"),
        (["train.steps=5"], "bad label"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_labelled(items, "--runs", need_value=True)
    assert resolve_run_path("bundled") == bundled_checkpoint()


def test_bench_quality_trains_a_list_of_presets(tmp_path, capsys):
    """--models LABEL=PRESET …: each preset trained with the same budget into out/LABEL, then
    evaluated side by side; a preset that builds another model than its label is refused."""
    base = ["bench", "quality", "--minutes", "0.5", "--scenes", "2", "--no-lpips"]
    base += ["--curve-points", "1", "--span", "16", "--min-gt-rotation", "0", "train.steps=2"]
    base += ["train.batch_size=1", "train.image_every=0", "train.num_threads=1"]
    base += ["data.image_size=32", "data.frames_per_clip=16", "data.span_end_max=16"]
    base += ["train.log_every=1"]
    out = tmp_path / "bench"
    models = ["--models", "erayzer=erayzer-tiny-cpu", "nas3r=nas3r-tiny-cpu"]
    # --clock process: every run's budget counts process CPU, and the report says so
    assert main([*base, "--clock", "process", "--out", str(out), *models]) == 0
    result = json.loads((out / "quality.json").read_text())
    assert result["methods"] == ["erayzer", "nas3r", "copy_nearest", "mean_of_inputs"]
    assert result["budgets_minutes"] == {"erayzer": 0.5, "nas3r": 0.5}
    assert result["clock"] == "process"
    assert result["budget_clocks"] == {"erayzer": "process", "nas3r": "process"}
    for name in ("erayzer", "nas3r"):
        cfg = yaml.safe_load((out / name / "config.yaml").read_text())
        assert cfg["model"]["name"] == name and cfg["train"]["time_budget_minutes"] == 0.5
        assert cfg["train"]["time_budget_clock"] == "process"
        assert cfg["data"]["image_size"] == 32 and result["training"][name]["step"] == 2
        assert result["results"]["even"]["depth"][name]["num_images"] == 2 * 4
        # the curves' minutes are the logged process CPU (cpu_s), not the wall stamps
        logged = [json.loads(line) for line in (out / name / "metrics.jsonl").open()]
        cpu = {r["step"]: r["cpu_s"] / 60 for r in logged if "cpu_s" in r}
        curve = result["learning_curves"]["runs"][name]
        assert curve["clock"] == "process" and set(cpu) == {1, 2}
        assert [r["minutes"] for r in curve["train"]] == pytest.approx([cpu[1], cpu[2]])
        assert curve["test"][-1]["minutes"] == pytest.approx(cpu[2])
        training = result["training"][name]
        assert training["budget_clock"] == "process"
        assert training["cpu_minutes"] == pytest.approx(cpu[2])
    md = (out / "quality.md").read_text()
    assert "budget 0.500 process-CPU min per model" in md
    assert "| model | step | process-CPU min | PSNR (dB) |" in md
    assert "| model | steps | wall min | CPU min |" in md
    # existing runs report their own clock; --clock is for the runs this benchmark trains
    again = tmp_path / "again"
    runs = ["--runs", f"erayzer={out / 'erayzer'}", f"nas3r={out / 'nas3r'}"]
    evaluate_only = ["bench", "quality", "--scenes", "2", "--no-lpips", "--curve-points", "1"]
    evaluate_only += ["--span", "16", "--min-gt-rotation", "0", "--out", str(again)]
    assert main([*evaluate_only, *runs]) == 0
    assert json.loads((again / "quality.json").read_text())["clock"] == "process"
    capsys.readouterr()
    assert main([*evaluate_only, "--clock", "wall", *runs]) == 2
    assert "--clock" in capsys.readouterr().err
    capsys.readouterr()
    bad = ["--models", "lvsm=erayzer-tiny-cpu"]
    assert main([*base, "--out", str(tmp_path / "z"), *bad]) == 2
    assert "builds a 'erayzer' model" in capsys.readouterr().err and not (tmp_path / "z").exists()


def test_report_names_a_non_square_test_size():
    """data.image_size=[H, W] (issue 18 item 3): the setup paragraph says 'H×W', not the list."""
    from rayzer.bench.quality_report import to_markdown

    root = Path(__file__).resolve().parents[2] / "docs" / "benchmarks" / "side-by-side-orbit"
    result = json.loads((root / "quality.json").read_text())
    assert "views of 64×64 over" in to_markdown(result)
    result["test_set"]["image_size"] = [24, 40]
    text = to_markdown(result)
    assert "views of 24×40 over" in text and "[24, 40]" not in text
