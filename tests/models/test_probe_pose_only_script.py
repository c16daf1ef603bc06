"""``experiments/issue18_explicit/probe_pose_only.py`` measures what its README section says:
the pose branch's cameras and the pose-teacher term exactly as the model's own training step
computes them, and the held-out cameras exactly as ``rayzer bench quality``'s evaluation scores
them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from _scripts import ROOT, load_script
from _tiny import EXPLICIT_TINY, SMALL_STREAM, build_explicit
from rayzer.config import load_config
from rayzer.data.clip_sources import SyntheticClips, synth_config
from rayzer.data.stream import BatchLayout, TrainStream
from rayzer.eval.novel_view import evaluate
from rayzer.eval.synthetic_test_set import synthetic_test_sets

pytestmark = pytest.mark.usefixtures("one_thread")
KINDS = ("erayzer", "nas3r")


@pytest.fixture(scope="module")
def probe():
    with pytest.MonkeyPatch.context() as mp:  # it imports its sibling probe_orbit_sign_bound.py
        mp.syspath_prepend(str(ROOT / "experiments/issue18_explicit"))
        yield load_script("experiments/issue18_explicit/probe_pose_only.py")


@pytest.fixture(scope="module")
def batch() -> dict[str, torch.Tensor]:
    """A training micro-batch (2 + 2 views of 4 orbit clips at 32 px) whose teacher is the
    truth (what ``build_truth_teacher.py`` caches)."""
    cfg = load_config("tiny-cpu", ["data.family=orbit", *SMALL_STREAM]).data
    b = TrainStream(cfg, 0, BatchLayout(4)).micro_batch(0)
    b["teacher_c2w"] = b["c2w"].clone()
    b["teacher_valid"] = torch.ones(b["c2w"].shape[:2], dtype=torch.bool)
    return b


def moving(kind: str) -> torch.nn.Module:
    """A tiny model whose weights are perturbed: the initialised camera heads predict (almost)
    identity whatever the input, which would hide a wrong path."""
    model = build_explicit(kind, pose_teacher_weight=1.0)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("kind", KINDS)
def test_the_pose_only_cameras_and_term_are_the_training_steps(probe, batch, kind):
    model = moving(kind)
    with torch.no_grad():
        out = model(batch, batch["input_index"], batch["target_index"])
        full = model.loss(out, batch, None)
        cams = probe.pose_only_cameras(model, batch)
    torch.testing.assert_close(cams.c2w, out.cameras.c2w, rtol=0, atol=0)
    trainer = probe.PoseOnlyTrainer.__new__(probe.PoseOnlyTrainer)  # compute_loss needs .model
    trainer.model = model
    with torch.no_grad():
        terms, _ = trainer.compute_loss(batch)
    torch.testing.assert_close(terms["loss"], full["teacher"])
    assert float(terms["loss"]) > 0.01  # the perturbed head is not the truth


def test_part_weights_weigh_the_rotation_and_translation_parts(probe, batch):
    """--part-weights R T: the loss is R x rotation part + T x translation part; the logged
    term stays the unweighted sum."""
    trainer = probe.PoseOnlyTrainer.__new__(probe.PoseOnlyTrainer)
    trainer.model = moving("erayzer")
    with torch.no_grad():
        plain, _ = trainer.compute_loss(batch)
        trainer.part_weights = (1.0, 0.0)
        rot_only, _ = trainer.compute_loss(batch)
        trainer.part_weights = (10.0, 1.0)
        weighted, _ = trainer.compute_loss(batch)
    rot = rot_only["loss"]
    trans = plain["loss"] - rot
    assert float(rot) > 0.01 and float(trans) > 0.01  # both parts present on this batch
    # R weighs the rotation part (the logged mean rotation error, in radians), not the other
    torch.testing.assert_close(rot, torch.deg2rad(plain["teacher_rot_deg"]))
    torch.testing.assert_close(weighted["loss"], 10 * rot + trans)
    for terms in (rot_only, weighted):
        torch.testing.assert_close(terms["teacher"], plain["teacher"], rtol=0, atol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_the_held_out_report_is_the_bench_evaluations(probe, kind):
    cfg = load_config("tiny-cpu", ["data.family=orbit", *SMALL_STREAM]).data
    samples = synthetic_test_sets(
        synth_config(cfg), 3, 2, 2, span=cfg.span_range()[2], protocols=("even",)
    )["even"]
    model = moving(kind)
    got = probe.held_out(model, samples)
    bench = evaluate(model, samples, progress=False).summary
    assert got["rot_med"] == pytest.approx(bench["pose"]["rot_err_deg_median"], abs=1e-9)
    assert got["trans_med"] == pytest.approx(bench["pose"]["trans_dir_err_deg_median"], abs=1e-9)
    assert got["rpa"] == bench["pose"]["rpa"]
    split = bench["pose"]["by_turn"]  # the bench's split by true turn direction, both sides
    assert got["rot_med_by_turn"] == {s: split[s]["rot_err_deg_median"] for s in ("plus", "minus")}
    per_scene = samples[0].c2w.shape[0] * (samples[0].c2w.shape[0] - 1) // 2  # pairs
    assert got["turns"] == {s: split[s]["pairs"] // per_scene for s in ("plus", "minus")}
    collapse = bench["collapse"]
    assert got["spread_deg"] == pytest.approx(collapse["noncanonical_spread_deg_median"], abs=1e-9)
    assert got["rot_to_canonical_deg"] == pytest.approx(
        collapse["pred_rel_rot_deg_median"], abs=1e-9
    )
    assert got["rot_to_canonical_deg"] > 0.5  # the perturbed head does move the cameras


def git(root, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def test_the_tree_names_local_changes_of_the_code_not_untracked_files(probe, tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "src").mkdir()
    (tmp_path / "src/a.py").write_text("x = 1\n")
    git(tmp_path, "add", "src/a.py")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a")
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (tmp_path / "src/asset.bin").write_bytes(b"\0")  # untracked: imported by nothing
    (tmp_path / "notes.md").write_text("elsewhere\n")
    assert probe.git_tree(tmp_path) == head
    (tmp_path / "src/a.py").write_text("x = 2\n")
    assert probe.git_tree(tmp_path) == f"{head}+dirty"


@pytest.mark.parametrize(
    "variant", [[], ["--view-embedding"], ["--part-weights", "1", "0"]], ids=str
)
def test_a_run_records_the_tree_it_started_on(probe, tmp_path, monkeypatch, variant):
    """HEAD moves while a long run goes on (other commits): the JSON names the code the run
    imported, taken before training, not the HEAD of its last write. The run leaves the
    process as it found it (SIGTERM handler, the trainer's model builder, no run folder).
    A variant reaches the trainer and the JSON (--part-weights: every step's loss weighs)."""
    with monkeypatch.context() as mp:
        mp.syspath_prepend(str(ROOT / "experiments/issue18_explicit"))
        truth = load_script("experiments/issue18_explicit/build_truth_teacher.py")
    data = [*SMALL_STREAM, "data.family=orbit"]
    cfg = load_config("erayzer-tiny-cpu", data).data
    teacher = tmp_path / "truth.pt"
    truth.truth_teacher(SyntheticClips(synth_config(cfg)), range(2)).save(teacher)
    trees = iter(["started-on", "later", "later", "later", "later", "later"])
    monkeypatch.setattr(probe, "git_tree", lambda *_: next(trees))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    tiny = [f"model.{k}={v}" for k, v in EXPLICIT_TINY["erayzer"].items()]
    out = tmp_path / "probe"
    argv = ["probe_pose_only.py", "--teacher", str(teacher), "--pool", "2", "--steps", "2"]
    argv += ["--eval-every", "1", "--log-every", "1", "--eval-scenes", "2", "--out", str(out)]
    argv += [*variant, *tiny, *data, "train.batch_size=2", "train.warmup_steps=1"]
    monkeypatch.setattr(sys, "argv", argv)
    weights_seen = set()
    plain_loss = probe.PoseOnlyTrainer.compute_loss

    def compute_loss(trainer, batch):
        weights_seen.add(trainer.part_weights)
        return plain_loss(trainer, batch)

    monkeypatch.setattr(probe.PoseOnlyTrainer, "compute_loss", compute_loss)
    handler, build = signal.getsignal(signal.SIGTERM), probe.loop.build_model
    probe.main()
    assert signal.getsignal(signal.SIGTERM) is handler and probe.loop.build_model is build
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["tree"] == "started-on"
    assert result["steps"] == 2 and [e["step"] for e in result["evals"]] == [0, 1, 2]
    assert result["view_index_embedding"] == ("--view-embedding" in variant)
    weights = (1.0, 0.0) if "--part-weights" in variant else None
    assert weights_seen == {weights}
    assert result["part_weights"] == (list(weights) if weights else None)
    assert not list(tmp_path.glob("pose_only_*"))  # the trainer's run folder is removed


@pytest.mark.parametrize("weights", [["-1", "1"], ["0", "0"], ["nan", "1"], ["1", "inf"]])
def test_part_weights_must_be_finite_not_negative_and_not_both_zero(
    probe, monkeypatch, capsys, weights
):
    argv = ["probe_pose_only.py", "--teacher", "t.pt", "--out", "o", "--part-weights", *weights]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit):
        probe.main()
    assert "--part-weights wants finite weights" in capsys.readouterr().err


def test_the_probes_held_out_set_is_rayzer_bench_qualitys(probe):
    """Both probes score ``bench_even_set``: it must be the ``even`` set that ``rayzer bench
    quality`` builds with its defaults (scenes, cameras and images)."""
    import argparse

    from rayzer.bench import quality

    parser = argparse.ArgumentParser()
    quality.add_arguments(parser)
    args = parser.parse_args(["--test-scenes", "3", "--min-gt-rotation", "0"])
    # the widest training span (8) differs from the widest starting one (6)
    data = load_config("tiny-cpu", ["data.family=orbit", *SMALL_STREAM, "data.span_end_max=8"])
    bench = quality.build_test_sets(data.data, args)[0]["even"]
    ours = probe.bench_even_set(data.data, 3)
    assert [s.name for s in ours] == [s.name for s in bench]
    for a, b in zip(ours, bench, strict=True):
        assert torch.equal(a.images, b.images) and torch.equal(a.c2w, b.c2w)


def _fake_arm(steps: int) -> dict:
    """A probe JSON with evaluations every 100 steps and training rows every 10."""
    still = {"rot_med": 48.5, "trans_med": 90.0}
    evals = [
        {
            "step": s,
            "rot_med": 50.0 - s / 100,
            "trans_med": 90.0 - s / 100,
            "identity_rot_med": 48.5,
            "rpa": {"@30": 0.1},
            "spread_deg": 1.0,
            "rot_med_by_turn": {"plus": 40.0, "minus": 50.0},
            "turns": {"plus": 13, "minus": 19},
            "still_inputs": still,
        }
        for s in range(0, steps + 1, 100)
    ]
    train = [
        {
            "step": s,
            "term": 1.0,
            "rot_med": 20.0,
            "identity_rot_med": 21.0,
            "trans_med": 80.0,
            "skipped_total": s // 100,  # one skipped update every 100 steps
        }
        for s in range(10, steps + 1, 10)
    ]
    return {
        "steps": steps,
        "cpu_s_per_step": 0.2,
        "skipped_updates": steps // 100,
        "evals": evals,
        "train": train,
    }


def _arm_folders(tmp_path: Path, here: dict, elsewhere: dict) -> tuple[Path, Path]:
    """The summary's folder and another one, holding the given ``name: JSON`` files."""
    folders = tmp_path / "arms", tmp_path / "old"
    for folder, files in zip(folders, (here, elsewhere), strict=True):
        folder.mkdir()
        for name, content in files.items():
            (folder / f"{name}.json").write_text(json.dumps(content))
    return folders


def test_summary_reads_arms_up_to_max_step_and_takes_arms_from_elsewhere(tmp_path):
    summarize = load_script("experiments/issue18_explicit/summarize_pose_only.py")
    here, elsewhere = _arm_folders(tmp_path, {"lever": _fake_arm(300)}, {"long": _fake_arm(600)})
    summarize.main(here, (100, 300), 100, max_step=300, extra={"control": elsewhere / "long.json"})
    summary = json.loads((here / "summary.json").read_text())
    assert set(summary) == {"control", "lever"}
    assert summary["control"]["steps"] == 300  # the 600-step arm read up to 300
    assert summary["control"]["last_eval"]["step"] == 300
    assert [w["steps"] for w in summary["control"]["windows"]][-1] == "210–300"
    table = (here / "summary.md").read_text()
    # steps and skipped updates (CPU-s/step is the whole run's) at step 300 for both
    assert "| control | 300 | 0.200 | 3 |" in table and "| lever | 300 | 0.200 | 3 |" in table
    assert (here / "summary.png").stat().st_size > 0


def test_summary_refuses_an_arm_name_taken_twice_or_a_named_file_that_is_no_arm(tmp_path):
    """summary.json is keyed by arm name: an --arm named like an arm of the folder would have
    silently replaced it there; an --arm file without evaluations would have been skipped."""
    summarize = load_script("experiments/issue18_explicit/summarize_pose_only.py")
    here, elsewhere = _arm_folders(
        tmp_path,
        {"control": _fake_arm(300)},
        {"control": _fake_arm(600), "bound": {"rows": []}},  # bound: no evaluations
    )
    with pytest.raises(ValueError, match="two arms named 'control'"):
        summarize.main(here, (100,), 100, extra={"control": elsewhere / "control.json"})
    with pytest.raises(ValueError, match="not a probe_pose_only JSON"):
        summarize.main(here, (100,), 100, extra={"bound": elsewhere / "bound.json"})
    summarize.main(here, (100,), 100, extra={"control_6000": elsewhere / "control.json"})
    assert set(json.loads((here / "summary.json").read_text())) == {"control", "control_6000"}
