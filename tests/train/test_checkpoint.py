"""Checkpoints: round trip, atomic writes, keep-last-K, resolution and clear load errors."""

import os
import random
import stat

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import rayzer.train.checkpoint as ckpt_mod
from rayzer.models import LVSM, RayZer
from rayzer.train.checkpoint import (
    MODEL_FILE,
    STATE_FILE,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_model_weights,
    resolve_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from rayzer.train.optim import build_optimizer


def _trained(cfg):
    """A model + AdamW with non-trivial state after one update."""
    model = RayZer(cfg.model)
    opt = build_optimizer(model, cfg.train)
    images = torch.rand(1, 4, 3, 16, 16)
    model({"image": images}, [0, 1], [2, 3]).render.mean().backward()
    opt.step()
    return model, opt


def test_round_trip_restores_weights_optimizer_and_rng(tmp_path, tiny_config):
    cfg = tiny_config()
    model, opt = _trained(cfg)
    state = {"optimizer": opt.state_dict(), "rng": [rng_state()], "extra": {"k": 3}}
    path = save_checkpoint(tmp_path, 7, model, state, cfg)
    assert path.name == "step_000007"
    assert {p.name for p in path.iterdir()} == {
        MODEL_FILE,
        STATE_FILE,
        "config.yaml",
        "meta.json",
    }
    # the training state is loadable with the safe unpickler
    raw = torch.load(path / STATE_FILE, weights_only=True)
    assert raw["step"] == 7 and raw["model"] == "rayzer"

    expected_draws = (random.random(), np.random.rand(), torch.rand(3))
    fresh = RayZer(cfg.model)
    loaded = load_checkpoint(tmp_path, fresh)  # run dir → latest
    assert loaded.step == 7 and loaded.path == path and loaded.config == cfg
    for (n, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        assert torch.equal(a, b), n
    opt2 = build_optimizer(fresh, cfg.train)
    opt2.load_state_dict(loaded.state["optimizer"])
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    for k in s1:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(s1[k][name], s2[k][name])
    set_rng_state(loaded.state["rng"][0])
    draws = (random.random(), np.random.rand(), torch.rand(3))
    assert draws[0] == expected_draws[0] and draws[1] == expected_draws[1]
    assert torch.equal(draws[2], expected_draws[2])


def test_failed_write_leaves_previous_checkpoints_intact(tmp_path, tiny_config, monkeypatch):
    cfg = tiny_config()
    model = RayZer(cfg.model)
    good = save_checkpoint(tmp_path, 1, model, {}, cfg)

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, 2, model, {}, cfg)
    monkeypatch.undo()
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["step_000001"]  # no partial dir, no temp
    assert latest_checkpoint(tmp_path) == good
    # a stale temp dir from a killed process is never taken for a checkpoint
    stale = root / ".tmp-step_000009-123"
    stale.mkdir()
    (stale / MODEL_FILE).write_bytes(b"partial")
    assert list_checkpoints(tmp_path) == [good]
    # re-saving an existing step replaces it atomically
    again = save_checkpoint(tmp_path, 1, model, {"x": 1}, cfg)
    assert again == good and torch.load(good / STATE_FILE, weights_only=True)["x"] == 1


def test_a_resave_cut_between_its_renames_loses_nothing(tmp_path, tiny_config):
    """Re-saving a step moves the old copy to .old-step_N-PID before the new one is renamed in.
    If the process dies between the two renames, the step is still listed (from the .old copy)
    and the next save puts it back in place."""
    cfg = tiny_config()
    model = RayZer(cfg.model)
    save_checkpoint(tmp_path, 1, model, {"x": 0}, cfg)
    step2 = save_checkpoint(tmp_path, 2, model, {"x": 2}, cfg)
    cut = step2.parent / ".old-step_000002-4242"
    step2.rename(cut)  # the state right after the first rename of a re-save of step 2
    (step2.parent / ".tmp-step_000002-4242").mkdir()  # the unfinished new copy
    assert list_checkpoints(tmp_path)[-1] == cut
    assert latest_checkpoint(tmp_path) == cut
    assert load_checkpoint(tmp_path, model).step == 2
    save_checkpoint(tmp_path, 3, model, {"x": 3}, cfg)
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "step_000001",
        "step_000002",
        "step_000003",
    ]
    assert torch.load(step2 / STATE_FILE, weights_only=True)["x"] == 2
    assert not cut.exists()


def test_keep_last_k(tmp_path, tiny_config):
    cfg = tiny_config()
    model = RayZer(cfg.model)
    for step in (10, 20, 30, 40, 50):
        save_checkpoint(tmp_path, step, model, {}, cfg, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000040", "step_000050"]
    for step in (60, 70):
        save_checkpoint(tmp_path, step, model, {}, cfg, keep_last=0)  # 0 keeps all
    assert len(list_checkpoints(tmp_path)) == 4


def test_resolution(tmp_path, tiny_config):
    cfg = tiny_config()
    model = RayZer(cfg.model)
    for step in (5, 12):
        save_checkpoint(tmp_path, step, model, {}, cfg)
    latest = tmp_path / "checkpoints" / "step_000012"
    assert resolve_checkpoint(tmp_path) == latest
    assert resolve_checkpoint(tmp_path / "checkpoints") == latest
    assert resolve_checkpoint(latest / MODEL_FILE) == latest
    older = tmp_path / "checkpoints" / "step_000005"
    assert resolve_checkpoint(older) == older
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_checkpoint(tmp_path / "nope")
    empty = tmp_path / "empty_run"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="neither a checkpoint"):
        resolve_checkpoint(empty)


def test_corrupt_and_foreign_checkpoints_give_clear_errors(tmp_path, tiny_config):
    cfg = tiny_config()
    model = RayZer(cfg.model)
    path = save_checkpoint(tmp_path / "a", 1, model, {}, cfg)

    truncated = path / MODEL_FILE
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(path, RayZer(cfg.model))

    path = save_checkpoint(tmp_path / "b", 1, model, {}, cfg)
    (path / STATE_FILE).write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(path, RayZer(cfg.model))

    path = save_checkpoint(tmp_path / "c", 1, model, {}, cfg)
    (path / STATE_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=STATE_FILE):
        load_checkpoint(path, RayZer(cfg.model))

    # an LVSM checkpoint into a RayZer run
    lvsm_cfg = tiny_config("model.name=lvsm")
    path = save_checkpoint(tmp_path / "d", 1, LVSM(lvsm_cfg.model), {}, lvsm_cfg)
    with pytest.raises(ValueError, match="'lvsm' model but this run builds 'rayzer'"):
        load_checkpoint(path, RayZer(cfg.model))
    # same model family, different sizes
    big = tiny_config("model.dim=64")
    with pytest.raises(ValueError, match="shape mismatches"):
        load_model_weights(save_checkpoint(tmp_path / "e", 1, RayZer(big.model), {}, big), model)
    other = torch.nn.Linear(3, 3)
    with pytest.raises(ValueError, match="'linear' model"):
        load_model_weights(save_checkpoint(tmp_path / "f", 1, other, {}, cfg), model)
    # a safetensors file of some other network, without our metadata
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3, 3)}, str(foreign))
    with pytest.raises(ValueError, match=r"missing keys .*unexpected keys \['weight'\]"):
        load_model_weights(foreign, model)
    with pytest.raises(FileNotFoundError, match=MODEL_FILE):
        load_model_weights(tmp_path, model)


def _poison(ckpt, name: str, value: float) -> None:
    """Rewrite ``ckpt``'s weights with one entry of tensor ``name`` set to ``value``."""
    tensors, metadata = ckpt_mod.read_model_weights(ckpt)
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = value
    save_file(tensors, str(ckpt / MODEL_FILE), metadata=metadata)


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_weights_are_refused_at_load(tmp_path, tiny_config, value):
    """NaN weights once loaded silently (resume segfaulted in grid_sample's backward, infer
    wrote NaN renders): both loaders now name the file and the first bad tensor."""
    from rayzer.checkpoints import load_trained_model

    cfg = tiny_config()
    path = save_checkpoint(tmp_path, 3, RayZer(cfg.model), {}, cfg)
    name = sorted(RayZer(cfg.model).state_dict())[5]
    _poison(path, name, value)
    message = rf"{path / MODEL_FILE}'? hold non-finite values .* tensor '{name}'"
    with pytest.raises(ValueError, match=message):
        load_trained_model(path)
    with pytest.raises(ValueError, match=message):
        load_checkpoint(path, RayZer(cfg.model))


def test_newest_intact_checkpoint_skips_damaged_ones(tmp_path, tiny_config, caplog):
    cfg = tiny_config()
    model = RayZer(cfg.model)
    steps = [save_checkpoint(tmp_path, s, model, {}, cfg) for s in (1, 2, 3, 4)]
    assert ckpt_mod.latest_intact_checkpoint(tmp_path) == steps[3]
    _poison(steps[3], sorted(model.state_dict())[0], float("nan"))
    (steps[2] / STATE_FILE).write_bytes(b"\x00garbage")
    with caplog.at_level("WARNING", logger="rayzer.train"):
        assert ckpt_mod.latest_intact_checkpoint(tmp_path) == steps[1]
    warned = caplog.text
    assert "skipping checkpoint" in warned and str(steps[3]) in warned and "non-finite" in warned
    assert str(steps[2]) in warned and "corrupt" in warned
    for p in steps[:2]:
        (p / MODEL_FILE).write_bytes(b"truncated")
    with pytest.raises(ValueError, match=r"no checkpoint of .* can be resumed: step_000004"):
        ckpt_mod.latest_intact_checkpoint(tmp_path)
    assert ckpt_mod.latest_intact_checkpoint(tmp_path / "empty") is None


def test_temp_folders_of_dead_writers_are_removed(tmp_path, tiny_config):
    """A kill during a write left ``.tmp-step_N-PID`` behind forever; the next save removes
    those of dead processes and leaves a live writer's alone."""
    import subprocess
    import sys

    cfg = tiny_config()
    model = RayZer(cfg.model)
    root = save_checkpoint(tmp_path, 1, model, {}, cfg).parent
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                           capture_output=True, text=True)  # fmt: skip
    dead = root / f".tmp-step_000002-{int(child.stdout)}"
    live = root / f".tmp-step_000003-{os.getpid()}"
    for folder in (dead, live):
        folder.mkdir()
        (folder / MODEL_FILE).write_bytes(b"partial")
    save_checkpoint(tmp_path, 4, model, {}, cfg)
    assert not dead.exists() and live.exists()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000001", "step_000004"]


FULL_DISK = """
import resource, sys
from rayzer.config import load_config
from rayzer.models import RayZer
from rayzer.train.checkpoint import save_checkpoint
cfg = load_config("tiny-cpu", sys.argv[2:])
model = RayZer(cfg.model)
save_checkpoint(sys.argv[1], 1, model, {}, cfg)
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY))
try:
    save_checkpoint(sys.argv[1], 2, model, {"blob": bytes(100_000)}, cfg)
except OSError as err:
    print(err)
    sys.exit(3)
"""


def test_full_disk_names_the_folder_and_keeps_the_last_checkpoint(tmp_path, tiny_overrides):
    """A file-size limit (as a full disk) in a real writer: a one-line OSError naming the folder
    and its disk (it was a raw C++ error), no partial folder, the last checkpoint loads."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(tmp_path), *tiny_overrides],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 3, run.stderr
    message = run.stdout.strip()
    root = tmp_path / "checkpoints"
    assert f"cannot write checkpoint step 2 in {root}" in message
    assert "MB free on that disk" in message and "file-size limit" in message
    assert "previous checkpoints are intact" in message and "\n" not in message
    assert [p.name for p in root.iterdir()] == ["step_000001"]
    cfg = ckpt_mod.load_config(root / "step_000001" / "config.yaml")
    assert load_checkpoint(tmp_path, RayZer(cfg.model)).step == 1


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_checkpoint_files_share_the_umask_mode(tmp_path, tiny_config, umask):
    """model.safetensors was written 0600 beside 0644 files: all follow the umask now."""
    cfg = tiny_config()
    old = os.umask(umask)
    try:
        path = save_checkpoint(tmp_path, 1, RayZer(cfg.model), {}, cfg)
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.iterdir()}
    assert modes == dict.fromkeys(modes, 0o666 & ~umask), modes


def test_a_failed_first_write_does_not_claim_earlier_checkpoints(
    tmp_path, tiny_config, monkeypatch
):
    """The full-disk message said "the previous checkpoints are intact" also when the run had
    none; the first checkpoint's failure now says that nothing was written before."""
    import errno as errno_mod

    cfg = tiny_config()

    def full_disk(*args, **kwargs):
        raise OSError(errno_mod.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt_mod.torch, "save", full_disk)
    with pytest.raises(OSError, match="no earlier checkpoint of this run") as err:
        save_checkpoint(tmp_path, 1, RayZer(cfg.model), {}, cfg)
    assert "intact" not in str(err.value) and "the disk is full" in str(err.value)
    monkeypatch.undo()
    save_checkpoint(tmp_path, 1, RayZer(cfg.model), {}, cfg)
    monkeypatch.setattr(ckpt_mod.torch, "save", full_disk)
    with pytest.raises(OSError, match="the previous checkpoints are intact"):
        save_checkpoint(tmp_path, 2, RayZer(cfg.model), {}, cfg)
