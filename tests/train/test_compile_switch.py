"""`rayzer train --compile` / ``train.compile``: opt-in torch.compile of the model, in place.

The compile itself (minutes on a CPU) is not run here: torch.compile is lazy, and these tests
check the wiring only."""

import pytest
import torch

import rayzer.train
from rayzer.cli import main
from rayzer.train import Trainer


def test_compile_is_off_by_default_and_in_place_when_on(tmp_path, tiny_config):
    plain = Trainer(tiny_config(), tmp_path / "plain")
    try:
        assert not plain.cfg.train.compile
        assert plain.model._compiled_call_impl is None
        names = list(plain.model.state_dict())
    finally:
        plain.close()
    compiled = Trainer(tiny_config("train.compile=true"), tmp_path / "compiled")
    try:
        assert compiled.model._compiled_call_impl is not None
        # compiled in place: the same parameter names, so checkpoints load either way
        assert list(compiled.model.state_dict()) == names
        assert isinstance(compiled.model, torch.nn.Module) and compiled.net is compiled.model
    finally:
        compiled.close()


class _Called(Exception):
    pass


@pytest.fixture
def seen(monkeypatch) -> dict:
    """``seen["overrides"]``: what `rayzer train` hands to ``run_training`` (which then raises
    :class:`_Called` instead of training)."""
    seen: dict = {}

    def fake_run_training(config, overrides, resume=None, out=None):
        seen["overrides"] = overrides
        raise _Called

    monkeypatch.setattr(rayzer.train, "run_training", fake_run_training)
    return seen


def test_cli_flag_sets_the_config_key(seen, tmp_path):
    with pytest.raises(_Called):
        main(["train", "--config", "tiny-cpu", "--compile", "--out", str(tmp_path / "r")])
    assert "train.compile=true" in seen["overrides"]
    with pytest.raises(_Called):
        main(["train", "--config", "tiny-cpu", "--out", str(tmp_path / "r")])
    assert "train.compile=true" not in seen["overrides"]


def test_compile_options_reach_the_compile(monkeypatch, tmp_path, tiny_config):
    """``train.compile_options`` are the ``options`` of the in-place compile; without
    ``train.compile`` they are a configuration error, not silently ignored."""
    calls = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: calls.append(kw))
    trainer = Trainer(
        tiny_config("train.compile=true", "train.compile_options.cpp_wrapper=true"),
        tmp_path / "r",
    )
    trainer.close()
    assert calls == [{"options": {"cpp_wrapper": True}}]
    calls.clear()
    Trainer(tiny_config("train.compile=true"), tmp_path / "p").close()
    assert calls == [{"options": None}]
    with pytest.raises(ValueError, match=r"compile_options needs train\.compile=true"):
        tiny_config("train.compile_options.cpp_wrapper=true")


def test_cli_compile_option_implies_compile(seen, tmp_path):
    with pytest.raises(_Called):
        main(["train", "--config", "tiny-cpu", "--compile-option", "cpp_wrapper=true",
              "--out", str(tmp_path / "r")])  # fmt: skip
    assert "train.compile=true" in seen["overrides"]
    assert "train.compile_options.cpp_wrapper=true" in seen["overrides"]


def test_cli_compile_option_errors_are_clear(monkeypatch, tmp_path, capsys):
    """A malformed ``--compile-option`` and a name inductor does not know exit 2 with
    ``rayzer: error:`` naming it, before any work, nothing written (a SystemExit with exit 1 and
    torch's RuntimeError traceback listing ~600 options before)."""

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    for option in ("cpp_wrapper", "=3"):
        monkeypatch.setattr(rayzer.train, "run_training", no_training)
        code = main(["train", "--config", "tiny-cpu", "--compile-option", option,
                     "--out", str(tmp_path / "r")])  # fmt: skip
        assert code == 2
        assert "KEY=VALUE" in capsys.readouterr().err
    monkeypatch.undo()
    code = main(["train", "--config", "tiny-cpu", "--compile-option", "cpp_wraper=true",
                 "--out", str(tmp_path / "r"), "train.num_threads=1"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert "rayzer: error: train.compile_options" in err and "'cpp_wraper'" in err, err
    assert "did you mean cpp_wrapper" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_dotted_compile_options_reach_the_compile_by_their_inductor_names(
    monkeypatch, tmp_path, tiny_config
):
    """``train.compile_options.triton.cudagraphs=false`` (OmegaConf makes it a nested dict)
    is inductor's ``triton.cudagraphs``: torch.compile refused the nested ``triton`` before."""
    calls = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: calls.append(kw))
    cfg = tiny_config("train.compile=true", "train.compile_options.triton.cudagraphs=false")
    Trainer(cfg, tmp_path / "r").close()
    assert calls == [{"options": {"triton.cudagraphs": False}}]
