"""`rayzer train` end to end: outputs, resume from the CLI, errors, and SIGTERM handling."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from rayzer.cli import main
from rayzer.config import load_config
from rayzer.models import RayZer
from rayzer.train import load_model_weights, resolve_checkpoint


def _records(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_cli_train_writes_weights_metrics_and_tensorboard(tmp_path, tiny_overrides, capsys):
    out = tmp_path / "run"
    args = ["train", "--config", "configs/tiny-cpu.yaml", *tiny_overrides, "train.steps=3"]
    if not os.path.exists("configs/tiny-cpu.yaml"):  # run from elsewhere: use the preset name
        args[2] = "tiny-cpu"
    assert main([*args, "--out", str(out)]) == 0
    ckpt = resolve_checkpoint(out)
    assert ckpt.name == "step_000003"
    assert (ckpt / "model.safetensors").is_file() and (out / "config.yaml").is_file()
    cfg = load_config(out / "config.yaml")
    assert cfg.train.steps == 3 and cfg.model.dim == 32 and cfg.train.out_dir == str(out)
    load_model_weights(ckpt, RayZer(cfg.model))  # the weights load into the configured model
    assert [r["step"] for r in _records(out) if "event" not in r] == [1, 2, 3]
    assert list((out / "tb").glob("events.out.tfevents.*"))

    # continue the run from its directory with more steps; config comes from the checkpoint
    assert main(["train", "--resume", str(out), "train.steps=5"]) == 0
    assert resolve_checkpoint(out).name == "step_000005"
    assert [r["step"] for r in _records(out) if "event" not in r] == [1, 2, 3, 4, 5]
    # `--resume key=value` is read as "--resume auto" + an override
    assert main([*args, "--out", str(out), "--resume", "train.steps=6"]) == 0
    assert resolve_checkpoint(out).name == "step_000006"

    capsys.readouterr()
    assert main([*args, "--out", str(out)]) == 2  # would mix two runs
    assert "already holds checkpoints" in capsys.readouterr().err
    assert main(["train", "model.dim=32"]) == 2
    assert "--config is required" in capsys.readouterr().err
    assert main([*args, "train.no_such_key=1", "--out", str(tmp_path / "x")]) == 2
    assert "no_such_key" in capsys.readouterr().err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_checkpoints_and_exits_cleanly(tmp_path, tiny_overrides, sig):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "rayzer.cli",
        "train",
        "--config",
        "tiny-cpu",
        *tiny_overrides,
        "train.steps=100000",
        "train.image_every=0",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            metrics = out / "metrics.jsonl"
            if metrics.is_file() and len(metrics.read_text().splitlines()) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    assert f"stopped ({sig.name})" in stdout
    records = _records(out)
    last_step = max(r["step"] for r in records if "event" not in r)
    assert last_step >= 2
    ckpt = resolve_checkpoint(out)
    assert ckpt.name == f"step_{last_step:06d}"  # the step that was running when the signal came
    events = [(r["event"], r["step"]) for r in records if "event" in r]
    assert events[-2:] == [("stop", last_step), ("checkpoint", last_step)]
    assert any(r.get("reason") == sig.name for r in records)
    state = json.loads((ckpt / "meta.json").read_text())
    assert state["step"] == last_step


def test_broken_config_files_fail_cleanly(tmp_path, tiny_overrides, capsys):
    """A broken ``--config`` and a corrupt ``config.yaml`` inside a checkpoint: exit code 2 and
    a one-line message naming the file, no traceback, nothing written."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    out = tmp_path / "run"
    assert main(["train", "--config", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "not a mapping" in err and err.count("\n") == 1
    assert not out.exists()

    bad.write_text("train: {steps: [1, \n")
    assert main(["train", "--config", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "line 2" in err and err.count("\n") == 1

    # a checkpoint whose config.yaml is damaged: resume, eval and infer all say which file
    from rayzer.train.checkpoint import save_checkpoint

    cfg = load_config("tiny-cpu", tiny_overrides)
    ckpt = save_checkpoint(tmp_path / "old", 3, RayZer(cfg.model), {}, cfg)
    (ckpt / "config.yaml").write_text("model:\n  - broken\n")
    for argv in (
        ["train", "--resume", str(ckpt), "--out", str(out)],
        ["eval", "--ckpt", str(ckpt), "--data", str(ckpt), "--out", str(tmp_path / "ev")],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert str(ckpt / "config.yaml") in err and "section 'model'" in err, err
        assert "Traceback" not in err and err.count("\n") == 1
    assert not out.exists() and not (tmp_path / "ev").exists()


def test_resume_auto_falls_back_to_the_newest_intact_checkpoint(tmp_path, tiny_overrides, caplog):
    """The latest checkpoint holds NaN weights (a diverged run): `--resume auto` once resumed it
    and crashed; now it warns, resumes the newest intact one and moves the bad one aside."""
    from safetensors.torch import save_file

    from rayzer.train.checkpoint import list_checkpoints, read_model_weights

    out = tmp_path / "run"
    args = ["train", "--config", "tiny-cpu", *tiny_overrides, "train.ckpt_every=1"]
    assert main([*args, "train.steps=3", "--out", str(out)]) == 0
    bad = resolve_checkpoint(out)
    tensors, metadata = read_model_weights(bad)
    name = sorted(tensors)[0]
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, str(bad / "model.safetensors"), metadata=metadata)

    with caplog.at_level("WARNING", logger="rayzer.train"):
        assert main([*args, "train.steps=4", "--out", str(out), "--resume", "auto"]) == 0
    assert f"skipping checkpoint {bad}" in caplog.text and repr(name) in caplog.text
    resumed = [r for r in _records(out) if r.get("event") == "resume"]
    assert resumed[-1]["checkpoint"].endswith("step_000002")
    assert [p.name for p in list_checkpoints(out)][-3:] == [f"step_00000{i}" for i in (2, 3, 4)]
    assert list((out / "checkpoints" / "superseded").glob("*/step_000003"))  # the NaN one
    cfg = load_config(out / "config.yaml")
    for ckpt in list_checkpoints(out):  # the re-trained step 3 and step 4 are finite
        load_model_weights(ckpt, RayZer(cfg.model))


def test_list_shows_every_model_with_its_flags_and_every_preset(capsys):
    from rayzer.config import list_methods, list_presets
    from rayzer.models import available_models

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--list"])
    assert exit_info.value.code == 0
    text = capsys.readouterr()
    lines = (text.out + text.err).splitlines()
    models = lines[1 : lines.index("presets (--config NAME):")]
    assert [line.split()[0] for line in models] == list(available_models())
    # one aligned column of flags, whatever the name lengths
    assert len({len(line) - len(line[2:].split(maxsplit=1)[1]) for line in models}) == 1
    assert "rayzer-latent-camera" in available_models()
    assert any("(no capability flags)" in line for line in models)
    for name in [*list_presets(), *list_methods()]:
        assert any(line.split()[0] == name for line in lines), name


def test_resuming_a_checkpoint_without_training_state_is_a_clear_error(
    tmp_path, tiny_overrides, capsys
):
    """A checkpoint saved with an empty training state (through the Python API) made `--resume`
    end in a KeyError traceback; now exit 2 naming the state file and what it lacks."""
    from rayzer.train.checkpoint import save_checkpoint

    cfg = load_config("tiny-cpu", tiny_overrides)
    ckpt = save_checkpoint(tmp_path / "api", 1, RayZer(cfg.model), {}, cfg)
    out = tmp_path / "run"
    assert main(["train", "--resume", str(ckpt), "--out", str(out), "train.steps=2"]) == 2
    err = capsys.readouterr().err
    assert f"{ckpt / 'state.pt'} holds no training state to resume" in err, err
    assert "'optimizer'" in err and "Traceback" not in err
